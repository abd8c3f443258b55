"""Delivery guarantees and transactions checks T1–T5 (docs/conformance.md).

Transactions need InitProducerId (22), AddPartitionsToTxn (24), AddOffsetsToTxn (25), EndTxn (26)
and TxnOffsetCommit (28); each check is N/A when the broker does not advertise what it uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

from conformance._group import GROUP_CONF
from conformance.clients import (
    COMMON_CONF,
    PRODUCER_CONF,
    Clients,
    Deadline,
    Names,
    ReadResult,
    produce_all,
    read_partition,
)
from conformance.timings import Timings
from conformance.verdicts import CheckContext, expect, expect_eq

TXN_APIS = ((22, 0, "InitProducerId"), (24, 0, "AddPartitionsToTxn"), (26, 0, "EndTxn"))


def _require_txn(check: CheckContext, offsets: bool = False) -> None:
    for key, version, why in TXN_APIS + (((25, 0, "AddOffsetsToTxn"), (28, 0, "TxnOffsetCommit"))
                                         if offsets else ()):
        check.require_api(key, version, why)


class TxnProducers:
    """Transactional producers of one check. Not from the ``clients`` fixture: a fenced or fatally
    failed producer raises on purge, which the fixture's cleanup does not expect."""

    def __init__(self, clients: Clients, names: Names) -> None:
        self.clients, self.names = clients, names
        self.made: list[Producer] = []

    def new(self, tag: str = "", *, tid: str | None = None, init: bool = True, **conf: Any
            ) -> Producer:
        """A transactional producer (``tid`` or a fresh transactional.id), initialised by default."""
        p = Producer({"bootstrap.servers": self.clients.bootstrap, **COMMON_CONF, **PRODUCER_CONF,
                      "transactional.id": tid or self.names.txn_id(tag),
                      "transaction.timeout.ms": 30_000, **conf})
        self.made.append(p)
        if init:
            p.init_transactions(15)
        return p

    def close(self) -> None:
        for p in self.made:
            try:
                p.purge()
                p.flush(2.0)
            except KafkaException as exc:  # expected for fenced / fatally failed producers
                if not exc.args[0].fatal():
                    raise


@pytest.fixture
def txns(clients: Clients, names: Names) -> Iterator[TxnProducers]:
    made = TxnProducers(clients, names)
    yield made
    made.close()


def _send(producer: Producer, topic: str, *values: str, partition: int = 0) -> list[int]:
    """Produce ``values`` and wait for their acks; the acked offsets."""
    reports = produce_all(producer, topic, [{"value": v.encode(), "partition": partition}
                                            for v in values])
    errors = [d.error for d in reports if d.error is not None]
    expect(not errors, f"produce of {values}", errors[:3], "acked")
    return [d.offset for d in reports]


def _read(clients: Clients, topic: str, isolation: str, partition: int = 0,
          timeout: float = 8.0) -> ReadResult:
    c = clients.consumer(None, **{"isolation.level": isolation, "enable.partition.eof": True})
    return read_partition(c, topic, partition, OFFSET_BEGINNING, timeout=timeout)


def _values(res: ReadResult) -> list[str]:
    return [(v or b"").decode() for v in res.values()]


def _latest(clients: Clients, topic: str, level: IsolationLevel, partition: int = 0) -> int:
    tp = TopicPartition(topic, partition)
    fut = clients.admin().list_offsets({tp: OffsetSpec.latest()}, isolation_level=level,
                                       request_timeout=10)[tp]
    return int(fut.result(timeout=10).offset)


