"""The consumer worker: one group member, end-to-end latency from the producer's header, lag samples.

End-to-end latency = receipt time − the producer's intended send time written in the value's first
8 bytes (CLOCK_MONOTONIC ns, so producers and consumers must share a host: they do, as kbench starts
both). The receipt time is when the client hands a record to the application: :func:`fetch_ready` takes
what librdkafka has already fetched without waiting for a batch to fill, and blocks only while nothing
is there (``benchmarks/bench_e2e.py`` checks it against a poll-per-message consumer). Only messages
*produced* inside the measurement window count for latency; consume throughput counts messages
*received* inside the window.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from bench.drivers.results import ConsumerResult, SeriesDoc
from bench.load.payload import HEADER_SIZE, decode_header, decode_headers
from bench.load.schedule import Window
from bench.load.worker import Control, WorkerSpec, run_worker
from bench.metrics.hdr import LatencyRecorder
from bench.metrics.series import IntervalSeries

__all__ = [
    "BATCH_MAX",
    "Received",
    "Receiver",
    "fetch_ready",
    "lag_sample",
    "partition_lag",
    "run_consumer",
    "split_messages",
]

#: the most records taken from the client at once (all already fetched: a larger batch never waits longer)
BATCH_MAX = 10_000
#: how long to block while the client has no record ready (a record arriving meanwhile returns at once)
IDLE_BLOCK_S = 0.1



def run_consumer(spec: WorkerSpec, ctl: Control, out: Any) -> None:
    """Process entry point."""
    run_worker(_consume, spec, ctl, out)


def fetch_ready(consumer: Any, max_messages: int = BATCH_MAX, block_s: float = IDLE_BLOCK_S) -> list[Any]:
    """The records the client has ready, handed over at once; never waits for a batch to fill.

    ``consume(n, timeout)`` waits until it has ``n`` records or the timeout passes, so a receipt time read
    after it returns is late by up to the timeout at low rates. Here ``consume(n, 0)`` takes only what is
    already fetched; when nothing is, ``poll(block_s)`` returns as soon as one record arrives."""
    msgs: list[Any] = consumer.consume(max_messages, 0)
    if msgs:
        return msgs
    first = consumer.poll(block_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)]


def split_messages(msgs: list[Any], errors: dict[str, int],
                   on_error: Callable[[Any], None] | None = None) -> list[bytes]:
    """The values of a batch; errors other than partition EOF are counted in ``errors`` (and passed to
    ``on_error``, e.g. to fire a Locust failure event). The common all-good batch costs no Python
    bytecode per record: ``map`` over the C methods themselves, 14 ns a record against 78 through
    ``operator.methodcaller`` (measured on a 10,000-record batch)."""
    from confluent_kafka import Message

    if not any(map(Message.error, msgs)):
        raw: list[bytes | None] = list(map(Message.value, msgs))
        return [v or b"" for v in raw] if None in raw else cast(list[bytes], raw)
    from confluent_kafka import KafkaError

    values: list[bytes] = []
    for m in msgs:
        err = m.error()
        if err is None:
            values.append(m.value() or b"")
        elif err.code() != KafkaError._PARTITION_EOF:
            errors[err.name()] = errors.get(err.name(), 0) + 1
            if on_error is not None:
                on_error(err)
    return values


@dataclass(frozen=True)
class Received:
    """One batch handed over: records, their value bytes, and the largest end-to-end latency among the
    records carrying a header (None if none did)."""

    count: int
    nbytes: int
    max_e2e_us: int | None


class Receiver:
    """What one consumer measured: counts, the e2e histogram, the per-second series, verify tuples.

    ``header_offset_ns`` is subtracted from header times to put them on this process's CLOCK_MONOTONIC
    (Locust producers write CLOCK_REALTIME-anchored times)."""

    def __init__(self, verify: bool, *, origin_ns: int = 0, header_offset_ns: int = 0) -> None:
        self.e2e = LatencyRecorder()
        self.series = IntervalSeries(origin_ns=origin_ns)
        self.received_total = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.errors: dict[str, int] = {}
        self.verify: list[tuple[int, int, int, int]] | None = [] if verify else None
        self.verify_polls: list[tuple[int, int]] | None = [] if verify else None   # (first read, receipt ns)
        self.header_offset_ns = header_offset_ns

    def take(self, msgs: list[Any], now: int, t_start_ns: int, t_end_ns: int,
             on_error: Callable[[Any], None] | None = None) -> Received:
        """Account a batch handed over at ``now``: only records *produced* inside the window are timed;
        throughput counts records *received* inside it."""
        values = split_messages(msgs, self.errors, on_error)
        n = len(values)
        if not n:
            return Received(0, 0, None)
        self.received_total += n
        if self.first_ns is None:
            self.first_ns = now
        self.last_ns = now
        lengths = list(map(len, values))
        nbytes = sum(lengths)
        if t_start_ns <= now < t_end_ns:
            self.series.add(now, n, nbytes)
        heads = decode_headers(values, lengths)
        max_us = None
        if heads is not None:
            sent = heads["t"] - self.header_offset_ns if self.header_offset_ns else heads["t"]
            lat = (now - sent) // 1000
            max_us = int(lat.max())
            win = (sent >= t_start_ns) & (sent < t_end_ns)
            if win.any():
                lat = lat[win]
                self.e2e.record_many(lat)
                self.series.add_latencies(np.full(lat.size, now), lat)
        if self.verify is not None:
            self._keep_ids(msgs, now)
        return Received(n, nbytes, max_us)

    def _keep_ids(self, msgs: list[Any], now: int) -> None:
        assert self.verify is not None and self.verify_polls is not None
        self.verify_polls.append((len(self.verify), now))
        for m in msgs:
            v = m.value() if m.error() is None else None
            if v is not None and len(v) >= HEADER_SIZE:
                _t, prod, seq = decode_header(v)
                self.verify.append((m.partition() or 0, m.offset() or 0, prod, seq))

    def last_p99(self) -> int | None:
        last = self.series.histogram_at(len(self.series) - 1) if len(self.series) else None
        return int(last.get_value_at_percentile(99.0)) if last is not None and last.get_total_count() else None

    def result(self, group: str | None, window: Window, now: int, *, released_ns: int, joined_ns: int | None,
               lag: list[tuple[float, int]]) -> ConsumerResult:
        """The worker result (docs/drivers.md "result"), the window cut at ``now``."""
        end = max(window.t_start_ns, min(now, window.t_end_ns))
        doc = self.series.to_dict(until_ns=end)
        return {
            "group": group,
            "received_total": self.received_total,
            "received_measured": int(sum(doc["count"])),
            "bytes_measured": int(sum(doc["bytes"])),
            "errors": self.errors,
            "window_s": max(0.0, (end - window.t_start_ns) / 1e9),
            "join_s": (joined_ns - released_ns) / 1e9 if joined_ns is not None else None,
            "released_s": (released_ns - window.t0_ns) / 1e9,
            # receipt times of the first and last record (CLOCK_MONOTONIC ns): drain rates without stat granularity
            "first_receive_ns": self.first_ns,
            "last_receive_ns": self.last_ns,
            "hdr": {"e2e": self.e2e.encode()},
            "series": cast(SeriesDoc, self.series.encode()),
            "window_end_ns": end,
            "lag": lag,
            "verify": self.verify,
            "verify_polls": self.verify_polls,
        }


def _consume(spec: WorkerSpec, ctl: Control, out: Any) -> ConsumerResult:
    from confluent_kafka import Consumer

    assigned: list[Any] = []
    joined_ns: list[int] = []

    def on_assign(consumer: Any, partitions: list[Any]) -> None:
        assigned[:] = partitions
        if not joined_ns:
            joined_ns.append(time.monotonic_ns())
            out.put(("ready", "consumer", spec.index, len(partitions)))

    def on_revoke(consumer: Any, partitions: list[Any]) -> None:
        assigned[:] = []

    conf: dict[str, Any] = {"bootstrap.servers": spec.bootstrap, "group.id": spec.group,
                            "auto.offset.reset": "earliest", "enable.partition.eof": False,
                            **spec.client_config}
    if spec.transactions is not None:   # a transactional workload is read as committed (librdkafka's default too)
        conf["isolation.level"] = "read_committed"
    # released only when the backlog (if any) is built
    while not ctl.consume.is_set() and not ctl.stop.is_set():
        ctl.consume.wait(0.05)
    released_ns = time.monotonic_ns()
    consumer = Consumer(conf)
    consumer.subscribe([spec.topic], on_assign=on_assign, on_revoke=on_revoke)
    rx = Receiver(spec.verify)
    lag: list[tuple[float, int]] = []
    # Everything alive now (modules: numpy, hdrh, the client…) lives as long as the process: keep it out
    # of the cyclic GC. Each batch allocates 10,000 GC-tracked Message objects, so full collections run
    # often, and each walked all of it: 181k vs 222k msg/s drained with and without (benchmarks/bench_consumer.py).
    gc.freeze()
    try:
        window = _receive_loop(spec, ctl, out, consumer, assigned, rx, lag)
    finally:
        consumer.close()
    return rx.result(spec.group, window or Window(released_ns, released_ns, released_ns), time.monotonic_ns(),
                     released_ns=released_ns, joined_ns=joined_ns[0] if joined_ns else None, lag=lag)


def _receive_loop(spec: WorkerSpec, ctl: Control, out: Any, consumer: Any, assigned: list[Any], rx: Receiver,
                  lag: list[tuple[float, int]]) -> Window | None:
    """Take what the client hands over until stopped; a lag sample and a stat line each second. Returns the
    window (None if the coordinator never set t0)."""
    window: Window | None = None  # read from the coordinator in the loop once t0 is set
    mono = time.monotonic_ns
    last_stat = mono()
    stat_count = 0
    far = 1 << 62
    while not ctl.stop.is_set():
        msgs = fetch_ready(consumer)
        now = mono()
        if window is None:
            times = ctl.window(spec)
            if times is not None:
                window = Window(*times)
                rx.series = IntervalSeries(origin_ns=window.t_start_ns)
        t0_ns, t_start_ns, t_end_ns = (window.t0_ns, window.t_start_ns, window.t_end_ns) if window \
            else (now, now + far, now + far)
        if msgs:
            stat_count += rx.take(msgs, now, t_start_ns, t_end_ns).count
        if now - last_stat >= 1_000_000_000:
            sample = lag_sample(consumer, assigned, now, t0_ns)
            if sample is not None:
                lag.append(sample)
            out.put(("stat", "consumer", spec.index, (now - t0_ns) / 1e9, stat_count, rx.last_p99(),
                     rx.received_total))
            stat_count = 0
            last_stat = now
    return window


def lag_sample(consumer: Any, assigned: list[Any], now: int, t0_ns: int) -> tuple[float, int] | None:
    """``(s since t0, lag)`` for the result's lag series, or None while nothing is assigned."""
    total = partition_lag(consumer, assigned)
    return None if total is None else (round((now - t0_ns) / 1e9, 3), total)


def partition_lag(consumer: Any, assigned: list[Any]) -> int | None:
    """Sum over assigned partitions of (high watermark − position), from cached fetch metadata (no wait)."""
    if not assigned:
        return None
    from confluent_kafka import KafkaException

    total = 0
    try:
        positions = consumer.position(list(assigned))
        for tp in positions:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                total += max(0, high - tp.offset)
    except KafkaException:  # lag is best effort; a rebalance mid-call is normal
        return None
    return total
