"""Steps the group checks through a client share (C11–C17; :mod:`conformance.group_client` holds the members).

:class:`BackgroundProducer` is the client's own producer running while members join, leave or die (its
result is a :class:`~conformance.through_client.ClientRun` for the history checker); :func:`settled`,
:func:`progress` and :func:`acked_ends` say from the members' events whether the group settled and how far
its commits got, so every wait is event-driven.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import queue
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from bench.drivers.events import Assigned, Committed, GroupOptions
from bench.drivers.pool import WorkerPool
from bench.load.worker import WorkerSpec
from bench.scenario.model import Keys, MessageSize, Payload
from bench.verify.group import Holding, ownership
from conformance.group_client import GroupMember, join, pump_members
from conformance.plugin import BrokerInfo
from conformance.through_client import LIBRDKAFKA_BASED, ClientRun, producer_config
from conformance.verdicts import HarnessError, expect

__all__ = ["BackgroundProducer", "acked_ends", "admin_committed", "harness_errors", "held_all_at", "holdings", "joined",
           "left", "member", "progress", "settled"]

READY_TIMEOUT_S = 45.0
FLUSH_TIMEOUT_S = 30.0


def member(client: str, name: str, index: int, broker: BrokerInfo, topic: str, group: str,
           options: GroupOptions) -> GroupMember:
    return GroupMember(client, name, index, broker.bootstrap, topic, group, options)


def harness_errors(members: Sequence[GroupMember], producer: BackgroundProducer | None = None) -> None:
    """A driver that crashed, refused its spec or broke the protocol is ERROR (kbench or the client)."""
    errors = [e for m in members for e in m.errors] + (producer.run.errors if producer is not None else [])
    if errors:
        raise HarnessError("; ".join(errors)[:600])


def joined(m: GroupMember, others: Sequence[GroupMember] = ()) -> None:
    """Start ``m`` and wait for its first assignment (ERROR if a driver failed, FAIL if none in 45 s)."""
    ok = join(m, others)
    harness_errors([m, *others])
    expect(ok, f"member {m.name} joined", m.events[:3], "an assignment within 45 s")


def left(m: GroupMember, others: Sequence[GroupMember] = ()) -> None:
    """Stop ``m`` (it commits, closes, leaves unless static) and wait for its result, pumping ``others``."""
    m.stop()
    ok, _ = pump_members([m, *others], lambda: m.result is not None, 20.0)
    m.close()
    harness_errors([m, *others])
    expect(ok, f"member {m.name} stopped and wrote its result", m.errors, "within 20 s")


def settled(members: Sequence[GroupMember], partitions: int) -> bool:
    """Every member holds something, no partition twice, all ``partitions`` held (by their events)."""
    held = [m.owned() for m in members]
    union: set[int] = set().union(*held)
    return (all(held) and sum(len(h) for h in held) == len(union) == partitions
            and union == set(range(partitions)))


def progress(members: Sequence[GroupMember]) -> dict[int, int]:
    """Per partition, the highest offset any member committed successfully (from its events)."""
    out: dict[int, int] = {}
    for m in members:
        for p, o in m.last_committed().items():
            out[p] = max(out.get(p, 0), o)
    return out


def acked_ends(run: ClientRun) -> dict[int, int]:
    """Per partition, the offset after the last acked record."""
    ends: dict[int, int] = {}
    for r in run.producers.values():
        for p, o, *_ in (r.get("verify") or {}).get("acks", []):
            ends[int(p)] = max(ends.get(int(p), 0), int(o) + 1)
    return ends


def holdings(members: Sequence[GroupMember]) -> list[Holding]:
    """Who held which partition when: a member stopped or killed held nothing after that moment (its
    driver reports no revocation once its poll loop ended)."""
    out: list[Holding] = []
    for m in members:
        until = m.killed_ns or m.stopped_ns
        for h in ownership(m.name, m.events, until):
            out.append(h if h.end_ns is not None or until is None else dataclasses.replace(h, end_ns=until))
    return out


def held_all_at(m: GroupMember, partitions: set[int], after_ns: int) -> int | None:
    """The time of the first event after ``after_ns`` from which ``m`` held every one of ``partitions``."""
    held: set[int] = set()
    for ev in m.events:
        if isinstance(ev, Assigned):
            held |= set(ev.partitions)
        elif not isinstance(ev, Committed):
            held -= set(ev.partitions)
        if ev.t_ns > after_ns and held >= partitions:
            return ev.t_ns
    return None


def admin_committed(admin: Any, group: str, topic: str, partitions: int) -> dict[int, int]:
    """ListConsumerGroupOffsets of ``group`` (negative: nothing committed)."""
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = admin.list_consumer_group_offsets([req], request_timeout=10)[group].result(timeout=10)
    return {tp.partition: int(tp.offset) for tp in res.topic_partitions}


class BackgroundProducer:
    """The client's producer (acks=all, one request in flight) writing at ``rate`` until :meth:`stop`."""

    def __init__(self, client: str, broker: BrokerInfo, topic: str, security: Mapping[str, str], *,
                 rate: float, keys: Keys, max_s: float = 90.0) -> None:
        sec = dict(security)
        if sec and client not in LIBRDKAFKA_BASED:
            raise HarnessError(f"--client-config-file properties are librdkafka's; not mapped to {client} yet")
        self.run = ClientRun(client)
        self._spec = WorkerSpec(
            role="producer", index=0, bootstrap=broker.bootstrap, topic=topic,
            client_config={**sec, **producer_config(client, "ordered")}, warmup_ns=0,
            duration_ns=int(max_s * 1e9), message_size=MessageSize("fixed", 64, 64, 64),
            payload=Payload("random", 0.0, None), keys=keys, rate=rate, group=None, seed=1000, verify=True,
            flush_timeout_s=15.0, latency_sample=1, extra={"producers": 1})
        self._pool = WorkerPool(mp.get_context("spawn"))
        self._ready = False
        self.started_ns = 0

    def _pump(self) -> None:
        while True:
            try:
                msg = self._pool.out.get_nowait()
            except queue.Empty:
                return
            if msg[0] == "ready":
                self._ready = True
            elif msg[0] == "result":
                self.run.producers[0] = dict(msg[3])
            elif msg[0] == "error":
                self.run.errors.append(f"producer: {msg[3]}")

    def _wait(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            self._pump()
            code = next(iter(self._pool.exit_codes().values()))
            if code not in (None, 0) and not self.run.producers:
                raise HarnessError(f"the {self.run.client} producer died (exit {code}) waiting for {what}"
                                   f"{self._pool.stderr_tail('producer', 0)}")
            if time.monotonic() >= deadline:
                raise HarnessError(f"the {self.run.client} producer: no {what} within {timeout:g} s")
            time.sleep(0.05)

    def start(self) -> None:
        """Start the driver and its schedule (returns once it is sending)."""
        self._pool.add(self._spec, self.run.client, kafka_version=None)
        self._pool.start()
        self._wait(lambda: self._ready, READY_TIMEOUT_S, "ready")
        self.started_ns = time.monotonic_ns()
        self._pool.set_t0(self.started_ns)

    def stop(self) -> ClientRun:
        """Stop sending, wait for the flush and the result (the acks of every record sent)."""
        self._pool.stop()
        try:
            self._wait(lambda: bool(self.run.producers), FLUSH_TIMEOUT_S, "result")
        finally:
            self.close()
        return self.run

    def close(self) -> None:
        self._pool.stop()
        with contextlib.suppress(OSError):
            self._pool.reap()
