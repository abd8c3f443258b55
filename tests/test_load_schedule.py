"""The open-loop core's pure arithmetic (bench/load/schedule.py): schedule, catch-up, sampling, exact counts."""

from __future__ import annotations

import numpy as np
import pytest

from bench.load.schedule import (
    AUTO_MAX_SAMPLE,
    AUTO_SAMPLE_NO_WARMUP,
    Resolution,
    Sampling,
    Schedule,
    SizeFifo,
    Window,
    WindowPhase,
    auto_latency_sample,
)

MS = 1_000_000


@pytest.mark.parametrize(("index", "producers", "first"), [(0, 1, 0), (0, 4, 0), (1, 4, 250_000), (3, 4, 750_000),
                                                            (2, 3, 666_666)])
def test_producer_i_of_p_is_offset_by_i_over_p_of_an_interval(index: int, producers: int, first: int) -> None:
    s = Schedule(10 * MS, 1000.0, index=index, producers=producers)   # interval 1 ms
    assert s.interval_ns == MS and s.next_ns == 10 * MS + first
    assert s.due(s.next_ns - 1) == 0 and s.wait_ns(s.next_ns - 1) == 1
    assert s.due(s.next_ns) == 1
    intended = s.take(3, 0)
    # message n at origin + offset + n·interval
    assert intended.tolist() == [10 * MS + first + n * MS for n in range(3)]


def test_interval_is_the_integer_nanoseconds_of_the_rate() -> None:
    assert Schedule(0, 3.0).interval_ns == 333_333_333 and Schedule(0, 7e6).interval_ns == 142


def test_after_a_stall_every_overdue_message_is_sent_in_chunks_and_none_skipped() -> None:
    s = Schedule(0, 1e6, chunk_max=512)   # 1 µs interval
    now = 2000 * 1000 + 10                # a 2 ms stall: 2001 messages are due
    sent: list[int] = []
    while (n := s.due(now)) > 0:
        assert n <= 512
        sent += s.take(n, now).tolist()
    assert len(sent) == 2001 and sent == [i * 1000 for i in range(2001)]   # in order, none skipped, none twice
    assert s.due(now) == 0 and s.wait_ns(now) == 2001 * 1000 - now
    assert s.taken == 2001


def test_max_rate_sends_full_chunks_at_the_send_time() -> None:
    s = Schedule(5, None, chunk_max=64)
    assert not s.rate_limited and s.wait_ns(0) == 0 and s.due(0) == 64
    assert s.take(64, 1234).tolist() == [1234] * 64


@pytest.mark.parametrize(("rate", "n"), [(0, 1), (39_000, 1), (40_000, 2), (500_000, 16), (1_000_000, 32),
                                         (1_300_000, 64), (50_000_000, 64)])
def test_auto_latency_sample(rate: float, n: int) -> None:
    assert auto_latency_sample(rate) == n


def test_sampling_choice_by_mode() -> None:
    assert Sampling.choose(0, rate_limited=True, verify=False) == Sampling(1)
    assert Sampling.choose(8, rate_limited=False, verify=True) == Sampling(1)
    assert Sampling.choose(8, rate_limited=False, verify=False) == Sampling(8)
    assert not Sampling.choose(1, rate_limited=False, verify=False).sampled
    auto = Sampling.choose(0, rate_limited=False, verify=False)
    assert auto.auto and auto.sampled and auto.every == AUTO_MAX_SAMPLE


def test_auto_sample_is_fixed_from_the_warm_up_rate() -> None:
    s = Sampling.choose(0, rate_limited=False, verify=False)
    s.phase = 5
    s.fix(queued=1_000_000, warm_ns=2_000 * MS)     # 500k msg/s in the warm-up
    assert s.every == 16 and s.phase == 0
    short = Sampling.choose(0, rate_limited=False, verify=False)
    short.fix(queued=1_000_000, warm_ns=100 * MS)   # no warm-up worth measuring
    assert short.every == AUTO_SAMPLE_NO_WARMUP
    fixed = Sampling(4)
    fixed.fix(queued=10, warm_ns=10 * MS)
    assert fixed.every == 4                          # not auto: unchanged


@pytest.mark.parametrize("every", [1, 3, 4, 64])
@pytest.mark.parametrize("chunk", [1, 5, 64, 100])
def test_timed_messages_are_every_nth_of_the_stream_across_chunks(every: int, chunk: int) -> None:
    s = Sampling(every)
    timed: list[int] = []
    untimed: list[int] = []
    for start in range(0, 1000, chunk):
        values = list(range(start, start + chunk))
        timed += s.split(values)
        s.advance(chunk)
        untimed += values
    assert timed == list(range(0, 1000 + chunk, every))[:len(timed)]   # a systematic 1-in-N sample
    assert sorted(timed + untimed) == list(range(len(timed) + len(untimed)))


def test_resolution_counts_are_exact_without_callbacks() -> None:
    r = Resolution()
    r.queued = 1000
    assert r.pending(in_flight=1000, timed_errors=0) is False
    assert r.resolve(in_flight=200, timed_errors=0, every=8) == (800, 800)
    r.queued += 500
    # 2 timed failures stand for 16 messages among the 600 newly resolved
    assert r.resolve(in_flight=100, timed_errors=2, every=8) == (600, 584)
    assert r.pending(in_flight=100, timed_errors=2) is False
    assert r.pending(in_flight=100, timed_errors=3) is True
    assert r.resolve(in_flight=100, timed_errors=3, every=8) == (0, 0)   # a failure, nothing newly resolved
    assert r.resolve(in_flight=0, timed_errors=3, every=8) == (100, 100)
    assert r.resolved == r.queued == 1500


def test_size_fifo_takes_in_send_order() -> None:
    fifo = SizeFifo()
    fifo.push(np.array([1, 2, 3]))
    fifo.push(np.array([10, 20]))
    assert fifo.take(2) == 3
    assert fifo.take(2) == 13
    assert fifo.take(5) == 20      # only what is there
    assert fifo.take(1) == 0


def test_window_phase_enters_once_and_records_after_the_end() -> None:
    p = WindowPhase(Window(0, 100, 200))
    assert not p.enter(99) and not p.records(99)
    assert p.enter(150) and p.entered_ns == 150
    assert not p.enter(160) and p.records(160)
    late = WindowPhase(Window(0, 100, 200))
    assert late.records(250) and not late.measuring   # flushing after the end still records