@pytest.mark.check("T1", "read_committed isolation")
def test_t1_read_committed(check: CheckContext, clients: Clients, txns: TxnProducers,
                           timings: Timings) -> None:
    _require_txn(check)
    topic = clients.create_topic(1)
    plain = clients.producer()
    txp = txns.new("t1")
    _send(plain, topic, "p0")
    txp.begin_transaction()
    _send(txp, topic, "c0", "c1")
    with timings.time("txn_commit"):
        txp.commit_transaction(15)
    _send(plain, topic, "p1")
    txp.begin_transaction()
    _send(txp, topic, "a0", "a1")
    txp.abort_transaction(15)
    _send(plain, topic, "p2")
    txp.begin_transaction()
    _send(txp, topic, "o0", "o1")  # left open while it is read
    _send(plain, topic, "p3")
    committed = _read(clients, topic, "read_committed")
    uncommitted = _read(clients, topic, "read_uncommitted")
    with timings.time("txn_commit"):
        txp.commit_transaction(15)
    after = _read(clients, topic, "read_committed")
    check.observe(read_committed_open=_values(committed), read_uncommitted=_values(uncommitted),
                  read_committed_after=_values(after),
                  errors=[e.str() for r in (committed, uncommitted, after) for e in r.errors])
    expect_eq(_values(committed), ["p0", "c0", "c1", "p1", "p2"],
              "read_committed while a transaction is open (aborted and open hidden, nothing "
              "past the open transaction)")
    expect_eq(_values(uncommitted), ["p0", "c0", "c1", "p1", "a0", "a1", "p2", "o0", "o1", "p3"],
              "read_uncommitted")
    expect_eq(_values(after), ["p0", "c0", "c1", "p1", "p2", "o0", "o1", "p3"],
              "read_committed after the open transaction committed")


@pytest.mark.check("T2", "last stable offset")
def test_t2_last_stable_offset(check: CheckContext, clients: Clients, txns: TxnProducers) -> None:
    _require_txn(check)
    topic = clients.create_topic(1)
    plain = clients.producer()
    txp = txns.new("t2")
    _send(plain, topic, "p0", "p1", "p2")
    txp.begin_transaction()
    first_open = _send(txp, topic, "o0", "o1")[0]
    _send(plain, topic, "p3")
    open_view = (_latest(clients, topic, IsolationLevel.READ_COMMITTED),
                 _latest(clients, topic, IsolationLevel.READ_UNCOMMITTED))
    txp.commit_transaction(15)
    deadline = Deadline(10)
    while True:
        end_view = (_latest(clients, topic, IsolationLevel.READ_COMMITTED),
                    _latest(clients, topic, IsolationLevel.READ_UNCOMMITTED))
        if end_view[0] == end_view[1] or deadline.expired:
            break
        time.sleep(0.1)
    check.observe(open_committed_uncommitted=open_view, first_open_offset=first_open,
                  after_commit=end_view)
    expect_eq(open_view, (first_open, 6), "latest offsets (read_committed, read_uncommitted) while "
              "the transaction is open")
    expect(end_view[0] == end_view[1] and end_view[1] >= 6, "latest offsets (read_committed, "
           "read_uncommitted) after the commit", end_view, "equal, >= 6")


