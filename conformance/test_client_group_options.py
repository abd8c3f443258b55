"""Group options through a client's driver, C14–C17 (docs/conformance.md, "Through a client").

G4 and G5 (static membership: ``group_options.instance_id``), O7 (``auto_offset_reset``) and G10 (KIP-848:
``group_protocol: consumer``) of the broker suite, each member one driver process on protocol v2
(:mod:`conformance.group_client`). A client whose driver does not honour the option is N/A (client), from the
capability table :mod:`conformance.group_features`. Collected only with ``--client NAME``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Producer, TopicPartition

from bench.drivers.events import Committed, GroupOptions, OffsetReset, Revoked
from bench.load.payload import encode_header
from bench.scenario.model import Keys
from bench.verify.group import overlaps
from conformance._group import describe_group
from conformance.clients import Clients, produce_all
from conformance.group_client import GroupMember, group_history, pump_members, stop_members
from conformance.group_features import heartbeat, require_feature
from conformance.group_steps import (
    BackgroundProducer,
    acked_ends,
    harness_errors,
    holdings,
    joined,
    left,
    member,
    progress,
    settled,
)
from conformance.plugin import BrokerInfo
from conformance.through_client import selected_clients
from conformance.verdicts import CheckContext, expect, expect_eq, require_effective

pytestmark = [pytest.mark.through_client, pytest.mark.timeout(120)]

SETTLE_S = 20.0
READ_S = 15.0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", selected_clients(metafunc.config), ids=str)


def _settle(members: list[GroupMember], partitions: int, what: str) -> float:
    ok, secs = pump_members(members, lambda: settled(members, partitions), SETTLE_S)
    harness_errors(members)
    expect(ok, f"{what}: the group did not settle within {SETTLE_S:g} s", {m.name: sorted(m.owned()) for m in members},
           f"disjoint non-empty assignments covering all {partitions} partitions")
    return secs


@pytest.mark.check("C14", "through a client: a static member's restart keeps its partitions, no rebalance")
def test_c14_static_rejoin(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                           client: str) -> None:
    require_feature(client, "static")
    topic, group = clients.create_topic(4), names.group("c14")
    hb, window = heartbeat(client)   # the other member is watched this long: it hears of a rebalance within it
    b = member(client, "b", 1, broker, topic, group, GroupOptions(instance_id="b", heartbeat_interval_ms=hb))
    a = member(client, "a", 2, broker, topic, group, GroupOptions(instance_id="a", heartbeat_interval_ms=hb))
    a2 = member(client, "a'", 3, broker, topic, group, GroupOptions(instance_id="a", heartbeat_interval_ms=hb))
    t0 = time.monotonic()
    phases: dict[str, float] = {}
    try:
        joined(b, [])      # b first: the leader is b, not the member that restarts (as G4)
        _settle([b], 4, "b alone")
        joined(a, [b])
        _settle([a, b], 4, "static members a and b")
        phases["joined_s"] = round(time.monotonic() - t0, 3)
        a_parts, b_parts = a.owned(), b.owned()
        left(a, [b])    # a static member does not leave the group when it closes
        phases["a_stopped_s"] = round(time.monotonic() - t0, 3)
        restart = time.monotonic_ns()
        joined(a2, [b])
        rejoin_s = (time.monotonic_ns() - restart) / 1e9

        def b_rebalanced() -> bool:
            return any(e.t_ns >= restart for e in b.events if not isinstance(e, Committed))

        pump_members([a2, b], b_rebalanced, window)
        harness_errors([a2, b])
    finally:
        stop_members([a, b, a2])
    b_after = [(type(e).__name__, sorted(getattr(e, "partitions", ()))) for e in b.events if e.t_ns >= restart]
    check.observe(a_before=sorted(a_parts), a_restarted=sorted(a2.owned()), b=sorted(b.owned()),
                  b_events_after_restart=b_after, rejoin_s=round(rejoin_s, 3), heartbeat_ms=hb, watched_s=window,
                  phases=phases, a2_join_s=(a2.result or {}).get("join_s"))
    expect_eq(b_after, [], "rebalance callbacks on the other member after the static rejoin")
    expect_eq(a2.owned(), a_parts, "the restarted member's assignment (its instance's partitions)")
    expect_eq(b.owned(), b_parts, "the other member's assignment")


def _fenced(m: GroupMember) -> list[str]:
    return sorted(k for k in (m.result or {}).get("errors", {}) if "fenced" in str(k).lower())


@pytest.mark.check("C15", "through a client: a second member with the same group.instance.id fences the first")
def test_c15_static_fencing(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                            client: str) -> None:
    require_feature(client, "static")
    topic, group = clients.create_topic(2), names.group("c15")
    hb, window = heartbeat(client)
    old = member(client, "old", 1, broker, topic, group, GroupOptions(instance_id="same", heartbeat_interval_ms=hb))
    new = member(client, "new", 2, broker, topic, group, GroupOptions(instance_id="same", heartbeat_interval_ms=hb))
    try:
        joined(old, [])
        _settle([old], 2, "the first static member")
        since = len(old.events)
        joined(new, [old])
        ok, secs = pump_members([old, new], lambda: new.owned() == {0, 1}, SETTLE_S)
        # the old member hears of the fence at its next heartbeat; a client that reports it as a loss of
        # its partitions ends this wait early
        pump_members([old, new], lambda: any(isinstance(e, Revoked) and e.lost for e in old.events[since:]), window)
        left(old, [new])
        left(new, [])
    finally:
        stop_members([old, new])
    harness_errors([old, new])
    check.observe(old_errors=(old.result or {}).get("errors"), new_errors=(new.result or {}).get("errors"),
                  old_events_after=[(type(e).__name__, sorted(getattr(e, "partitions", ())), getattr(e, "lost", None))
                                    for e in old.events[since:]],
                  new_assignment=sorted(new.owned()), seconds=round(secs, 3))
    expect(ok, "the newer member's assignment", sorted(new.owned()), "both partitions")
    expect(bool(_fenced(old)), "errors of the older member with the same group.instance.id",
           (old.result or {}).get("errors"), "a fenced error (FENCED_INSTANCE_ID)")
    if _fenced(new):   # client behaviour, not the broker's: seen with kafka-clients 4.3 (the old one rejoins)
        check.note(f"the fenced {client} member rejoined with the same group.instance.id and fenced the newer one "
                   f"in turn (its events after the fence: {[type(e).__name__ for e in old.events[since:]]})")


OFFSET_CASES: list[tuple[str, OffsetReset]] = [(start, reset) for start in ("none", "out-of-range")
                                               for reset in ("earliest", "latest", "none")]


def _produce_marked(producer: Producer, topic: str, first: int, n: int) -> None:
    """``n`` kbench records (header: producer 9, seq ``first``…) to partition 0, from the suite's producer."""
    recs = [{"value": encode_header(time.monotonic_ns(), 9, first + i) + bytes(48), "partition": 0}
            for i in range(n)]
    errors = [d.error for d in produce_all(producer, topic, recs) if d.error is not None]
    require_effective(not errors, "records written for the check", errors[:3], "all acked")


