"""Group and commit checks through a client's driver, C8–C10 (docs/conformance.md, "Through a client").

Collected only with ``--client NAME``, like C1–C7 (:mod:`conformance.test_client_checks`). Each member is
one driver process speaking driver protocol v2 (docs/drivers.md, "Protocol v2"): it reports its
assignments, revocations and synchronous commits as events (:mod:`conformance.group_client`). Clients
whose driver has no such events are N/A (client) with the reason (:data:`conformance.group_client.NO_GROUP_EVENTS`).
Reads go to the one history checker, cut at each member's rebalances.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from bench.drivers.events import ASSIGNORS, Assigned, GroupOptions
from bench.scenario.model import Keys
from bench.verify.group import overlaps, ownership
from conformance.clients import Clients
from conformance.group_client import (
    GroupMember,
    group_history,
    join,
    pump_members,
    require_group_events,
    stop_members,
    wait_result,
)
from conformance.plugin import BrokerInfo
from conformance.through_client import NO_KEYS, ClientRun, Worker, producer_config, run_workers, selected_clients
from conformance.verdicts import CheckContext, HarnessError, expect, expect_eq, require_effective

pytestmark = [pytest.mark.through_client, pytest.mark.timeout(120)]

READY_TIMEOUT = 45.0
SETTLE_S = 20.0      # a group settles after a join (the broker check G1 allows 15 s; a JVM starts slower)
READ_S = 20.0        # a member that stops on its own after N records


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", selected_clients(metafunc.config), ids=str)


def _member(client: str, name: str, index: int, broker: BrokerInfo, topic: str, group: str,
            options: GroupOptions) -> GroupMember:
    return GroupMember(client, name, index, broker.bootstrap, topic, group, options)


def _harness_errors(members: list[GroupMember]) -> None:
    """A driver that crashed, refused its spec or broke the protocol is ERROR (kbench or the client)."""
    errors = [e for m in members for e in m.errors]
    if errors:
        raise HarnessError("; ".join(errors)[:600])


def _settled(members: list[GroupMember], partitions: int) -> bool:
    held = [m.owned() for m in members]
    union = set().union(*held)
    return (all(held) and sum(len(h) for h in held) == len(union) == partitions
            and union == set(range(partitions)))


@pytest.mark.check("C8", "through a client: each partition has exactly one owner")
@pytest.mark.parametrize("assignor", ASSIGNORS)
def test_c8_single_owner(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                         client: str, assignor: str) -> None:
    require_group_events(client, assignor)
    partitions, n_members = 6, 3
    topic = clients.create_topic(partitions)
    group = names.group(f"c8-{assignor}")
    members: list[GroupMember] = []
    cutoff = 0
    try:
        for k in range(1, n_members + 1):
            m = _member(client, f"m{k}", k, broker, topic, group, GroupOptions(assignor=assignor))
            members.append(m)
            joined = join(m, members[:-1])
            _harness_errors(members)
            expect(joined, f"member {k} of the {client} group joined", m.events[:3], "an assignment within 45 s")
            ok, secs = pump_members(members, lambda: _settled(members, partitions), SETTLE_S)
            _harness_errors(members)
            views = {x.name: sorted(x.owned()) for x in members}
            check.observe(**{f"after_join_{k}": views, f"settle_s_{k}": round(secs, 3)})
            expect(ok, f"after member {k} joined, the group did not settle within {SETTLE_S:g} s", views,
                   f"{k} disjoint non-empty assignments covering all {partitions} partitions")
        cutoff = time.monotonic_ns()   # members stop next: what happens as they leave is not judged
    finally:
        stop_members(members)
    check.observe(generations={m.name: [e.generation for e in m.events if isinstance(e, Assigned)]
                               for m in members})
    found = overlaps([h for m in members for h in ownership(m.name, m.events, cutoff)])
    expect(not found, "partitions held by two members at once (by the members' event times)", found, "never")


def _produce(client: str, broker: BrokerInfo, topic: str, security_conf: dict[str, str], rate: float,
             duration_s: float, keys: Keys = NO_KEYS) -> ClientRun:
    run = run_workers(client, broker.bootstrap, [Worker("producer", topic, config=producer_config(
        client, "ordered"), rate=rate, duration_s=duration_s, keys=keys)], security=security_conf)
    expect_eq(run.errors, [], f"{client} producer errors")
    require_effective(run.acked() > 0, "records the client's producer wrote", run.acked(), "> 0")
    return run


def _first_reads(member: GroupMember) -> dict[int, int]:
    first: dict[int, int] = {}
    for p, o, _prod, _seq in member.reads():
        first.setdefault(p, o)
    return first


def _last_reads(member: GroupMember) -> dict[int, int]:
    return {p: o for p, o, _prod, _seq in member.reads()}


def _admin_committed(clients: Clients, group: str, topic: str, partitions: int = 1) -> dict[int, int]:
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = clients.admin().list_consumer_group_offsets([req], request_timeout=10)[group].result(timeout=10)
    return {tp.partition: int(tp.offset) for tp in res.topic_partitions}


@pytest.mark.check("C9", "through a client: a commit after reading offset n is n + 1, where a new member starts")
def test_c9_commit_next_offset(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                               security_conf: dict[str, str], client: str) -> None:
    require_group_events(client)
    topic = clients.create_topic(1)
    run = _produce(client, broker, topic, security_conf, 40.0, 0.5)
    total, n = run.acked(), 6
    require_effective(total > n + 1, "records acked", total, f"> {n + 1}")
    group = names.group("c9")
    first = _member(client, "first", 1, broker, topic, group,
                    GroupOptions(commit="batch", auto_commit=False, max_records=n + 1))
    second = _member(client, "second", 2, broker, topic, group,
                     GroupOptions(commit="none", auto_commit=False, max_records=total - n - 1))
    try:
        for m in (first, second):
            m.start()
            done = wait_result(m, READY_TIMEOUT + READ_S)
            _harness_errors([m])
            expect(done, f"{m.name} member read its records and stopped", len(m.reads()), "a result")
    finally:
        for m in (first, second):
            m.close()
    committed = first.last_committed()
    admin = _admin_committed(clients, group, topic)
    check.observe(first_reads=[o for _p, o, _a, _b in first.reads()], commits=[c.offsets for c in first.commits()],
                  committed=committed, admin=admin, second_starts_at=_first_reads(second))
    expect_eq([c.error for c in first.commits() if not c.ok], [], "failed commits of the first member")
    expect_eq([o for _p, o, _a, _b in first.reads()], list(range(n + 1)), "offsets the first member read")
    expect_eq(committed, {0: n + 1}, "committed offset after reading offset n (the next offset, n + 1)")
    expect_eq(admin, {0: n + 1}, "ListConsumerGroupOffsets after the first member left")
    expect_eq(_first_reads(second), {0: n + 1}, "first offset read by a new member of the group")
    report, info = group_history(run, [first, second], broker.bootstrap, topic, security_conf)
    check.observe(history=report.to_dict().get("counts"), consumer_reads=info.get("consumer_reads"))
    expect(report.ok, "history", report.summary(), "clean (no lost, duplicate, reordered or skipped record)")
    expect_eq(info.get("consumer_reads"), total, "records read by the two members (each once)")


@pytest.mark.check("C10", "through a client: commit then restart re-reads nothing before the committed offset "
                          "and skips nothing after it")
def test_c10_commit_restart(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                            security_conf: dict[str, str], client: str) -> None:
    require_group_events(client)
    topic = clients.create_topic(2)
    group, cut = names.group("c10"), 75
    before = _member(client, "before", 1, broker, topic, group,
                     GroupOptions(commit="batch", auto_commit=False, max_records=cut))
    after: GroupMember | None = None
    try:   # the first member reads (and commits batch by batch) while the records are written
        joined = join(before)
        _harness_errors([before])
        expect(joined, "the first member joined", before.events[:3], "an assignment within 45 s")
        run = _produce(client, broker, topic, security_conf, 200.0, 1.0, keys=Keys("round_robin", 20, 1.2))
        total = run.acked()
        require_effective(total > cut + 20, "records acked", total, f"> {cut + 20}")
        done = wait_result(before, READ_S)
        _harness_errors([before])
        expect(done, "the member before the restart read its records and stopped", len(before.reads()), "a result")
        after = _member(client, "after", 2, broker, topic, group,
                        GroupOptions(commit="batch", auto_commit=False, max_records=total - cut))
        after.start()
        done = wait_result(after, READY_TIMEOUT + READ_S)
        _harness_errors([after])
        expect(done, "the member after the restart read the rest and stopped", len(after.reads()), "a result")
    finally:
        before.close()
        if after is not None:
            after.close()
    committed = before.last_committed()
    resumed = _first_reads(after)
    check.observe(acked=total, cut=cut, committed=committed, last_read=_last_reads(before), resumed_at=resumed,
                  commits=len(before.commits()), commits_after=len(after.commits()))
    expect_eq([c.error for c in before.commits() if not c.ok], [], "failed commits before the restart")
    expect_eq(committed, {p: o + 1 for p, o in _last_reads(before).items()},
              "committed offsets at the stop (last record read + 1, per partition)")
    written = {int(a[0]) for r in run.producers.values() for a in (r.get("verify") or {}).get("acks", [])}
    expect_eq({p: resumed.get(p) for p in sorted(written)}, {p: committed.get(p, 0) for p in sorted(written)},
              "first offset read after the restart, per partition (the committed one; 0 where none was)")
    seen_before = {(p, o) for p, o, _a, _b in before.reads()}
    again = sorted(seen_before & {(p, o) for p, o, _a, _b in after.reads()})
    expect_eq(again[:5], [], "records read again after the restart (partition, offset)")
    report, info = group_history(run, [before, after], broker.bootstrap, topic, security_conf)
    check.observe(history=report.to_dict().get("counts"), consumer_reads=info.get("consumer_reads"))
    expect(report.ok, "history", report.summary(), "clean (no lost, duplicate, reordered or skipped record)")
    expect_eq(info.get("consumer_reads"), total, "records read before and after the restart (each once)")
