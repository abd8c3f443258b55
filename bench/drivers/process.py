"""The process driver: one OS process per worker, coordinated here.

librdkafka workers are Python processes (multiprocessing, spawn) running :mod:`bench.load`; workers of
any other client are external driver processes speaking the driver protocol (:mod:`bench.drivers.external`,
docs/drivers.md). Both report on one queue with the same messages (ready, stat, result, error), so the
coordination below does not care which client a worker uses.

Phases of a cell: consumers join → producers ready → ``t0`` set → warm-up → measure → producers flush →
consumers drain (until every group has read all acked messages, or the drain timeout) → stop. Ctrl-C, a
dead broker, a dead worker or a worker never ready/joined stops the workers and raises
:class:`~bench.drivers.base.CellAborted` with what was measured (``stops_run`` for Ctrl-C and the broker).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from typing import TYPE_CHECKING

from bench.drivers.base import BacklogDoc, CellAborted, CellJob, CellRun, DriverEnvironment
from bench.drivers.pool import WorkerPool, build_pool
from bench.drivers.state import CellState

if TYPE_CHECKING:
    from bench.run.events import RunEvents
    from bench.scenario.model import Workload

__all__ = ["JOIN_TIMEOUT_S", "READY_TIMEOUT_S", "ProcessDriver"]

JOIN_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0
_T0_LEAD_NS = 50_000_000          # t0 is set this far ahead, so every worker sees it before it passes


class ProcessDriver:
    """Runs each worker as its own process (librdkafka in Python, other clients as external drivers)."""

    name = "process"

    def __init__(self, kafka_version: str | None = None) -> None:
        self.kafka_version = kafka_version
        self._ctx = mp.get_context("spawn")

    def environment(self) -> DriverEnvironment:
        return DriverEnvironment(clock="CLOCK_MONOTONIC; producers and consumers on one host")

    def run_cell(self, job: CellJob, events: RunEvents) -> CellRun:
        pool = build_pool(self._ctx, job, kafka_version=self.kafka_version)
        state = CellState(pool, events)
        started = time.monotonic()
        try:
            events.set_phase("starting workers")
            pool.start()
            backlog = _coordinate(job, pool, state, events)
            run = state.to_run(time.monotonic() - started)
            run.backlog = backlog
            return run
        except (KeyboardInterrupt, CellAborted) as exc:
            abort = exc if isinstance(exc, CellAborted) else CellAborted("interrupted (SIGINT)", interrupted=True)
            pool.stop()
            with contextlib.suppress(KeyboardInterrupt, CellAborted):
                state.collect_all(30.0)
            raise CellAborted(abort.reason, state.to_run(time.monotonic() - started), interrupted=abort.interrupted,
                              stops_run=abort.stops_run) from None
        finally:
            pool.stop()
            pool.reap()


def _coordinate(job: CellJob, pool: WorkerPool, state: CellState, events: RunEvents) -> BacklogDoc | None:
    """The phases of one cell, from workers started to workers stopped; the backlog doc, if any."""
    w = job.cell.workload
    n_cons = w.consumer_groups * w.consumers_per_group
    if w.backlog is None:
        pool.release_consumers()
        if n_cons:
            events.set_phase("consumers joining")
            state.wait_for(lambda: state.ready["consumer"] >= n_cons, JOIN_TIMEOUT_S, "consumers to join their group")
    state.wait_for(lambda: state.ready["producer"] >= w.producers, READY_TIMEOUT_S, "producers to start")
    t0_ns = time.monotonic_ns() + _T0_LEAD_NS
    pool.set_t0(t0_ns)
    events.load_started(job.cell, job.topic, t0_ns)
    t_end = time.monotonic() + _T0_LEAD_NS / 1e9 + w.warmup_s + w.duration_s
    backlog = _run_backlog(pool, state, events, w, n_cons) if w.backlog is not None else None
    _measure(state, events, w, t0_ns, t_end)
    events.set_phase("producers flushing")
    state.wait_for(lambda: len(state.results["producer"]) >= w.producers, 60.0, "producers to flush", hard=False)
    acked = sum(r.get("acked_total", 0) for r in state.results["producer"].values())
    if n_cons:
        events.set_phase("consumers draining")
        state.wait_for(lambda: state.min_group_total(n_cons, w.consumers_per_group) >= acked,
                       job.drain_timeout_s, "consumers to drain", hard=False)
    pool.stop()
    state.wait_for(lambda: len(state.results["consumer"]) >= n_cons, 30.0, "consumers to finish", hard=False)
    return backlog


def _measure(state: CellState, events: RunEvents, w: Workload, t0_ns: int, t_end: float) -> None:
    events.set_phase("warm-up" if w.warmup_s else "measure")
    measure_at = time.monotonic() + max(0.0, (t0_ns + int(w.warmup_s * 1e9) - time.monotonic_ns()) / 1e9)
    while time.monotonic() < t_end:
        if events.phase == "warm-up" and time.monotonic() >= measure_at:
            events.set_phase("measure")
        state.pump(0.2)


def _run_backlog(pool: WorkerPool, state: CellState, events: RunEvents, w: Workload, n_cons: int) -> BacklogDoc:
    """Consumers stay idle while a backlog builds; then they are released and the drain is timed."""
    b = w.backlog
    assert b is not None
    events.set_phase("building backlog")
    t_build = time.monotonic()
    deadline = t_build + (b.duration_s if b.duration_s is not None else w.warmup_s + w.duration_s)
    while time.monotonic() < deadline:
        if b.messages is not None and state.acked_now() >= b.messages:
            break
        state.pump(0.1)
    backlog_size = state.acked_now()
    released = time.monotonic()
    pool.release_consumers()
    events.set_phase(f"draining backlog of {backlog_size:,}")
    caught_up = state.wait_for(lambda: state.min_group_total(n_cons, w.consumers_per_group) >= backlog_size,
                               max(60.0, w.duration_s * 2), "the backlog to drain", hard=False)
    drain_s = time.monotonic() - released
    return BacklogDoc(build_s=released - t_build, messages=backlog_size, drain_s=drain_s, caught_up=caught_up,
                      drain_msgs_per_s=backlog_size / drain_s if caught_up and drain_s > 0 else None)
