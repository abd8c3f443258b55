"""Transaction checks through a client's driver, C20–C22 (docs/conformance.md, "Through a client").

T1, T3 and T4 (conformance/test_transactions.py) through the client's own transactional producer and
consumers: driver protocol v2's transactional mode (docs/drivers.md, "Protocol v2: transactions";
:mod:`conformance.txn_client`). Each transaction's end comes as a ``txn`` event; the transactions, the
plain producers' acks and the consumers' reads go to the one history checker. Collected only with
``--client NAME``; clients without the mode are N/A (client) with the reason
(:data:`conformance.txn_client.NO_TXN`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from bench.drivers.txn_events import ConsumeTransform, TxnEnded, TxnOptions
from bench.load.payload import HEADER_SIZE, decode_header, encode_header
from bench.verify.cell import read_topic, value_id
from bench.verify.history import HistoryReport, check
from conformance.clients import Clients, produce_all, read_partition
from conformance.plugin import BrokerInfo
from conformance.through_client import producer_config, selected_clients
from conformance.txn_client import (
    TxnWorker,
    consumer_worker,
    producer_worker,
    pump,
    read_poll,
    require_txn,
    start_ready,
    stop_all,
    txn_history,
)
from conformance.verdicts import CheckContext, HarnessError, expect, expect_eq, require_effective

pytestmark = [pytest.mark.through_client, pytest.mark.timeout(120)]

TXN_APIS = ((22, 0, "InitProducerId"), (24, 0, "AddPartitionsToTxn"), (26, 0, "EndTxn"))
OFFSET_APIS = ((25, 0, "AddOffsetsToTxn"), (28, 0, "TxnOffsetCommit"))
T0_LEAD_NS = 50_000_000
WANT = {"commit": "committed", "abort": "aborted"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", selected_clients(metafunc.config), ids=str)


def _require(check: CheckContext, client: str, security: dict[str, str], offsets: bool = False) -> None:
    require_txn(client, consume=offsets)
    for key, version, why in TXN_APIS + (OFFSET_APIS if offsets else ()):
        check.require_api(key, version, why)
    if security:
        raise HarnessError(f"--client-config-file properties are librdkafka's; not mapped to {client} yet")


def _harness(ok: bool, workers: list[TxnWorker], what: str) -> None:
    """A driver that crashed, refused its spec, broke the protocol or never got there is ERROR."""
    errors = [e for w in workers for e in w.errors]
    if errors or not ok:
        raise HarnessError(("; ".join(errors) or f"timed out waiting for {what}")[:600])


def _start(workers: list[TxnWorker], others: Sequence[TxnWorker] = ()) -> None:
    _harness(start_ready(workers, others), [*others, *workers], "the workers to be ready")
    t0 = time.monotonic_ns() + T0_LEAD_NS
    for w in workers:
        w.set_t0(t0)


def _outcomes(w: TxnWorker) -> list[tuple[int, str, str]]:
    return [(e.txn, e.end, e.outcome) for e in w.ended()]


def _judge(report: HistoryReport, check: CheckContext) -> None:
    check.observe(history=report.to_dict().get("counts"))
    expect(report.ok, "history", report.summary(), "clean (no lost, precommitted, duplicate or reordered record)")


def _settle(rc: TxnWorker, workers: list[TxnWorker], timeout: float) -> bool:
    """Wait until ``rc``'s stat total is the same in two stat lines in a row (it has read what it can)."""
    seen = [rc.stats, rc.total]

    def stable() -> bool:
        if rc.stats < seen[0] + 1:
            return False
        if rc.total == seen[1] and rc.stats >= 2:
            return True
        seen[:] = [rc.stats, rc.total]
        return False

    return pump(workers, stable, timeout)


