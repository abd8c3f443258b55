"""Produce and ordering checks P1–P11 (docs/conformance.md)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, Consumer, Message, Producer

from bench.kafka.protocol import parse_bootstrap
from bench.load.consumer import fetch_ready
from bench.verify.history import AnomalyKind, HistoryReport, Poll, Send
from bench.verify.history import check as check_history
from conformance.clients import (
    Clients,
    Deadline,
    Delivery,
    ReadResult,
    flush_all,
    on_delivery,
    produce_all,
    read_partition,
)
from conformance.netfault import ConnectionCutter
from conformance.timings import Timings
from conformance.verdicts import CheckContext, expect, expect_eq, require_effective


def _sends(reports: Sequence[Delivery], producer: str = "p") -> list[Send]:
    return [Send(producer, d.index, d.value or b"", d.partition if d.error is None else None,
                 d.offset if d.error is None else None, "ok" if d.error is None else "unknown")
            for d in reports]


def _final(reads: Mapping[int, ReadResult]) -> dict[int, list[tuple[int, bytes | None]]]:
    return {p: [(int(m.offset() or 0), m.value()) for m in r.messages] for p, r in reads.items()}


def _pos(m: Message) -> tuple[int, int, bytes | None]:
    return int(m.partition() or 0), int(m.offset() or 0), m.value()


def _require_ok(hist: HistoryReport) -> None:
    """FAIL with the checker's summary and its first anomalies unless the history is clean."""
    if not hist.ok:
        first = "; ".join(a.message for a in hist.failures[:3])
        raise AssertionError(f"{hist.summary()}; first anomalies: {first}")


def _errors(reports: Sequence[Delivery]) -> list[str]:
    return sorted({str(d.error.name()) for d in reports if d.error is not None})


# ------------------------------------------------------------------------------------------ P1
@pytest.mark.check("P1", "per-partition order, dense offsets")
def test_p1_order_dense_offsets(check: CheckContext, clients: Clients) -> None:
    parts, n = 3, 300
    topic = clients.create_topic(parts)
    reports = produce_all(clients.producer(acks="all"), topic,
                          [{"value": f"p1-{i}".encode(), "partition": i % parts} for i in range(n)])
    expect_eq(_errors(reports), [], "delivery errors")
    for p in range(parts):
        offsets = [d.offset for d in reports if d.partition == p]
        expect_eq(offsets, list(range(len(offsets))), f"acked offsets of partition {p} in send order")
    reads = clients.read_all(topic, parts, acked=reports)
    for p in range(parts):
        sent = [d.value for d in reports if d.partition == p]
        expect_eq(reads[p].values(), sent, f"values read back from partition {p}")
        expect_eq(reads[p].offsets(), list(range(len(sent))), f"offsets read from partition {p}")
    hist = check_history(_sends(reports), final_reads=_final(reads))
    _require_ok(hist)
    check.note(hist.summary())


# ------------------------------------------------------------------------------------ P2 / P3
def _produce_with_cuts(clients: Clients, parts: int, *, idempotence: bool,
                       seconds: float = 4.0, rate: float = 2000.0, enough_cuts: int = 8,
                       min_seconds: float = 1.5) -> tuple[str, list[Delivery], int]:
    """Paced produce to a fresh topic of ``parts`` partitions for ``seconds`` (or, sooner, once
    ``enough_cuts`` cuts were made and ``min_seconds`` passed), cutting the producer's connections
    mid-stream; the producer idempotent or not, with up to 5 requests in flight either way.
    Returns (topic, deliveries in send order, cuts).

    A cut happens at most every 0.15 s and only after >= 100 more deliveries since the previous
    one, so every cut hits a connection that is carrying produce traffic (in-flight requests are
    lost with it and retried). ``metadata.recovery.strategy=none`` keeps librdkafka from
    re-bootstrapping (a ~1 s stall) each time the only broker connection drops.
    """
    topic = clients.create_topic(parts)
    host, port = parse_bootstrap(clients.bootstrap)
    cutter = ConnectionCutter(host, port)
    cutter.arm()
    producer = clients.producer(**{
        "acks": "all", "linger.ms": 2, "batch.num.messages": 50, "retries": 1_000_000,
        "retry.backoff.ms": 20, "retry.backoff.max.ms": 200, "reconnect.backoff.ms": 10,
        "reconnect.backoff.max.ms": 100, "message.timeout.ms": 30_000,
        "metadata.recovery.strategy": "none", "enable.idempotence": idempotence,
        "max.in.flight.requests.per.connection": 5})
    reports: list[Delivery] = []
    start = time.monotonic()
    next_cut, delivered_at_cut = start + 0.15, 0
    i = 0
    while (now := time.monotonic()) - start < seconds and not (
            cutter.cuts >= enough_cuts and now - start >= min_seconds):
        due = int((now - start) * rate)
        while i < due:
            producer.produce(topic, value=f"v-{i}".encode(), partition=i % parts,
                             on_delivery=on_delivery(reports, i))
            i += 1
        producer.poll(0.005)
        if now >= next_cut and len(reports) >= delivered_at_cut + 100:
            if cutter.cut(min_age=0.05):
                delivered_at_cut = len(reports)
            next_cut = now + 0.15
    flush_all([producer], reports, i, 40.0)
    return topic, sorted(reports, key=lambda d: d.index), cutter.cuts


