"""In-process consumer-group members for the G*/O* checks: one thread polls them all in turn.

:class:`Member` wraps a subscribed consumer and keeps what the rebalance callbacks and polls showed
(assign/revoke/lost events, records, errors, an assignment *epoch* that grows with every assign
callback). :func:`pump` polls a set of members round-robin until a predicate holds or a deadline
passes, and watches every state in between for partitions owned by two members at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from bench.kafka.closing import CLOSE_TIMEOUT_S, close_within
from conformance.clients import Deadline
from conformance.verdicts import HarnessError

__all__ = ["GROUP_CONF", "Member", "PumpResult", "assignment_problem", "describe_group", "pump", "settled"]

#: consumer settings for group checks: fast heartbeats so rebalances are noticed within ~0.5 s
GROUP_CONF: dict[str, Any] = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                              "max.poll.interval.ms": 30_000}


@dataclass
class Member:
    """One subscribed consumer and everything it observed."""

    name: str
    consumer: Consumer
    topic: str
    events: list[tuple[str, frozenset[int], int]] = field(default_factory=list)  # kind, parts, t_ns
    records: list[Message] = field(default_factory=list)
    errors: list[KafkaError] = field(default_factory=list)
    epoch: int = 0  # number of assign callbacks so far
    closed: bool = False
    joined_ns: int = 0
    on_record: Callable[[Member, Message], None] | None = None

    @classmethod
    def join(cls, name: str, consumer: Consumer, topic: str,
             on_record: Callable[[Member, Message], None] | None = None,
             on_revoke: Callable[[Member, list[TopicPartition]], None] | None = None) -> Member:
        """Subscribe ``consumer`` to ``topic`` with callbacks that record into the new Member."""
        m = cls(name, consumer, topic, on_record=on_record, joined_ns=time.perf_counter_ns())

        def assigned(_c: Consumer, ps: list[TopicPartition]) -> None:
            m.epoch += 1
            m.events.append(("assign", frozenset(tp.partition for tp in ps), time.perf_counter_ns()))

        def revoked(_c: Consumer, ps: list[TopicPartition]) -> None:
            if on_revoke is not None:
                on_revoke(m, ps)
            m.events.append(("revoke", frozenset(tp.partition for tp in ps), time.perf_counter_ns()))

        def lost(_c: Consumer, ps: list[TopicPartition]) -> None:
            m.events.append(("lost", frozenset(tp.partition for tp in ps), time.perf_counter_ns()))

        consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=lost)
        return m

    def poll(self, timeout: float) -> None:
        if self.closed:
            return
        msg = self.consumer.poll(timeout)
        if msg is None:
            return
        err = msg.error()
        if err is None:
            self.records.append(msg)
            if self.on_record is not None:
                self.on_record(self, msg)
        elif err.code() != KafkaError._PARTITION_EOF:
            self.errors.append(err)

    def assigned(self) -> frozenset[int]:
        """The current assignment (partition numbers) as the client sees it."""
        if self.closed:
            return frozenset()
        try:
            return frozenset(tp.partition for tp in self.consumer.assignment())
        except (KafkaException, RuntimeError):
            return frozenset()

    def count(self, kind: str, after_ns: int = 0) -> int:
        return sum(1 for k, _, t in self.events if k == kind and t >= after_ns)

    def close(self) -> None:
        """Leave the group; a close that has not returned within CLOSE_TIMEOUT_S is a harness ERROR (the
        client, not the broker, is stuck: librdkafka's close has no timeout of its own)."""
        if not self.closed:
            self.closed = True
            if not close_within(self.consumer):
                raise HarnessError(f"member {self.name}: consumer close() did not return within "
                                   f"{CLOSE_TIMEOUT_S:g} s (librdkafka)")


def assignment_problem(assignments: Mapping[str, frozenset[int]], partitions: int) -> str | None:
    """Why ``assignments`` (member → partitions) is not disjoint + covering + all non-empty, or None."""
    owners: dict[int, list[str]] = {}
    for name, parts in assignments.items():
        for p in parts:
            owners.setdefault(p, []).append(name)
    shared = {p: names for p, names in owners.items() if len(names) > 1}
    if shared:
        return f"partitions owned twice: {shared}"
    missing = sorted(set(range(partitions)) - set(owners))
    if missing:
        return f"partitions without owner: {missing}"
    empty = sorted(n for n, parts in assignments.items() if not parts)
    if empty and partitions >= len(assignments):
        return f"members without partitions: {empty}"
    return None


def settled(members: Sequence[Member], partitions: int) -> bool:
    """All live members hold disjoint, non-empty assignments covering ``partitions`` partitions."""
    live = [m for m in members if not m.closed]
    return assignment_problem({m.name: m.assigned() for m in live}, partitions) is None


@dataclass
class PumpResult:
    ok: bool
    seconds: float
    overlaps: list[str]

    def __bool__(self) -> bool:
        return self.ok


def pump(members: Iterable[Member], until: Callable[[], bool] | None, timeout: float,
         step: float = 0.02, groups: Sequence[Sequence[Member]] = ()) -> PumpResult:
    """Poll ``members`` round-robin until ``until()`` holds (checked after each round) or ``timeout``.

    ``groups`` (each a list of members of one group) are checked after every round for partitions
    held by two live members at once; each such state is reported in ``overlaps``.
    """
    live = list(members)
    deadline = Deadline(timeout)
    start = time.perf_counter_ns()
    overlaps: list[str] = []
    while True:
        for m in live:
            m.poll(step)
        for grp in groups:
            seen: dict[int, str] = {}
            for m in grp:
                for p in m.assigned():
                    if p in seen and len(overlaps) < 20:
                        overlaps.append(f"p{p} held by {seen[p]} and {m.name}")
                    seen[p] = m.name
        if until is not None and until():
            return PumpResult(True, (time.perf_counter_ns() - start) / 1e9, overlaps)
        if deadline.expired:
            return PumpResult(until is None, (time.perf_counter_ns() - start) / 1e9, overlaps)


def describe_group(admin: Any, group: str, timeout: float = 10.0) -> Any:
    """``describe_consumer_groups`` for one group (the ConsumerGroupDescription)."""
    return admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(
        timeout=timeout)