@pytest.mark.check("T3", "exactly-once consume-transform-produce")
def test_t3_exactly_once(check: CheckContext, clients: Clients, names: Names,
                         txns: TxnProducers, timings: Timings) -> None:
    _require_txn(check, offsets=True)
    parts, n = 2, 20
    src, dst = clients.create_topic(parts, tag="t3-in"), clients.create_topic(parts, tag="t3-out")
    inputs = [f"in-{i}" for i in range(n)]
    _send(clients.producer(), src, *inputs[0::2], partition=0)
    _send(clients.producer(), src, *inputs[1::2], partition=1)
    group = names.group("t3")
    consumer = clients.consumer(group, **{**GROUP_CONF, "isolation.level": "read_committed"})
    consumer.subscribe([src])
    txp = txns.new("t3")
    done, batches, aborted = 0, 0, 0
    deadline = Deadline(25)
    while done < n and not deadline.expired:
        msgs = [m for m in consumer.consume(5, timeout=0.3) if m.error() is None]
        if not msgs:
            continue
        batches += 1
        txp.begin_transaction()
        for m in msgs:
            txp.produce(dst, value=b"out-" + (m.value() or b"")[3:], partition=int(m.partition() or 0))
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        txp.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 10)
        if batches == 2:  # abort one batch: its output and its offsets must vanish
            txp.abort_transaction(15)
            aborted += len(msgs)
            rewind = consumer.committed(consumer.assignment(), timeout=10)
            for tp in rewind:
                consumer.seek(TopicPartition(src, tp.partition,
                                             tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
            continue
        with timings.time("txn_commit"):
            txp.commit_transaction(15)
        done += len(msgs)
    committed = [int(tp.offset) for tp in consumer.committed(
        [TopicPartition(src, p) for p in range(parts)], timeout=10)]
    out = {p: _values(_read(clients, dst, "read_committed", p)) for p in range(parts)}
    want = {p: ["out-" + v[3:] for v in inputs[p::parts]] for p in range(parts)}
    check.observe(batches=batches, aborted_records=aborted, processed=done, committed=committed,
                  output=out)
    expect(aborted > 0, "records in the aborted batch", aborted, "> 0 (test set-up)")
    expect_eq(out, want, "read_committed output per partition (== transformed input, in order)")
    expect_eq(committed, [n // parts] * parts, "committed input offsets")


@pytest.mark.check("T4", "producer fencing")
def test_t4_producer_fencing(check: CheckContext, clients: Clients, names: Names,
                            txns: TxnProducers) -> None:
    _require_txn(check)
    topic = clients.create_topic(1)
    tid = names.txn_id("t4")
    old = txns.new(tid=tid)
    old.begin_transaction()
    _send(old, topic, "zombie")  # written, transaction still open
    new = txns.new(tid=tid, init=False)
    new.init_transactions(20)  # bumps the epoch; the open transaction is aborted
    fenced: KafkaError | None = None
    try:
        old.produce(topic, value=b"zombie-2", partition=0)
        old.commit_transaction(10)
    except KafkaException as exc:
        fenced = exc.args[0]
    new.begin_transaction()
    _send(new, topic, "new")
    new.commit_transaction(15)
    committed = _values(_read(clients, topic, "read_committed"))
    check.observe(old_error=None if fenced is None else
                  f"{fenced.name()} (fatal={fenced.fatal()}): {fenced.str()}",
                  read_committed=committed)
    expect(fenced is not None and (fenced.fatal() or fenced.code() in (
        KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)),
        "old producer's commit after a new init_transactions", fenced,
        "a fatal fencing error (PRODUCER_FENCED / INVALID_PRODUCER_EPOCH)")
    expect_eq(committed, ["new"], "read_committed (the fenced producer's records hidden)")


@pytest.mark.check("T5", "transaction timeout")
def test_t5_transaction_timeout(check: CheckContext, clients: Clients, txns: TxnProducers) -> None:
    _require_txn(check)
    topic = clients.create_topic(1)
    huge: dict[str, Any] = {"transaction.timeout.ms": 2_000_000_000}  # above any broker maximum
    too_long = txns.new("t5-max", init=False, **huge)
    rejected: KafkaError | None = None
    try:
        too_long.init_transactions(15)
    except KafkaException as exc:
        rejected = exc.args[0]
    timeout_ms = 2000  # librdkafka: message and socket timeouts must not exceed it
    short: dict[str, Any] = {"transaction.timeout.ms": timeout_ms, "message.timeout.ms": timeout_ms,
                             "socket.timeout.ms": timeout_ms}
    txp = txns.new("t5", **short)
    txp.begin_transaction()
    _send(txp, topic, "left-open")
    t_open = time.perf_counter_ns()
    _send(clients.producer(), topic, "after")
    deadline, lso, hw = Deadline(timeout_ms / 1000 + 13), -1, -1
    while not deadline.expired:  # the coordinator aborts it: LSO catches up with the HW
        lso = _latest(clients, topic, IsolationLevel.READ_COMMITTED)
        hw = _latest(clients, topic, IsolationLevel.READ_UNCOMMITTED)
        if lso == hw:
            break
        time.sleep(0.25)
    aborted_after = (time.perf_counter_ns() - t_open) / 1e9
    visible = _values(_read(clients, topic, "read_committed"))
    late: KafkaError | None = None
    try:
        txp.commit_transaction(10)
    except KafkaException as exc:
        late = exc.args[0]
    check.observe(init_with_huge_timeout=None if rejected is None else rejected.name(),
                  aborted_after_s=round(aborted_after, 3), lso_hw=(lso, hw),
                  read_committed=visible, late_commit=None if late is None else late.name())
    expect(rejected is not None and rejected.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT,
           "init_transactions with transaction.timeout.ms above the broker maximum",
           None if rejected is None else rejected.name(), "INVALID_TRANSACTION_TIMEOUT")
    expect(lso == hw, "last stable offset after the transaction timed out", (lso, hw),
           f"== high watermark within {deadline.seconds:g} s (transaction aborted)")
    expect_eq(visible, ["after"], "read_committed after the timeout (timed-out records hidden)")
    expect(late is not None, "commit of the timed-out transaction", late, "an error")
