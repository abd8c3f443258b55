"""The consumer worker: one group member, end-to-end latency from the producer's header, lag samples.

End-to-end latency = receive time − the producer's intended send time written in the value's first
8 bytes (CLOCK_MONOTONIC ns, so producers and consumers must share a host: they do, as kbench starts
both). Only messages *produced* inside the measurement window count for latency; consume throughput
counts messages *received* inside the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.load.payload import HEADER
from bench.load.worker import Control, WorkerSpec, run_worker
from bench.metrics import IntervalSeries, LatencyRecorder

__all__ = ["run_consumer", "split_messages"]

_ID_DTYPE = np.dtype([("t", "<i8"), ("producer", "<u2"), ("hi", "<u2"), ("lo", "<u4")])


def run_consumer(spec: WorkerSpec, ctl: Control, out: Any) -> None:
    """Process entry point."""
    run_worker(_consume, spec, ctl, out)


def split_messages(msgs: list[Any], errors: dict[str, int],
                   on_error: Callable[[Any], None] | None = None) -> list[bytes]:
    """The values of a ``consume()`` batch; errors other than partition EOF are counted in ``errors``
    (and passed to ``on_error``, e.g. to fire a Locust failure event)."""
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
    e2e = LatencyRecorder()
    window = ctl.window(spec)
    series = IntervalSeries(origin_ns=window[1] if window else 0)
    mono = time.monotonic_ns
    received_total = 0
    errors: dict[str, int] = {}
    lag: list[tuple[float, int]] = []
    verify: list[tuple[int, int, int, int]] = []
    last_stat = mono()
    stat_count = 0
    try:
        while not ctl.stop.is_set():
            msgs = consumer.consume(1000, 0.1)
            now = mono()
            if window is None:
                window = ctl.window(spec)
                if window is not None:
                    series = IntervalSeries(origin_ns=window[1])
            t0_ns, t_start_ns, t_end_ns = window or (now, now + (1 << 62), now + (1 << 62))
            if msgs:
                values = split_messages(msgs, errors)
                n = len(values)
                if n:
                    received_total += n
                    stat_count += n
                    heads = np.frombuffer(b"".join([v[:HEADER.size] for v in values]), dtype=_ID_DTYPE) \
                        if all(len(v) >= HEADER.size for v in values) else None
                    if t_start_ns <= now < t_end_ns:
                        sizes = np.fromiter((len(v) for v in values), dtype=np.int64, count=n)
                        series.add_many(np.full(n, now), sizes)
                    if heads is not None:
                        sent = heads["t"]
                        win = (sent >= t_start_ns) & (sent < t_end_ns)
                        if win.any():
                            lat = (now - sent[win]) // 1000
                            e2e.record_many(lat)
                            series.add_latencies(np.full(lat.size, now), lat)
                    if spec.verify:
                        good = [m for m in msgs if m.error() is None]
                        for m in good:
                            v = m.value() or b""
                            if len(v) >= HEADER.size:
                                _t, prod, hi, lo = HEADER.unpack_from(v)
                                verify.append((m.partition() or 0, m.offset() or 0, prod, (hi << 32) | lo))
            if now - last_stat >= 1_000_000_000:
                total_lag = _lag(consumer, assigned)
                if total_lag is not None:
                    lag.append((round((now - t0_ns) / 1e9, 3), total_lag))
                last = series.histogram_at(len(series) - 1) if len(series) else None
                p99 = last.get_value_at_percentile(99.0) if last is not None and last.get_total_count() else None
                out.put(("stat", "consumer", spec.index, (now - t0_ns) / 1e9, stat_count, p99, received_total))
                stat_count = 0
                last_stat = now
    finally:
        consumer.close()
    t0_ns, t_start_ns, t_end_ns = window or (released_ns, released_ns, released_ns)
    end = max(t_start_ns, min(mono(), t_end_ns))
    series_doc = series.to_dict(until_ns=end)
    return {
        "group": spec.group,
        "received_total": received_total,
        "received_measured": int(sum(series_doc["count"])),
        "bytes_measured": int(sum(series_doc["bytes"])),
        "errors": errors,
        "window_s": max(0.0, (end - t_start_ns) / 1e9),
        "join_s": (joined_ns[0] - released_ns) / 1e9 if joined_ns else None,
        "released_s": (released_ns - t0_ns) / 1e9,
        "hdr": {"e2e": e2e.encode()},
        "series": series.encode(),
        "window_end_ns": end,
        "lag": lag,
        "verify": verify if spec.verify else None,
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
