"""Transactional sends (bench/load/txn.py) through the real open-loop core, with a fake clock and a fake
transactional client (pure logic): transaction grouping, the seeded abort choice, the outcome of each
API error, and the commit stall in the publish latency."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException

from bench.load.acks import DeliverySink
from bench.load.chunks import ChunkBuilder
from bench.load.core import OpenLoopProducer, ProducerSettings
from bench.load.payload import KeyStream, decode_header
from bench.load.schedule import Sampling, Window
from bench.load.txn import AbortPlan, TransactionalSends, error_kind
from bench.metrics.hdr import decode_histogram
from bench.scenario.model import MessageSize, Payload
from tests.test_load_core import MS, FakeClock, FakeProducer


def _err(*, retriable: bool = False, abortable: bool = False, fatal: bool = False) -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TIMED_OUT if retriable else KafkaError._STATE, "x",
                                     fatal=fatal, retriable=retriable, txn_requires_abort=abortable))


@dataclass
class FakeTxnProducer(FakeProducer):
    """A FakeProducer with the transactional calls: commit and flush deliver what is queued (as
    librdkafka's commit flushes first), each call logged; ``commit_ns`` of fake time per commit;
    ``commit_errors`` / ``abort_errors`` raised, one per call, before succeeding."""

    commit_ns: int = 0
    calls: list[str] = field(default_factory=list)
    commit_errors: list[KafkaException] = field(default_factory=list)
    abort_errors: list[KafkaException] = field(default_factory=list)

    def produce(self, topic: str, value: bytes, key: bytes | None = None, callback: object = None) -> None:
        self.calls.append(f"send {decode_header(value)[2]}")
        super().produce(topic, value, key, callback)

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def flush(self, timeout: float = 0.0, /) -> int:
        self.calls.append("flush")
        self.poll(0.005)   # past the service time: everything queued is acked
        return len(self.queue)

    def commit_transaction(self, timeout: float = 0.0, /) -> None:
        self.calls.append("commit")
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.clock.now += self.commit_ns
        self.poll(0.005)

    def abort_transaction(self, timeout: float = 0.0, /) -> None:
        self.calls.append("abort")
        if self.abort_errors:
            raise self.abort_errors.pop(0)
        self.queue.clear()


def _core(clock: FakeClock, *, rate: float | None, messages: int, ratio: float, seed: int = 7,
          window: Window | None = None, commit_ns: int = 0) -> tuple[OpenLoopProducer, FakeTxnProducer,
                                                                      TransactionalSends]:
    window = window or Window(0, 0, 100 * MS)
    settings = ProducerSettings(topic="t", index=0, slot=0, producers=1, rate=rate, verify=True, fixed_size=100,
                                chunk_max=64)
    sampling = Sampling.choose(1, rate_limited=rate is not None, verify=True)
    sink = DeliverySink.for_run(rate_limited=rate is not None, verify=True, sampled=False, fixed_size=100,
                                clock=clock, transactional=True)
    client = FakeTxnProducer(clock, sink.client_config()["on_delivery"], commit_ns=commit_ns)
    assert sink.txn_acked is not None
    txn = TransactionalSends(client, messages, AbortPlan(ratio, seed), acked=sink.txn_acked, clock=clock,
                             timeout_s=0.0, on_error=sink.count_error)
    chunks = ChunkBuilder.for_workload(MessageSize("fixed", value=100, min=100, max=100),
                                       Payload("random", 0.0, None), producer=0, seed=1)
    core = OpenLoopProducer(settings, client, sink, sampling, chunks, KeyStream("none", None), window,
                            wait=client.poll, clock=clock, txn=txn)
    return core, client, txn


def _run(core: OpenLoopProducer, clock: FakeClock) -> None:
    """The process loop's shape (bench/load/producer.py), then the end of the last transaction."""
    while clock.now < core.window.t_end_ns and not (core.txn is not None and core.txn.broken):
        core.enter(clock.now)
        wait = core.schedule.wait_ns(clock.now)
        if wait:
            core.idle(min(0.001, wait / 1e9))
            continue
        core.send_due()
        core.after_send()
    core.stop_sending(clock.now)
    core.end_transaction(stopped=False)
    core.flush(1.0, 0.001)


def test_abort_plan_is_seeded_and_keeps_its_ratio() -> None:
    def draws(ratio: float, seed: int, n: int = 4000) -> list[bool]:
        plan = AbortPlan(ratio, seed)
        return [plan.next_aborts() for _ in range(n)]

    assert draws(0.2, 1) == draws(0.2, 1) and draws(0.2, 1) != draws(0.2, 2)
    assert sum(draws(0.2, 1)) / 4000 == pytest.approx(0.2, abs=0.02)
    assert not any(draws(0.0, 3)) and all(draws(1.0, 3))
    with pytest.raises(ValueError, match="not in"):
        AbortPlan(1.5, 0)


def test_sends_are_grouped_into_transactions_of_n_committed_or_aborted_as_planned() -> None:
    clock = FakeClock()
    core, client, txn = _core(clock, rate=1000.0, messages=10, ratio=0.3)   # 100 sends in 100 ms
    _run(core, clock)
    r = core.result(stopped=False)
    assert r["sent_total"] == 100
    plan = AbortPlan(0.3, 7)
    expected = ["aborted" if plan.next_aborts() else "committed" for _ in range(10)]
    assert [rec[1] for rec in txn.records] == expected and "aborted" in expected and "committed" in expected
    assert [(rec[0], rec[2], rec[3]) for rec in txn.records] == [(k, 10 * k, 10 * k + 10) for k in range(10)]
    # each transaction: begin, its 10 sends in order, then commit — or flush (written) then abort
    for k, outcome in enumerate(expected):
        i = client.calls.index("begin", 0 if k == 0 else client.calls.index(f"send {10 * k - 1}"))
        sends = [f"send {s}" for s in range(10 * k, 10 * k + 10)]
        end = ["commit"] if outcome == "committed" else ["flush", "abort"]
        assert client.calls[i:i + 12 + (outcome == "aborted")] == ["begin", *sends, *end]
    assert all((rec[4] is None) == (rec[1] == "aborted") for rec in txn.records)   # commit_ns of commits
    assert r["transactions"] == {"committed": expected.count("committed"), "aborted": expected.count("aborted"),
                                 "unknown": 0, "markers": 10, "acked_aborted": 10 * expected.count("aborted"),
                                 "acked_unknown": 0}
    assert r["verify"] is not None and r["verify"]["txns"] == txn.records
    assert len(r["verify"]["acks"]) == 100   # a transactional send is acked (with its offset) before the commit


def test_max_rate_chunks_stop_at_the_transaction_boundary() -> None:
    clock = FakeClock()
    core, _client, txn = _core(clock, rate=None, messages=7, ratio=0.0, window=Window(0, 0, 30 * MS))
    _run(core, clock)   # each commit takes 5 ms of fake time
    assert [rec[3] - rec[2] for rec in txn.records] == [7] * 6   # chunks of 64 cut at 7
    assert {rec[1] for rec in txn.records} == {"committed"} and txn.records[-1][3] == core.seq == 42


def test_the_last_transaction_ends_short_at_the_end_of_the_window() -> None:
    clock = FakeClock()
    core, client, txn = _core(clock, rate=1000.0, messages=10, ratio=0.0, window=Window(0, 0, 25 * MS))
    _run(core, clock)
    assert [rec[2:4] for rec in txn.records] == [(0, 10), (10, 20), (20, 25)]
    assert client.calls[-1] == "commit"


def test_a_commit_stall_is_in_the_publish_latency_of_what_was_due_meanwhile() -> None:
    clock = FakeClock()
    core, _client, _txn = _core(clock, rate=1000.0, messages=10, ratio=0.0, window=Window(0, 0, 50 * MS),
                                commit_ns=20 * MS)
    _run(core, clock)   # 10 ms of sends, then a 20 ms commit (and 5 ms to flush): the schedule falls behind
    r = core.result(stopped=False)
    publish = decode_histogram(r["hdr"]["publish"])
    assert publish.get_total_count() == r["sent_total"] == 20   # window over after the second commit
    assert publish.get_max_value() >= 20_000   # records intended during a 20 ms commit, sent after it
    assert publish.get_min_value() < 10_000


def test_commit_errors_decide_the_outcome() -> None:
    clock = FakeClock()
    core, client, txn = _core(clock, rate=1000.0, messages=1, ratio=0.0)
    client.commit_errors = [_err(retriable=True)]   # retried (within the deadline) and committed
    txn.timeout_s = 5.0
    txn.room(0)
    assert txn.end(1) == "committed" and client.calls.count("commit") == 2
    client.commit_errors = [_err(abortable=True)]   # failed for certain: aborted
    txn.room(1)
    assert txn.end(2) == "aborted" and client.calls[-1] == "abort"
    client.commit_errors, client.abort_errors = [_err(abortable=True)], [_err(fatal=True)]
    txn.room(2)
    assert txn.end(3) == "unknown" and txn.broken and txn.room(3) == 0   # nothing more is sent
    assert [rec[1] for rec in txn.records] == ["committed", "aborted", "unknown"]
    assert txn.records[2][4] is not None   # commit was called
    assert core.errors() == {"txn_commit:_TIMED_OUT": 1, "txn_commit:_STATE": 2, "txn_abort:_STATE": 1}


def test_a_fatal_commit_error_is_unknown_and_stops_the_producer() -> None:
    clock = FakeClock()
    core, client, txn = _core(clock, rate=1000.0, messages=10, ratio=0.0)
    client.commit_errors = [_err(fatal=True)]
    _run(core, clock)
    assert [rec[1] for rec in txn.records] == ["unknown"] and core.seq == 10 and txn.broken
    # the acks in by the time the commit failed (3 sends were still in flight: the fake commit raised first)
    assert core.result(stopped=True)["transactions"]["acked_unknown"] == 7


def test_stopped_mid_transaction_aborts_without_flushing_or_is_unknown() -> None:
    clock = FakeClock()
    _c, client, txn = _core(clock, rate=1000.0, messages=10, ratio=0.0)
    txn.room(0)
    assert txn.finish(4, stopped=True) == "aborted" and client.calls[-2:] == ["begin", "abort"]
    txn.room(4)
    client.abort_errors = [_err(fatal=True)]
    assert txn.finish(9, stopped=True) == "unknown"
    assert [rec[1:4] for rec in txn.records] == [("aborted", 0, 4), ("unknown", 4, 9)]
    assert txn.finish(9, stopped=True) is None   # nothing open any more


def test_error_kind() -> None:
    assert error_kind(_err(retriable=True)) == "retriable"
    assert error_kind(_err(abortable=True)) == "abortable"
    assert error_kind(_err(fatal=True)) == "fatal"
    assert error_kind(RuntimeError("not kafka")) == "fatal"
