"""Consumer groups and rebalance checks G1–G11 (docs/conformance.md).

Members are in-process consumers polled round-robin by one thread (:mod:`conformance._group`), except
where a member must really die (G6, G8: a child process, :mod:`conformance._member`). Every wait has a
deadline; a join that never settles ends in FAIL with the assignments observed at the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from bench.verify.history import Poll, Send
from bench.verify.history import check as history_check
from conformance._group import GROUP_CONF, Member, assignment_problem, describe_group, pump, settled
from conformance._member import ChildMember, GroupMetadata, group_metadata
from conformance.clients import COMMON_CONF, Clients, Names, produce_all
from conformance.plugin import BrokerInfo
from conformance.timings import Timings
from conformance.verdicts import CheckContext, HarnessError, expect, expect_eq, require_effective

SESSION_MS = 6000
SETTLE_S = 15.0  # deadline for a group to settle after a join/leave


def _member(clients: Clients, name: str, group: str, topic: str, **conf: Any) -> Member:
    return Member.join(name, clients.consumer(group, **{**GROUP_CONF, **conf}), topic)


def _view(members: list[Member]) -> dict[str, list[int]]:
    return {m.name: sorted(m.assigned()) for m in members if not m.closed}


def _topic_and_group(clients: Clients, names: Names, partitions: int, tag: str) -> tuple[str, str]:
    """A new topic of ``partitions`` and a new group name tagged ``tag`` (the check's id): one check's own pair."""
    return clients.create_topic(partitions), names.group(tag)


def _name(value: Any) -> str:
    """An enum's name (``ConsumerGroupState.STABLE`` -> ``STABLE``), else its text."""
    return str(getattr(value, "name", value))


def _expect_settled(members: list[Member], partitions: int, what: str, timeout: float = SETTLE_S,
                    timings: Timings | None = None) -> float:
    res = pump(members, lambda: settled(members, partitions), timeout, groups=[members])
    expect(not res.overlaps, f"{what}: partitions held by two members at once", res.overlaps,
           "never")
    live = {m.name: m.assigned() for m in members if not m.closed}
    errors = sorted({f"{m.name}: {e.str()}" for m in members for e in m.errors})
    expect(res.ok, f"{what}: group did not settle within {timeout:g} s "
           f"({assignment_problem(live, partitions)})",
           {"assignments": _view(members), "client errors": errors[:4]},
           f"disjoint non-empty assignments covering {partitions} partitions")
    if timings is not None:
        timings.record("join", res.seconds * 1e6)
    return res.seconds


@pytest.mark.check("G1", "each partition has exactly one owner")
def test_g1_single_owner(check: CheckContext, clients: Clients, names: Names,
                         timings: Timings) -> None:
    partitions, n_members = 6, 3
    topic = clients.create_topic(partitions)
    strategies = ("range", "roundrobin", "cooperative-sticky")
    groups: dict[str, list[Member]] = {s: [] for s in strategies}
    gids = {s: names.group(f"g1-{s}") for s in strategies}
    overlaps: list[str] = []
    for k in range(1, n_members + 1):
        for s in strategies:
            groups[s].append(_member(clients, f"{s}/m{k}", gids[s], topic,
                                     **{"partition.assignment.strategy": s}))
        res = pump([m for g in groups.values() for m in g],
                   lambda: all(settled(g, partitions) for g in groups.values()), SETTLE_S,
                   groups=list(groups.values()))
        overlaps += res.overlaps
        views = {s: _view(g) for s, g in groups.items()}
        errors = sorted({f"{m.name}: {e.str()}" for g in groups.values() for m in g
                         for e in m.errors})
        expect(res.ok, f"after member {k} joined, groups did not settle within {SETTLE_S:g} s",
               {"assignments": views, "client errors": errors[:4]},
               f"per strategy: {k} disjoint non-empty assignments covering all {partitions}")
        timings.record("join", res.seconds * 1e6)
        check.observe(**{f"after_join_{k}": views, f"settle_s_{k}": round(res.seconds, 3)})
    expect(not overlaps, "partitions held by two members at once", overlaps, "never")


@pytest.mark.check("G2", "strategy negotiation")
def test_g2_strategy_negotiation(check: CheckContext, clients: Clients, names: Names) -> None:
    topic, group = _topic_and_group(clients, names, 4, "g2")
    # the first member (the leader) prefers roundrobin; the only strategy both support is range
    a = _member(clients, "a", group, topic, **{"partition.assignment.strategy": "roundrobin,range"})
    pump([a], lambda: settled([a], 4), SETTLE_S)
    b = _member(clients, "b", group, topic, **{"partition.assignment.strategy": "range"})
    members = [a, b]
    _expect_settled(members, 4, "a [roundrobin, range] + b [range]")
    errors = [e.str() for m in members for e in m.errors]
    expect(not errors, "consumer errors", errors, "none")
    desc = describe_group(clients.admin(), group)
    check.observe(assignments=_view(members), partition_assignor=desc.partition_assignor)
    expect_eq(desc.partition_assignor, "range", "protocol chosen by the coordinator")
    for m in members:  # range gives each member a contiguous block; roundrobin would interleave
        parts = sorted(m.assigned())
        expect_eq(parts, list(range(parts[0], parts[0] + len(parts))),
                  f"{m.name}'s assignment (range gives a contiguous block)")


@pytest.mark.check("G3", "cooperative rebalance is incremental")
def test_g3_cooperative_incremental(check: CheckContext, clients: Clients, names: Names,
                                    timings: Timings) -> None:
    topic, group = _topic_and_group(clients, names, 4, "g3")
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    a = _member(clients, "a", group, topic, **conf)
    _expect_settled([a], 4, "a alone", timings=timings)
    before = a.assigned()
    t_join = time.perf_counter_ns()
    b = _member(clients, "b", group, topic, **conf)
    _expect_settled([a, b], 4, "after b joined", timings=timings)
    moved = b.assigned()
    revoked = [sorted(p) for k, p, t in a.events if k == "revoke" and t >= t_join]
    lost = [sorted(p) for k, p, t in a.events if k == "lost"]
    revoked_all = set().union(*(set(r) for r in revoked)) if revoked else set()
    check.observe(a_before=sorted(before), a_after=sorted(a.assigned()), b_after=sorted(moved),
                  a_revocations=revoked, a_lost=lost)
    expect_eq(lost, [], "a's partitions reported lost")
    expect_eq(revoked_all, set(moved), "partitions revoked from a (only those moved to b)")
    expect_eq(set(a.assigned()), set(before) - set(moved), "a's partitions after the rebalance")


@pytest.mark.check("G4", "static membership rejoin")
def test_g4_static_rejoin(check: CheckContext, clients: Clients, names: Names) -> None:
    topic, group = _topic_and_group(clients, names, 4, "g4")
    b = _member(clients, "b", group, topic, **{"group.instance.id": "b"})
    pump([b], lambda: settled([b], 4), SETTLE_S)  # b joins first: it is the leader, a is not
    a = _member(clients, "a", group, topic, **{"group.instance.id": "a"})
    _expect_settled([a, b], 4, "static members a and b")
    a_parts, b_parts = a.assigned(), b.assigned()
    t_restart = time.perf_counter_ns()
    a.close()  # a static member does not leave the group on close
    a2 = _member(clients, "a'", group, topic, **{"group.instance.id": "a"})
    res = pump([a2, b], lambda: bool(a2.assigned()), SETTLE_S)
    expect(res.ok, f"restarted static member got no assignment within {SETTLE_S:g} s",
           _view([a2, b]), f"a' holds {sorted(a_parts)}")
    pump([a2, b], None, 2.5)  # long enough for b to notice a rebalance (heartbeat 0.5 s)
    b_events = [(k, sorted(p)) for k, p, t in b.events if t >= t_restart]
    check.observe(a_before=sorted(a_parts), a_restarted=sorted(a2.assigned()),
                  b=sorted(b.assigned()), b_events_after_restart=b_events,
                  rejoin_s=round(res.seconds, 3))
    expect_eq(b_events, [], "rebalance callbacks on the other member after the static rejoin")
    expect_eq(sorted(a2.assigned()), sorted(a_parts), "restarted member's assignment")
    expect_eq(sorted(b.assigned()), sorted(b_parts), "other member's assignment")


@pytest.mark.check("G5", "static member fencing")
def test_g5_static_fencing(check: CheckContext, clients: Clients, names: Names) -> None:
    topic, group = _topic_and_group(clients, names, 2, "g5")
    old = _member(clients, "old", group, topic, **{"group.instance.id": "same"})
    _expect_settled([old], 2, "first static member")
    new = _member(clients, "new", group, topic, **{"group.instance.id": "same"})

    def fenced(m: Member) -> bool:
        # librdkafka raises it as a fatal error (_FATAL) carrying the broker error's text
        return any(e.code() == KafkaError.FENCED_INSTANCE_ID
                   or (e.code() == KafkaError._FATAL and "fenced" in e.str().lower())
                   for e in m.errors)

    res = pump([old, new], lambda: fenced(old) and settled([new], 2), SETTLE_S)
    check.observe(old_errors=[f"{e.name()} (fatal={e.fatal()}): {e.str()}" for e in old.errors],
                  new_errors=[f"{e.name()}: {e.str()}" for e in new.errors],
                  new_assignment=sorted(new.assigned()), old_assignment=sorted(old.assigned()),
                  seconds=round(res.seconds, 3))
    expect(fenced(old), "older member with the same group.instance.id",
           [e.str() for e in old.errors], "fenced (FENCED_INSTANCE_ID)")
    expect(not fenced(new), "newer member", [e.str() for e in new.errors], "not fenced")
    expect_eq(sorted(new.assigned()), [0, 1], "newer member's assignment")
    old.closed = True  # a fatally fenced consumer: closing it is left to the fixture


@pytest.mark.check("G6", "session timeout")
def test_g6_session_timeout(check: CheckContext, clients: Clients, names: Names,
                            broker: BrokerInfo, timings: Timings) -> None:
    topic, group = _topic_and_group(clients, names, 2, "g6")
    child = ChildMember(broker.bootstrap, group, topic, conf={"session.timeout.ms": SESSION_MS})
    try:
        child.wait_event(lambda e: e["ev"] == "assign" and e["partitions"], SETTLE_S,
                         "child member assignment")
        b = _member(clients, "b", group, topic)
        res = pump([b], lambda: len(b.assigned()) == 1 and len(child.assignment()) == 1, SETTLE_S)
        expect(res.ok, "child + parent member did not share the partitions",
               {"child": sorted(child.assignment()), "b": sorted(b.assigned())}, "one each")
        child.kill()
        t_kill = time.perf_counter_ns()
        limit = 2 * SESSION_MS / 1000
        res = pump([b], lambda: len(b.assigned()) == 2, limit + 5)
        took = (time.perf_counter_ns() - t_kill) / 1e9
        timings.record("join", took * 1e6)
        check.observe(reassigned_after_s=round(took, 3), session_timeout_ms=SESSION_MS)
        expect(res.ok and took <= limit, "killed member's partition reassigned",
               f"{sorted(b.assigned())} after {took:.1f} s",
               f"both partitions on the survivor within {limit:g} s (2 x session.timeout.ms)")
    finally:
        child.close()


@pytest.mark.check("G7", "max.poll.interval.ms")
def test_g7_max_poll_interval(check: CheckContext, clients: Clients, names: Names) -> None:
    topic, group = _topic_and_group(clients, names, 2, "g7")
    interval_ms = SESSION_MS  # librdkafka requires max.poll.interval.ms >= session.timeout.ms
    a = _member(clients, "a", group, topic, **{"max.poll.interval.ms": interval_ms})
    b = _member(clients, "b", group, topic)
    _expect_settled([a, b], 2, "a + b")
    t_stop = time.perf_counter_ns()  # a stops polling from here on
    limit = interval_ms / 1000 + SESSION_MS / 1000
    res = pump([b], lambda: len(b.assigned()) == 2, limit + 3)
    took = (time.perf_counter_ns() - t_stop) / 1e9
    a.poll(0.5)
    check.observe(taken_over_after_s=round(took, 3), max_poll_interval_ms=interval_ms,
                  a_errors=[f"{e.name()}: {e.str()}" for e in a.errors])
    expect(res.ok and took <= limit, "partition of the member that stopped polling",
           f"b holds {sorted(b.assigned())} after {took:.1f} s",
           f"taken over by b within {limit:g} s (max.poll.interval.ms + session.timeout.ms)")


def _child_event_while_pumping(child: ChildMember, members: list[Member],
                               predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str,
                               since: int = 0) -> dict[str, Any]:
    """:meth:`ChildMember.wait_event`, polling the in-process ``members`` meanwhile (as their
    application would): a rebalance the child's request waits for needs them to rejoin."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [e for e in child.snapshot()[since:] if predicate(e)][:1]
        return bool(found)

    pump(members, seen, timeout)
    if found:
        return found[0]
    last = [{k: v for k, v in e.items() if k != "t_ns"} for e in child.snapshot()[-4:]]
    raise TimeoutError(f"{child.name}: {what} not seen within {timeout:g} s (other members polled "
                       f"meanwhile; last events {last}; stderr: {child.stderr_tail(4)})")


#: a commit stamped with a generation the group has left behind is refused with one of these (classic
#: protocol: ILLEGAL_GENERATION, or UNKNOWN_MEMBER_ID once the member was removed; the others are what a
#: coordinator mid-rebalance or one fencing static members / KIP-848 epochs answers)
STALE_COMMIT_ERRORS = frozenset({"ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS",
                                 "FENCED_INSTANCE_ID", "FENCED_MEMBER_EPOCH", "STALE_MEMBER_EPOCH"})


def _child_identity(child: ChildMember, group: str) -> GroupMetadata:
    """The child's group id, generation and member id, as librdkafka holds them now (ERROR if unreadable)."""
    n = len(child.snapshot())
    child.send({"cmd": "member"})
    ev = child.wait_event(lambda e: e["ev"] == "member", 10, "child member identity", since=n)
    try:
        meta = group_metadata(bytes.fromhex(ev["metadata"]))
    except ValueError as exc:
        raise HarnessError(f"cannot read the child's generation: {exc}") from exc
    require_effective(meta.group_id == group and meta.member_id == ev["member_id"] != ""
                      and meta.generation_id >= 0, "the child's generation and member id read from librdkafka",
                      {"parsed": meta, "memberid()": ev["member_id"]},
                      f"group {group}, a generation >= 0, the member id memberid() returns")
    return meta


def _commit_as(broker: BrokerInfo, security: dict[str, str], me: GroupMetadata, topic: str,
               offset: int) -> tuple[str, int]:
    """Commit ``offset`` for partition 0 over the raw protocol as ``me`` (its generation and member id):
    the coordinator's error name for it (``NO_ERROR``: committed) and the OffsetCommit version used."""
    from bench.kafka.commit_codec import OFFSET_COMMIT_KEY, OFFSET_COMMIT_VERSIONS, pick_version
    from bench.kafka.member_commit import commit_as_member
    from bench.kafka.protocol import ProtocolError

    assert broker.api is not None
    try:
        pick_version(broker.api, OFFSET_COMMIT_KEY, OFFSET_COMMIT_VERSIONS)
    except ProtocolError as exc:
        raise HarnessError(f"kbench's OffsetCommit codec cannot talk to this broker: {exc}") from exc
    res = commit_as_member(broker.bootstrap, me.group_id, me.generation_id, me.member_id, {topic: {0: offset}},
                           api=broker.api, security=security)
    code = res.errors.get(topic, {}).get(0)
    name = "no answer for partition 0" if code is None else KafkaError(code).name() if code else "NO_ERROR"
    return name, res.version


@pytest.mark.check("G8", "commit with a stale generation")
def test_g8_stale_generation_commit(check: CheckContext, clients: Clients, names: Names,
                                    broker: BrokerInfo, security_conf: dict[str, str]) -> None:
    topic, group = _topic_and_group(clients, names, 2, "g8")
    produce_all(clients.producer(), topic, [{"value": b"%d" % i, "partition": i % 2}
                                            for i in range(12)])
    child = ChildMember(broker.bootstrap, group, topic, conf={"session.timeout.ms": SESSION_MS})
    try:
        child.wait_event(lambda e: e["ev"] == "assign" and e["partitions"] == [0, 1], SETTLE_S,
                         "child member assignment of both partitions")
        child.send({"cmd": "commit", "offsets": {"0": 2}})
        ev = child.wait_event(lambda e: e["ev"] == "commit", 10, "first commit")
        expect(ev["ok"], "commit by the current member", ev, "accepted")
        # The stale commit is sent by kbench over the raw protocol, stamped with the generation and member
        # id the child holds now: a client library stamps the generation it holds when the request goes
        # out, so a paused librdkafka member may rejoin before its "stale" commit leaves, and that commit
        # is then rightly accepted. The same request, sent now, must be accepted (this also proves the
        # identity read from librdkafka is the broker's); after the group moved on, refused.
        me = _child_identity(child, group)
        current, version = _commit_as(broker, security_conf, me, topic, 3)
        check.observe(generation=me.generation_id, commit_as_current_member=current, offset_commit_version=version)
        expect(current == "NO_ERROR", "raw OffsetCommit with the current member's generation and member id",
               {"generation": me.generation_id, "error": current}, "accepted")
        child.pause()  # SIGSTOP: no heartbeats, no rejoin; the group moves on without it
        b = _member(clients, "b", group, topic)
        res = pump([b], lambda: len(b.assigned()) == 2, 2 * SESSION_MS / 1000 + 5)
        expect(res.ok, "stopped member's partitions taken over", sorted(b.assigned()),
               "both on the other member")
        stale, _ = _commit_as(broker, security_conf, me, topic, 4)   # the same member and generation: now stale
        committed = b.consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        check.observe(stale_commit=stale, committed_after=committed)
        expect(stale in STALE_COMMIT_ERRORS, "commit stamped with a generation the group has left",
               stale, "rejected: " + " / ".join(sorted(STALE_COMMIT_ERRORS)))
        expect_eq(committed, 3, "committed offset of p0 after the rejected commit")
        # recovery: the child resumes, learns it was removed, rejoins, gets a partition and commits again
        child.resume()
        res = pump([b], lambda: len(b.assigned()) == 1 and len(child.assignment()) == 1, SETTLE_S)
        check.observe(rejoin_s=round(res.seconds, 3))
        expect(res.ok, "stale member rejoined", {"child": sorted(child.assignment()),
                                                 "b": sorted(b.assigned())}, "one partition each")
        p = next(iter(child.assignment()))
        n = len(child.snapshot())
        child.send({"cmd": "commit", "offsets": {str(p): 5}})
        ok = _child_event_while_pumping(child, [b], lambda e: e["ev"] == "commit", 10,
                                        "commit after rejoin", since=n)
        expect(ok["ok"], "commit after the member rejoined", ok, "accepted")
    finally:
        child.close()


@pytest.mark.check("G9", "churn keeps order and no double processing")
def test_g9_churn(check: CheckContext, clients: Clients, names: Names) -> None:
    partitions, batch = 4, 30
    topic, group = _topic_and_group(clients, names, partitions, "g9")
    producer = clients.producer()
    sends: list[Send] = []
    polls: list[Poll] = []
    commit_errors: list[str] = []
    members: list[Member] = []

    def produce(n: int) -> None:
        start = len(sends)
        recs = [{"value": f"g9-{start + i}".encode(), "partition": (start + i) % partitions}
                for i in range(n)]
        for i, d in enumerate(produce_all(producer, topic, recs)):
            sends.append(Send("p", start + i, f"g9-{start + i}", d.partition, d.offset,
                              "ok" if d.error is None else "failed"))

    def processed(m: Member, msg: Message) -> None:  # process, then commit synchronously
        polls.append(Poll(m.name, len(polls), [(int(msg.partition() or 0), int(msg.offset() or 0),
                                                msg.value())], generation=m.epoch))
        try:
            m.consumer.commit(message=msg, asynchronous=False)
        except KafkaException as exc:
            commit_errors.append(f"{m.name}: {exc.args[0].str()}")

    def join(name: str) -> None:
        members.append(Member.join(name, clients.consumer(group, **GROUP_CONF), topic,
                                   on_record=processed))

    def leave(name: str) -> None:
        next(m for m in members if m.name == name).close()

    steps = [("join a", lambda: join("a")), ("join b", lambda: join("b")),
             ("join c", lambda: join("c")), ("leave a", lambda: leave("a")),
             ("join d", lambda: join("d")), ("leave b", lambda: leave("b"))]
    for what, action in steps:
        produce(batch)
        action()
        produce(batch)
        live = [m for m in members if not m.closed]
        res = pump(live, lambda: settled(live, partitions) and len(polls) >= len(sends)  # noqa: B023
                   and len({(r[0], r[1]) for q in polls for r in q.records}) >= len(sends),
                   SETTLE_S, groups=[live])
        expect(not res.overlaps, f"after '{what}': partitions held twice", res.overlaps, "never")
        expect(res.ok, f"after '{what}': group settled and everything produced consumed",
               {"assignments": _view(live), "read": len(polls), "produced": len(sends)},
               f"{len(sends)} records read, disjoint covering assignments")
    report = history_check(sends, polls)
    reads: dict[tuple[int, int], int] = {}
    for q in polls:
        for p, o, _ in q.records:
            reads[(p, o)] = reads.get((p, o), 0) + 1
    redelivered = sum(n - 1 for n in reads.values())
    check.observe(history=report.summary(), redelivered=redelivered, commit_errors=commit_errors[:5],
                  per_member={m.name: len(m.records) for m in members})
    expect(report.ok, "history", report.summary(), "no anomalies")
    expect(redelivered == 0 or bool(commit_errors), "records processed twice although every commit "
           "succeeded", redelivered, "0")


def _kip848_consumer(bootstrap: str, group: str) -> Consumer:
    security = {k: v for k, v in COMMON_CONF.items() if k.startswith(("security.", "sasl.", "ssl."))}
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, **security,
                     "group.protocol": "consumer", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "socket.timeout.ms": 10_000,
                     "fetch.wait.max.ms": 100})


