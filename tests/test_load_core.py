"""The open-loop producer core (bench/load/core.py) with a fake clock and a fake client (pure logic).

The fake client acks what it was given when polled, after a fixed service time on the fake clock, and
can fail chosen messages; it calls the per-message callback (sampled mode) or the configured
``on_delivery``, as librdkafka does. Everything else is the real core: schedule, warm-up reset, sampling,
drain, result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from bench.load.acks import DeliverySink
from bench.load.chunks import ChunkBuilder
from bench.load.core import Batch, OpenLoopProducer, ProducerSettings
from bench.load.payload import KeyStream, decode_header
from bench.load.schedule import Sampling, Window
from bench.metrics.hdr import decode_histogram
from bench.scenario.model import MessageSize, Payload

MS = 1_000_000
SERVICE_NS = 3 * MS


@dataclass
class FakeClock:
    now: int = 0

    def __call__(self) -> int:
        return self.now


class FakeErr:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


class FakeMsg:
    def __init__(self, value: bytes, latency_s: float) -> None:
        self._value, self._latency = value, latency_s

    def value(self) -> bytes:
        return self._value

    def latency(self) -> float:
        return self._latency

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7

    def __len__(self) -> int:
        return len(self._value)


@dataclass
class FakeProducer:
    """Acks each message SERVICE_NS after it was produced, when polled at or after that time."""

    clock: FakeClock
    on_delivery: Any = None
    fail_seqs: set[int] = field(default_factory=set)
    queue: list[tuple[int, bytes, Any]] = field(default_factory=list)
    produced: list[bytes] = field(default_factory=list)

    def produce(self, topic: str, value: bytes, key: bytes | None = None, callback: Any = None) -> None:
        self.queue.append((self.clock.now, value, callback))
        self.produced.append(value)

    def poll(self, timeout: float = 0.0) -> int:
        self.clock.now += int(timeout * 1e9)
        ready = [q for q in self.queue if q[0] + SERVICE_NS <= self.clock.now]
        self.queue = [q for q in self.queue if q[0] + SERVICE_NS > self.clock.now]
        for sent, value, cb in ready:
            cb = cb or self.on_delivery
            if cb is None:
                continue
            seq = decode_header(value)[2]
            err = FakeErr("MSG_TIMED_OUT") if seq in self.fail_seqs else None
            cb(err, FakeMsg(value, (self.clock.now - sent) / 1e9))
        return len(ready)

    def __len__(self) -> int:
        return len(self.queue)


def _core(clock: FakeClock, *, rate: float | None, latency_sample: int = 1, fail: set[int] | None = None,
          window: Window | None = None, on_batch: Any = None, index: int = 0, producers: int = 1,
          chunk: int = 64) -> tuple[OpenLoopProducer, FakeProducer]:
    window = window or Window(0, 100 * MS, 300 * MS)
    settings = ProducerSettings(topic="t", index=index, slot=index, producers=producers, rate=rate, verify=False,
                                fixed_size=100, chunk_max=chunk)
    sampling = Sampling.choose(latency_sample, rate_limited=rate is not None, verify=False)
    sink = DeliverySink.for_run(rate_limited=rate is not None, verify=False, sampled=sampling.sampled,
                                fixed_size=100, clock=clock)
    client = FakeProducer(clock, sink.client_config().get("on_delivery"), fail or set())
    size = MessageSize(distribution="fixed", value=100, min=100, max=100)
    chunks = ChunkBuilder.for_workload(size, Payload(kind="random", compressibility=0.0, file=None), producer=index,
                                       seed=1)
    core = OpenLoopProducer(settings, client, sink, sampling, chunks, KeyStream("none", None), window,
                            wait=client.poll, clock=clock, on_batch=on_batch)
    return core, client


def _run(core: OpenLoopProducer, clock: FakeClock, step_ns: int) -> None:
    """The process loop's shape, the fake clock advancing ``step_ns`` per chunk."""
    while clock.now < core.window.t_end_ns:
        core.enter(clock.now)
        wait = core.schedule.wait_ns(clock.now)
        if wait:
            core.idle(min(0.001, wait / 1e9))
            continue
        core.send_due()
        clock.now += step_ns
        core.after_send()
    core.stop_sending(clock.now)
    core.flush(1.0, 0.001)


def test_rate_limited_publish_latency_from_the_intended_time_and_warm_up_reset() -> None:
    clock = FakeClock()
    core, client = _core(clock, rate=1000.0)   # 1 ms interval; 100 ms warm-up, 200 ms window
    _run(core, clock, step_ns=0)
    r = core.result(stopped=False)
    assert r["sent_total"] == r["acked_total"] == len(client.produced) == 300
    assert r["acked_measured"] == r["sent_measured"] == 200          # intended inside the window only
    assert r["bytes_measured"] == 200 * 100 and r["unacked_at_end"] == 0 and r["errors"] == {}
    heads = [decode_header(v) for v in client.produced]
    assert [t for t, _p, _s in heads] == [n * MS for n in range(300)]  # the schedule, in the headers
    assert [s for _t, _p, s in heads] == list(range(300))
    publish = decode_histogram(r["hdr"]["publish"])
    assert publish.get_total_count() == 200                           # nothing of the warm-up
    # acked when polled after the 3 ms service time; polls come at most 1 ms apart
    assert publish.get_min_value() >= 3000 and publish.get_max_value() <= 4010
    assert r["latency_sample"] == 1 and r["hdr"]["send_delay"] is not None and r["window_s"] == 0.2


