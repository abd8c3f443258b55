"""confluent-kafka clients driven from gevent greenlets, measuring as kbench's own workers do.

librdkafka does its network I/O in its own native threads; gevent cannot make those calls cooperative.
A librdkafka call that *waits* (``poll(1.0)``, ``flush()``, ``consume(timeout=1)``, ``close()``) blocks
the whole process — every user, Locust's heartbeats and its stats reporter — until it returns. So here:

* only non-blocking calls run in a greenlet: ``produce``, ``poll(0)``,
  ``consume(n, timeout=0)``, ``len(producer)``, cached watermarks; waiting is ``gevent.sleep``;
* the producer's final flush is a bounded loop of ``poll(0)`` + ``gevent.sleep``;
* the calls that can only block (``Consumer.close``, ``Producer.close``) run in gevent's native thread
  pool (librdkafka releases the GIL while it waits), with a bounded wait.

Delivery reports and rebalance callbacks are served inside ``poll``/``consume`` on the calling greenlet.
Callbacks only append to lists; recording (numpy, into HDR histograms) and firing Locust ``request``
events happen after each poll.

Clock: each process reads CLOCK_MONOTONIC and anchors it to CLOCK_REALTIME once (``anchor_ns``); message
headers carry *anchored* intended send times, so a consumer on another host computes end-to-end latency
as well as the hosts' clocks agree. Publish latency and service time never leave the producing process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import numpy as np

from bench.load.consumer import split_messages
from bench.load.payload import HEADER, KeyStream, PayloadPool, decode_headers
from bench.load.producer import ChunkBuilder, send_chunk
from bench.locust.plan import Plan
from bench.metrics.hdr import LatencyRecorder
from bench.metrics.series import IntervalSeries

__all__ = ["ConsumerDriver", "Fire", "ProducerDriver", "Window", "run_blocking"]

_CHUNK = 512
_CHUNK_BYTES = 1 << 20
_MAX_WAIT_S = 0.001   # a user polls for delivery reports / messages at least this often (bias <= 1 ms)
_IDLE_WAIT_S = 0.1

#: ``environment.events.request.fire``
Fire = Callable[..., Any]


@dataclass(frozen=True)
class Window:
    """One process's view of the run: ``t0`` (load starts), the measurement window ``[t_start, t_end)``
    on its CLOCK_MONOTONIC, and ``anchor_ns`` (CLOCK_REALTIME − CLOCK_MONOTONIC, read once)."""

    t0_ns: int
    t_start_ns: int
    t_end_ns: int
    anchor_ns: int

    @classmethod
    def from_wall(cls, t0_wall_ns: int, warmup_s: float, duration_s: float) -> Window:
        mono, wall = time.monotonic_ns(), time.time_ns()
        anchor = wall - mono
        t0 = t0_wall_ns - anchor
        t_start = t0 + int(warmup_s * 1e9)
        return cls(t0, t_start, t_start + int(duration_s * 1e9), anchor)


def run_blocking(fn: Callable[[], Any], timeout_s: float) -> bool:
    """Run a blocking librdkafka call in gevent's native thread pool; False if it did not return in time
    (the thread is left to finish on its own)."""
    result = gevent.get_hub().threadpool.spawn(fn)
    try:
        result.get(timeout=timeout_s)
    except gevent.Timeout:
        return False
    return True


class ProducerDriver:
    """One producer user: an open-loop schedule (``rate`` msgs/s) or as fast as possible."""

    def __init__(self, plan: Plan, window: Window, producer_id: int, fire: Fire, *, seed: int = 0) -> None:
        from confluent_kafka import Producer

        self.plan, self.window, self.fire, self.producer_id = plan, window, fire, producer_id
        self.rate = plan.user_rate
        self._ack_ns: list[int] = []
        self._lat: list[float] = []
        self._heads: list[bytes] = []
        self._sizes: list[int] = []
        self._failed: list[tuple[str, float, int]] = []
        self.errors: dict[str, int] = {}
        self.rate_limited = self.rate is not None
        callback = self._on_delivery if self.rate_limited else self._on_delivery_max
        self.producer = Producer({"bootstrap.servers": plan.bootstrap, **plan.producer_config,
                                  "on_delivery": callback})
        size = plan.message_size_spec()
        max_size = max(size.max or 1, HEADER.size)
        self.chunk_max = max(1, min(_CHUNK, _CHUNK_BYTES // max_size))
        payload = plan.payload_spec()
        pool = PayloadPool(compressibility=payload.compressibility, file=payload.file, max_size=max_size,
                           pool_size=max(4 << 20, 2 * self.chunk_max * max_size), seed=seed)
        rng = np.random.default_rng(seed)
        self.chunks = ChunkBuilder(pool, size, producer_id & 0xFFFF, rng)
        k = plan.keys_spec()
        self.keys = KeyStream(k.kind, k.count, k.zipf_s, seed=seed, producer=producer_id)
        self.interval_ns = int(1e9 / self.rate) if self.rate else 0
        start = max(window.t0_ns, time.monotonic_ns())
        self.next_ns = start + (int(rng.integers(0, self.interval_ns)) if self.interval_ns else 0)
        self.publish, self.service, self.delay = LatencyRecorder(), LatencyRecorder(), LatencyRecorder()
        self.series = IntervalSeries(origin_ns=window.t_start_ns)
        self.seq = self.sent_total = self.acked_total = self.queue_full = self.measured_sent = 0
        self.measuring = False
        self.sending = True
        self.done = False
        self.ended_ns = window.t_end_ns

    # -- callbacks (served inside poll on this greenlet; append only) ---------------------------------
    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self._ack_ns.append(time.monotonic_ns())
            self._lat.append(msg.latency())
            v = msg.value()
            self._heads.append(v[:8])
            self._sizes.append(len(v))
        else:
            self._failed.append((err.name(), msg.latency() or 0.0, len(msg)))

    def _on_delivery_max(self, err: Any, msg: Any) -> None:
        """At max rate intended = actual send time: publish latency is librdkafka's own latency."""
        if err is None:
            self._lat.append(msg.latency())
            self._sizes.append(len(msg))
        else:
            self._failed.append((err.name(), msg.latency() or 0.0, len(msg)))

    # -- the user's loop ------------------------------------------------------------------------------
    def wait_s(self) -> float:
        """Seconds until this user has something to do (Locust's ``wait_time``)."""
        if self.done:
            return _IDLE_WAIT_S
        now = time.monotonic_ns()
        if now < self.window.t0_ns:
            return min((self.window.t0_ns - now) / 1e9, _IDLE_WAIT_S)
        if not self.sending or not self.interval_ns:
            return 0.0 if self.sending else _MAX_WAIT_S
        return min(max(0.0, (self.next_ns - now) / 1e9), _MAX_WAIT_S)

    def tick(self) -> None:
        """Send what is due, serve delivery reports; at the window's end, flush (bounded) and stop."""
        if self.done:
            return
        now = time.monotonic_ns()
        if now >= self.window.t_end_ns:
            self.finish_sending(now)
            return
        if now < self.window.t0_ns:
            return
        if not self.measuring and now >= self.window.t_start_ns:
            self.measuring = True
            for rec in (self.publish, self.service, self.delay):  # keep nothing of the warm-up
                rec.reset()
        if self.interval_ns:
            if now < self.next_ns:
                self._serve()
                return
            due = min(self.chunk_max, (now - self.next_ns) // self.interval_ns + 1)
            intended = self.next_ns + self.interval_ns * np.arange(due, dtype=np.int64)
            self.next_ns += self.interval_ns * due
        else:
            due = self.chunk_max
            intended = np.full(due, now, dtype=np.int64)
        values = self.chunks.build(intended + self.window.anchor_ns, self.seq)
        keys = self.keys.batch(due)
        self.seq += due
        self._send(values, None if keys[0] is None else keys)
        if self.interval_ns and self.measuring:
            self.delay.record_many((time.monotonic_ns() - intended) // 1000)
        self._serve()

    def _send(self, values: list[bytes], keys: list[bytes | None] | None) -> None:
        queued = send_chunk(self.producer, self.plan.topic, values, keys, on_queue_full=self._queue_full,
                            on_failed=lambda v, e: self._failed.append((e.name(), 0.0, len(v))))
        self.sent_total += queued
        if self.measuring:
            self.measured_sent += queued

    def _queue_full(self) -> None:
        self.queue_full += 1
        self._serve()
        gevent.sleep(0.0005)

    def _serve(self) -> None:
        self.producer.poll(0)
        self._drain(time.monotonic_ns())

    def _drain(self, now: int) -> None:
        """Record the delivery reports collected since the last call; fire one request event per message."""
        if self._failed:
            failed, self._failed = self._failed, []
            from confluent_kafka import KafkaException

            for name, lat_s, size in failed:
                self.errors[name] = self.errors.get(name, 0) + 1
                self.fire(request_type="kafka-produce", name=self.plan.request_name, response_time=lat_s * 1e3,
                          response_length=size, exception=KafkaException(name))
        n = len(self._lat)
        if not n:
            return
        lat_us = (np.asarray(self._lat, dtype=np.float64) * 1e6).astype(np.int64)
        sizes = np.asarray(self._sizes, dtype=np.int64)
        if self.interval_ns:
            intended = np.frombuffer(b"".join(self._heads), dtype="<i8") - self.window.anchor_ns
            pub = (np.asarray(self._ack_ns, dtype=np.int64) - intended) // 1000
        else:
            intended, pub = None, lat_us
        if self.measuring:
            self.service.record_many(lat_us)
            stamps = np.full(n, now)
            if intended is not None:
                in_window = intended >= self.window.t_start_ns
                self.publish.record_many(pub[in_window])
                self.series.add_latencies(stamps[in_window], pub[in_window])
            else:
                self.publish.record_many(pub)
                self.series.add_latencies(stamps, pub)
            self.series.add_many(stamps, sizes)
        self.acked_total += n
        self._lat.clear(); self._sizes.clear(); self._ack_ns.clear(); self._heads.clear()  # noqa: E702
        fire, name = self.fire, self.plan.request_name
        for ms, size in zip((pub / 1000.0).round(3).tolist(), sizes.tolist(), strict=True):
            fire(request_type="kafka-produce", name=name, response_time=ms, response_length=size, exception=None)

    def finish_sending(self, now: int | None = None) -> None:
        """Stop sending; deliver what is in flight with a bounded loop of ``poll(0)`` + ``gevent.sleep``."""
        if self.sending:
            self.sending = False
            self.ended_ns = min(now or time.monotonic_ns(), self.window.t_end_ns)
        deadline = time.monotonic_ns() + int(self.plan.flush_timeout_s * 1e9)
        while len(self.producer) > 0 and time.monotonic_ns() < deadline:
            self._serve()
            gevent.sleep(0.002)
        self._serve()
        self.done = True

    def result(self, stopped: bool) -> dict[str, Any]:
        """Final measurements, in the shape of :func:`bench.load.producer.run_producer`'s result."""
        if not self.done:
            self.finish_sending()
        unacked = len(self.producer)
        producer = self.producer
        run_blocking(producer.close, 5.0)
        window_s = max(0.0, (self.ended_ns - self.window.t_start_ns) / 1e9)
        doc = self.series.to_dict(until_ns=self.ended_ns)
        return {
            "sent_total": self.sent_total, "sent_measured": self.measured_sent, "acked_total": self.acked_total,
            "acked_measured": int(sum(doc["count"])), "bytes_measured": int(sum(doc["bytes"])),
            "unacked_at_end": unacked, "queue_full_events": self.queue_full, "errors": dict(self.errors),
            "window_s": window_s, "stopped_early": stopped and self.ended_ns < self.window.t_end_ns,
            "hdr": {"publish": self.publish.encode(), "service": self.service.encode(),
                    "send_delay": self.delay.encode() if self.interval_ns else None},
            "series": self.series.encode(), "window_end_ns": self.ended_ns, "verify": None,
            "producer_id": self.producer_id,
        }


class ConsumerDriver:
    """One consumer user: a group member; end-to-end latency from the producers' anchored header times."""

    def __init__(self, plan: Plan, window: Window, group: str, fire: Fire) -> None:
        from confluent_kafka import Consumer

        self.plan, self.window, self.fire, self.group = plan, window, fire, group
        self.assigned: list[Any] = []
        self.started_ns = time.monotonic_ns()
        self.joined_ns: int | None = None
        self.consumer = Consumer({"bootstrap.servers": plan.bootstrap, "group.id": group,
                                  "auto.offset.reset": "earliest", "enable.partition.eof": False,
                                  **plan.consumer_config})
        self.consumer.subscribe([plan.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.e2e = LatencyRecorder()
        self.series = IntervalSeries(origin_ns=window.t_start_ns)
        self.received_total = 0
        self.errors: dict[str, int] = {}
        self.lag: list[tuple[float, int]] = []
        self.last_lag_ns = self.started_ns
        self.idle = True

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned[:] = partitions
        if self.joined_ns is None:
            self.joined_ns = time.monotonic_ns()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned[:] = []

    def wait_s(self) -> float:
        return _MAX_WAIT_S if self.idle else 0.0

    def tick(self) -> None:
        from confluent_kafka import KafkaException

        msgs = self.consumer.consume(500, 0)
        now = time.monotonic_ns()
        self.idle = not msgs
        w = self.window
        values = split_messages(msgs, self.errors, lambda err: self.fire(
            request_type="kafka-consume", name=self.plan.request_name, response_time=0.0, response_length=0,
            exception=KafkaException(err)))
        n = len(values)
        if n:
            self.received_total += n
            sizes = np.fromiter((len(v) for v in values), dtype=np.int64, count=n)
            if w.t_start_ns <= now < w.t_end_ns:
                self.series.add_many(np.full(n, now), sizes)
            ms: list[float] = [0.0] * n
            heads = decode_headers(values)
            if heads is not None:
                sent = heads["t"]
                lat = (now + w.anchor_ns - sent) // 1000
                ms = (lat / 1000.0).round(3).tolist()
                win = (sent >= w.t_start_ns + w.anchor_ns) & (sent < w.t_end_ns + w.anchor_ns)
                if win.any():
                    self.e2e.record_many(lat[win])
                    self.series.add_latencies(np.full(int(win.sum()), now), lat[win])
            fire, name = self.fire, self.plan.request_name
            for t, size in zip(ms, sizes.tolist(), strict=True):
                fire(request_type="kafka-consume", name=name, response_time=t, response_length=size, exception=None)
        if now - self.last_lag_ns >= 1_000_000_000:
            self.last_lag_ns = now
            total = self._lag()
            if total is not None:
                self.lag.append((round((now - w.t0_ns) / 1e9, 3), total))

    def _lag(self) -> int | None:
        """Sum over assigned partitions of (high watermark − position), from cached metadata (no wait)."""
        if not self.assigned:
            return None
        from confluent_kafka import KafkaException

        total = 0
        try:
            for tp in self.consumer.position(list(self.assigned)):
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0 and tp.offset >= 0:
                    total += max(0, high - tp.offset)
        except KafkaException:  # best effort: a rebalance mid-call is normal
            return None
        return total

    def result(self) -> dict[str, Any]:
        """Final measurements, in the shape of :func:`bench.load.consumer.run_consumer`'s result."""
        w = self.window
        end = max(w.t_start_ns, min(time.monotonic_ns(), w.t_end_ns))
        run_blocking(self.consumer.close, 10.0)
        doc = self.series.to_dict(until_ns=end)
        return {
            "group": self.group, "received_total": self.received_total,
            "received_measured": int(sum(doc["count"])), "bytes_measured": int(sum(doc["bytes"])),
            "errors": dict(self.errors), "window_s": max(0.0, (end - w.t_start_ns) / 1e9),
            "join_s": (self.joined_ns - self.started_ns) / 1e9 if self.joined_ns else None,
            "released_s": (self.started_ns - w.t0_ns) / 1e9, "hdr": {"e2e": self.e2e.encode()},
            "series": self.series.encode(), "window_end_ns": end, "lag": self.lag, "verify": None,
        }
