"""What the side-by-side benchmarks share: the broker both sides run against, and the ratios of paired rounds.

Each benchmark alternates its contenders round by round against one broker (the machine is noisy: compare
within a run, not across runs) and reports both the median of the rounds' ratios (each round's pair ran
back to back) and the ratio of the medians.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from argparse import ArgumentParser
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.kafka.admin import TopicAdmin

__all__ = ["JitWatch", "Paired", "RunTopics", "add_prime_arg", "broker", "jit_cpu_s", "paired", "prime_broker"]

#: HotSpot's JIT compiler threads as /proc shows them (comm is cut at 15 characters)
_JIT_THREAD = ("C1 CompilerThre", "C2 CompilerThre")


@contextmanager
def broker(bootstrap: str | None, name: str) -> Iterator[str]:
    """``bootstrap``, or an embedded Apache Kafka broker started for the benchmark (and stopped after it)."""
    if bootstrap:
        yield bootstrap
        return
    from bench.brokers import start_broker

    handle = start_broker("kafka", port=0, name=f"{name}-{uuid.uuid4().hex[:4]}")
    try:
        yield handle.bootstrap
    finally:
        handle.stop()


@dataclass
class RunTopics:
    """A fresh topic per run, all deleted at the end, and the page cache written back before each run.

    Deleting a run's topic right after it made the next contestants pay for it: the broker renames the
    log and unlinks its segments ``file.delete.delay.ms`` (60 s) later, a gigabyte or more at max rate, in
    whichever run is then measuring (on an ext4 mounted with ``discard`` that is also a TRIM of every block).
    Likewise the dirty pages of the runs before: ``os.sync()`` before each run writes them back outside any
    measured window, so no run is charged for another's writeback.
    """

    admin: TopicAdmin
    prefix: str
    partitions: int
    made: list[str] = field(default_factory=list)

    def fresh(self) -> str:
        """A new topic, created with every partition led, after the page cache is written back."""
        os.sync()
        topic = f"{self.prefix}-{uuid.uuid4().hex[:8]}"
        self.admin.create_topic(topic, self.partitions)
        self.made.append(topic)
        return topic

    def delete_all(self) -> None:
        """Best effort, after the last run."""
        self.admin.delete_topics(self.made)
        self.made.clear()


def jit_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) that the JIT compiler threads of the JVM ``pid`` have used so far; None when
    ``pid`` is gone or not a HotSpot JVM."""
    tick = os.sysconf("SC_CLK_TCK")
    total, seen = 0, False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if name.startswith(_JIT_THREAD):
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
            seen = True
    return total / tick if seen else None


class JitWatch:
    """Samples the JIT compiler CPU of some JVMs (a contestant, the broker) four times a second in a thread, so
    that a run can say how busy the compilers were inside its measured window: on 2 cores a JIT still
    compiling takes its CPU from the broker and the client alike, and that, not the client, was most of
    the round-to-round swing (docs/drivers.md, "Benchmarks")."""

    def __init__(self, pids: dict[str, int], period_s: float = 0.25) -> None:
        self._pids = pids
        self._samples: list[tuple[int, dict[str, float | None]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period_s,), daemon=True, name="jit-watch")
        self._thread.start()

    def _run(self, period_s: float) -> None:
        while not self._stop.is_set():
            self._samples.append((time.monotonic_ns(), {k: jit_cpu_s(p) for k, p in self._pids.items()}))
            self._stop.wait(period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cores(self, start_ns: int, end_ns: int) -> dict[str, float | None]:
        """Each JVM's JIT cores between the first and the last sample inside [start_ns, end_ns]."""
        inside = [(t, s) for t, s in self._samples if start_ns <= t <= end_ns]
        out: dict[str, float | None] = {}
        for key in self._pids:
            pts = [(t, s[key]) for t, s in inside if s[key] is not None]
            if len(pts) < 2 or pts[-1][0] == pts[0][0]:
                out[key] = None
                continue
            (t1, a), (t2, b) = pts[0], pts[-1]
            out[key] = (b - a) / ((t2 - t1) / 1e9)   # type: ignore[operator]
        return out


#: the broker counts as warm when its JIT compilers use less than this over a priming run
QUIET_JIT_CORES = 0.05


def add_prime_arg(ap: ArgumentParser) -> None:
    ap.add_argument("--prime-max", type=float, default=90.0,
                    help="prime the embedded broker with uncounted runs until its JIT is quiet, at most this long (s)")


def prime_broker(run_once: Callable[[], float], broker_pid: int | None, limit_s: float) -> None:
    """Uncounted runs (``run_once`` returns its msg/s) until the embedded broker's JIT compilers use less than
    :data:`QUIET_JIT_CORES` over a run, at most ``limit_s``; one run when the broker is not ours (no pid). A
    fresh broker compiles for a minute or more under max-rate load, and whichever contestant runs meanwhile
    pays for it."""
    deadline = time.monotonic() + limit_s
    while True:
        watch = JitWatch({"broker": broker_pid} if broker_pid else {})
        t0 = time.monotonic_ns()
        rate = run_once()
        watch.stop()
        jit = watch.cores(t0, time.monotonic_ns()).get("broker")
        print(f"  prime: {rate:>11,.0f} msg/s, broker JIT {'-' if jit is None else f'{jit:.2f}'} cores", flush=True)
        if jit is None or jit < QUIET_JIT_CORES:
            return
        if time.monotonic() > deadline:
            print(f"  prime: the broker's JIT is still busy after {limit_s:g} s; measuring anyway", flush=True)
            return


@dataclass(frozen=True)
class Paired:
    """``ours`` against ``base`` over the same rounds."""

    median_ours: float
    median_base: float
    median_of_ratios: float          # median over rounds of ours[i] / base[i]

    @property
    def ratio_of_medians(self) -> float:
        return self.median_ours / self.median_base


def paired(ours: Sequence[float], base: Sequence[float]) -> Paired:
    return Paired(statistics.median(ours), statistics.median(base),
                  statistics.median(o / b for o, b in zip(ours, base, strict=True)))
