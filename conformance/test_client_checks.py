"""Checks through a client's driver, C1–C7 and C18 (docs/conformance.md, "Through a client"); issue 15.

Collected only with ``--client NAME`` (repeatable, or ``--clients a,b``): every test is parametrized by
``client`` and its verdict is that client's (the report's ``client`` field). Each runs the client's own
producer/consumer workers in verify mode (:mod:`conformance.through_client`) and judges their acks and
reads with the one history checker; what the driver protocol does not express is N/A (client), listed by C7
(group and commit checks through protocol v2's events and options are C8–C17: conformance/test_client_groups.py,
test_client_rebalance.py, test_client_group_options.py;
transactions through its transactional mode C20–C22, conformance/test_client_txn.py; explicit partitions,
null/empty keys and values, headers and CreateTime through its explicit-records mode C23–C26,
conformance/test_client_records.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pytest

from bench.kafka.murmur2 import partition_for
from bench.kafka.protocol import parse_bootstrap
from bench.load.payload import HEADER_SIZE, decode_header
from bench.scenario.model import Keys
from bench.verify.history import HistoryReport
from conformance.clients import Clients, read_partition
from conformance.plugin import BrokerInfo
from conformance.socket_cuts import SocketCutter, pending_at_cuts, probe
from conformance.through_client import (
    LIBRDKAFKA_BASED,
    ClientRun,
    Worker,
    history,
    not_applicable,
    producer_config,
    run_workers,
    selected_clients,
)
from conformance.verdicts import CheckContext, HarnessError, expect, expect_eq, require_effective

pytestmark = [pytest.mark.through_client, pytest.mark.timeout(90)]

#: (broker check, why it is not expressed through a client). G1, O1 and O5 are C8, C9 and C10; G3 C11, G6 and O4
#: C12, G9 C13, G4 C14, G5 C15, O7 C16, G10 C17 (protocol v2 group events and options:
#: conformance/test_client_groups.py, test_client_rebalance.py, test_client_group_options.py); T1, T3 and T4 are
#: C20, C21 and C22 (protocol v2 transactional mode: conformance/test_client_txn.py); K1, P6, P7 and P8 are
#: C23–C26 (protocol v2 explicit-records mode: conformance/test_client_records.py); O6 is C27 (group option
#: commit_metadata: conformance/test_client_commits.py)
NOT_EXPRESSIBLE: list[tuple[str, str]] = [
    ("O2", "driver protocol v2 reports commits, not position()"),
]
CODECS = ("gzip", "snappy", "lz4", "zstd")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", selected_clients(metafunc.config), ids=str)


def _ran(run: ClientRun, check: CheckContext, want_acks: int) -> None:
    check.observe(client_s=round(run.elapsed_s, 1), acked=run.acked(),
                  client_version={i: (r.get("client") or {}).get("version") for i, r in run.producers.items()})
    expect_eq(run.errors, [], f"{run.client} worker errors")
    failed = [f for r in run.producers.values() for f in (r.get("verify") or {}).get("failed", [])]
    expect_eq(failed[:5], [], "failed sends (producer, seq, error)")
    sent = sum(int((r.get("verify") or {}).get("sent") or 0) for r in run.producers.values())
    expect_eq(run.acked(), sent, "acked records (every record sent must be acked)")
    require_effective(sent >= want_acks, "records sent by the client's producers", sent, f">= {want_acks}")


def _judge(report: HistoryReport, info: dict[str, Any], check: CheckContext) -> None:
    check.observe(history=report.to_dict().get("counts"), consumer_reads=info.get("consumer_reads"))
    expect(report.ok, "history", report.summary(), "clean (no lost, duplicate, reordered or skipped record)")


def _dense(run: ClientRun) -> dict[int, list[int]]:
    by_part: dict[int, list[int]] = defaultdict(list)
    for r in run.producers.values():
        for p, o, _prod, _seq, _t in (r.get("verify") or {}).get("acks", []):
            by_part[int(p)].append(int(o))
    return {p: sorted(offs) for p, offs in by_part.items()}


@pytest.mark.check("C1", "through a client: acked records readable at their acked offsets, in send order")
def test_c1_acked_readable(check: CheckContext, clients: Clients, broker: BrokerInfo,
                           security_conf: dict[str, str], client: str) -> None:
    topic = clients.create_topic(3)
    run = run_workers(client, broker.bootstrap, [Worker("producer", topic, config=producer_config(
        client, "ordered"))], security=security_conf)
    _ran(run, check, 250)
    for p, offs in _dense(run).items():
        expect_eq(offs, list(range(len(offs))), f"acked offsets of partition {p} (dense from 0)")
    report, info = history(run, broker.bootstrap, topic, security=security_conf)
    _judge(report, info, check)


@pytest.mark.check("C2", "through a client: the idempotent producer writes no duplicates and keeps order")
def test_c2_idempotent(check: CheckContext, clients: Clients, broker: BrokerInfo,
                       security_conf: dict[str, str], client: str) -> None:
    config = producer_config(client, "idempotent", **{"linger.ms": "2"})
    topic = clients.create_topic(2)
    run = run_workers(client, broker.bootstrap, [Worker("producer", topic, config=config, rate=2000.0)],
                      security=security_conf)
    _ran(run, check, 2500)
    report, info = history(run, broker.bootstrap, topic, security=security_conf)
    _judge(report, info, check)


@pytest.mark.check("C18", "through a client: the idempotent producer keeps order and has no duplicates under "
                          "connection cuts")
def test_c18_idempotent_under_connection_cuts(check: CheckContext, clients: Clients, broker: BrokerInfo,
                                              security_conf: dict[str, str], client: str) -> None:
    """P2 through a client: while the client's idempotent producer (C2's config) writes 2,000 records/s for
    4 s, each of the driver process's TCP connections to the broker is destroyed once it is 0.1–0.2 s old
    (``ss -K``, root: :mod:`conformance.socket_cuts`); the producer must retry through them with no failed
    send, no duplicate and send order kept per partition."""
    config = producer_config(client, "idempotent", **{"linger.ms": "2", **C18_RECONNECT.get(client, {})})
    topic, run, cutter = produce_under_cuts(check, clients, broker, security_conf, client, config)
    _ran(run, check, int(C18_RATE * C18_SECONDS * 0.75))
    report, info = history(run, broker.bootstrap, topic, security=security_conf)
    _judge(report, info, check)
    require_effective(cutter.cuts >= 5, "connections of the driver cut while producing", cutter.cuts, ">= 5")


#: C18's producer: records/s and seconds; the cutter looks every C18_CUT_EVERY_S for as long and cuts each
#: connection it saw C18_MIN_AGE_S before (so a client gets to send on a new connection before it is cut:
#: without it, cut every 0.15-0.2 s, librdkafka sometimes made no progress for the whole window)
C18_RATE, C18_SECONDS, C18_CUT_EVERY_S, C18_MIN_AGE_S = 2000.0, 4.0, 0.1, 0.1
#: P2's reconnect tuning for librdkafka (test_produce.py ``_produce_with_cuts``): with its defaults a cut of
#: the only broker's connections stalls it (re-bootstrap, backoff growing to reconnect.backoff.max.ms), so
#: most rounds found no connection to cut (4 of 9 on Kafka 4.3.1). The others reconnect within a round as is.
_LIBRDKAFKA_RECONNECT = {"reconnect.backoff.ms": "10", "reconnect.backoff.max.ms": "100", "retry.backoff.ms": "20",
                         "retry.backoff.max.ms": "200", "metadata.recovery.strategy": "none"}
C18_RECONNECT: dict[str, dict[str, str]] = {c: _LIBRDKAFKA_RECONNECT for c in LIBRDKAFKA_BASED}


def produce_under_cuts(check: CheckContext, clients: Clients, broker: BrokerInfo, security_conf: dict[str, str],
                       client: str, config: Mapping[str, str]) -> tuple[str, ClientRun, SocketCutter]:
    """One producer of ``client`` with ``config`` (C18's rate and duration) to a new 2-partition topic while a
    :class:`SocketCutter` destroys its driver's connections to the broker; ERROR if ``ss -K`` cannot destroy
    a socket here or the cutter failed. Observes the cuts and, per cut round, the records then pending.
    Returns (topic, run, cutter)."""
    unavailable = probe()
    require_effective(unavailable is None, "ss -K destroys a TCP socket here (to cut the driver's connections)",
                      unavailable, "a destroyed socket (root, a kernel with SOCK_DESTROY)")
    topic = clients.create_topic(2)
    cutter = SocketCutter(_broker_ports(broker), interval_s=C18_CUT_EVERY_S, duration_s=C18_SECONDS,
                          min_age_s=C18_MIN_AGE_S)

    def start_cutting(_t0_ns: int, pids: Mapping[tuple[str, int], int]) -> None:
        if ("producer", 0) not in pids:
            raise HarnessError(f"no process id of the {client} producer: {dict(pids)}")
        cutter.start([pids[("producer", 0)]])

    try:
        run = run_workers(client, broker.bootstrap, [Worker("producer", topic, config=config, rate=C18_RATE,
                                                            duration_s=C18_SECONDS)],
                          security=security_conf, on_started=start_cutting)
    finally:
        cutter.stop()
    acks = [a for r in run.producers.values() for a in (r.get("verify") or {}).get("acks", [])]
    pending = pending_at_cuts(run.t0_ns, acks, cutter.cut_ns, C18_RATE)
    check.observe(cuts=cutter.cuts, cut_rounds=len(cutter.cut_ns), rounds=cutter.rounds,
                  cut_rounds_with_records_pending=sum(1 for n in pending if n),
                  records_pending_at_cuts=pending[:12])
    if cutter.errors:
        raise HarnessError(f"cutting the {client} driver's connections failed: {cutter.errors[0]}")
    check.note(f"{cutter.cuts} connections of the {client} driver cut (ss -K) in {len(cutter.cut_ns)} of "
               f"{cutter.rounds} rounds")
    return topic, run, cutter


def _broker_ports(broker: BrokerInfo) -> frozenset[int]:
    """The ports of the bootstrap list and of every broker in Metadata (a driver's connections to them)."""
    ports = {parse_bootstrap(b)[1] for b in broker.bootstrap.split(",") if b.strip()}
    return frozenset(ports | {int(b["port"]) for b in broker.brokers if b.get("port")})


@pytest.mark.check("C3", "through a client: one value per offset with two producers on one partition")
def test_c3_two_producers(check: CheckContext, clients: Clients, broker: BrokerInfo,
                          security_conf: dict[str, str], client: str) -> None:
    topic = clients.create_topic(1)
    conf = producer_config(client, "ordered")
    run = run_workers(client, broker.bootstrap, [Worker("producer", topic, index=i, config=conf)
                                                 for i in range(2)], security=security_conf)
    _ran(run, check, 500)
    expect_eq(_dense(run).get(0), list(range(run.acked())), "acked offsets of partition 0 (dense, one each)")
    report, info = history(run, broker.bootstrap, topic, security=security_conf)
    _judge(report, info, check)


@pytest.mark.check("C4", "through a client: a group consumer reads every acked record, in offset order")
def test_c4_group_consumer(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                           security_conf: dict[str, str], client: str) -> None:
    topic = clients.create_topic(3)
    run = run_workers(client, broker.bootstrap, [
        Worker("consumer", topic, group=names.group("c4")),
        Worker("producer", topic, config=producer_config(client, "ordered"))], security=security_conf)
    _ran(run, check, 250)
    _consumer_read_all(run)
    report, info = history(run, broker.bootstrap, topic, security=security_conf)
    _judge(report, info, check)


def _consumer_read_all(run: ClientRun) -> None:
    acked = {(int(prod), int(seq)) for r in run.producers.values()
             for _p, _o, prod, seq, _t in (r.get("verify") or {}).get("acks", [])}
    for j, r in run.consumers.items():
        read = {(int(prod), int(seq)) for _p, _o, prod, seq in (r.get("verify") or [])}
        expect_eq(len(acked - read), 0, f"acked records consumer {j} did not read (of {len(acked)})")


@pytest.mark.check("C5", "through a client: compressed batches round-trip")
@pytest.mark.parametrize("codec", CODECS)
def test_c5_compression(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                        security_conf: dict[str, str], client: str, codec: str) -> None:
    topic = clients.create_topic(2)
    conf = producer_config(client, "ordered", **{"compression.type": codec, "linger.ms": "20"})
    run = run_workers(client, broker.bootstrap, [
        Worker("consumer", topic, group=names.group(f"c5-{codec}")),
        Worker("producer", topic, config=conf, rate=400.0, size=600, compressibility=0.6)],
        security=security_conf)
    _ran(run, check, 500)
    _consumer_read_all(run)
    report, info = history(run, broker.bootstrap, topic, security=security_conf)
    _judge(report, info, check)


@pytest.mark.check("C6", "through a client: keyed records, the client's own partitioner")
def test_c6_keyed(check: CheckContext, clients: Clients, broker: BrokerInfo,
                  security_conf: dict[str, str], client: str) -> None:
    parts, count = 7, 50
    topic = clients.create_topic(parts)
    run = run_workers(client, broker.bootstrap, [Worker(
        "producer", topic, config={"acks": "all"}, keys=Keys("round_robin", count, 1.2))],
        security=security_conf)
    _ran(run, check, 250)
    acked = {(int(prod), int(seq)): int(p) for r in run.producers.values()
             for p, _o, prod, seq, _t in (r.get("verify") or {}).get("acks", [])}
    stored = _stored_keys(clients, topic, parts)
    expect_eq(sorted(stored) == sorted(acked), True, "every acked record stored once (and nothing else)")
    moved = [(k, acked[k], stored[k][0]) for k in acked if stored[k][0] != acked[k]]
    expect_eq(moved[:5], [], "(record, acked partition, stored partition) mismatches")
    wrong_key = [(k, stored[k][1]) for k in acked if stored[k][1] != b"key-%d" % ((k[0] + k[1]) % count)]
    expect_eq(wrong_key[:5], [], "(record, stored key) not the key the client sent (round-robin stream)")
    per_key: dict[bytes, set[int]] = defaultdict(set)
    for part, key in stored.values():
        per_key[key].add(part)
    split = sorted(k.decode() for k, ps in per_key.items() if len(ps) > 1)
    murmur = sum(1 for k, ps in per_key.items() if ps == {partition_for(k, parts)})
    check.observe(keys=len(per_key), keys_on_several_partitions=len(split), murmur2_compatible_keys=murmur)
    if split or murmur != len(per_key):
        check.note(f"{client}'s default partitioner: {len(split)} of {len(per_key)} keys on several "
                   f"partitions, {murmur} placed as Java's murmur2 (clients legitimately differ)")
        check.record(partitioner="not Java murmur2" if not split else "not key-stable")


def _stored_keys(clients: Clients, topic: str, parts: int) -> dict[tuple[int, int], tuple[int, bytes]]:
    """(producer, seq) -> (partition, key) of every kbench record stored in ``topic``."""
    out: dict[tuple[int, int], tuple[int, bytes]] = {}
    consumer = clients.consumer(None, **{"enable.partition.eof": True})
    for p in range(parts):
        low, high = clients.watermarks(topic, p)
        if high <= low:
            continue
        res = read_partition(consumer, topic, p, low, until_offset=high, timeout=15.0)
        expect_eq(len(res.messages), high - low, f"records read back from partition {p}")
        for m in res.messages:
            v = m.value() or b""
            if len(v) >= HEADER_SIZE:
                _t, prod, seq = decode_header(v)
                out[(prod, seq)] = (p, bytes(m.key() or b""))
    return out


@pytest.mark.check("C7", "through a client: checks the driver protocol does not express")
@pytest.mark.parametrize(("mapped", "reason"), NOT_EXPRESSIBLE, ids=[c for c, _ in NOT_EXPRESSIBLE])
def test_c7_not_expressible(check: CheckContext, client: str, mapped: str, reason: str) -> None:
    raise not_applicable(client, f"{mapped}: {reason}")