@pytest.mark.check("C20", "through a client: read_committed isolation")
def test_c20_read_committed(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                            security_conf: dict[str, str], client: str) -> None:
    _require(check, client, security_conf)
    topic, bs = clients.create_topic(1), broker.bootstrap
    # 60 transactional records in 6 transactions (commit, abort, ..., the last held open); plain records until
    # 0.5 s after the last transaction is held open (so some lie past its first offset)
    txp = producer_worker(client, 0, bs, topic, producers=2, duration_s=0.6, txn=TxnOptions(
        names.txn_id("c20"), messages=10, abort_ratio=0.5, hold="commit"))
    plain = producer_worker(client, 1, bs, topic, producers=2, duration_s=30.0,
                            config=producer_config(client, "ordered"))
    rc = consumer_worker(client, 0, bs, topic, names.group("c20-rc"), "read_committed")
    ru = consumer_worker(client, 1, bs, topic, names.group("c20-ru"), "read_uncommitted")
    workers = [rc, ru, txp, plain]
    try:
        _start(workers)
        _harness(pump(workers, lambda: txp.held() is not None, 30.0), workers, "the open transaction")
        pump(workers, lambda: False, 0.5)
        plain.stop()
        _harness(pump(workers, lambda: plain.result is not None, 20.0), workers, "the plain producer")
        ok = _settle(rc, workers, 15.0)
        _harness(ok, workers, f"the read_committed consumer to read what it can while the transaction is open "
                 f"({rc.total} records after {rc.stats} stat lines)")
        open_reads = rc.total
        txp.stop()
        _harness(pump(workers, lambda: txp.result is not None, 20.0), workers, "the held transaction's end")
        committed = {e.txn for e in txp.ended() if e.outcome == "committed"}
        visible = len(plain.acks()) + sum(e.seq_to - e.seq_from for e in txp.ended() if e.txn in committed)
        written = len(plain.acks()) + len(txp.acks())
        ok = pump(workers, lambda: rc.total >= visible and ru.total >= written, 20.0)
        _harness(ok, workers, f"the consumers to read every record (read_committed {rc.total} of {visible}, "
                 f"read_uncommitted {ru.total} of {written})")
    finally:
        stop_all(workers)
    _c20_verdict(check, clients, bs, topic, txp, plain, rc, ru, open_reads)


def _c20_verdict(check: CheckContext, clients: Clients, bs: str, topic: str, txp: TxnWorker, plain: TxnWorker,
                 rc: TxnWorker, ru: TxnWorker, open_reads: int) -> None:
    held = txp.held()
    assert held is not None
    ends = txp.ended()
    by_seq = {seq: o for _p, o, _prod, seq, _t in txp.acks()}
    seq_txn = {s: e for e in ends for s in range(e.seq_from, e.seq_to)}
    first_open = min((by_seq[s] for s in range(held.seq_from, held.seq_to) if s in by_seq), default=-1)
    plain_offs = [o for _p, o, *_ in plain.acks()]
    committed = [by_seq[s] for s, e in seq_txn.items() if e.outcome == "committed" and s in by_seq]
    aborted = [by_seq[s] for s, e in seq_txn.items() if e.outcome != "committed" and s in by_seq]
    rc_offs = [o for _p, o, _prod, _seq in rc.reads()]
    check.observe(client_version=(txp.result or {}).get("client"), transactions=_outcomes(txp)[:12],
                  first_open_offset=first_open, read_committed_open=len(rc_offs[:open_reads]),
                  read_committed_all=len(rc_offs), read_uncommitted=len(ru.reads()))
    expect_eq([(t, e, WANT[e]) for t, e, _o in _outcomes(txp)], _outcomes(txp), "transaction outcomes "
              "(txn, end asked, outcome)")
    require_effective(first_open >= 0 and bool(aborted) and sum(o > first_open for o in plain_offs) > 0,
                      "an open transaction with plain records after its first offset, and an aborted one",
                      (first_open, len(aborted), sum(o > first_open for o in plain_offs)), "all present")
    below = sorted(o for o in plain_offs + [o for o in committed if o < first_open] if o < first_open)
    expect_eq(rc_offs[:open_reads], below, "read_committed offsets while a transaction is open (aborted and "
              "open hidden, nothing past the open transaction)")
    expect_eq([o for _p, o, *_ in ru.reads()], sorted(plain_offs + committed + aborted), "read_uncommitted offsets")
    expect_eq(sorted(rc_offs), sorted(plain_offs + committed), "read_committed offsets after the open "
              "transaction committed (all but the aborted)")
    txns, sends, polls = txn_history([txp], [plain], [
        read_poll(rc, 0, rc.reads()[:open_reads], "read_committed"),
        read_poll(rc, 1, rc.reads()[open_reads:], "read_committed"),
        read_poll(ru, 0, ru.reads(), "read_uncommitted")])
    final = read_topic(bs, topic, timeout_s=20.0)
    if not final.complete:
        raise AssertionError(f"final read of {topic} incomplete: {final.error}")
    _judge(check_history(sends, polls, final, txns), check)


