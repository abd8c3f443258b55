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
from bench.load.worker import Control, WorkerSpec, run_worker
from bench.metrics import IntervalSeries, LatencyRecorder

__all__ = ["run_producer"]

_CHUNK = 512
_CHUNK_BYTES = 1 << 20
_HEAD_DTYPE = np.dtype([("t", "<i8"), ("producer", "<u2"), ("hi", "<u2"), ("lo", "<u4")])
_QUEUE_FULL = -184  # librdkafka RD_KAFKA_RESP_ERR__QUEUE_FULL
_ID = struct.Struct("<HHI")  # producer index, seq high 16 bits, seq low 32 bits (header bytes 8..16)


class _Acks:
    """Delivery-report sink: plain lists appended by the callback, drained after each poll."""

    def __init__(self, rate_limited: bool, verify: bool, fixed_size: int | None = None) -> None:
        self.lat: list[float] = []
        self.ack_ns: list[int] = []
        self.heads: list[bytes] = []
        self.sizes: list[int] = []
        self.errors: dict[str, int] = {}
        self.error_count = 0
        self.verify: list[tuple[int, int, bytes, int]] = []
        self.verify_failed: list[tuple[bytes, str]] = []
        mono = time.monotonic_ns
        lat_app, ack_app, head_app, size_app = self.lat.append, self.ack_ns.append, self.heads.append, self.sizes.append
        ver_app, fail_app = self.verify.append, self.verify_failed.append
        errors = self.errors

        def on_delivery_max_fixed(err: Any, msg: Any) -> None:
            if err is None:
                lat_app(msg.latency())
            else:
                name = err.name()
                errors[name] = errors.get(name, 0) + 1

        def on_delivery_max(err: Any, msg: Any) -> None:
            if err is None:
                lat_app(msg.latency())
                size_app(len(msg))
            else:
                name = err.name()
                errors[name] = errors.get(name, 0) + 1

        def on_delivery_rate(err: Any, msg: Any) -> None:
            if err is None:
                t = mono()
                ack_app(t)
                lat_app(msg.latency())
                v = msg.value()
                head_app(v[:8])
                size_app(len(v))
                if verify:
                    ver_app((msg.partition(), msg.offset(), v[8:16], t))
            else:
                name = err.name()
                errors[name] = errors.get(name, 0) + 1
                if verify:
                    fail_app((msg.value()[8:16], name))

        self.fixed_size = fixed_size
        self.callback = on_delivery_rate if (rate_limited or verify) else \
            (on_delivery_max_fixed if fixed_size is not None else on_delivery_max)


class ChunkBuilder:
    """Builds a chunk of message values at once with numpy: bodies are consecutive slices of the payload
    pool, each overwritten with its 16-byte header (intended ns, producer, seq)."""

    def __init__(self, pool: PayloadPool, sizes: Any, producer: int, rng: np.random.Generator) -> None:
        self.pool = np.frombuffer(pool.data, dtype=np.uint8)
        self.limit = pool.pool_size
        self.sizes = sizes
        self.fixed = sizes.value if sizes.distribution == "fixed" else None
        self.producer = producer
        self.rng = rng
        self.pos = 0
        self._cols = np.arange(HEADER.size, dtype=np.int64)

    def build(self, intended: np.ndarray, seq0: int, keys: list[bytes | None]) -> list[dict[str, Any]]:
        n = intended.size
        if self.fixed is not None:
            lens = np.full(n, max(self.fixed, HEADER.size), dtype=np.int64)
        else:
            lens = np.maximum(self.sizes.sample(n, self.rng), HEADER.size)
        ends = np.cumsum(lens)
        total = int(ends[-1])
        if self.pos + total > self.limit:
            self.pos = 0
        buf = self.pool[self.pos:self.pos + total].copy()
        self.pos += total
        starts = ends - lens
        head = np.empty(n, dtype=_HEAD_DTYPE)
        seqs = seq0 + np.arange(n, dtype=np.int64)
        head["t"], head["producer"] = intended, self.producer
        head["hi"], head["lo"] = (seqs >> 32) & 0xFFFF, seqs & 0xFFFFFFFF
        buf[starts[:, None] + self._cols] = head.view(np.uint8).reshape(n, HEADER.size)
        raw = buf.tobytes()
        bounds = zip(starts.tolist(), ends.tolist(), strict=True)
        if keys[0] is None:
            return [{"value": raw[a:b]} for a, b in bounds]
        return [{"value": raw[a:b], "key": k} for (a, b), k in zip(bounds, keys, strict=True)]


def split_batch_errors(sent: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], Any]]]:
    """After a partial ``produce_batch``: (messages to send again because the local queue was full,
    (message, KafkaError) pairs that failed for good). Clears the ``_error`` marks."""
    retry: list[dict[str, Any]] = []
    failed: list[tuple[dict[str, Any], Any]] = []
    for m in sent:
        e = m.pop("_error", None)
        if e is None:
            continue
        if e.code() == _QUEUE_FULL:
            retry.append(m)
        else:
            failed.append((m, e))
    return retry, failed


def _seq(ident: bytes) -> tuple[int, int]:
    """(producer index, seq) from header bytes 8..16."""
    producer, hi, lo = _ID.unpack(ident)
    return producer, (hi << 32) | lo


def run_producer(spec: WorkerSpec, ctl: Control, out: Any) -> None:
    """Process entry point."""
    run_worker(_produce, spec, ctl, out)


