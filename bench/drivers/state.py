"""The coordinator's view of one cell's workers, fed by their queue (the process driver's bookkeeping)."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from bench.drivers.base import CellAborted, CellRun
from bench.drivers.results import ConsumerResult, ProducerResult, Role, WorkerResults, empty_results
from bench.run.events import WorkerStat

if TYPE_CHECKING:
    from bench.drivers.pool import WorkerPool
    from bench.run.events import RunEvents

__all__ = ["CellState"]


class CellState:
    """Worker messages (``ready``, ``stat``, ``result``, ``error``) turned into counts and results; health
    checks of the broker and of the worker processes on every pump."""

    def __init__(self, pool: WorkerPool, events: RunEvents) -> None:
        self.pool, self.events = pool, events
        self.ready: dict[Role, int] = {"producer": 0, "consumer": 0}
        self.results: WorkerResults = empty_results()
        self.totals: dict[tuple[Role, int], int] = {}
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def to_run(self, elapsed_s: float) -> CellRun:
        return CellRun(results=self.results, errors=list(self.errors), warnings=list(self.warnings),
                       elapsed_s=elapsed_s)

    def pump(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = self.pool.out.get(timeout=max(0.0, remaining)) if remaining > 0 else self.pool.out.get_nowait()
            except queue.Empty:
                break
            self.handle(msg)
        self._check_health()

    def handle(self, msg: tuple[Any, ...]) -> None:
        kind, role, index = msg[0], cast(Role, msg[1]), int(msg[2])
        if kind == "ready":
            self.ready[role] += 1
        elif kind == "stat":
            _k, _r, _i, t_s, count, p99, total = msg
            self.totals[(role, index)] = int(total)
            self.events.emit(WorkerStat(role, index, float(t_s), int(count), None if p99 is None else int(p99),
                                        int(total)))
        elif kind == "result":
            if role == "consumer":
                consumer = cast(ConsumerResult, msg[3])
                self.results["consumer"][index] = consumer
                self.totals[(role, index)] = consumer.get("received_total", 0)
            else:
                self.results["producer"][index] = cast(ProducerResult, msg[3])
        elif kind == "error":
            self.errors.append(f"{role} {index}: {msg[3]}")

    def _has_result(self, role: Role, index: int) -> bool:
        return index in self.results[role]

    def _check_health(self) -> None:
        if not self.events.alive():
            raise CellAborted("the embedded broker died mid-run", stops_run=True)
        for (role, index), code in self.pool.exit_codes().items():
            if code not in (None, 0) and not self._has_result(role, index):
                raise CellAborted(f"{role} {self.pool.describe(role, index)} died (exit code {code})"
                                  + self.pool.stderr_tail(role, index))

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str, hard: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() >= deadline:
                msg = f"timed out after {timeout:g} s waiting for {what}"
                if hard:
                    raise CellAborted(msg + self.pool.stderr_tails())
                self.warnings.append(msg)
                return False
            self.pump(0.1)
        return True

    def acked_now(self) -> int:
        return sum(v for (r, _i), v in self.totals.items() if r == "producer")

    def min_group_total(self, n_cons: int, per_group: int) -> int:
        groups: dict[int, int] = {}
        for i in range(n_cons):
            groups[i // per_group] = groups.get(i // per_group, 0) + self.totals.get(("consumer", i), 0)
        return min(groups.values()) if groups else 0

    def collect_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        expected = self.pool.size()
        while time.monotonic() < deadline and len(self.results["producer"]) + len(self.results["consumer"]) < expected:
            try:
                self.handle(self.pool.out.get(timeout=0.2))
            except queue.Empty:
                if not self.pool.any_alive():
                    break
