"""The one open-loop producer core, shared by the librdkafka process generator and the Locust users.

:class:`OpenLoopProducer` owns what a producer measures: the schedule (:class:`bench.load.schedule.Schedule`),
the warm-up reset, sampled timing with exact counts, the drain of delivery reports into whole HDR histograms
and a per-second series, and the result (``bench.drivers.results.ProducerResult``). What differs between its
callers is injected: the client (``produce``/``poll``/``len``), the clock, how to wait while serving the
client (:class:`Waiter`: a blocking ``poll(t)`` in a process; ``poll(0)`` + ``gevent.sleep(t)`` in Locust,
where nothing may block), the header time offset (Locust writes CLOCK_REALTIME-anchored times), and a hook
called with each drained :class:`Batch` (Locust fires one request event per batch).

Latency definitions (µs, CLOCK_MONOTONIC):

* ``publish``    ack time − **intended** send time (coordinated-omission corrected; at max rate intended =
                 actual send time, so it is librdkafka's own ``msg.latency()``);
* ``service``    librdkafka's measurement from ``produce()`` to the delivery report (``msg.latency()``);
* ``send_delay`` actual ``produce()`` time − intended time (rate-limited runs only).

Only messages intended inside the window are recorded (rate-limited); at max rate, those acked inside it.
The sampled mode's arithmetic is in :class:`bench.load.schedule.Resolution`; failures among untimed
messages are estimated as N x the timed ones (result ``errors_estimated``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from bench.drivers.results import ProducerResult, ProducerVerify, SeriesDoc
from bench.load.acks import DeliverySink
from bench.load.chunks import ChunkBuilder, send_chunk
from bench.load.payload import HEADER_SIZE, KeyStream, decode_header, decode_prefixes
from bench.load.schedule import MONOTONIC, Clock, Resolution, Sampling, Schedule, SizeFifo, Window, WindowPhase
from bench.load.txn import TransactionalSends
from bench.metrics.hdr import LatencyRecorder
from bench.metrics.series import IntervalSeries

__all__ = ["DRAIN_NS", "Batch", "BatchHook", "OpenLoopProducer", "ProducerClient", "ProducerSettings", "Waiter"]

DRAIN_NS = 2_000_000        # sampled mode: few acks per chunk, drain every ~2 ms
QUEUE_FULL_WAIT_S = 0.0005


class ProducerClient(Protocol):
    """The part of ``confluent_kafka.Producer`` the core uses."""

    def produce(self, *args: Any, **kwargs: Any) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def __len__(self) -> int: ...


class Waiter(Protocol):
    """Serve the client's callbacks while waiting up to ``timeout_s`` seconds."""

    def __call__(self, timeout_s: float, /) -> object: ...


@dataclass(frozen=True)
class Batch:
    """What one drain accounted: acked messages, their value bytes, the largest publish latency among the
    timed ones (None if none was timed), and failures newly counted (estimated in sampled mode)."""

    count: int
    nbytes: int
    max_publish_us: int | None
    errors: dict[str, int]


BatchHook = Callable[[Batch], None]


@dataclass(frozen=True)
class ProducerSettings:
    topic: str
    index: int                   # this producer's index in the header (uint16)
    slot: int                    # its schedule offset: producer slot i starts i/producers of an interval late
    producers: int               # producers sharing the rate
    rate: float | None           # msgs/s; None: as fast as possible
    verify: bool
    fixed_size: int | None       # every value's size (fixed distribution, >= 16), else None
    chunk_max: int
    header_offset_ns: int = 0    # added to the intended times written into headers (Locust: the wall anchor)


