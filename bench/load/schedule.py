"""The open-loop core's pure parts: the clock, the window, the schedule and sampled timing with exact counts.

Nothing here talks to a client or reads the system clock itself: every time is passed in (or read from an
injected :class:`Clock`), so the arithmetic has fast unit tests with a fake clock
(``tests/test_load_schedule.py``). The librdkafka process generator (:mod:`bench.load.producer`) and the
Locust users (:mod:`bench.locust.clients`) both run :class:`bench.load.core.OpenLoopProducer` on top of it.

* **Schedule** (rate-limited): message *n* of producer *i* of *P* is due at
  ``origin + (interval·i) // P + n·interval``, ``interval = int(1e9 / rate)`` ns. A chunk takes every due
  message at once (at most ``chunk_max``), so after a stall the overdue messages go out in chunks and their
  publish latency, measured from the intended time, includes the stall (coordinated omission corrected).
  At max rate every chunk is due at once and intended = actual send time.
* **Warm-up reset**: the histograms keep nothing of the warm-up (:meth:`WindowPhase.enter`).
* **Sampled timing** (max rate): 1 in N messages carries a delivery callback; N = 0 (auto) is fixed once, when
  the warm-up ends, from the warm-up's send rate. Counts stay exact: a message has been resolved (acked or
  failed) once it left the client's queue, so resolved = queued − in flight (:class:`Resolution`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["AUTO_MAX_SAMPLE", "AUTO_SAMPLE_NO_WARMUP", "AUTO_TIMED_PER_S", "MONOTONIC", "Clock", "Resolution",
           "Sampling", "Schedule", "SizeFifo", "Window", "WindowPhase", "auto_latency_sample"]

AUTO_TIMED_PER_S = 20_000   # auto sampling: time about this many messages a second, at most
AUTO_MAX_SAMPLE = 64
AUTO_SAMPLE_NO_WARMUP = 32  # auto with no warm-up (< 0.5 s) to measure the rate in
_MIN_WARMUP_NS = 500_000_000

IntArray = npt.NDArray[np.int64]
T = TypeVar("T")


class Clock(Protocol):
    """CLOCK_MONOTONIC nanoseconds (``time.monotonic_ns``); tests pass a fake one."""

    def __call__(self) -> int: ...


MONOTONIC: Clock = time.monotonic_ns


@dataclass(frozen=True)
class Window:
    """``t0`` (load starts) and the measurement window ``[t_start, t_end)``, CLOCK_MONOTONIC ns."""

    t0_ns: int
    t_start_ns: int
    t_end_ns: int


class Schedule:
    """When each message is due (see the module docstring); ``rate`` None: as fast as possible."""

    def __init__(self, origin_ns: int, rate: float | None, *, index: int = 0, producers: int = 1,
                 chunk_max: int = 512) -> None:
        self.interval_ns = int(1e9 / rate) if rate else 0
        self.next_ns = origin_ns + (self.interval_ns * index) // max(1, producers)
        self.chunk_max = max(1, chunk_max)
        self.taken = 0                      # messages scheduled so far (the next one's n)

    @property
    def rate_limited(self) -> bool:
        return self.interval_ns > 0

    def wait_ns(self, now: int) -> int:
        """Nanoseconds until the next message is due (0: one is due now, or max rate)."""
        return max(0, self.next_ns - now) if self.interval_ns else 0

    def due(self, now: int) -> int:
        """How many messages to send now: every overdue one, at most ``chunk_max``."""
        if not self.interval_ns:
            return self.chunk_max
        if now < self.next_ns:
            return 0
        return int(min(self.chunk_max, (now - self.next_ns) // self.interval_ns + 1))

    def take(self, n: int, now: int) -> IntArray:
        """The intended send times of the next ``n`` messages (at max rate: ``now``, the send time)."""
        self.taken += n
        if not self.interval_ns:
            return np.full(n, now, dtype=np.int64)
        intended = self.next_ns + self.interval_ns * np.arange(n, dtype=np.int64)
        self.next_ns += self.interval_ns * n
        return intended


def auto_latency_sample(msgs_per_s: float) -> int:
    """1 in N for a producer sending ``msgs_per_s``: the largest power of two <= rate / AUTO_TIMED_PER_S,
    within 1..AUTO_MAX_SAMPLE (below ~40k msg/s every message is timed)."""
    n = 1
    while n * 2 <= min(AUTO_MAX_SAMPLE, msgs_per_s / AUTO_TIMED_PER_S):
        n *= 2
    return n


@dataclass
class Sampling:
    """1 in ``every`` messages timed; ``auto``: ``every`` is chosen at the end of the warm-up.

    ``phase`` is the index, in the next chunk, of the next timed message: the timed ones are a systematic
    1-in-N sample of the whole stream, across chunk boundaries."""

    every: int
    auto: bool = False
    phase: int = 0

    @classmethod
    def choose(cls, latency_sample: int, *, rate_limited: bool, verify: bool) -> Sampling:
        """Rate-limited and verify runs time every message; otherwise ``latency_sample`` (0 = auto)."""
        if rate_limited or verify:
            return cls(1)
        if latency_sample == 0:
            return cls(AUTO_MAX_SAMPLE, auto=True)
        return cls(max(1, latency_sample))

    @property
    def sampled(self) -> bool:
        """Only some messages carry a callback (counts come from :class:`Resolution`)."""
        return self.auto or self.every > 1

    def fix(self, queued: int, warm_ns: int) -> None:
        """At the end of the warm-up: an auto N from the warm-up's send rate, fixed for the window."""
        if not self.auto:
            return
        self.every = auto_latency_sample(queued / (warm_ns / 1e9)) if warm_ns >= _MIN_WARMUP_NS \
            else AUTO_SAMPLE_NO_WARMUP
        self.phase = 0

    def split(self, values: list[T]) -> list[T]:
        """Remove the timed messages of a chunk from ``values`` (in place) and return them."""
        timed = values[self.phase::self.every]
        del values[self.phase::self.every]
        return timed

    def advance(self, n: int) -> None:
        """A chunk of ``n`` messages was split: move the phase to the next chunk."""
        self.phase = (self.phase - n) % self.every