@pytest.mark.check("G10", "KIP-848 consumer protocol")
def test_g10_kip848_consumer_protocol(check: CheckContext, clients: Clients, names: Names,
                                      broker: BrokerInfo, timings: Timings) -> None:
    # v1 is KIP-848 GA (Kafka 4.0); v0 is the 3.7-3.9 early access, which Kafka 3.9.2 advertises (ZooKeeper
    # mode, and KRaft without group.version). librdkafka needs v1: against v0 it logs "ConsumerGroupHeartbeat
    # Request not supported by broker" and never joins
    check.require_api(68, 1, "ConsumerGroupHeartbeat, KIP-848 GA")
    topic, group = _topic_and_group(clients, names, 4, "g10")
    produce_all(clients.producer(), topic, [{"value": b"%d" % i, "partition": i % 4}
                                            for i in range(8)])
    a = Member.join("a", _kip848_consumer(broker.bootstrap, group), topic)
    b: Member | None = None
    try:
        _expect_settled([a], 4, "first KIP-848 member", timeout=20, timings=timings)
        b = Member.join("b", _kip848_consumer(broker.bootstrap, group), topic)
        _expect_settled([a, b], 4, "second KIP-848 member", timeout=20, timings=timings)
        res = pump([a, b], lambda: len(a.records) + len(b.records) >= 8, 10)
        got = sorted((int(m.partition() or 0), int(m.offset() or 0))
                     for m in a.records + b.records)
        desc = describe_group(clients.admin(), group)
        check.observe(assignments=_view([a, b]), group_type=_name(getattr(desc, "type", None)),
                      state=_name(desc.state), members=len(desc.members))
        expect(res.ok, "records consumed by the KIP-848 group", got, "all 8")
        expect_eq(got, sorted({(p, o) for p, o in got}), "records read twice")
        expect_eq(len(desc.members), 2, "members described")
    finally:
        a.close()
        if b is not None:
            b.close()


