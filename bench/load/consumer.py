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
from typing import Any, cast

import numpy as np

from bench.load.payload import HEADER, decode_headers
from bench.load.worker import Control, WorkerSpec, run_worker
from bench.metrics.hdr import LatencyRecorder
from bench.metrics.series import IntervalSeries

__all__ = ["BATCH_MAX", "fetch_ready", "run_consumer", "split_messages"]

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


class _Receiver:
    """What one consumer measured: counts, the e2e histogram, the per-second series, verify tuples."""

    def __init__(self, verify: bool) -> None:
        self.e2e = LatencyRecorder()
        self.series = IntervalSeries(origin_ns=0)
        self.received_total = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.errors: dict[str, int] = {}
        self.verify: list[tuple[int, int, int, int]] | None = [] if verify else None

    def take(self, msgs: list[Any], now: int, t_start_ns: int, t_end_ns: int) -> int:
        """Account a batch handed over at ``now``; returns how many records it held."""
        values = split_messages(msgs, self.errors)
        n = len(values)
        if not n:
            return 0
        self.received_total += n
        if self.first_ns is None:
            self.first_ns = now
        self.last_ns = now
        lengths = list(map(len, values))
        if t_start_ns <= now < t_end_ns:
            self.series.add(now, n, sum(lengths))
        heads = decode_headers(values, lengths)
        if heads is not None:
            sent = heads["t"]
            win = (sent >= t_start_ns) & (sent < t_end_ns)
            if win.any():
                lat = (now - sent[win]) // 1000
                self.e2e.record_many(lat)
                self.series.add_latencies(np.full(lat.size, now), lat)
        if self.verify is not None:
            self._keep_ids(msgs)
        return n

    def _keep_ids(self, msgs: list[Any]) -> None:
        assert self.verify is not None
        for m in msgs:
            v = m.value() if m.error() is None else None
            if v is not None and len(v) >= HEADER.size:
                _t, prod, hi, lo = HEADER.unpack_from(v)
                self.verify.append((m.partition() or 0, m.offset() or 0, prod, (hi << 32) | lo))

    def last_p99(self) -> int | None:
        last = self.series.histogram_at(len(self.series) - 1) if len(self.series) else None
        return int(last.get_value_at_percentile(99.0)) if last is not None and last.get_total_count() else None


def _consume(spec: WorkerSpec, ctl: Control, out: Any) -> dict[str, Any]:
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
    # released only when the backlog (if any) is built
    while not ctl.consume.is_set() and not ctl.stop.is_set():
        ctl.consume.wait(0.05)
    released_ns = time.monotonic_ns()
    consumer = Consumer(conf)
    consumer.subscribe([spec.topic], on_assign=on_assign, on_revoke=on_revoke)
    rx = _Receiver(spec.verify)
    window: tuple[int, int, int] | None = None  # read from the coordinator in the loop once t0 is set
    mono = time.monotonic_ns
    lag: list[tuple[float, int]] = []
    # Everything alive now (modules: numpy, hdrh, the client…) lives as long as the process: keep it out
    # of the cyclic GC. Each batch allocates 10,000 GC-tracked Message objects, so full collections run
    # often, and each walked all of it: 181k vs 222k msg/s drained with and without (benchmarks/bench_consumer.py).
    gc.freeze()
    last_stat = mono()
    stat_count = 0
    try:
        while not ctl.stop.is_set():
            msgs = fetch_ready(consumer)
            now = mono()
            if window is None:
                window = ctl.window(spec)
                if window is not None:
                    rx.series = IntervalSeries(origin_ns=window[1])
            t0_ns, t_start_ns, t_end_ns = window or (now, now + (1 << 62), now + (1 << 62))
            if msgs:
                stat_count += rx.take(msgs, now, t_start_ns, t_end_ns)
            if now - last_stat >= 1_000_000_000:
                total_lag = _lag(consumer, assigned)
                if total_lag is not None:
                    lag.append((round((now - t0_ns) / 1e9, 3), total_lag))
                out.put(("stat", "consumer", spec.index, (now - t0_ns) / 1e9, stat_count, rx.last_p99(),
                         rx.received_total))
                stat_count = 0
                last_stat = now
    finally:
        consumer.close()
    return _result(spec, rx, window or (released_ns, released_ns, released_ns), released_ns, joined_ns, lag)


def _result(spec: WorkerSpec, rx: _Receiver, window: tuple[int, int, int], released_ns: int,
            joined_ns: list[int], lag: list[tuple[float, int]]) -> dict[str, Any]:
    t0_ns, t_start_ns, t_end_ns = window
    end = max(t_start_ns, min(time.monotonic_ns(), t_end_ns))
    series_doc = rx.series.to_dict(until_ns=end)
    return {
        "group": spec.group,
        "received_total": rx.received_total,
        "received_measured": int(sum(series_doc["count"])),
        "bytes_measured": int(sum(series_doc["bytes"])),
        "errors": rx.errors,
        "window_s": max(0.0, (end - t_start_ns) / 1e9),
        "join_s": (joined_ns[0] - released_ns) / 1e9 if joined_ns else None,
        "released_s": (released_ns - t0_ns) / 1e9,
        # receipt times of the first and last record (CLOCK_MONOTONIC ns): drain rates without stat granularity
        "first_receive_ns": rx.first_ns,
        "last_receive_ns": rx.last_ns,
        "hdr": {"e2e": rx.e2e.encode()},
        "series": rx.series.encode(),
        "window_end_ns": end,
        "lag": lag,
        "verify": rx.verify,
    }


def _lag(consumer: Any, assigned: list[Any]) -> int | None:
    """Sum over assigned partitions of (high watermark − position), from cached fetch metadata."""
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
