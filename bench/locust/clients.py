"""confluent-kafka clients driven from gevent greenlets, measuring with kbench's own open-loop core.

A producer user runs :class:`bench.load.core.OpenLoopProducer` (the schedule, warm-up reset, sampled timing
with exact counts, drain and result of ``kbench run``'s producer processes); a consumer user runs
:class:`bench.load.consumer.Receiver`. What is Locust-specific lives here:

* **Nothing waits inside librdkafka.** librdkafka does its network I/O in its own native threads; gevent
  cannot make those calls cooperative, and a call that *waits* (``poll(1.0)``, ``flush()``, ``close()``)
  blocks the whole process — every user, Locust's heartbeats and its stats reporter. So only non-blocking
  calls run in a greenlet (``produce``, ``poll(0)``, ``consume(n, 0)``, ``len(producer)``, cached
  watermarks); waiting is ``gevent.sleep`` (the core's injected waiter); the final flush is a bounded loop
  of ``poll(0)`` + ``gevent.sleep``; ``close()`` runs in gevent's native thread pool with a bounded wait.
* **One request event per batch, not per message.** Each drain of delivery reports fires one
  ``kafka-produce`` event: ``response_length`` = the batch's value bytes, ``response_time`` = the largest
  publish latency among its timed messages (ms, µs precision), ``context={"messages": n}``; failures fire
  one event per error name and batch with ``exception=``. Each batch a consumer user takes fires one
  ``kafka-consume`` event (the largest end-to-end latency in it). So Locust's request counts are batches
  and its response times are batch maxima; the exact per-message record is kbench's HDR histograms.
  Per-message events capped one Locust process at about a third of a ``kbench run`` producer.
* **Clock.** Each process reads CLOCK_MONOTONIC and anchors it to CLOCK_REALTIME once (``anchor_ns``);
  message headers carry *anchored* intended send times, so a consumer on another host computes end-to-end
  latency as well as the hosts' clocks agree. Publish latency and service time never leave the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent

from bench.drivers.results import ConsumerResult, ProducerResult
from bench.load.acks import DeliverySink
from bench.load.chunks import ChunkBuilder, chunk_max
from bench.load.consumer import Received, Receiver, lag_sample
from bench.load.core import Batch, OpenLoopProducer, ProducerSettings
from bench.load.payload import HEADER_SIZE, KeyStream
from bench.load.schedule import Sampling
from bench.load.schedule import Window as LoadWindow
from bench.locust.plan import Plan

__all__ = ["ConsumerDriver", "EventCounts", "Fire", "LocustProducerResult", "ProducerDriver", "Window",
           "run_blocking"]

_MAX_WAIT_S = 0.001   # a user polls for delivery reports / messages at least this often (bias <= 1 ms)
_IDLE_WAIT_S = 0.1
_FLUSH_STEP_S = 0.002
_CONSUME_BATCH = 2000
_PRODUCE = "kafka-produce"
_CONSUME = "kafka-consume"

#: ``environment.events.request.fire``
Fire = Callable[..., Any]


@dataclass(frozen=True)
class Window(LoadWindow):
    """One process's view of the run: ``t0`` (load starts), the measurement window ``[t_start, t_end)``
    on its CLOCK_MONOTONIC, and ``anchor_ns`` (CLOCK_REALTIME − CLOCK_MONOTONIC, read once)."""

    anchor_ns: int = 0

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


@dataclass
class EventCounts:
    """The Locust request events a user fired: events, messages they stand for, failure events."""

    requests: int = 0
    messages: int = 0
    failures: int = 0


class LocustProducerResult(ProducerResult, total=False):
    producer_id: int
    locust_events: dict[str, int]


class LocustConsumerResult(ConsumerResult, total=False):
    locust_events: dict[str, int]


class ProducerDriver:
    """One producer user: the open-loop core at ``rate / producer users`` msgs/s, or as fast as possible.

    ``slot`` (0..producer users − 1) offsets this user's schedule by ``slot / producer users`` of an interval;
    the schedule starts at ``t0`` or, for a user started later (a spawn ramp), when it starts."""

    def __init__(self, plan: Plan, window: Window, producer_id: int, fire: Fire, *, seed: int = 0,
                 slot: int = 0) -> None:
        from confluent_kafka import Producer

        self.plan, self.window, self.fire, self.producer_id = plan, window, fire, producer_id
        size = plan.message_size_spec()
        rate = plan.user_rate
        settings = ProducerSettings(
            topic=plan.topic, index=producer_id & 0xFFFF, slot=slot, producers=max(1, plan.producer_users),
            rate=rate, verify=False,
            fixed_size=max(size.value or 1, HEADER_SIZE) if size.distribution == "fixed" else None,
            chunk_max=chunk_max(max(size.max or 1, HEADER_SIZE)), header_offset_ns=window.anchor_ns)
        sampling = Sampling.choose(int(plan.extra.get("latency_sample", 0)), rate_limited=rate is not None,
                                   verify=False)
        sink = DeliverySink.for_run(rate_limited=rate is not None, verify=False, sampled=sampling.sampled,
                                    fixed_size=settings.fixed_size)
        self.producer = Producer({"bootstrap.servers": plan.bootstrap, **plan.producer_config,
                                  **sink.client_config()})
        chunks = ChunkBuilder.for_workload(size, plan.payload_spec(), producer=settings.index, seed=seed)
        k = plan.keys_spec()
        keys = KeyStream(k.kind, k.count, k.zipf_s, seed=seed, producer=producer_id)
        self.core = OpenLoopProducer(settings, self.producer, sink, sampling, chunks, keys, window,
                                     wait=self._wait, origin_ns=max(window.t0_ns, time.monotonic_ns()),
                                     on_batch=self._fire_batch)
        self.events = EventCounts()
        self._untimed = (0, 0)      # acked messages and bytes not fired yet: their batch had no timed message
        self.sending = True
        self.done = False

    @property
    def acked_total(self) -> int:
        return self.core.acked_total

    def _wait(self, timeout_s: float) -> None:
        """The core's waiter: yield to the other greenlets, then serve delivery reports (never blocks)."""
        if timeout_s > 0:
            gevent.sleep(timeout_s)
        self.producer.poll(0)

    def _fire_batch(self, batch: Batch) -> None:
        fire, name, ev = self.fire, self.plan.request_name, self.events
        count, nbytes = batch.count + self._untimed[0], batch.nbytes + self._untimed[1]
        if count and batch.max_publish_us is None and self.sending:
            self._untimed = (count, nbytes)   # sampled mode: fold into the next batch with a latency
        elif count:
            self._untimed = (0, 0)
            fire(request_type=_PRODUCE, name=name, response_time=(batch.max_publish_us or 0) / 1000.0,
                 response_length=nbytes, exception=None, context={"messages": count})
            ev.requests += 1
            ev.messages += count
        if batch.errors:
            from confluent_kafka import KafkaException

            for error, n in batch.errors.items():
                fire(request_type=_PRODUCE, name=name, response_time=0.0, response_length=0,
                     exception=KafkaException(error), context={"messages": n})
                ev.failures += 1

    # -- the user's loop ------------------------------------------------------------------------------
    def wait_s(self) -> float:
        """Seconds until this user has something to do (Locust's ``wait_time``)."""
        if self.done:
            return _IDLE_WAIT_S
        now = time.monotonic_ns()
        if now < self.window.t0_ns:
            return min((self.window.t0_ns - now) / 1e9, _IDLE_WAIT_S)
        if not self.sending:
            return _MAX_WAIT_S
        return min(self.core.schedule.wait_ns(now) / 1e9, _MAX_WAIT_S)

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
        self.core.enter(now)
        if self.core.schedule.wait_ns(now):
            self.core.idle(0.0)
            return
        self.core.send_due()
        self.core.after_send()

    def finish_sending(self, now: int | None = None) -> None:
        """Stop sending; deliver what is in flight with a bounded loop of ``poll(0)`` + ``gevent.sleep``."""
        if self.sending:
            self.sending = False
            self.core.stop_sending(now or time.monotonic_ns())
        self.core.flush(self.plan.flush_timeout_s, _FLUSH_STEP_S)
        if self._untimed[0]:
            self._fire_batch(Batch(0, 0, None, {}))
        self.done = True

    def result(self, stopped: bool) -> LocustProducerResult:
        """Final measurements, in the shape of :func:`bench.load.producer.run_producer`'s result."""
        if not self.done:
            self.finish_sending()
        result: LocustProducerResult = {**self.core.result(stopped=stopped), "producer_id": self.producer_id,
                                        "locust_events": vars(self.events).copy()}
        run_blocking(self.producer.close, 5.0)
        return result


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
        self.rx = Receiver(False, origin_ns=window.t_start_ns, header_offset_ns=window.anchor_ns)
        self.lag: list[tuple[float, int]] = []
        self.last_lag_ns = self.started_ns
        self.events = EventCounts()
        self.idle = True

    @property
    def received_total(self) -> int:
        return self.rx.received_total

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned[:] = partitions
        if self.joined_ns is None:
            self.joined_ns = time.monotonic_ns()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned[:] = []

    def _fire_error(self, err: Any) -> None:
        from confluent_kafka import KafkaException

        self.fire(request_type=_CONSUME, name=self.plan.request_name, response_time=0.0, response_length=0,
                  exception=KafkaException(err))
        self.events.failures += 1

    def _fire_batch(self, got: Received) -> None:
        self.fire(request_type=_CONSUME, name=self.plan.request_name,
                  response_time=(got.max_e2e_us or 0) / 1000.0, response_length=got.nbytes, exception=None,
                  context={"messages": got.count})
        self.events.requests += 1
        self.events.messages += got.count

    def wait_s(self) -> float:
        return _MAX_WAIT_S if self.idle else 0.0

    def tick(self) -> None:
        msgs = self.consumer.consume(_CONSUME_BATCH, 0)
        now = time.monotonic_ns()
        self.idle = not msgs
        w = self.window
        got = self.rx.take(msgs, now, w.t_start_ns, w.t_end_ns, on_error=self._fire_error)
        if got.count:
            self._fire_batch(got)
        if now - self.last_lag_ns >= 1_000_000_000:
            self.last_lag_ns = now
            sample = lag_sample(self.consumer, self.assigned, now, w.t0_ns)
            if sample is not None:
                self.lag.append(sample)

    def result(self) -> LocustConsumerResult:
        """Final measurements, in the shape of :func:`bench.load.consumer.run_consumer`'s result."""
        now = time.monotonic_ns()
        run_blocking(self.consumer.close, 10.0)
        result: LocustConsumerResult = {
            **self.rx.result(self.group, self.window, now, released_ns=self.started_ns, joined_ns=self.joined_ns,
                             lag=self.lag),
            "verify": None, "locust_events": vars(self.events).copy()}
        return result