@pytest.mark.check("C16", "through a client: auto.offset.reset earliest, latest and none, without a committed "
                          "offset and past the log end")
def test_c16_auto_offset_reset(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                               client: str) -> None:
    require_feature(client, "offset_reset")
    topic, n, producer = clients.create_topic(1), 5, clients.producer()
    _produce_marked(producer, topic, 0, n)
    members: dict[tuple[str, str], GroupMember] = {}
    for i, (start, reset) in enumerate(OFFSET_CASES, 1):
        group = names.group(f"c16-{start}-{reset}")
        if start == "out-of-range":
            clients.consumer(group).commit(offsets=[TopicPartition(topic, 0, 1000)], asynchronous=False)
        members[(start, reset)] = member(client, f"{start}/{reset}", i, broker, topic, group, GroupOptions(
            auto_offset_reset=reset, commit="batch", auto_commit=False))
    ms = list(members.values())
    reading = [m for (_s, r), m in members.items() if r != "none"]
    late = 0
    try:
        for m in ms:
            m.start()
        ok, _ = pump_members(ms, lambda: all(m.ready for m in ms), 45.0)
        harness_errors(ms)
        expect(ok, "members joined", [m.name for m in ms if not m.ready], "all within 45 s")
        deadline = time.monotonic() + READ_S
        while not all(m.commits() for m in reading) and time.monotonic() < deadline:
            _produce_marked(producer, topic, n + late, 1)   # latest: a record written after the member joined
            late += 1
            pump_members(ms, lambda: all(m.commits() for m in reading), 0.5)
        end = n + late
        pump_members(ms, lambda: all(progress([m]).get(0, 0) >= end for m in reading), READ_S)
        harness_errors(ms)
    finally:
        stop_members(ms)
    observed = {m.name: _first_or_errors(m) for m in ms}
    check.observe(first_offset_or_errors=observed, log_end=end, late_records=late)
    for (_start, reset_), m in members.items():
        offs = [o for _p, o, _a, _b in m.reads()]
        if reset_ == "none":
            expect(not offs and bool((m.result or {}).get("errors")), f"{m.name}: what the member read",
                   observed[m.name], "no record, an error (no valid committed offset, no reset)")
            continue
        expect(bool(offs) and (offs[0] == 0 if reset_ == "earliest" else offs[0] >= n),
               f"{m.name}: first offset read", offs[:1],
               "0" if reset_ == "earliest" else f">= {n} (the log end when it joined)")
        expect_eq(offs, list(range(offs[0], end)), f"{m.name}: offsets read (dense to the log end)")


