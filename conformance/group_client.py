"""Group members through a client's driver (driver protocol v2; issue 15): one process per member.

A :class:`GroupMember` is one consumer worker of a client in its own :class:`~bench.drivers.pool.WorkerPool`,
started when a check wants it (members join one by one), with :class:`~bench.drivers.events.GroupOptions`
(assignor, commits, a stop of its own). It collects the worker's ``assigned`` / ``revoked`` / ``committed``
events as they come, so a check can wait for the group to settle, and its result (every read) at the end.
:func:`group_history` feeds the members' reads, cut at their rebalances (:func:`bench.verify.group.member_polls`),
with the producers' acks and a final read, to the one history checker.

Which clients have the events, and which assignors each offers, is :data:`ASSIGNORS`;
:func:`require_group_events` is N/A (client) with the specific reason for the others
(:data:`NO_GROUP_EVENTS`) and for an assignor a client lacks (:data:`NO_ASSIGNOR`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.drivers.events import Assigned, Committed, GroupEvent, GroupOptions
from bench.drivers.external import GROUP_OPTIONS
from bench.drivers.pool import WorkerPool
from bench.load.worker import WorkerSpec
from bench.scenario.model import MessageSize, Payload
from bench.verify.cell import build_history, read_topic
from bench.verify.group import member_polls
from bench.verify.history import HistoryReport, check
from conformance.through_client import NO_KEYS, ClientRun, not_applicable

__all__ = ["ASSIGNORS", "GROUP_EVENTS", "NO_ASSIGNOR", "NO_GROUP_EVENTS", "GroupMember", "group_history",
           "pump_members", "require_group_events", "stop_members"]

#: clients whose driver speaks protocol v2's group events, and the assignors each offers
ASSIGNORS: dict[str, tuple[str, ...]] = {
    "java": ("range", "roundrobin", "sticky", "cooperative-sticky"),
    "franz-go": ("range", "roundrobin", "sticky", "cooperative-sticky"),
    "sarama": ("range", "roundrobin", "sticky", "cooperative-sticky"),
    "confluent-kafka-go": ("range", "roundrobin", "cooperative-sticky"),
    "kafka-go": ("range", "roundrobin"),
}
GROUP_EVENTS = tuple(ASSIGNORS)
#: why a client has no group events (N/A (client) of every group/commit check through it)
NO_GROUP_EVENTS: dict[str, str] = {
    "librdkafka": "kbench's in-process librdkafka worker reports no assignment/commit events (the suite's "
                  "own group and offset checks run through librdkafka directly)",
}
#: why a client with group events lacks an assignor (N/A (client) of that assignor's case)
NO_ASSIGNOR: dict[tuple[str, str], str] = {
    ("confluent-kafka-go", "sticky"): "librdkafka has no eager sticky assignor (partition.assignment.strategy "
                                      "takes range, roundrobin, cooperative-sticky)",
    ("kafka-go", "sticky"): "kafka-go's ConsumerGroup balances with range, roundrobin or rack affinity only",
    ("kafka-go", "cooperative-sticky"): "kafka-go's ConsumerGroup speaks only the eager rebalance protocol "
                                        "(range, roundrobin or rack affinity)",
}
READY_TIMEOUT_S = 45.0


def require_group_events(client: str, assignor: str | None = None) -> None:
    """Raise N/A (client) unless ``client``'s driver reports group events (and offers ``assignor``)."""
    if client not in ASSIGNORS:
        raise not_applicable(client, NO_GROUP_EVENTS.get(client, f"{client} has no protocol v2 group events"))
    if assignor is not None and assignor not in ASSIGNORS[client]:
        raise not_applicable(client, NO_ASSIGNOR.get((client, assignor), f"{client} offers no {assignor} assignor"))