class SizeFifo:
    """Sizes of queued messages in send order; ``take(n)`` removes the oldest n and returns their sum."""

    def __init__(self) -> None:
        self._chunks: list[IntArray] = []
        self._head = 0   # consumed entries of _chunks[0]

    def push(self, sizes: IntArray) -> None:
        self._chunks.append(sizes)

    def take(self, n: int) -> int:
        total = 0
        while n > 0 and self._chunks:
            first = self._chunks[0]
            k = min(n, first.size - self._head)
            total += int(first[self._head:self._head + k].sum())
            self._head += k
            n -= k
            if self._head >= first.size:
                self._chunks.pop(0)
                self._head = 0
        return total


@dataclass
class Resolution:
    """Exact counts without a callback per message (sampled mode).

    ``queued`` counts messages the client accepted. After each poll, ``resolved = queued − in_flight``; of
    the newly resolved, the failed ones are estimated as N × the timed failures seen since the last call
    (untimed failures are invisible to the client) and the rest are acked."""

    queued: int = 0
    resolved: int = 0
    errors_seen: int = 0      # failed timed messages accounted so far

    def resolve(self, in_flight: int, timed_errors: int, every: int) -> tuple[int, int]:
        """``(done, ok)``: messages newly resolved, and how many of them count as acked."""
        done = max(0, self.queued - in_flight - self.resolved)
        ok = max(0, done - (timed_errors - self.errors_seen) * every)
        self.resolved += done
        self.errors_seen = timed_errors
        return done, ok

    def pending(self, in_flight: int, timed_errors: int) -> bool:
        """Anything to account: newly resolved messages or new timed failures."""
        return self.queued - in_flight > self.resolved or timed_errors != self.errors_seen


@dataclass
class WindowPhase:
    """Warm-up or measuring; :meth:`enter` switches once, at ``t_start`` (the caller then resets its
    histograms and fixes the auto sample)."""

    window: Window
    measuring: bool = False
    entered_ns: int | None = field(default=None)

    def enter(self, now: int) -> bool:
        """True exactly once: on the first call at or after the window's start."""
        if self.measuring or now < self.window.t_start_ns:
            return False
        self.measuring = True
        self.entered_ns = now
        return True

    def records(self, now: int) -> bool:
        """Acks seen at ``now`` go into the histograms and series (measuring, or flushing after the end)."""
        return self.measuring or now >= self.window.t_end_ns