def check_history(sends: Any, polls: Any, final: Any, txns: Any) -> HistoryReport:
    return check(sends, polls, final_reads=final.records, log_start=final.low, txns=txns, allow_gaps=True,
                 max_examples=5)


@pytest.mark.check("C21", "through a client: exactly-once consume-transform-produce")
def test_c21_exactly_once(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                          security_conf: dict[str, str], client: str) -> None:
    _require(check, client, security_conf, offsets=True)
    parts, n = 2, 40
    src, dst = clients.create_topic(parts, tag="c21-in"), clients.create_topic(parts, tag="c21-out")
    inputs = {p: [value_id(7, i) for i in range(p, n, parts)] for p in range(parts)}
    reports = produce_all(clients.producer(), src, [
        {"value": encode_header(0, 7, i) + b"c21-input-record", "partition": i % parts} for i in range(n)])
    expect_eq([d.error for d in reports if d.error is not None][:3], [], "input produce errors")
    group = names.group("c21")
    ctp = producer_worker(client, 0, broker.bootstrap, dst, rate=None, duration_s=60.0, txn=TxnOptions(
        names.txn_id("c21"), messages=5, plan=("commit", "abort"),
        consume=ConsumeTransform(src, group, n)))
    try:
        _start([ctp])
        _harness(pump([ctp], lambda: ctp.result is not None, 60.0), [ctp], "the consume-transform-produce run")
    finally:
        stop_all([ctp])
    ends = ctp.ended()
    out = {p: _transformed(clients, dst, p) for p in range(parts)}
    committed = [int(tp.offset) for tp in clients.consumer(group).committed(
        [TopicPartition(src, p) for p in range(parts)], timeout=10)]
    aborted = [e for e in ends if e.outcome == "aborted" and e.seq_to > e.seq_from]
    check.observe(client_version=(ctp.result or {}).get("client"), transactions=_outcomes(ctp)[:12],
                  committed=committed, output={p: len(v) for p, v in out.items()})
    require_effective(bool(aborted), "transactions aborted with records (the plan's second)", len(aborted), ">= 1")
    expect_eq([(t, e, WANT[e]) for t, e, _o in _outcomes(ctp)], _outcomes(ctp),
              "transaction outcomes (txn, end asked, outcome)")
    expect_eq(out, inputs, "read_committed output per partition (== transformed input, in order, once)")
    expect_eq(committed, [n // parts] * parts, "committed input offsets")
    expect_eq(_tiles(ends, parts), {p: [0, n // parts] for p in range(parts)},
              "committed transactions' input ranges (contiguous, no overlap, from 0)")
    final = read_topic(broker.bootstrap, dst, timeout_s=20.0)
    if not final.complete:
        raise AssertionError(f"final read of {dst} incomplete: {final.error}")
    txns, sends, polls = txn_history([ctp], [], [])
    _judge(check_history(sends, polls, final, txns), check)


def _transformed(clients: Clients, topic: str, partition: int) -> list[str]:
    """The input record ids (the second header) of the read_committed output of one partition."""
    consumer = clients.consumer(None, **{"isolation.level": "read_committed", "enable.partition.eof": True})
    res = read_partition(consumer, topic, partition, OFFSET_BEGINNING, timeout=10.0)
    ids = []
    for v in res.values():
        if v is not None and len(v) >= 2 * HEADER_SIZE:
            _t, prod, seq = decode_header(v[HEADER_SIZE:])
            ids.append(value_id(prod, seq))
        else:
            ids.append(f"raw:{(v or b'').hex()[:32]}")
    return ids


def _tiles(ends: list[TxnEnded], parts: int) -> dict[int, list[int]]:
    """Per input partition, [first, end) if the committed transactions' ranges tile it, else the ranges."""
    ranges: dict[int, list[tuple[int, int]]] = {p: [] for p in range(parts)}
    for e in ends:
        if e.outcome == "committed":
            for p, r in e.input.items():
                ranges.setdefault(p, []).append(r)
    out: dict[int, list[int]] = {}
    for p, rs in ranges.items():
        rs.sort()
        contiguous = all(a[1] == b[0] for a, b in pairwise(rs))
        out[p] = [rs[0][0], rs[-1][1]] if rs and contiguous else [x for r in rs for x in r]
    return out


@pytest.mark.check("C22", "through a client: producer fencing")
def test_c22_fencing(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                     security_conf: dict[str, str], client: str) -> None:
    _require(check, client, security_conf)
    topic, bs, tid = clients.create_topic(1), broker.bootstrap, names.txn_id("c22")
    # one record each (producer 1's schedule is offset by half an interval)
    old = producer_worker(client, 0, bs, topic, rate=10.0, duration_s=0.1, producers=2,
                          txn=TxnOptions(tid, hold="commit"))
    new = producer_worker(client, 1, bs, topic, rate=10.0, duration_s=0.1, producers=2, txn=TxnOptions(tid))
    rc = consumer_worker(client, 0, bs, topic, names.group("c22"), "read_committed")
    workers = [rc, old, new]
    try:
        _start([rc, old])
        _harness(pump(workers, lambda: old.held() is not None, 30.0), workers, "the old producer's open transaction")
        _start([new], [rc, old])    # its init bumps the epoch: the old producer is fenced
        _harness(pump(workers, lambda: new.result is not None, 30.0), workers, "the new producer's transaction")
        old.stop()                  # now the old producer commits its open transaction
        _harness(pump(workers, lambda: old.result is not None, 20.0), workers, "the old producer's commit")
        ok = pump(workers, lambda: rc.total >= 1, 20.0) and _settle(rc, workers, 10.0)
        _harness(ok, workers, "the read_committed consumer")
    finally:
        stop_all(workers)
    zombie = old.ended()
    read = [value_id(prod, seq) for _p, _o, prod, seq in rc.reads()]
    check.observe(client_version=(old.result or {}).get("client"), old=[(e.outcome, e.error) for e in zombie],
                  new=_outcomes(new), read_committed=read)
    expect_eq(_outcomes(new), [(0, "commit", "committed")], "the new producer's transaction")
    error = zombie[0].error if zombie else None
    expect(bool(zombie) and zombie[0].outcome != "committed" and error is not None
           and any(k in error.lower() for k in ("fenced", "epoch")), "the old producer's commit after a new "
           "init on its transactional.id", [(e.outcome, e.error) for e in zombie],
           "not committed, a fencing error (PRODUCER_FENCED / INVALID_PRODUCER_EPOCH)")
    expect_eq(read, [value_id(1, 0)], "read_committed through the client (only the new producer's record)")
    final = read_topic(bs, topic, timeout_s=20.0)
    if not final.complete:
        raise AssertionError(f"final read of {topic} incomplete: {final.error}")
    expect_eq([v for _o, v in final.records.get(0, [])], [value_id(1, 0)], "read_committed final read")
    txns, sends, polls = txn_history([old, new], [], [read_poll(rc, 0, rc.reads(), "read_committed")])
    _judge(check_history(sends, polls, final, txns), check)