@pytest.mark.check("G11", "list/describe groups")
def test_g11_list_describe(check: CheckContext, clients: Clients, names: Names) -> None:
    topic, group = _topic_and_group(clients, names, 3, "g11")
    members = [_member(clients, n, group, topic, **{"partition.assignment.strategy": "range"})
               for n in ("a", "b")]
    _expect_settled(members, 3, "a + b")
    admin = clients.admin()
    listed = admin.list_consumer_groups(request_timeout=10).result(timeout=10)
    found = {g.group_id: _name(g.state) for g in listed.valid}
    desc = describe_group(admin, group)
    broker_view = {m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions
                                       if tp.topic == topic) for m in desc.members}
    client_view = {m.consumer.memberid(): sorted(m.assigned()) for m in members}
    check.observe(listed_state=found.get(group), state=_name(desc.state),
                  protocol=desc.partition_assignor, broker_view=broker_view)
    expect(group in found, "group in ListGroups", sorted(found)[:10], f"contains {group}")
    expect_eq(_name(desc.state), "STABLE", "described state")
    expect_eq(broker_view, client_view, "described members and assignments (member id -> parts)")
    expect_eq(desc.partition_assignor, "range", "described assignor")
    members[0].consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    for m in members:
        m.close()
    desc = describe_group(admin, group)
    check.observe(state_after_close=_name(desc.state), members_after_close=len(desc.members))
    expect_eq((_name(desc.state), len(desc.members)), ("EMPTY", 0),
              "state and member count after both members closed")
