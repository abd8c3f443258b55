"""What a worker process is given and how it talks to the coordinator.

Workers are started with the ``spawn`` method (librdkafka threads in the parent make ``fork`` unsafe).
They ignore SIGINT — the coordinator owns Ctrl-C — and stop when ``stop`` is set or their end time
passes. Messages to the coordinator on ``out`` (a multiprocessing queue):

* ``("ready", role, index, detail)``            consumer joined its group (got an assignment)
* ``("stat", role, index, t_s, count, p99_us, total)``   once a second, for the progress display
* ``("result", role, index, dict)``             final measurements (always sent, even when stopped early)
* ``("error", role, index, text)``              the worker failed; ``result`` still follows if it can
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.scenario.model import Keys, MessageSize, Payload, Transactions

__all__ = ["Control", "WorkerSpec", "ignore_sigint", "run_worker"]


@dataclass(frozen=True)
class WorkerSpec:
    role: str                      # "producer" | "consumer"
    index: int                     # producer index, or consumer index within the run
    bootstrap: str
    topic: str
    client_config: dict[str, str]
    warmup_ns: int                 # measurement window: [t0 + warmup, t0 + warmup + duration)
    duration_ns: int               # t0 (CLOCK_MONOTONIC) is set by the coordinator in Control.t0
    message_size: MessageSize
    payload: Payload
    keys: Keys
    rate: float | None = None      # this producer's msgs/s; None = as fast as possible
    group: str | None = None       # consumer group id
    seed: int = 0
    verify: bool = False           # keep (partition, offset, seq) of every ack / read for the history checker
    flush_timeout_s: float = 30.0
    latency_sample: int = 1        # 1 in N messages carries a delivery callback (max rate); 0 = auto
    transactions: Transactions | None = None   # transactional producer / read_committed consumer (librdkafka)
    transactional_id: str | None = None        # the producer's transactional.id, unique per run, cell and producer
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Control:
    """Shared state: ``stop`` ends workers (early, or consumers after the drain); ``consume`` releases
    consumers (late in backlog runs); ``t0`` (a shared int64, 0 until set) is when load starts."""

    stop: Any
    consume: Any
    t0: Any

    def window(self, spec: WorkerSpec) -> tuple[int, int, int] | None:
        """(t0, t_start, t_end) once the coordinator has set t0, else None."""
        t0 = int(self.t0.value)
        if not t0:
            return None
        return t0, t0 + spec.warmup_ns, t0 + spec.warmup_ns + spec.duration_ns

    def wait_window(self, spec: WorkerSpec) -> tuple[int, int, int] | None:
        """Block until t0 is set (None if stopped first)."""
        import time

        while not self.stop.is_set():
            w = self.window(spec)
            if w is not None:
                return w
            time.sleep(0.002)
        return None


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_worker(body: Callable[[WorkerSpec, Control, Any], Mapping[str, object]], spec: WorkerSpec, ctl: Control,
               out: Any) -> None:
    """A worker process's entry point: run ``body``; always send a ``result`` (a ``failed`` one after an
    ``error`` message if ``body`` raised, so the coordinator marks the cell incomplete instead of waiting)."""
    ignore_sigint()
    result: Mapping[str, object]
    try:
        result = body(spec, ctl, out)
    except Exception as exc:  # reported to the coordinator, which marks the cell incomplete
        out.put(("error", spec.role, spec.index, f"{type(exc).__name__}: {exc}"))
        result = {"failed": f"{type(exc).__name__}: {exc}"}
    out.put(("result", spec.role, spec.index, result))