@pytest.mark.timeout(120)
@pytest.mark.check("P2", "idempotent producer keeps order and has no duplicates under retries")
def test_p2_idempotent_under_connection_cuts(check: CheckContext, clients: Clients) -> None:
    parts = 2
    topic, reports, cuts = _produce_with_cuts(clients, parts, idempotence=True)
    check.note(f"{len(reports)} sends, {cuts} connection cuts (in-process socket shutdown)")
    require_effective(cuts >= 5, "connections cut while producing", cuts, ">= 5")
    expect_eq(_errors(reports), [], "delivery errors of the idempotent producer")
    reads = clients.read_all(topic, parts, timeout=20, acked=reports)
    hist = check_history(_sends(reports), final_reads=_final(reads))
    _require_ok(hist)
    for p in range(parts):
        sent = [d.value for d in reports if d.partition == p]
        expect_eq(reads[p].values(), sent, f"partition {p}: log equals send order")
    check.note(hist.summary())


@pytest.mark.timeout(120)
@pytest.mark.check("P3", "non-idempotent retries (RECORD)")
def test_p3_non_idempotent_retries(check: CheckContext, clients: Clients) -> None:
    parts = 2
    topic, reports, cuts = _produce_with_cuts(clients, parts, idempotence=False)
    require_effective(cuts >= 5, "connections cut while producing", cuts, ">= 5")
    reads = clients.read_all(topic, parts, timeout=20, acked=reports)
    hist = check_history(_sends(reports), final_reads=_final(reads), expect_order=False,
                         allow_duplicates=True)
    # duplicates and reordering are allowed; losing an acked write is not
    expect_eq(hist.lost + hist.unseen, 0, "acked records missing from the log")
    check.record(sends=len(reports), cuts=cuts, delivery_errors=_errors(reports),
                 duplicated=hist.duplicated,
                 non_monotonic_sends=hist.count(AnomalyKind.NON_MONOTONIC_SEND), summary=hist.summary())


