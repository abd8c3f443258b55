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

**Sampled mode** (max rate, ``latency_sample`` N != 1): a delivery callback is the one per-message cost
Python cannot batch away (confluent-kafka builds a ``Message`` and calls into Python for each, ~0.6 µs),
and it capped the generator at ~0.7x a bare produce loop. So only every N-th message carries a callback
(``produce(..., callback=)``): the timed messages are a systematic 1-in-N sample of the stream, and their
histograms are whole histograms of that sample. N = 0 (*auto*) is chosen once, when the warm-up ends,
from the warm-up's send rate (:func:`auto_latency_sample`: about 20k timed messages/s at most, N <= 64),
and stays fixed for the window so the sample is uniform. Counts stay exact without callbacks:
a message has been resolved (acked or failed) once it left the client's queue, so resolved =
queued − ``len(producer)`` after each poll. Failures among untimed messages are invisible to the client;
they are estimated as N x the sampled failures (result ``errors_estimated``), and the broker-offsets check
after the cell (``check.offsets_agree``) catches any that the sample missed.
"""

from __future__ import annotations

import operator
import struct
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np

from bench.load.payload import HEADER, KeyStream, PayloadPool
from bench.load.worker import Control, WorkerSpec, run_worker
from bench.metrics.hdr import LatencyRecorder
from bench.metrics.series import IntervalSeries

__all__ = ["ChunkBuilder", "run_producer", "send_chunk"]

_CHUNK = 512
AUTO_TIMED_PER_S = 20_000   # auto sampling: time about this many messages a second, at most
AUTO_MAX_SAMPLE = 64
AUTO_SAMPLE_NO_WARMUP = 32  # auto with no warm-up to measure the rate in
_CHUNK_BYTES = 1 << 20
_DRAIN_NS = 2_000_000
_HEAD_DTYPE = np.dtype([("t", "<i8"), ("producer", "<u2"), ("hi", "<u2"), ("lo", "<u4")])
_ID = struct.Struct("<HHI")  # producer index, seq high 16 bits, seq low 32 bits (header bytes 8..16)


class _Acks:
    """Delivery-report sink: plain lists appended by the callback, drained after each poll."""

    def __init__(self, rate_limited: bool, verify: bool, fixed_size: int | None = None) -> None:
        self.lat: list[float] = []
        self.ack_ns: list[int] = []
        self.heads: list[bytes] = []
        self.sizes: list[int] = []
        self.errors: dict[str, int] = {}
        self.sampled_errors: dict[str, int] = {}   # failed deliveries among the timed 1-in-N (sampled mode)
        self.verify: list[tuple[int, int, bytes, int]] = []
        self.verify_failed: list[tuple[bytes, str]] = []
        mono = time.monotonic_ns
        lat_app, ack_app, head_app, size_app = self.lat.append, self.ack_ns.append, self.heads.append, self.sizes.append
        ver_app, fail_app = self.verify.append, self.verify_failed.append
        errors, sampled_errors = self.errors, self.sampled_errors

        def latency_only(error_counts: dict[str, int]) -> Callable[[Any, Any], None]:
            def on_delivery(err: Any, msg: Any) -> None:
                if err is None:
                    lat_app(msg.latency())
                else:
                    name = err.name()
                    error_counts[name] = error_counts.get(name, 0) + 1
            return on_delivery

        on_delivery_sampled, on_delivery_max_fixed = latency_only(sampled_errors), latency_only(errors)

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
        self.sampled_callback = on_delivery_sampled
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
        self.last_lens: np.ndarray = np.zeros(0, dtype=np.int64)   # value sizes of the last chunk built
        self._rows: np.dtype | None = None
        self._arange = np.arange(_CHUNK, dtype=np.int64)

    def build(self, intended: np.ndarray, seq0: int) -> list[bytes]:
        """The chunk's values: consecutive slices of the payload pool, each starting with its header."""
        n = intended.size
        if self._arange.size < n:
            self._arange = np.arange(n, dtype=np.int64)
        seqs = seq0 + self._arange[:n]
        hi = (seqs >> 32) if seq0 + n > 0xFFFFFFFF else 0
        if self.fixed is not None:  # one record per row: header fields written in place, one bytes per row
            size = max(self.fixed, HEADER.size)
            if self.last_lens.size != n:
                self.last_lens = np.full(n, size, dtype=np.int64)
            rows = self._take(n * size).view(self._row_dtype(size))
            rows["t"], rows["producer"], rows["hi"], rows["lo"] = intended, self.producer, hi, seqs
            values: list[bytes] = rows.view(f"V{size}").tolist()
            return values
        lens = np.maximum(self.sizes.sample(n, self.rng), HEADER.size)
        self.last_lens = lens
        buf = self._take(int(lens.sum()))
        head = np.empty(n, dtype=_HEAD_DTYPE)
        head["t"], head["producer"], head["hi"], head["lo"] = intended, self.producer, hi, seqs
        ends = np.cumsum(lens)
        starts = ends - lens
        buf[starts[:, None] + self._cols] = head.view(np.uint8).reshape(n, HEADER.size)
        raw = buf.tobytes()
        return [raw[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def _take(self, total: int) -> np.ndarray:
        """A private copy of the next ``total`` bytes of the pool (wrapping to its start)."""
        if self.pos + total > self.limit:
            self.pos = 0
        buf = self.pool[self.pos:self.pos + total].copy()
        self.pos += total
        return buf

    def _row_dtype(self, size: int) -> np.dtype:
        if self._rows is None or self._rows.itemsize != size:
            self._rows = np.dtype([("t", "<i8"), ("producer", "<u2"), ("hi", "<u2"), ("lo", "<u4"),
                                   ("body", f"V{size - HEADER.size}")])
        return self._rows


def send_chunk(producer: Any, topic: str, values: list[bytes], keys: list[bytes | None] | None, *,
               on_queue_full: Callable[[], None], on_failed: Callable[[bytes, Any], None],
               callback: Callable[[Any, Any], None] | None = None) -> int:
    """``produce()`` every value (with its key, and ``callback`` if given) through ``map``: no Python
    bytecode runs per message. When the client's queue is full, call ``on_queue_full()`` (poll) and resume
    at the refused message; a message refused for good (too large, …) goes to ``on_failed(value, error)``
    and is skipped. Returns how many messages were queued."""
    produce = partial(producer.produce, callback=callback) if callback is not None else producer.produce
    queued = start = 0
    n = len(values)
    while start < n:
        vals = values[start:] if start else values
        it = iter(vals)
        try:
            if keys is None:
                deque(map(partial(produce, topic), it), maxlen=0)
            else:
                deque(map(produce, repeat(topic), it, keys[start:] if start else keys), maxlen=0)
            return queued + len(vals)
        except Exception as exc:  # BufferError, or confluent_kafka.KafkaException (imported lazily, here only)
            from confluent_kafka import KafkaException

            if not isinstance(exc, BufferError | KafkaException):
                raise
            done = len(vals) - operator.length_hint(it) - 1   # map had taken the refused value from `it`
            queued += done
            if isinstance(exc, BufferError):  # the queue is full: wait, then offer the same value again
                start += done
                on_queue_full()
            else:                             # refused for good: skip it
                on_failed(vals[done], exc.args[0])
                start += done + 1
    return queued


class _SizeFifo:
    """Sizes of queued messages in send order; ``take(n)`` removes the oldest n and returns their sum."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._head = 0   # consumed entries of _chunks[0]

    def push(self, sizes: np.ndarray) -> None:
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


def auto_latency_sample(msgs_per_s: float) -> int:
    """1 in N for a producer sending ``msgs_per_s``: the largest power of two <= rate / AUTO_TIMED_PER_S,
    within 1..AUTO_MAX_SAMPLE (below ~40k msg/s every message is timed)."""
    n = 1
    while n * 2 <= min(AUTO_MAX_SAMPLE, msgs_per_s / AUTO_TIMED_PER_S):
        n *= 2
    return n


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
    auto = spec.latency_sample == 0 and not (rate_limited or spec.verify)
    sample = 1 if (rate_limited or spec.verify) else (AUTO_MAX_SAMPLE if auto else spec.latency_sample)
    sampled = auto or sample > 1
    acks = _Acks(rate_limited, spec.verify, fixed)
    conf: dict[str, Any] = {"bootstrap.servers": spec.bootstrap, **spec.client_config}
    if not sampled:
        conf["on_delivery"] = acks.callback
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
    poll = producer.poll
    topic = spec.topic
    chunks = ChunkBuilder(pool, spec.message_size, spec.index, rng)
    interval_ns = int(1e9 / spec.rate) if spec.rate else 0
    next_ns = t0_ns + (interval_ns * spec.index) // max(1, spec.extra.get("producers", 1))
    seq = 0
    sent_total = acked_total = 0
    queued_total = resolved_total = 0   # accepted by produce(); left the client's queue (sampled mode)
    sampled_errors_seen = 0
    phase = 0                           # index in the next chunk of the next timed message (sampled mode)
    unsent_sizes = _SizeFifo()          # sizes of queued messages, in send order (sampled mode, sizes vary)
    queue_full = 0
    measuring = False
    measured_sent = 0
    last_stat = last_drain = mono()
    stat_count = 0
    ended_ns = t_end_ns

    def lat_us_of_acks() -> np.ndarray:
        return (np.asarray(acks.lat, dtype=np.float64) * 1e6).astype(np.int64)

    def record_acked_at_max_rate(now: int, lat_us: np.ndarray) -> None:
        """At max rate intended = actual send time: publish latency is librdkafka's service time."""
        publish.record_many(lat_us)
        service.record_many(lat_us)
        series.add_latencies(np.full(lat_us.size, now), lat_us)

    def drain_acks(now: int) -> None:
        nonlocal acked_total, stat_count
        n = len(acks.lat)
        if not n:
            return
        lat_us = lat_us_of_acks()
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
                record_acked_at_max_rate(now, lat_us)
                series.add_many(np.full(n, now), sizes)
        acked_total += n
        stat_count += n
        acks.lat.clear(); acks.sizes.clear(); acks.ack_ns.clear(); acks.heads.clear()  # noqa: E702

    def drain_sampled(now: int) -> None:
        nonlocal acked_total, stat_count, resolved_total, sampled_errors_seen
        resolved = queued_total - len(producer)
        done = resolved - resolved_total
        n = len(acks.lat)
        errs = sum(acks.sampled_errors.values())
        if done <= 0 and not n and errs == sampled_errors_seen:
            return
        done = max(done, 0)
        ok = max(0, done - (errs - sampled_errors_seen) * sample)
        nbytes = ok * fixed if fixed is not None else (unsent_sizes.take(done) * ok) // max(done, 1)
        if measuring or now >= t_end_ns:
            if n:
                record_acked_at_max_rate(now, lat_us_of_acks())
            if ok:
                series.add(now, count=ok, nbytes=nbytes)
        acked_total += ok
        stat_count += ok
        resolved_total += done
        sampled_errors_seen = errs
        acks.lat.clear()

    drain = drain_sampled if sampled else drain_acks

    def queue_full_wait() -> None:
        nonlocal queue_full
        queue_full += 1
        poll(0.0005)
        drain(mono())

    def refused(value: bytes, err: Any) -> None:  # refused locally: definitely not written
        name = err.name()
        acks.errors[name] = acks.errors.get(name, 0) + 1
        if spec.verify:
            acks.verify_failed.append((value[8:16], name))

    # wait for the common start
    while (now := mono()) < t0_ns and not ctl.stop.is_set():
        time.sleep(min(0.01, (t0_ns - now) / 1e9))
    while not ctl.stop.is_set():
        now = mono()
        if now >= t_end_ns:
            break
        if not measuring and now >= t_start_ns:
            measuring = True
            if auto:  # fixed from here on: the window's sample is uniform
                warm_s = (now - t0_ns) / 1e9
                sample = auto_latency_sample(queued_total / warm_s) if warm_s >= 0.5 else AUTO_SAMPLE_NO_WARMUP
                phase = 0
            # warm-up is over: keep nothing of it
            for rec in (publish, service, delay):
                rec.reset()
        if rate_limited:
            if now < next_ns:
                poll(min(0.001, (next_ns - now) / 1e9))
                drain(mono())
                continue
            due = min(chunk_max, (now - next_ns) // interval_ns + 1)
        else:
            due = chunk_max
        t_build = mono()
        intended = (next_ns + interval_ns * np.arange(due, dtype=np.int64)) if rate_limited \
            else np.full(due, t_build, dtype=np.int64)
        if rate_limited:
            next_ns += interval_ns * due
        values = chunks.build(intended, seq)
        key_list = keys.batch(due)
        msg_keys = None if key_list[0] is None else key_list
        seq += due
        if sampled:  # the timed 1-in-N first, with their callback; then the rest
            timed, timed_keys = values[phase::sample], (msg_keys[phase::sample] if msg_keys else None)
            del values[phase::sample]
            if msg_keys:
                del msg_keys[phase::sample]
            phase = (phase - due) % sample
            if fixed is None:
                unsent_sizes.push(chunks.last_lens)
            queued_total += send_chunk(producer, topic, timed, timed_keys, on_queue_full=queue_full_wait,
                                       on_failed=refused, callback=acks.sampled_callback)
        queued_total += send_chunk(producer, topic, values, msg_keys, on_queue_full=queue_full_wait,
                                   on_failed=refused)
        if rate_limited and measuring:
            delay.record_many((mono() - intended) // 1000)
        sent_total += due
        if measuring:
            measured_sent += due
        poll(0)
        now = mono()
        if not sampled or now - last_drain >= _DRAIN_NS:  # sampled: few acks per chunk, drain each ~2 ms
            drain(now)
            last_drain = now
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
        drain(mono())
    drain(mono())
    unacked = len(producer)
    window_s = max(0.0, (ended_ns - t_start_ns) / 1e9)
    series_doc = series.to_dict(until_ns=ended_ns)
    errors = dict(acks.errors)
    for name, count in acks.sampled_errors.items():  # untimed messages failed like the timed ones, N x as many
        errors[name] = errors.get(name, 0) + count * sample
    return {
        "latency_sample": sample,
        "errors_estimated": bool(acks.sampled_errors) and sampled,
        "sent_total": sent_total,
        "sent_measured": measured_sent,
        "acked_total": acked_total,
        "acked_measured": int(sum(series_doc["count"])),
        "bytes_measured": int(sum(series_doc["bytes"])),
        "unacked_at_end": unacked,
        "queue_full_events": queue_full,
        "errors": errors,
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