@dataclass
class GroupMember:
    """One consumer worker of ``client`` in group ``group``, in its own pool (started by :meth:`start`)."""

    client: str
    name: str
    index: int
    bootstrap: str
    topic: str
    group: str
    options: GroupOptions
    kafka_version: str | None = None
    events: list[GroupEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    ready: bool = False
    stopped_ns: int | None = None
    killed_ns: int | None = None
    _pool: WorkerPool | None = None

    def _spec(self) -> WorkerSpec:
        return WorkerSpec(
            role="consumer", index=self.index, bootstrap=self.bootstrap, topic=self.topic, client_config={},
            warmup_ns=0, duration_ns=60_000_000_000, message_size=MessageSize("fixed", 64, 64, 64),
            payload=Payload("random", 0.0, None), keys=NO_KEYS, group=self.group, seed=self.index,
            verify=True, extra={GROUP_OPTIONS: self.options})

    def start(self) -> None:
        pool = self._pool = WorkerPool(mp.get_context("spawn"))
        pool.add(self._spec(), self.client, kafka_version=self.kafka_version)
        pool.start()
        pool.release_consumers()

    def pump(self) -> None:
        """Take what the worker wrote so far: events, ready (then its start), errors, the result."""
        assert self._pool is not None, "start() first"
        while True:
            try:
                msg = self._pool.out.get_nowait()
            except queue.Empty:
                return
            kind = msg[0]
            if kind == "event":
                self.events.append(msg[3])
            elif kind == "ready" and not self.ready:
                self.ready = True
                self._pool.set_t0(time.monotonic_ns())
            elif kind == "error":
                self.errors.append(f"{self.name}: {msg[3]}")
            elif kind == "result":
                self.result = dict(msg[3])

    def dead(self) -> str | None:
        """Why the worker is gone without a result (exited non-zero), else None."""
        assert self._pool is not None
        code = next(iter(self._pool.exit_codes().values()))
        if code not in (None, 0) and self.result is None and self.killed_ns is None:
            return f"{self.name} exited with code {code}{self._pool.stderr_tail('consumer', self.index)}"
        return None

    def owned(self) -> set[int]:
        """The partitions it holds now, by its events (assignments and revocations are deltas)."""
        held: set[int] = set()
        for ev in self.events:
            if isinstance(ev, Assigned):
                held |= set(ev.partitions)
            elif not isinstance(ev, Committed):
                held -= set(ev.partitions)
        return held

    def reads(self) -> list[tuple[int, int, int, int]]:
        rows = (self.result or {}).get("verify") or []
        return [(int(p), int(o), int(prod), int(seq)) for p, o, prod, seq in rows]

    def commits(self) -> list[Committed]:
        return [e for e in self.events if isinstance(e, Committed)]

    def last_committed(self) -> dict[int, int]:
        """Per partition, the offset of its last successful commit."""
        out: dict[int, int] = {}
        for c in self.commits():
            if c.ok:
                out.update(c.offsets)
        return out

    def stop(self) -> None:
        if self._pool is not None and self.stopped_ns is None:
            self.stopped_ns = time.monotonic_ns()
            self._pool.stop()

    def kill(self) -> None:
        """SIGKILL the member's driver process (a crash: no commit, no leave, no result)."""
        if self._pool is not None and self.killed_ns is None:
            self.killed_ns = time.monotonic_ns()
            self._pool.kill()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            with contextlib.suppress(OSError):
                self._pool.reap()


def pump_members(members: Sequence[GroupMember], until: Callable[[], bool], timeout: float) -> tuple[bool, float]:
    """Pump every member until ``until()`` holds, a member dies, or ``timeout``; (held, seconds taken)."""
    started = time.monotonic()
    while True:
        for m in members:
            m.pump()
            why = m.dead()
            if why is not None:
                if why not in m.errors:
                    m.errors.append(why)
                return False, time.monotonic() - started
        if until():
            return True, time.monotonic() - started
        if time.monotonic() - started >= timeout:
            return False, time.monotonic() - started
        time.sleep(0.05)


def join(member: GroupMember, others: Sequence[GroupMember] = ()) -> bool:
    """Start ``member`` and wait until it is ready (its first assignment)."""
    member.start()
    ok, _ = pump_members([*others, member], lambda: member.ready or bool(member.errors), READY_TIMEOUT_S)
    return ok and member.ready


def stop_members(members: Iterable[GroupMember], timeout: float = 20.0) -> None:
    """Stop the members still running and wait for every result but a killed member's (then end their processes)."""
    ms = list(members)
    for m in ms:
        m.stop()
    pump_members(ms, lambda: all(m.result is not None or m.killed_ns is not None for m in ms), timeout)
    for m in ms:
        m.close()


def wait_result(member: GroupMember, timeout: float) -> bool:
    """Wait for a member that stops on its own (max_records, stop_at_ns) to write its result."""
    ok, _ = pump_members([member], lambda: member.result is not None, timeout)
    if member.result is None:
        member.errors.append(f"{member.name}: no result within {timeout:g} s")
    member.close()
    return ok and member.result is not None


def group_history(run: ClientRun, members: Sequence[GroupMember], bootstrap: str, topic: str,
                  security: Mapping[str, str] | None = None) -> tuple[HistoryReport, dict[str, Any]]:
    """The one history checker over the producers' acks, each member's reads cut at its rebalances, and a
    final read of ``topic``."""
    sends, polls, info, _acks = build_history({"producer": dict(run.producers), "consumer": {}})
    for m in members:
        reads = m.reads()
        info["consumer_reads"] += len(reads)
        polls += member_polls(f"{m.client}-{m.name}", reads, m.events)
    final = read_topic(bootstrap, topic, dict(security or {}), timeout_s=20.0)
    if not final.complete:
        raise AssertionError(f"final read of {topic} incomplete: {final.error}")
    report = check(sends, polls, final_reads=final.records, log_start=final.low, max_examples=5)
    info["final"] = final.to_dict()
    return report, info