def test_a_stall_is_in_the_publish_latency_of_the_overdue_messages() -> None:
    clock = FakeClock()
    core, client = _core(clock, rate=10_000.0, window=Window(0, 0, 50 * MS), chunk=512)
    core.enter(0)
    clock.now = 20 * MS              # a 20 ms stall before the first send: 201 messages overdue
    core.send_due()
    assert len(client.produced) == 201
    assert [decode_header(v)[0] for v in client.produced[:3]] == [0, 100_000, 200_000]
    clock.now += SERVICE_NS
    client.poll(0)
    core.drain(clock.now)
    publish = decode_histogram(core.result(stopped=True)["hdr"]["publish"])
    assert publish.get_total_count() == 201
    assert publish.get_max_value() == pytest.approx(23_000, rel=0.002)   # the stall + service time
    assert publish.get_min_value() == pytest.approx(3_000, rel=0.002)


def test_producer_offsets_within_one_interval() -> None:
    clock = FakeClock()
    core, client = _core(clock, rate=1000.0, index=1, producers=4, window=Window(0, 0, 5 * MS))
    _run(core, clock, step_ns=0)
    assert [decode_header(v)[0] for v in client.produced] == [250_000 + n * MS for n in range(5)]


@pytest.mark.parametrize("sample", [4, 0])
def test_sampled_max_rate_counts_exactly_and_times_one_in_n(sample: int) -> None:
    clock = FakeClock()
    core, client = _core(clock, rate=None, latency_sample=sample)
    _run(core, clock, step_ns=100_000)   # one 64-message chunk each 0.1 ms: 640k msg/s
    r = core.result(stopped=False)
    every = 4 if sample else 32          # auto: 640k msg/s in the warm-up -> 1 in 32
    assert r["latency_sample"] == every
    assert r["acked_total"] == r["sent_total"] == len(client.produced)
    assert r["acked_measured"] == sum(r["series"]["count"]) and r["bytes_measured"] == 100 * r["acked_measured"]
    assert r["acked_measured"] == pytest.approx(r["sent_measured"], abs=64 * 40)   # acked vs intended in window
    publish = decode_histogram(r["hdr"]["publish"]).get_total_count()
    assert publish == pytest.approx(r["acked_measured"] / every, rel=0.02)
    assert not r["errors_estimated"] and r["errors"] == {}


def test_sampled_failures_are_estimated_n_times() -> None:
    clock = FakeClock()
    fail = {0, 8, 16, 5}                 # 1 in 4 timed: seqs 0, 4, 8, ... carry the callback; 5 is untimed
    core, _client = _core(clock, rate=None, latency_sample=4, fail=fail, window=Window(0, 0, 2 * MS))
    _run(core, clock, step_ns=100_000)
    r = core.result(stopped=False)
    assert r["errors"] == {"MSG_TIMED_OUT": 3 * 4} and r["errors_estimated"] is True
    assert r["acked_total"] == r["sent_total"] - 12


def test_one_batch_event_per_drain_adds_up_to_the_acks() -> None:
    batches: list[Batch] = []
    clock = FakeClock()
    core, _client = _core(clock, rate=None, latency_sample=8, on_batch=batches.append)
    _run(core, clock, step_ns=100_000)
    r = core.result(stopped=False)
    assert sum(b.count for b in batches) == r["acked_total"]
    assert sum(b.nbytes for b in batches) == 100 * r["acked_total"]
    assert len(batches) < r["acked_total"] / 64          # far fewer events than messages
    timed = [b.max_publish_us for b in batches if b.max_publish_us is not None]
    assert timed and min(timed) >= SERVICE_NS // 1000


def test_failures_reach_the_batch_hook() -> None:
    batches: list[Batch] = []
    clock = FakeClock()
    core, _client = _core(clock, rate=1000.0, fail={3, 4}, window=Window(0, 0, 10 * MS), on_batch=batches.append)
    _run(core, clock, step_ns=0)
    assert sum(b.errors.get("MSG_TIMED_OUT", 0) for b in batches) == 2
    assert sum(b.count for b in batches) == 8


def test_stopped_early_ends_the_window_where_it_stopped() -> None:
    clock = FakeClock()
    core, _client = _core(clock, rate=1000.0)
    while clock.now < 150 * MS:
        core.enter(clock.now)
        if core.schedule.wait_ns(clock.now):
            core.idle(0.001)
            continue
        core.send_due()
        core.after_send()
    core.stop_sending(clock.now)
    core.flush(1.0, 0.001)
    r = core.result(stopped=True)
    assert r["stopped_early"] is True and r["window_end_ns"] == 150 * MS
    assert r["window_s"] == pytest.approx(0.05) and r["acked_measured"] == r["sent_measured"] == 50
    assert np.sum(r["series"]["count"]) >= 50


def test_entering_the_window_resets_the_histograms_once() -> None:
    clock = FakeClock()
    core, _client = _core(clock, rate=None, latency_sample=0)
    for rec in (core.publish, core.service, core.delay):
        rec.record_many([5, 6])
    core.counts.queued = 1_000_000                  # a 100 ms warm-up is too short to measure the rate in
    core.enter(99 * MS)
    assert core.publish.count == 2 and not core.measuring
    core.enter(100 * MS)
    assert core.measuring and core.sampling.every == 32
    assert core.publish.count == core.service.count == core.delay.count == 0
    core.publish.record_many([7])
    core.enter(101 * MS)                            # once only
    assert core.publish.count == 1
