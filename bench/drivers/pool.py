"""The worker processes of one cell: Python (librdkafka) workers and external driver processes, behind one
start / t0 / release / stop surface. All of them report on one multiprocessing queue."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bench.drivers.external import ExternalWorker, worker_command
from bench.drivers.results import Role
from bench.load.worker import Control, WorkerSpec
from bench.scenario.model import latency_sample_every

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext

    from bench.drivers.base import CellJob

__all__ = ["WorkerPool", "build_pool", "worker_specs"]


class _Proc(Protocol):
    @property
    def exitcode(self) -> int | None: ...

    @property
    def pid(self) -> int | None: ...

    def start(self) -> None: ...

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...

    def kill(self) -> None: ...


@dataclass
class _Slot:
    role: Role
    index: int
    client: str
    proc: _Proc
    external: ExternalWorker | None


class WorkerPool:
    def __init__(self, ctx: SpawnContext) -> None:
        self.out: Any = ctx.Queue()
        self.ctl = Control(stop=ctx.Event(), consume=ctx.Event(), t0=ctx.RawValue("q", 0))
        self._ctx = ctx
        self._slots: dict[tuple[Role, int], _Slot] = {}

    def add(self, spec: WorkerSpec, client: str, *, kafka_version: str | None) -> None:
        role: Role = "producer" if spec.role == "producer" else "consumer"
        if client == "librdkafka":
            from bench.drivers.records import RECORDS, run_records
            from bench.load.consumer import run_consumer
            from bench.load.producer import run_producer

            target = run_producer if role == "producer" else run_consumer
            if role == "producer" and spec.extra.get(RECORDS) is not None:
                target = run_records   # explicit-records mode (docs/drivers.md, protocol v2)
            proc: _Proc = self._ctx.Process(target=target, args=(spec, self.ctl, self.out), daemon=True)
            self._slots[(role, spec.index)] = _Slot(role, spec.index, client, proc, None)
            return
        ext = ExternalWorker(spec, client, worker_command(client, kafka_version), self.out)
        self._slots[(role, spec.index)] = _Slot(role, spec.index, client, ext, ext)

    def size(self) -> int:
        return len(self._slots)

    def start(self) -> None:
        for slot in self._slots.values():
            slot.proc.start()

    def set_t0(self, t0_ns: int) -> None:
        self.ctl.t0.value = t0_ns
        for slot in self._externals():
            slot.send_start(t0_ns)

    def release_consumers(self) -> None:
        self.ctl.consume.set()
        for slot in self._externals():
            slot.send_consume()

    def stop(self) -> None:
        self.ctl.stop.set()
        self.ctl.consume.set()
        for slot in self._externals():
            slot.send_stop()

    def reap(self) -> None:
        """Wait a little for every worker to exit, then kill what is left: nothing outlives the cell."""
        for slot in self._slots.values():
            if slot.proc.is_alive():
                slot.proc.join(timeout=5)
        for slot in self._slots.values():
            if slot.proc.is_alive():
                with contextlib.suppress(OSError):
                    slot.proc.kill()
                slot.proc.join(timeout=5)

    def kill(self) -> None:
        """SIGKILL every worker now (a fault: no stop, no leave, no result); :meth:`reap` still waits."""
        for slot in self._slots.values():
            if slot.proc.is_alive():
                with contextlib.suppress(OSError):
                    slot.proc.kill()

    def pids(self) -> dict[tuple[Role, int], int]:
        """The process id of every started worker (a driver's, or the Python worker's)."""
        return {key: pid for key, slot in self._slots.items() if (pid := slot.proc.pid) is not None}

    def exit_codes(self) -> dict[tuple[Role, int], int | None]:
        return {key: slot.proc.exitcode for key, slot in self._slots.items()}

    def any_alive(self) -> bool:
        return any(slot.proc.is_alive() for slot in self._slots.values())

    def describe(self, role: Role, index: int) -> str:
        slot = self._slots[(role, index)]
        return f"process {index}" if slot.external is None else f"{slot.client} driver {index}"

    def stderr_tail(self, role: Role, index: int) -> str:
        ext = self._slots[(role, index)].external
        tail = ext.stderr_tail() if ext is not None else ""
        return f"; its stderr ends with:\n{tail}" if tail else ""

    def stderr_tails(self) -> str:
        """The stderr tails of every external driver that wrote any (what a timeout's reason shows)."""
        return "".join(f"; {slot.client} driver {slot.index} ({slot.role})'s stderr ends with:\n{tail}"
                       for slot in self._slots.values()
                       if slot.external is not None and (tail := slot.external.stderr_tail()))

    def _externals(self) -> list[ExternalWorker]:
        return [s.external for s in self._slots.values() if s.external is not None]


def worker_specs(job: CellJob) -> list[WorkerSpec]:
    """The consumers (first) and producers of one cell."""
    w = job.cell.workload
    common: dict[str, Any] = {"bootstrap": job.bootstrap, "topic": job.topic, "warmup_ns": int(w.warmup_s * 1e9),
                              "duration_ns": int(w.duration_s * 1e9), "message_size": w.message_size,
                              "payload": w.payload, "keys": w.keys, "verify": job.verify,
                              "transactions": w.transactions}
    specs: list[WorkerSpec] = []
    for g in range(w.consumer_groups):
        for k in range(w.consumers_per_group):
            idx = g * w.consumers_per_group + k
            specs.append(WorkerSpec(role="consumer", index=idx, group=f"{job.group_prefix}-g{g}", seed=idx,
                                    client_config={**job.client_config, **job.cell.consumer},
                                    extra={"wait_for_consume": w.backlog is not None}, **common))
    per_rate = (w.rate / w.producers) if (w.rate and w.producers) else None
    for i in range(w.producers):
        specs.append(WorkerSpec(role="producer", index=i, rate=per_rate, seed=1000 + i,
                                client_config={**job.client_config, **job.cell.producer},
                                latency_sample=latency_sample_every(w, verify=job.verify),
                                transactional_id=f"{job.group_prefix}-p{i}" if w.transactions else None,
                                extra={"producers": w.producers}, **common))
    return specs


def build_pool(ctx: SpawnContext, job: CellJob, *, kafka_version: str | None) -> WorkerPool:
    pool = WorkerPool(ctx)
    for spec in worker_specs(job):
        client = job.cell.client if spec.role == "producer" else job.cell.consumer_client
        pool.add(spec, client, kafka_version=job.cell.client_version or kafka_version)
    return pool