def _first_or_errors(m: GroupMember) -> object:
    offs = [o for _p, o, _a, _b in m.reads()]
    return offs[0] if offs else (m.result or {}).get("errors")


@pytest.mark.check("C17", "through a client: KIP-848's consumer group protocol")
def test_c17_kip848(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                    security_conf: dict[str, str], client: str) -> None:
    check.require_api(68, 1, "ConsumerGroupHeartbeat, KIP-848 GA")
    require_feature(client, "kip848")
    topic, group = clients.create_topic(4), names.group("c17")
    opts = GroupOptions(group_protocol="consumer", commit="batch", auto_commit=False)
    a, b = (member(client, n, i, broker, topic, group, opts) for i, n in ((1, "a"), (2, "b")))
    producer = BackgroundProducer(client, broker, topic, security_conf, rate=200.0, keys=Keys("round_robin", 20, 1.2))
    try:
        joined(a, [])
        _settle([a], 4, "the first KIP-848 member")
        joined(b, [a])
        secs = _settle([a, b], 4, "the second KIP-848 member")
        desc = describe_group(clients.admin(), group)
        producer.start()
        pump_members([a, b], lambda: False, 1.5)    # the members read while the producer writes
        run = producer.stop()
        ends = acked_ends(run)
        drained, _ = pump_members([a, b], lambda: bool(ends) and all(progress([a, b]).get(p, 0) >= e
                                                                     for p, e in ends.items()), READ_S)
    finally:
        producer.close()
        stop_members([a, b])
    harness_errors([a, b])
    kind = str(getattr(getattr(desc, "type", None), "name", getattr(desc, "type", None)))
    reads = Counter((p, o) for m in (a, b) for p, o, _x, _y in m.reads())
    twice = sorted(k for k, c in reads.items() if c > 1)
    failed = [c.error for m in (a, b) for c in m.commits() if not c.ok]
    report, info = group_history(run, [a, b], broker.bootstrap, topic, security_conf)
    check.observe(group_type=kind, members=len(desc.members), settle_s=round(secs, 3), acked=run.acked(),
                  per_member={m.name: len(m.reads()) for m in (a, b)}, history=report.to_dict().get("counts"),
                  failed_commits=failed[:5], generations={m.name: [getattr(e, "generation", None) for e in m.events
                                                                  if not isinstance(e, Committed)] for m in (a, b)})
    expect_eq(kind, "CONSUMER", "the group's type (DescribeGroups): the members joined with KIP-848's protocol")
    expect_eq(len(desc.members), 2, "members described")
    found = overlaps(holdings([a, b]), limit=5)
    expect(not found, "partitions held by two members at once (by the members' event times)", found, "never")
    expect(drained, "the members committed every acked record", progress([a, b]), f">= {ends}")
    expect(report.ok, "history", report.summary(), "clean (no lost, duplicate, reordered or skipped record)")
    expect(not twice or bool(failed), "records read twice although every commit succeeded", twice[:5], "none")
    expect_eq((info.get("consumer_reads"), len(reads)), (sum(reads.values()), run.acked()),
              "records read by the two members (reads, distinct records; every acked record)")