class OpenLoopProducer:
    """One producer's schedule, sending and measurement (see the module docstring)."""

    def __init__(self, settings: ProducerSettings, client: ProducerClient, sink: DeliverySink, sampling: Sampling,
                 chunks: ChunkBuilder, keys: KeyStream, window: Window, *, wait: Waiter,
                 origin_ns: int | None = None, clock: Clock = MONOTONIC, on_batch: BatchHook | None = None,
                 txn: TransactionalSends | None = None) -> None:
        self.settings, self.client, self.sink, self.sampling = settings, client, sink, sampling
        self.txn = txn   # transactional: sends grouped into transactions (bench.load.txn)
        self.chunks, self.keys, self.window, self.clock = chunks, keys, window, clock
        self.wait, self.on_batch = wait, on_batch
        self.schedule = Schedule(window.t0_ns if origin_ns is None else origin_ns, settings.rate,
                                 index=settings.slot, producers=settings.producers, chunk_max=settings.chunk_max)
        self.phase = WindowPhase(window)
        self.counts = Resolution()
        self.publish, self.service, self.delay = LatencyRecorder(), LatencyRecorder(), LatencyRecorder()
        self.series = IntervalSeries(origin_ns=window.t_start_ns)
        self.seq = self.sent_total = self.sent_measured = self.acked_total = self.queue_full = 0
        self.stat_count = 0
        self.ended_ns: int | None = None
        self._sizes = SizeFifo()            # sampled mode with varying sizes: sizes of queued messages
        self._last_drain = clock()
        self._errors_reported: dict[str, int] = {}
        self._errors_total = 0

    @property
    def measuring(self) -> bool:
        return self.phase.measuring

    # -- sending ----------------------------------------------------------------------------------------
    def enter(self, now: int) -> None:
        """At the window's start (once): keep nothing of the warm-up; fix an auto sample."""
        if self.phase.enter(now):
            self.sampling.fix(self.counts.queued, now - self.window.t0_ns)
            for rec in (self.publish, self.service, self.delay):
                rec.reset()

    def send_due(self) -> int:
        """Build and send every message due now (one chunk at most, and no more than the open transaction
        has room for, ending it when it is full); returns how many."""
        due = self.schedule.due(self.clock())
        if not due:
            return 0
        txn = self.txn
        if txn is not None:
            due = min(due, txn.room(self.seq))
            if due <= 0:   # broken: nothing more can be sent
                return 0
        intended = self.schedule.take(due, self.clock())
        offset = self.settings.header_offset_ns
        values = self.chunks.build(intended + offset if offset else intended, self.seq)
        key_list = self.keys.batch(due)
        keys = None if key_list[0] is None else key_list
        self.seq += due
        if self.sampling.sampled:
            self._send_timed(values, keys, due)
        self.counts.queued += send_chunk(self.client, self.settings.topic, values, keys,
                                         on_queue_full=self._queue_full, on_failed=self._refused)
        if self.schedule.rate_limited and self.measuring:
            self.delay.record_many((self.clock() - intended) // 1000)
        self.sent_total += due
        if self.measuring:
            self.sent_measured += due
        if txn is not None:
            txn.sent(self.seq)
        return due

    def end_transaction(self, *, stopped: bool) -> None:
        """At the end of sending: end the open transaction (see :meth:`TransactionalSends.finish`)."""
        if self.txn is not None:
            self.txn.finish(self.seq, stopped=stopped)

    def _send_timed(self, values: list[bytes], keys: list[bytes | None] | None, due: int) -> None:
        """Sampled mode: the chunk's timed 1-in-N first, with the callback (removed from ``values``/``keys``)."""
        timed = self.sampling.split(values)
        timed_keys = self.sampling.split(keys) if keys else None
        self.sampling.advance(due)
        if self.settings.fixed_size is None:
            self._sizes.push(self.chunks.last_lens)
        self.counts.queued += send_chunk(self.client, self.settings.topic, timed, timed_keys,
                                         on_queue_full=self._queue_full, on_failed=self._refused,
                                         callback=self.sink.callback)

    def after_send(self) -> None:
        """Serve delivery reports after a chunk: drain each time, or every ~2 ms in sampled mode."""
        self.client.poll(0)
        now = self.clock()
        if not self.sampling.sampled or now - self._last_drain >= DRAIN_NS:
            self.drain(now)
            self._last_drain = now

    def idle(self, timeout_s: float) -> None:
        """Nothing is due: serve the client for up to ``timeout_s``, then drain."""
        self.wait(timeout_s)
        self.drain(self.clock())

    def _queue_full(self) -> None:
        self.queue_full += 1
        self.wait(QUEUE_FULL_WAIT_S)
        self.drain(self.clock())

    def _refused(self, value: bytes, err: Any) -> None:
        """Refused locally (too large, …): definitely not written."""
        name = err.name()
        self.sink.count_error(name)
        if self.settings.verify:
            self.sink.verify_failed.append((value[:HEADER_SIZE], name))

    # -- ending -----------------------------------------------------------------------------------------
    def stop_sending(self, now: int) -> None:
        """The window ends here (at ``t_end``, or earlier when stopped)."""
        if self.ended_ns is None:
            self.ended_ns = min(now, self.window.t_end_ns)

    def flush(self, timeout_s: float, step_s: float) -> None:
        """Deliver what is in flight: serve the client in steps of ``step_s`` for up to ``timeout_s``."""
        deadline = self.clock() + int(timeout_s * 1e9)
        while len(self.client) > 0 and self.clock() < deadline:
            self.wait(step_s)
            self.drain(self.clock())
        self.wait(0.0)
        self.drain(self.clock())

    # -- accounting -------------------------------------------------------------------------------------
    def drain(self, now: int) -> None:
        """Account the delivery reports collected since the last call."""
        batch = self._drain_sampled(now) if self.sampling.sampled else self._drain_full(now)
        if self.on_batch is not None:
            errors = self._new_errors()
            if batch is not None or errors:
                b = batch or Batch(0, 0, None, {})
                self.on_batch(Batch(b.count, b.nbytes, b.max_publish_us, errors) if errors else b)

    def _lat_us(self) -> np.ndarray:
        return (np.asarray(self.sink.lat, dtype=np.float64) * 1e6).astype(np.int64)

    def _record_max_rate(self, now: int, lat_us: np.ndarray) -> None:
        """At max rate intended = actual send time: publish latency is librdkafka's service time."""
        self.publish.record_many(lat_us)
        self.service.record_many(lat_us)
        self.series.add_latencies(np.full(lat_us.size, now), lat_us)

    def _drain_full(self, now: int) -> Batch | None:
        """Every message timed: one delivery report each."""
        sink, fixed = self.sink, self.settings.fixed_size
        n = len(sink.lat)
        if not n:
            return None
        lat_us = self._lat_us()
        sizes = np.asarray(sink.sizes, dtype=np.int64) if sink.sizes or fixed is None \
            else np.full(n, fixed, dtype=np.int64)
        records = self.phase.records(now)
        pub = lat_us
        if self.schedule.rate_limited and (records or self.on_batch is not None):
            intended = decode_prefixes(sink.heads)["t"] - self.settings.header_offset_ns
            pub = (np.asarray(sink.ack_ns, dtype=np.int64) - intended) // 1000
            if records:   # only messages *scheduled* inside the window count (warm-up ones acked late do not)
                in_window = intended >= self.window.t_start_ns
                stamps = np.full(int(in_window.sum()), now)
                self.publish.record_many(pub[in_window])
                self.service.record_many(lat_us[in_window])
                self.series.add_latencies(stamps, pub[in_window])
                self.series.add_many(stamps, sizes[in_window])
        elif records:
            self._record_max_rate(now, lat_us)
            self.series.add_many(np.full(n, now), sizes)
        self.acked_total += n
        self.stat_count += n
        sink.clear()
        if self.on_batch is None:
            return None
        return Batch(n, int(sizes.sum()), int(pub.max()), {})

    def _drain_sampled(self, now: int) -> Batch | None:
        """1 in N timed: counts from the client's queue length (:class:`Resolution`)."""
        sink, fixed = self.sink, self.settings.fixed_size
        n = len(sink.lat)
        timed_errors = sum(sink.sampled_errors.values())
        in_flight = len(self.client)
        if not n and not self.counts.pending(in_flight, timed_errors):
            return None
        done, ok = self.counts.resolve(in_flight, timed_errors, self.sampling.every)
        nbytes = ok * fixed if fixed is not None else (self._sizes.take(done) * ok) // max(done, 1)
        lat_us = self._lat_us() if n and (self.phase.records(now) or self.on_batch is not None) else None
        if self.phase.records(now):
            if lat_us is not None:
                self._record_max_rate(now, lat_us)
            if ok:
                self.series.add(now, count=ok, nbytes=nbytes)
        self.acked_total += ok
        self.stat_count += ok
        sink.lat.clear()
        if self.on_batch is None or not ok:
            return None
        return Batch(ok, nbytes, int(lat_us.max()) if lat_us is not None else None, {})

    def errors(self) -> dict[str, int]:
        """Failed sends by error name; in sampled mode the untimed ones are estimated (N x the timed)."""
        errors = dict(self.sink.errors)
        for name, count in self.sink.sampled_errors.items():
            errors[name] = errors.get(name, 0) + count * self.sampling.every
        return errors

    def _new_errors(self) -> dict[str, int]:
        total = sum(self.sink.errors.values()) + sum(self.sink.sampled_errors.values())
        if total == self._errors_total:
            return {}
        self._errors_total = total
        now = self.errors()
        new = {k: v - self._errors_reported.get(k, 0) for k, v in now.items() if v != self._errors_reported.get(k, 0)}
        self._errors_reported = now
        return new

    def stat(self, now: int) -> tuple[float, int, int | None, int]:
        """For the progress display: (s since t0, acked since the last stat, p99 µs of the current
        interval or None, acked in all); resets the count."""
        last = self.series.histogram_at(len(self.series) - 1) if self.measuring and len(self.series) else None
        p99 = int(last.get_value_at_percentile(99.0)) if last is not None and last.get_total_count() else None
        count, self.stat_count = self.stat_count, 0
        return (now - self.window.t0_ns) / 1e9, count, p99, self.acked_total

    def result(self, *, stopped: bool) -> ProducerResult:
        """The worker result (docs/drivers.md "result"); call after :meth:`flush`."""
        ended = self.ended_ns if self.ended_ns is not None else min(self.clock(), self.window.t_end_ns)
        unacked = len(self.client)
        doc = self.series.to_dict(until_ns=ended)
        return {
            "latency_sample": self.sampling.every,
            "errors_estimated": bool(self.sink.sampled_errors) and self.sampling.sampled,
            "sent_total": self.sent_total,
            "sent_measured": self.sent_measured,
            "acked_total": self.acked_total,
            "acked_measured": int(sum(doc["count"])),
            "bytes_measured": int(sum(doc["bytes"])),
            "unacked_at_end": unacked,
            "queue_full_events": self.queue_full,
            "errors": self.errors(),
            "window_s": max(0.0, (ended - self.window.t_start_ns) / 1e9),
            "stopped_early": stopped and ended < self.window.t_end_ns,
            "hdr": {"publish": self.publish.encode(), "service": self.service.encode(),
                    "send_delay": self.delay.encode() if self.schedule.rate_limited else None},
            "series": cast(SeriesDoc, self.series.encode()),
            "window_end_ns": ended,
            "verify": self._verify(unacked) if self.settings.verify else None,
            **({"transactions": self.txn.stats} if self.txn is not None else {}),
        }

    def _verify(self, unacked: int) -> ProducerVerify:
        """Every ack (partition, offset, producer, seq, ack ns) and every failed send (producer, seq, error)."""
        acks = []
        for p, o, head, t in self.sink.verify_acks:
            _t, producer, seq = decode_header(head)
            acks.append((p, o, producer, seq, t))
        failed = [(producer, seq, name) for (_t, producer, seq), name in
                  ((decode_header(head), name) for head, name in self.sink.verify_failed)]
        doc: ProducerVerify = {"acks": acks, "failed": failed, "sent": self.seq,
                               "unacked_seq_from": self.seq - unacked if unacked else None}
        if self.txn is not None:
            doc["txns"] = list(self.txn.records)
        return doc
