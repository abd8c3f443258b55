"""Rebalance checks through a client's driver, C11–C13 (docs/conformance.md, "Through a client").

G3 (cooperative rebalance), G6 with O4 (a member's driver killed with SIGKILL) and G9 (churn) of the broker
suite, with every member one driver process on protocol v2 (:mod:`conformance.group_client`): who held what
comes from its assigned/revoked events, what it committed from its committed events, what it read from its
result. Collected only with ``--client NAME``; a client without group events is N/A (client).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from bench.drivers.events import GroupOptions, Revoked
from bench.scenario.model import Keys
from bench.verify.group import overlaps
from conformance.clients import Clients
from conformance.group_client import GroupMember, group_history, pump_members, require_group_events, stop_members
from conformance.group_features import heartbeat
from conformance.group_steps import (
    BackgroundProducer,
    acked_ends,
    admin_committed,
    harness_errors,
    held_all_at,
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

SETTLE_S = 20.0        # as C8: a group settles after a join or a leave (a JVM starts slower than librdkafka)
SESSION_MS = 6000      # as G6 / O4 (the broker's default group.min.session.timeout.ms)
DRAIN_S = 20.0         # the members commit everything acked after the producer stopped


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", selected_clients(metafunc.config), ids=str)


def _views(members: list[GroupMember]) -> dict[str, list[int]]:
    return {m.name: sorted(m.owned()) for m in members}


def _wait_settled(members: list[GroupMember], partitions: int, what: str) -> float:
    ok, secs = pump_members(members, lambda: settled(members, partitions), SETTLE_S)
    harness_errors(members)
    expect(ok, f"{what}: the group did not settle within {SETTLE_S:g} s", _views(members),
           f"disjoint non-empty assignments covering all {partitions} partitions")
    return secs


@pytest.mark.check("C11", "through a client: a cooperative rebalance revokes only the partitions that move")
def test_c11_cooperative_incremental(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                                     client: str) -> None:
    require_group_events(client, "cooperative-sticky")
    topic, group = clients.create_topic(4), names.group("c11")
    opts = GroupOptions(assignor="cooperative-sticky", heartbeat_interval_ms=heartbeat(client)[0])
    a = member(client, "a", 1, broker, topic, group, opts)
    b = member(client, "b", 2, broker, topic, group, opts)
    try:
        joined(a)
        _wait_settled([a], 4, "a alone")
        before, since = a.owned(), len(a.events)
        joined(b, [a])
        secs = _wait_settled([a, b], 4, "after b joined")
    finally:
        stop_members([a, b])
    moved = b.owned()
    revoked = [e for e in a.events[since:] if isinstance(e, Revoked)]
    check.observe(a_before=sorted(before), a_after=sorted(a.owned()), b_after=sorted(moved), settle_s=round(secs, 3),
                  a_revocations=[(sorted(e.partitions), e.lost) for e in revoked])
    expect_eq([sorted(e.partitions) for e in revoked if e.lost], [], "a's partitions reported lost")
    expect_eq(set().union(*(set(e.partitions) for e in revoked)), set(moved),
              "partitions revoked from a (only those moved to b)")
    expect_eq(a.owned(), before - moved, "a's partitions after the rebalance (it kept the rest)")


def _first_read(m: GroupMember, partition: int) -> int | None:
    return next((o for p, o, _a, _b in m.reads() if p == partition), None)


def _dense_from(reads: list[int]) -> bool:
    return reads == list(range(reads[0], reads[0] + len(reads))) if reads else True


@pytest.mark.check("C12", "through a client: a member killed with SIGKILL: the survivor takes its partitions "
                          "within twice session.timeout.ms and resumes at its committed offsets")
def test_c12_killed_member(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                           security_conf: dict[str, str], client: str) -> None:
    require_group_events(client, "range")
    topic, group = clients.create_topic(2), names.group("c12")
    opts = GroupOptions(assignor="range", commit="batch", auto_commit=False, session_timeout_ms=SESSION_MS,
                        heartbeat_interval_ms=heartbeat(client)[0])
    victim, survivor = member(client, "victim", 1, broker, topic, group, opts), \
        member(client, "survivor", 2, broker, topic, group, opts)
    producer = BackgroundProducer(client, broker, topic, security_conf, rate=100.0, keys=Keys("round_robin", 20, 1.2))
    members = [victim, survivor]
    admin: dict[int, int] = {}
    try:
        joined(victim)
        joined(survivor, [victim])
        _wait_settled(members, 2, "two members")
        lost = victim.owned()
        producer.start()
        ok, _ = pump_members(members, lambda: len([c for c in victim.commits() if c.ok]) >= 3, 15.0)
        harness_errors(members, producer)
        require_effective(ok, "commits by the member to kill", len(victim.commits()), ">= 3 within 15 s")
        victim.kill()
        kill_ns, limit = victim.killed_ns or 0, 2 * SESSION_MS / 1000

        def taken_over() -> bool:   # the victim's in-flight commits have landed 1 s after the kill; the
            if not admin and time.monotonic_ns() - kill_ns > 1e9:   # survivor has none of its partitions yet
                admin.update(admin_committed(clients.admin(), group, topic, 2))
            return bool(admin) and survivor.owned() == {0, 1}

        ok, _ = pump_members([survivor], taken_over, limit + 5)
        harness_errors([survivor], producer)
        at = held_all_at(survivor, {0, 1}, kill_ns)
        took = None if at is None else at - kill_ns
        run = producer.stop()
        ends = acked_ends(run)
        ok_drain, _ = pump_members([survivor], lambda: all(progress([survivor]).get(p, 0) >= e for p, e in ends.items()
                                                             if p in lost) and bool(ends), DRAIN_S)
    finally:
        producer.close()
        stop_members(members)
    harness_errors([survivor])
    took_s = None if took is None else round(took / 1e9, 3)
    victim_commits = victim.last_committed()
    check.observe(victim_partitions=sorted(lost), victim_committed=victim_commits, committed_after_kill=admin,
                  reassigned_after_s=took_s, session_timeout_ms=SESSION_MS, acked_ends=ends,
                  survivor_first_reads={p: _first_read(survivor, p) for p in sorted(lost)})
    expect(ok and took is not None and took / 1e9 <= limit, "the killed member's partitions reassigned",
           f"survivor holds {sorted(survivor.owned())} after {took_s} s",
           f"both partitions on the survivor within {limit:g} s (2 x session.timeout.ms)")
    for p in sorted(lost):
        expect(admin.get(p, 0) >= victim_commits.get(p, 0), f"p{p}: committed offset after the kill",
               admin.get(p), f">= {victim_commits.get(p, 0)} (the victim's last acknowledged commit)")
        expect_eq(_first_read(survivor, p), admin.get(p, 0), f"p{p}: first offset the survivor read of the "
                  "killed member's partition (its committed offset: nothing skipped, nothing before it re-read)")
        offs = [o for q, o, _a, _b in survivor.reads() if q == p]
        expect(_dense_from(offs) and (not offs or offs[-1] + 1 == ends.get(p, 0)), f"p{p}: the survivor's reads",
               f"{offs[:3]}..{offs[-3:]}", f"dense from the committed offset to the acked end {ends.get(p)}")
    expect(ok_drain, "the survivor committed every acked record of the killed member's partitions",
           progress([survivor]), f">= {ends}")


def _step(client: str, broker: BrokerInfo, topic: str, group: str, members: list[GroupMember],
          live: list[GroupMember]) -> dict[str, Callable[[str], None]]:
    opts = GroupOptions(commit="batch", auto_commit=False, heartbeat_interval_ms=heartbeat(client)[0])

    def join_(name: str) -> None:
        m = member(client, name, len(members) + 1, broker, topic, group, opts)
        members.append(m)
        live.append(m)
        joined(m, live[:-1])

    def leave(name: str) -> None:
        m = next(x for x in live if x.name == name)
        live.remove(m)
        left(m, live)

    return {"join": join_, "leave": leave}


@pytest.mark.check("C13", "through a client: churn keeps order and processes nothing twice")
def test_c13_churn(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                   security_conf: dict[str, str], client: str) -> None:
    require_group_events(client)
    partitions = 4
    topic, group = clients.create_topic(partitions), names.group("c13")
    members: list[GroupMember] = []
    live: list[GroupMember] = []
    act = _step(client, broker, topic, group, members, live)
    producer = BackgroundProducer(client, broker, topic, security_conf, rate=100.0, keys=Keys("round_robin", 20, 1.2))
    steps = [("join", "a"), ("join", "b"), ("join", "c"), ("leave", "a"), ("join", "d"), ("leave", "b")]
    settle: dict[str, float] = {}
    try:
        producer.start()
        for kind, name in steps:
            act[kind](name)
            harness_errors(members, producer)
            settle[f"{kind} {name}"] = round(_wait_settled(live, partitions, f"after '{kind} {name}'"), 3)
        run = producer.stop()
        ends = acked_ends(run)
        drained, _ = pump_members(live, lambda: bool(ends) and all(progress(members).get(p, 0) >= e
                                                                   for p, e in ends.items()), DRAIN_S)
    finally:
        producer.close()
        stop_members(members)
    harness_errors(members)
    found = overlaps(holdings(members), limit=5)
    failed = [f"{m.name}: {c.error}" for m in members for c in m.commits() if not c.ok]
    reads = Counter((p, o) for m in members for p, o, _a, _b in m.reads())
    twice = sorted(k for k, n in reads.items() if n > 1)
    report, info = group_history(run, members, broker.bootstrap, topic, security_conf)
    check.observe(settle_s=settle, acked=run.acked(), per_member={m.name: len(m.reads()) for m in members},
                  failed_commits=failed[:5], read_twice=len(twice), history=report.to_dict().get("counts"),
                  consumer_reads=info.get("consumer_reads"))
    expect(not found, "partitions held by two members at once (by the members' event times)", found, "never")
    expect(drained, "the group committed every acked record after the churn", progress(members), f">= {ends}")
    expect(report.ok, "history", report.summary(), "clean (no lost, duplicate, reordered or skipped record)")
    expect(not twice or bool(failed), "records processed twice although every commit succeeded", twice[:5], "none")
