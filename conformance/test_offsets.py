"""Offsets and commits checks O1–O8 (docs/conformance.md).

Committed offsets are read back two ways where it matters: ``Consumer.committed()`` (OffsetFetch by a
consumer of the group) and ``AdminClient.list_consumer_group_offsets``. O4 kills a child-process
consumer with SIGKILL (:mod:`conformance._member`).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from conformance._group import GROUP_CONF, Member, describe_group, pump
from conformance._member import ChildMember
from conformance.clients import Clients, Deadline, Delivery, Names, produce_all
from conformance.plugin import BrokerInfo
from conformance.timings import Timings
from conformance.verdicts import CheckContext, expect, expect_eq

SESSION_MS = 6000


def _produce(clients: Clients, topic: str, n: int, partitions: int = 1, tag: str = "v"
             ) -> list[Delivery]:
    reports = produce_all(clients.producer(), topic, [
        {"value": f"{tag}-{i}".encode(), "partition": i % partitions} for i in range(n)])
    errors = [d.error for d in reports if d.error is not None]
    expect(not errors, "setup produce", errors[:3], "all acked")
    return reports


def _committed(consumer: Consumer, topic: str, partitions: int = 1) -> list[int]:
    return [int(tp.offset) for tp in consumer.committed(
        [TopicPartition(topic, p) for p in range(partitions)], timeout=15)]


def _admin_committed(clients: Clients, group: str, topic: str, partitions: int = 1
                     ) -> dict[int, tuple[int, str | None]]:
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = clients.admin().list_consumer_group_offsets([req], request_timeout=10)[group].result(
        timeout=10)
    return {tp.partition: (int(tp.offset), tp.metadata) for tp in res.topic_partitions}


def _member(clients: Clients, name: str, group: str, topic: str, **conf: Any) -> Member:
    return Member.join(name, clients.consumer(group, **{**GROUP_CONF, **conf}), topic)


def _offsets(member: Member) -> list[int]:
    return [int(m.offset() or 0) for m in member.records]


def _member_read_all(clients: Clients, names: Names, tag: str, n: int) -> tuple[str, str, Member]:
    """A fresh 2-partition topic holding ``n`` records, a group named after ``tag``, and its member ``m``
    once it has read them all (FAIL if not within 15 s): (topic, group, m)."""
    topic = clients.create_topic(2)
    _produce(clients, topic, n, partitions=2)
    group = names.group(tag)
    m = _member(clients, "m", group, topic)
    res = pump([m], lambda: len(m.records) >= n, 15)
    expect(res.ok, "records read", len(m.records), str(n))
    return topic, group, m


@pytest.mark.check("O1", "commit offset+1 convention")
def test_o1_commit_next_offset(check: CheckContext, clients: Clients, names: Names,
                               timings: Timings) -> None:
    topic = clients.create_topic(1)
    _produce(clients, topic, 10)
    group, n = names.group("o1"), 6
    first = _member(clients, "first", group, topic)
    res = pump([first], lambda: len(first.records) > n, 15)
    expect(res.ok, "records read by the first member", _offsets(first), f"offsets 0..{n}")
    msg = first.records[n]
    expect_eq(msg.offset(), n, "offset of the record consumed")
    with timings.time("commit"):
        first.consumer.commit(message=msg, asynchronous=False)  # commits n + 1
    committed = _committed(first.consumer, topic)
    admin_view = _admin_committed(clients, group, topic)
    first.close()
    second = _member(clients, "second", group, topic)
    res = pump([second], lambda: bool(second.records), 15)
    check.observe(committed=committed, admin=admin_view, second_starts_at=_offsets(second)[:1])
    expect_eq(committed, [n + 1], "committed() after consuming and committing offset n")
    expect_eq(admin_view[0][0], n + 1, "ListConsumerGroupOffsets")
    expect(res.ok, "records read by the new member", _offsets(second), f"starts at {n + 1}")
    expect_eq(_offsets(second)[0], n + 1, "first offset read by a new member of the group")


@pytest.mark.check("O2", "position()")
def test_o2_position(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    acked = [d.offset for d in _produce(clients, topic, 10)]
    c = clients.consumer()
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    read: list[int] = []
    positions: dict[int, int] = {}
    deadline = Deadline(15)
    while len(read) < len(acked) and not deadline.expired:
        msg = c.poll(deadline.poll_timeout(0.2))
        if msg is None or msg.error() is not None:
            continue
        read.append(int(msg.offset() or 0))
        positions[read[-1]] = int(c.position([TopicPartition(topic, 0)])[0].offset)
    _, high = clients.watermarks(topic, 0)
    check.observe(read=read, positions=positions, high_watermark=high)
    expect_eq(read, acked, "offsets read (vs. delivery reports)")
    expect_eq(positions, {o: o + 1 for o in acked}, "position() after consuming offset n")
    expect_eq(high, positions[acked[-1]], "high watermark (ListOffsets latest) vs. position() "
              "after the last record")


@pytest.mark.check("O3", "auto-commit / offset store")
def test_o3_offset_store(check: CheckContext, clients: Clients, names: Names) -> None:
    topic = clients.create_topic(1)
    _produce(clients, topic, 10)
    group, stored = names.group("o3"), 3
    m = _member(clients, "m", group, topic, **{"enable.auto.commit": True,
                                               "auto.commit.interval.ms": 60_000,
                                               "enable.auto.offset.store": False})
    res = pump([m], lambda: len(m.records) >= 10, 15)
    expect(res.ok, "records read", _offsets(m), "0..9")
    m.consumer.store_offsets(message=m.records[stored])  # stores stored + 1
    observer = clients.consumer(group)  # never subscribes: only reads committed offsets
    before = _committed(observer, topic)
    m.close()  # auto-commit on close commits the stored offset, not the consumed position
    after = _committed(observer, topic)
    check.observe(committed_before_close=before, committed_after_close=after)
    expect_eq(before, [OFFSET_INVALID], "committed before close (interval 60 s, nothing due)")
    expect_eq(after, [stored + 1], "committed after close (only the stored offset)")


@pytest.mark.check("O4", "at-least-once after crash")
def test_o4_redelivery_after_crash(check: CheckContext, clients: Clients, names: Names,
                                   broker: BrokerInfo, timings: Timings) -> None:
    topic = clients.create_topic(1)
    values = [d.value for d in _produce(clients, topic, 20)]
    group, commit_at = names.group("o4"), 5
    child = ChildMember(broker.bootstrap, group, topic, conf={"session.timeout.ms": SESSION_MS})
    try:
        child.wait_event(lambda e: e["ev"] == "rec" and e["o"] == 19, 15, "child read offset 19")
        child.send({"cmd": "commit", "offsets": {"0": commit_at}})
        ev = child.wait_event(lambda e: e["ev"] == "commit", 10, "commit result")
        expect(ev["ok"], "child commit", ev, "accepted")
        child.kill()  # read to 19, committed 5: records 5..19 must come again
    finally:
        child.close()
    t_kill = time.perf_counter_ns()
    m = _member(clients, "restarted", group, topic)
    res = pump([m], lambda: bool(m.records) and int(m.records[-1].offset() or 0) >= 19,
               2 * SESSION_MS / 1000 + 8)
    if res.ok:  # kill -> the restarted member has read everything again
        timings.record("join", (time.perf_counter_ns() - t_kill) / 1000)
    got = [(int(r.offset() or 0), r.value()) for r in m.records]
    check.observe(first_offset=got[0][0] if got else None, read=len(got),
                  redelivered_after_s=round(res.seconds, 3))
    expect(res.ok, "records read after the restart", [o for o, _ in got], "offsets 5..19")
    expect_eq(got, [(o, values[o]) for o in range(commit_at, 20)],
              "records redelivered after the crash (offset, value)")


@pytest.mark.check("O5", "clean shutdown")
def test_o5_clean_shutdown(check: CheckContext, clients: Clients, names: Names,
                           timings: Timings) -> None:
    topic, group, m = _member_read_all(clients, names, "o5", 12)
    for msg in m.records:
        with timings.time("commit"):
            m.consumer.commit(message=msg, asynchronous=False)
    position = [int(tp.offset) for tp in m.consumer.position(
        [TopicPartition(topic, p) for p in range(2)])]
    m.close()
    committed = _committed(clients.consumer(group), topic, 2)
    desc = describe_group(clients.admin(), group)
    state = str(getattr(desc.state, "name", desc.state))
    check.observe(position=position, committed=committed, state_after_close=state,
                  members_after_close=len(desc.members))
    expect_eq(position, [6, 6], "position at close")
    expect_eq(committed, position, "last committed offsets vs. position at close")
    expect_eq((state, len(desc.members)), ("EMPTY", 0), "group after the graceful close")


@pytest.mark.check("O6", "commit metadata")
def test_o6_commit_metadata(check: CheckContext, clients: Clients, names: Names) -> None:
    topic = clients.create_topic(1)
    _produce(clients, topic, 3)
    group = names.group("o6")
    meta = "kbench O6 \u2713 {\"gen\": 7, \"host\": \"a/b\"} " + "x" * 100
    c = clients.consumer(group)
    c.commit(offsets=[TopicPartition(topic, 0, 2, meta)], asynchronous=False)
    got = c.committed([TopicPartition(topic, 0)], timeout=10)[0]
    admin_view = _admin_committed(clients, group, topic)
    check.observe(committed=(got.offset, got.metadata), admin=admin_view)
    expect_eq((got.offset, got.metadata), (2, meta), "committed() offset and metadata")
    expect_eq(admin_view[0], (2, meta), "ListConsumerGroupOffsets offset and metadata")


@pytest.mark.check("O7", "auto.offset.reset")
def test_o7_auto_offset_reset(check: CheckContext, clients: Clients, names: Names) -> None:
    topic = clients.create_topic(1)
    _produce(clients, topic, 5)
    cases = [(start, reset) for start in ("none", "out-of-range")
             for reset in ("earliest", "latest", "error")]
    consumers: dict[tuple[str, str], Consumer] = {}
    for start, reset in cases:
        group = names.group(f"o7-{start}-{reset}")
        c = clients.consumer(group, **{"auto.offset.reset": reset, "enable.partition.eof": True})
        if start == "out-of-range":
            c.commit(offsets=[TopicPartition(topic, 0, 1000)], asynchronous=False)
        c.assign([TopicPartition(topic, 0)])  # start from the committed offset, if any
        consumers[(start, reset)] = c
    first: dict[tuple[str, str], Any] = {}
    at_end: set[tuple[str, str]] = set()  # partition EOF seen: the reset position is resolved
    produced_late = False
    deadline = Deadline(15)
    while not deadline.expired and len(first) < len(cases):
        for key, c in consumers.items():
            if key in first:
                continue
            msg = c.poll(0.05)
            if msg is None:
                continue
            err = msg.error()
            if err is None:
                first[key] = int(msg.offset() or 0)
            elif err.code() == KafkaError._PARTITION_EOF:
                at_end.add(key)
            else:
                first[key] = err.name()
        if not produced_late and {(s, "latest") for s in ("none", "out-of-range")} <= at_end:
            _produce(clients, topic, 1, tag="late")  # lands at offset 5
            produced_late = True
    observed = {f"{s}/{r}": first.get((s, r)) for s, r in cases}
    check.observe(first_offset_or_error=observed)
    expected = {f"{s}/{r}": {"earliest": 0, "latest": 5, "error": "_AUTO_OFFSET_RESET"}[r]
                for s, r in cases}
    expect_eq(observed, expected, "first offset read (or error) per start position / reset")


@pytest.mark.check("O8", "commits are durable")
@pytest.mark.exclusive   # restarts the embedded broker's node: every other lane of --jobs N would see it go
def test_o8_commits_durable(check: CheckContext, clients: Clients, names: Names,
                            broker_control: Any) -> None:
    want = {0: 3, 1: 7}
    topic, group, m = _member_read_all(clients, names, "o8", 20)
    m.consumer.commit(offsets=[TopicPartition(topic, p, o, "o8") for p, o in want.items()],
                      asynchronous=False)
    m.close()  # the group is now empty
    again = _member(clients, "again", group, topic)
    pump([again], lambda: {int(r.partition() or 0) for r in again.records} == {0, 1}, 15)
    starts: dict[int, int] = {}
    for r in again.records:
        starts.setdefault(int(r.partition() or 0), int(r.offset() or 0))
    after_rejoin = _admin_committed(clients, group, topic, 2)
    again.close()
    check.observe(starts_after_rejoin=starts, committed_after_rejoin=after_rejoin)
    expect_eq(starts, want, "first offsets read after the group emptied and a member rejoined")
    expect_eq(after_rejoin, {p: (o, "o8") for p, o in want.items()},
              "committed offsets (and metadata) after the group emptied and rejoined")
    if broker_control is None:
        check.note("broker restart part not run: external broker (no broker_control)")
        return
    broker_control.restart_node(0)
    fresh = clients.consumer(group)
    # right after a restart the coordinator is still loading __consumer_offsets: NOT_COORDINATOR,
    # COORDINATOR_LOAD_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE are retriable by the protocol
    retriable = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                 KafkaError.COORDINATOR_NOT_AVAILABLE}
    deadline = Deadline(30)
    while True:
        try:
            committed = fresh.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)
            break
        except KafkaException as exc:
            if exc.args[0].code() not in retriable or deadline.expired:
                raise
            time.sleep(0.5)
    after_restart = {tp.partition: (int(tp.offset), tp.metadata) for tp in committed}
    check.observe(committed_after_restart=after_restart)
    expect_eq(after_restart, {p: (o, "o8") for p, o in want.items()},
              "committed offsets (and metadata) after a broker restart")