def _produce(spec: WorkerSpec, ctl: Control, out: Any) -> dict[str, Any]:
    from confluent_kafka import Producer

    rate_limited = spec.rate is not None
    fixed = max(spec.message_size.value or 1, HEADER.size) if spec.message_size.distribution == "fixed" else None
    acks = _Acks(rate_limited, spec.verify, fixed)
    conf: dict[str, Any] = {"bootstrap.servers": spec.bootstrap, **spec.client_config,
                            "on_delivery": acks.callback}
    producer = Producer(conf)
    rng = np.random.default_rng(spec.seed)
    max_size = max(spec.message_size.max or 1, HEADER.size)
    chunk_max = max(1, min(_CHUNK, _CHUNK_BYTES // max_size))
    pool = PayloadPool(compressibility=spec.payload.compressibility, file=spec.payload.file, max_size=max_size,
                       pool_size=max(4 << 20, 2 * chunk_max * max_size), seed=spec.seed)
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
    produce_batch, poll = producer.produce_batch, producer.poll
    topic = spec.topic
    chunks = ChunkBuilder(pool, spec.message_size, spec.index, rng)
    interval_ns = int(1e9 / spec.rate) if spec.rate else 0
    next_ns = t0_ns + (interval_ns * spec.index) // max(1, spec.extra.get("producers", 1))
    seq = 0
    sent_total = acked_total = 0
    queue_full = 0
    measuring = False
    measured_sent = 0
    last_stat = mono()
    stat_count = 0
    ended_ns = t_end_ns

    def drain_acks(now: int) -> None:
        nonlocal acked_total, stat_count
        n = len(acks.lat)
        if not n:
            return
        lat_us = (np.asarray(acks.lat, dtype=np.float64) * 1e6).astype(np.int64)
        sizes = np.asarray(acks.sizes, dtype=np.int64) if acks.sizes or acks.fixed_size is None \
            else np.full(n, acks.fixed_size, dtype=np.int64)
        if measuring or now >= t_end_ns:
            if rate_limited:
                # only messages *scheduled* inside the window count (warm-up ones acked late do not)
                intended = np.frombuffer(b"".join(acks.heads), dtype="<i8")
                pub = (np.asarray(acks.ack_ns, dtype=np.int64) - intended) // 1000
                in_window = intended >= t_start_ns
                k = int(in_window.sum())
                publish.record_many(pub[in_window])
                service.record_many(lat_us[in_window])
                series.add_latencies(np.full(k, now), pub[in_window])
                series.add_many(np.full(k, now), sizes[in_window])
            else:
                publish.record_many(lat_us)
                service.record_many(lat_us)
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
        if rate_limited:
            if now < next_ns:
                poll(min(0.001, (next_ns - now) / 1e9))
                drain_acks(mono())
                continue
            due = min(chunk_max, (now - next_ns) // interval_ns + 1)
        else:
            due = chunk_max
        t_build = mono()
        intended = (next_ns + interval_ns * np.arange(due, dtype=np.int64)) if rate_limited \
            else np.full(due, t_build, dtype=np.int64)
        if rate_limited:
            next_ns += interval_ns * due
        msgs = chunks.build(intended, seq, keys.batch(due))
        seq += due
        pending = msgs
        while pending:
            try:
                queued = produce_batch(topic, pending)
            except BufferError:  # nothing queued: wait for room and send the chunk again
                queue_full += 1
                poll(0.0005)
                drain_acks(mono())
                continue
            if queued == len(pending):
                break
            retry, failed = split_batch_errors(pending)
            for msg, e in failed:  # refused locally: definitely not written
                acks.errors[e.name()] = acks.errors.get(e.name(), 0) + 1
                if spec.verify:
                    acks.verify_failed.append((msg["value"][8:16], e.name()))
            if retry:
                queue_full += 1
                poll(0.0005)
                drain_acks(mono())
            pending = retry
        if rate_limited and measuring:
            delay.record_many((mono() - intended) // 1000)
        sent_total += due
        if measuring:
            measured_sent += due
        poll(0)
        now = mono()
        drain_acks(now)
        if now - last_stat >= 1_000_000_000:
            last = series.histogram_at(len(series) - 1) if measuring and len(series) else None
            p99 = last.get_value_at_percentile(99.0) if last is not None and last.get_total_count() else None
            out.put(("stat", "producer", spec.index, (now - t0_ns) / 1e9, stat_count, p99, acked_total))
            stat_count = 0
            last_stat = now
    ended_ns = min(mono(), t_end_ns)
    stopped_early = ctl.stop.is_set() and ended_ns < t_end_ns
    # deliver what is in flight (these messages were sent inside the window)
    # stopped early (Ctrl-C, dead broker): don't wait long for acks that may never come
    deadline = mono() + int((3.0 if ctl.stop.is_set() else spec.flush_timeout_s) * 1e9)
    while len(producer) > 0 and mono() < deadline:
        poll(0.05)
        drain_acks(mono())
    drain_acks(mono())
    unacked = len(producer)
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
        # verification: every ack (partition, offset, producer, seq, ack ns) and every failed send
        "verify": {"acks": [(p, o, *_seq(ident), t) for p, o, ident, t in acks.verify],
                   "failed": [(*_seq(ident), name) for ident, name in acks.verify_failed],
                   "unacked_seq_from": seq - unacked if unacked else None,
                   "sent": seq} if spec.verify else None,
    }
