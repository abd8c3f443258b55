"""The producer worker: open-loop (rate-limited) or max-rate, recording into whole HDR histograms.

Latency definitions (all µs, CLOCK_MONOTONIC):

* ``publish``    ack time − **intended** send time. Rate-limited runs have a schedule (message *i* of a
                 producer is due at ``t0 + i/rate``), so a stall delays the schedule's later messages and
                 their latency includes the wait: coordinated-omission corrected. At max rate intended =
                 actual send time.
* ``service``    librdkafka's own measurement from ``produce()`` to the delivery report (``msg.latency()``).
* ``send_delay`` actual ``produce()`` time − intended time (rate-limited runs only).

Acks are observed in delivery callbacks served by ``poll()``; they are batched into numpy arrays after
each poll, so per-message Python work is one list append.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import numpy as np

from bench.load.payload import HEADER, KeyStream, PayloadPool
from bench.load.worker import Control, WorkerSpec, ignore_sigint
from bench.metrics import IntervalSeries, LatencyRecorder

__all__ = ["run_producer"]

_CHUNK = 512
_ID = struct.Struct("<HHI")  # producer index, seq high 16 bits, seq low 32 bits (header bytes 8..16)


class _Acks:
    """Delivery-report sink: plain lists appended by the callback, drained after each poll."""

    def __init__(self, rate_limited: bool, verify: bool) -> None:
        self.lat: list[float] = []
        self.ack_ns: list[int] = []
        self.heads: list[bytes] = []
        self.sizes: list[int] = []
        self.errors: dict[str, int] = {}
        self.error_count = 0
        self.verify: list[tuple[int, int, bytes]] = []
        mono = time.monotonic_ns
        lat_app, ack_app, head_app, size_app = self.lat.append, self.ack_ns.append, self.heads.append, self.sizes.append
        ver_app = self.verify.append
        errors = self.errors

        def on_delivery_max(err: Any, msg: Any) -> None:
            if err is None:
                lat_app(msg.latency())
                size_app(len(msg))
            else:
                name = err.name()
                errors[name] = errors.get(name, 0) + 1

        def on_delivery_rate(err: Any, msg: Any) -> None:
            if err is None:
                ack_app(mono())
                lat_app(msg.latency())
                v = msg.value()
                head_app(v[:8])
                size_app(len(v))
                if verify:
                    ver_app((msg.partition(), msg.offset(), v[8:16]))
            else:
                name = err.name()
                errors[name] = errors.get(name, 0) + 1

        self.callback = on_delivery_rate if (rate_limited or verify) else on_delivery_max


def run_producer(spec: WorkerSpec, ctl: Control, out: Any) -> None:
    """Process entry point."""
    ignore_sigint()
    try:
        result = _produce(spec, ctl, out)
    except Exception as exc:  # reported to the coordinator, which marks the cell incomplete
        out.put(("error", "producer", spec.index, f"{type(exc).__name__}: {exc}"))
        result = {"failed": f"{type(exc).__name__}: {exc}"}
    out.put(("result", "producer", spec.index, result))


def _produce(spec: WorkerSpec, ctl: Control, out: Any) -> dict[str, Any]:
    from confluent_kafka import KafkaException, Producer

    rate_limited = spec.rate is not None
    acks = _Acks(rate_limited, spec.verify)
    conf: dict[str, Any] = {"bootstrap.servers": spec.bootstrap, **spec.client_config,
                            "on_delivery": acks.callback}
    producer = Producer(conf)
    rng = np.random.default_rng(spec.seed)
    pool = PayloadPool(compressibility=spec.payload.compressibility, file=spec.payload.file,
                       max_size=max(spec.message_size.max or 1, HEADER.size), seed=spec.seed)
    keys = KeyStream(spec.keys.kind, spec.keys.count, spec.keys.zipf_s, seed=spec.seed, producer=spec.index)
    publish, service, delay = LatencyRecorder(), LatencyRecorder(), LatencyRecorder()
    out.put(("ready", "producer", spec.index, None))
    window = ctl.wait_window(spec)
    if window is None:
        producer.flush(1)
        return {"failed": "stopped before the start"}
    t0_ns, t_start_ns, t_end_ns = window
    series = IntervalSeries(origin_ns=t_start_ns)
    mono = time.monotonic_ns
    produce, poll = producer.produce, producer.poll
    topic, data, pack = spec.topic, pool.data, HEADER.pack
    interval_ns = int(1e9 / spec.rate) if spec.rate else 0
    next_ns = t0_ns + (interval_ns * spec.index) // max(1, spec.extra.get("producers", 1))
    seq = 0
    sent_total = acked_total = 0
    queue_full = 0
    measuring = False
    measured_sent = 0
    delays: list[int] = []
    last_stat = mono()
    stat_count = 0
    ended_ns = t_end_ns

    def drain_acks(now: int) -> None:
        nonlocal acked_total, stat_count
        n = len(acks.lat)
        if not n:
            return
        lat_us = (np.asarray(acks.lat, dtype=np.float64) * 1e6).astype(np.int64)
        sizes = np.asarray(acks.sizes, dtype=np.int64)
        if measuring or now >= t_end_ns:
            service.record_many(lat_us)
            if rate_limited:
                intended = np.frombuffer(b"".join(acks.heads), dtype="<i8")
                pub = (np.asarray(acks.ack_ns, dtype=np.int64) - intended) // 1000
                in_window = intended >= t_start_ns
                publish.record_many(pub[in_window])
                series.add_latencies(np.full(int(in_window.sum()), now), pub[in_window])
            else:
                publish.record_many(lat_us)
                series.add_latencies(np.full(n, now), lat_us)
            series.add_many(np.full(n, now), sizes)
        acked_total += n
        stat_count += n
        acks.lat.clear(); acks.sizes.clear(); acks.ack_ns.clear(); acks.heads.clear()  # noqa: E702

    # wait for the common start
    while (now := mono()) < t0_ns and not ctl.stop.is_set():
        time.sleep(min(0.01, (t0_ns - now) / 1e9))
    while not ctl.stop.is_set():
        now = mono()
        if now >= t_end_ns:
            break
        if not measuring and now >= t_start_ns:
            measuring = True
            # warm-up is over: keep nothing of it
            for rec in (publish, service, delay):
                rec.reset()
            delays.clear()
        if rate_limited:
            if now < next_ns:
                poll(min(0.001, (next_ns - now) / 1e9))
                drain_acks(mono())
                continue
            due = min(_CHUNK, (now - next_ns) // interval_ns + 1)
        else:
            due = _CHUNK
        sizes = spec.message_size.sample(due, rng).tolist() if spec.message_size.distribution != "fixed" \
            else [spec.message_size.value or 1] * due
        offs = pool.offsets(due).tolist()
        ks = keys.batch(due)
        for j in range(due):
            if rate_limited:
                intended = next_ns
                next_ns += interval_ns
            else:
                intended = mono()
            body = max(0, sizes[j] - 16)
            value = pack(intended, spec.index, (seq >> 32) & 0xFFFF, seq & 0xFFFFFFFF) + data[offs[j]:offs[j] + body]
            while True:
                try:
                    produce(topic, value, ks[j])
                    break
                except BufferError:
                    queue_full += 1
                    poll(0.0005)
                    drain_acks(mono())
                except KafkaException as exc:
                    name = exc.args[0].name() if exc.args else "KafkaException"
                    acks.errors[name] = acks.errors.get(name, 0) + 1
                    break
            if rate_limited and measuring:
                delays.append(mono() - intended)
            seq += 1
        sent_total += due
        if measuring:
            measured_sent += due
        poll(0)
        now = mono()
        drain_acks(now)
        if delays and len(delays) > 4096:
            delay.record_many(np.asarray(delays, dtype=np.int64) // 1000)
            delays.clear()
        if now - last_stat >= 1_000_000_000:
            last = series.histogram_at(len(series) - 1) if measuring and len(series) else None
            p99 = last.get_value_at_percentile(99.0) if last is not None and last.get_total_count() else None
            out.put(("stat", "producer", spec.index, (now - t0_ns) / 1e9, stat_count, p99, acked_total))
            stat_count = 0
            last_stat = now
    ended_ns = min(mono(), t_end_ns)
    stopped_early = ctl.stop.is_set() and ended_ns < t_end_ns
    # deliver what is in flight (these messages were sent inside the window)
    deadline = mono() + int(spec.flush_timeout_s * 1e9)
    while len(producer) > 0 and mono() < deadline:
        poll(0.05)
        drain_acks(mono())
    drain_acks(mono())
    unacked = len(producer)
    if delays:
        delay.record_many(np.asarray(delays, dtype=np.int64) // 1000)
    window_s = max(0.0, (ended_ns - t_start_ns) / 1e9)
    series_doc = series.to_dict(until_ns=ended_ns)
    return {
        "sent_total": sent_total,
        "sent_measured": measured_sent,
        "acked_total": acked_total,
        "acked_measured": int(sum(series_doc["count"])),
        "bytes_measured": int(sum(series_doc["bytes"])),
        "unacked_at_end": unacked,
        "queue_full_events": queue_full,
        "errors": dict(acks.errors),
        "window_s": window_s,
        "stopped_early": stopped_early,
        "hdr": {"publish": publish.encode(), "service": service.encode(),
                "send_delay": delay.encode() if rate_limited else None},
        "series": series.encode(),
        "window_end_ns": ended_ns,
        "verify": [(p, o, *_ID.unpack(ident)) for p, o, ident in acks.verify] if spec.verify else None,
    }