# ------------------------------------------------------------------------------------------ P4
@pytest.mark.check("P4", "one value per offset")
def test_p4_one_value_per_offset(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    producers = [clients.producer(**{"linger.ms": 1}), clients.producer(**{"linger.ms": 3})]
    reports: list[list[Delivery]] = [[], []]
    seq = [0, 0]
    for i in range(400):  # two producers interleaved in chunks on one partition
        k = (i // 25) % 2
        producers[k].produce(topic, value=f"p4-{k}-{seq[k]}".encode(), partition=0,
                             on_delivery=on_delivery(reports[k], seq[k]))
        seq[k] += 1
        producers[1 - k].poll(0)
    for k in (0, 1):
        flush_all([producers[k]], reports[k], seq[k], 20.0)
        expect_eq(_errors(reports[k]), [], f"delivery errors of producer {k}")
    sends = _sends(sorted(reports[0], key=lambda d: d.index), "p0") + _sends(
        sorted(reports[1], key=lambda d: d.index), "p1")
    # two independent readers: a group member and an assign()ed reader
    member = clients.consumer()
    member.subscribe([topic])
    polls: list[Poll] = []
    deadline = Deadline(15)
    want = 400
    seen = 0
    while seen < want and not deadline.expired:
        batch = member.consume(200, deadline.poll_timeout(0.3))
        recs = [_pos(m) for m in batch if m.error() is None]
        if recs:
            polls.append(Poll("member", len(polls), recs))
            seen += len(recs)
    reads = clients.read_all(topic, 1, acked=reports[0] + reports[1])
    expect(len(reads[0].messages) >= 400, "records read by the assign()ed reader",
           len(reads[0].messages), ">= 400")
    # one value per offset is judged; send order and duplicates (non-idempotent retries) are not
    hist = check_history(sends, polls, final_reads=_final(reads), allow_gaps=False,
                         expect_order=False, allow_duplicates=True)
    _require_ok(hist)
    expect_eq(hist.inconsistent, 0, "positions holding two values")
    check.note(hist.summary())


# ------------------------------------------------------------------------------------------ P5
@pytest.mark.check("P5", "no loss of acked writes")
def test_p5_no_loss_of_acked_writes(check: CheckContext, clients: Clients, timings: Timings) -> None:
    """Every acked record is read back (live consumer and a final read). The producer is NOT
    idempotent and keeps librdkafka's default in-flight window here, so a retried batch may land
    after later ones and may be written twice: legal on Kafka, so send order and duplicates are not
    judged (order under retries is P2's, with an idempotent producer); loss is."""
    parts, n = 3, 600
    topic = clients.create_topic(parts)
    consumer: Consumer = clients.consumer()
    consumer.subscribe([topic])
    producer: Producer = clients.producer(**{"acks": "all", "enable.idempotence": False,
                                             "max.in.flight.requests.per.connection": 1_000_000})
    polls: list[Poll] = []
    reports: list[Delivery] = []

    i = 0
    deadline = Deadline(30)
    while (i < n or len(reports) < n or sum(len(p.records) for p in polls) < n) and not deadline.expired:
        for _ in range(min(20, n - i)):
            producer.produce(topic, value=f"p5-{i}".encode(), partition=i % parts,
                             headers=[("t", str(time.perf_counter_ns()).encode())],
                             on_delivery=on_delivery(reports, i))
            i += 1
        producer.poll(0)
        batch = fetch_ready(consumer, 100, 0.01)  # e2e timing: no waiting for a batch to fill
        now = time.perf_counter_ns()
        recs: list[tuple[int, int, bytes | None]] = []
        for m in batch:
            if m.error() is None:
                recs.append(_pos(m))
                sent_ns = int(dict(m.headers() or [])["t"] or 0)
                timings.record("e2e", (now - sent_ns) / 1000)
        if recs:
            polls.append(Poll("c1", len(polls), recs))
    expect_eq(len(reports), n, "delivery reports")
    expect_eq(_errors(sorted(reports, key=lambda d: d.index)), [], "delivery errors")
    reads = clients.read_all(topic, parts, acked=reports)
    hist = check_history(_sends(sorted(reports, key=lambda d: d.index)), polls, final_reads=_final(reads),
                         expect_order=False, allow_duplicates=True)
    expect_eq((hist.lost, hist.unseen), (0, 0), "(lost, unseen) acked writes")
    _require_ok(hist)  # the consumer side still counts: inconsistent offsets, poll skips, …
    check.observe(non_monotonic_sends=hist.count(AnomalyKind.NON_MONOTONIC_SEND),
                  duplicated=hist.duplicated)
    check.note(hist.summary())


# ------------------------------------------------------------------------------------------ P6
@pytest.mark.check("P6", "null vs empty key/value")
def test_p6_null_vs_empty(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    cases = [(None, None), (b"", b""), (None, b""), (b"", None), (b"k", b"v")]
    reports = produce_all(clients.producer(), topic, [{"key": k, "value": v} for k, v in cases])
    expect_eq(_errors(reports), [], "delivery errors")
    got = clients.read_all(topic, 1, acked=reports)[0].messages
    expect_eq([(m.key(), m.value()) for m in got], cases, "(key, value) read back")


# ------------------------------------------------------------------------------------------ P7
@pytest.mark.check("P7", "headers")
def test_p7_headers(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    headers = [("dup", b"first"), ("bin", bytes(range(256))), ("dup", b"second"), ("empty", b""),
               ("null", None), ("ünicode", "ü".encode()), ("dup", b"third")]
    reports = produce_all(clients.producer(), topic, [{"value": b"h", "headers": headers},
                                                      {"value": b"no-headers"}])
    expect_eq(_errors(reports), [], "delivery errors")
    got = clients.read_all(topic, 1, acked=reports)[0].messages
    expect_eq(len(got), 2, "records read back")
    expect_eq(got[0].headers(), headers, "headers (order, duplicate keys, binary/empty/null values)")
    expect(not got[1].headers(), "headers of a record sent without headers", got[1].headers(),
           "none")


# ------------------------------------------------------------------------------------------ P8
@pytest.mark.check("P8", "CreateTime")
def test_p8_create_time(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    ts = int(time.time() * 1000) - 600_000 + 123  # 10 min ago, arbitrary ms
    reports = produce_all(clients.producer(), topic, [{"value": b"t", "timestamp": ts}])
    expect_eq(_errors(reports), [], "delivery errors")
    got = clients.read_all(topic, 1, acked=reports)[0].messages
    expect_eq(len(got), 1, "records read back")
    expect_eq(got[0].timestamp(), (TIMESTAMP_CREATE_TIME, ts), "consumed (timestamp type, value)")


# ------------------------------------------------------------------------------------------ P9
@pytest.mark.check("P9", "LogAppendTime")
def test_p9_log_append_time(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1, config={"message.timestamp.type": "LogAppendTime"})
    create_ts = int(time.time() * 1000) - 60_000
    before = int(time.time() * 1000)
    reports = produce_all(clients.producer(), topic, [{"value": b"t", "timestamp": create_ts}])
    after = int(time.time() * 1000)
    expect_eq(_errors(reports), [], "delivery errors")
    slack = 2000  # same host: clocks agree; allow scheduling slack
    dr_ts = reports[0].timestamp[1]
    expect(dr_ts != -1 and before - slack <= dr_ts <= after + slack, "delivery report timestamp",
           reports[0].timestamp, f"broker time in [{before - slack}, {after + slack}], not -1")
    got = clients.read_all(topic, 1, acked=reports)[0].messages
    expect_eq(len(got), 1, "records read back")
    c_type, c_ts = got[0].timestamp()
    expect_eq(c_type, TIMESTAMP_LOG_APPEND_TIME, "consumed timestamp type")
    expect(before - slack <= c_ts <= after + slack, "consumed timestamp", c_ts,
           f"broker append time in [{before - slack}, {after + slack}] (sent CreateTime {create_ts})")
    check.observe(delivery_report=reports[0].timestamp, consumed=got[0].timestamp())


# ----------------------------------------------------------------------------------------- P10
@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
@pytest.mark.check("P10", "compression round-trip")
def test_p10_compression_round_trip(check: CheckContext, clients: Clients, codec: str) -> None:
    topic = clients.create_topic(1)
    records: list[dict[str, Any]] = [{"key": f"k{i}".encode(), "value": (b"compressible-%d-" % i) * (20 + i),
                "headers": [("i", str(i).encode())]} for i in range(40)]
    records.append({"key": None, "value": bytes(range(256)) * 8})
    producer = clients.producer(**{"compression.type": codec, "linger.ms": 50})
    reports = produce_all(producer, topic, records)
    expect_eq(_errors(reports), [], f"delivery errors with {codec}")
    got = clients.read_all(topic, 1, acked=reports)[0].messages
    expect_eq([(m.key(), m.value(), m.headers()) for m in got],
              [(r["key"], r["value"], r.get("headers")) for r in records], f"records after {codec}")


# ----------------------------------------------------------------------------------------- P11
@pytest.mark.parametrize("codec", ["none", "lz4"])
@pytest.mark.check("P11", "fetch from mid-batch")
def test_p11_fetch_from_mid_batch(check: CheckContext, clients: Clients, codec: str) -> None:
    topic = clients.create_topic(1)
    producer = clients.producer(**{"linger.ms": 500, "batch.num.messages": 1000, "compression.type": codec})
    reports = produce_all(producer, topic, [{"value": f"b-{i}".encode()} for i in range(10)])
    expect_eq(_errors(reports), [], "delivery errors")
    base = reports[0].offset
    expect_eq([d.offset for d in reports], list(range(base, base + 10)), "acked offsets (one batch)")
    consumer = clients.consumer()
    got = read_partition(consumer, topic, 0, start=base + 4, until_offset=base + 10)
    expect_eq(got.offsets(), list(range(base + 4, base + 10)), "offsets after seeking mid-batch")
    expect_eq(got.values(), [f"b-{i}".encode() for i in range(4, 10)], "values after seeking mid-batch")
    check.note("10 records produced in one linger window (one produce batch)")
