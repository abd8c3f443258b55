"""Driver protocol v2 (docs/drivers.md, "Protocol v2"), pure: the group options in the spec, the event
lines' parsing, the coordinator's version checks (a fake driver process), and the events' use: a member's
reads cut at its rebalances for the history checker, and who held which partition when."""

from __future__ import annotations

import json
import queue
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bench.drivers.events import ASSIGNORS, Assigned, Committed, EventError, GroupOptions, Revoked, parse_event
from bench.drivers.external import GROUP_OPTIONS, ExternalWorker, spec_line, spec_protocol
from bench.load.worker import WorkerSpec
from bench.scenario.model import Keys, MessageSize, Payload
from bench.verify.group import Holding, member_polls, overlaps, ownership
from bench.verify.history import Send, check
from conformance.group_client import require_group_events
from conformance.verdicts import NotApplicable


def _spec(**extra: Any) -> WorkerSpec:
    return WorkerSpec(role="consumer", index=0, bootstrap="127.0.0.1:1", topic="t", client_config={},
                      warmup_ns=0, duration_ns=10**9, message_size=MessageSize("fixed", 64, 64, 64),
                      payload=Payload("random", 0.0, None), keys=Keys("none", None, 1.2), group="g",
                      verify=True, extra=extra)


# ---- spec ----------------------------------------------------------------------------------------------

def test_v1_spec_unless_group_options() -> None:
    line = spec_line(_spec())
    assert line["protocol"] == 1 and "group_options" not in line and spec_protocol(_spec()) == 1
    opts = GroupOptions(assignor="cooperative-sticky", commit="batch", auto_commit=False, max_records=7)
    v2 = spec_line(_spec(**{GROUP_OPTIONS: opts}))
    assert v2["protocol"] == 2
    assert v2["group_options"] == {"assignor": "cooperative-sticky", "auto_commit": False, "commit": "batch",
                                   "session_timeout_ms": None, "max_records": 7, "stop_at_ns": None,
                                   "instance_id": None, "auto_offset_reset": None, "group_protocol": None,
                                   "heartbeat_interval_ms": None, "commit_metadata": None}
    assert json.loads(json.dumps(v2)) == v2


@pytest.mark.parametrize(("kw", "words"), [
    ({"assignor": "sticky-ish"}, "group.assignor"),
    ({"commit": "async"}, "group.commit"),
    ({"commit": "batch", "auto_commit": True}, "pick one"),
    ({"auto_offset_reset": "smallest"}, "group.auto_offset_reset"),
    ({"group_protocol": "next-gen"}, "group.group_protocol"),
    ({"group_protocol": "consumer", "assignor": "range"}, "broker assigns"),
    ({"group_protocol": "consumer", "session_timeout_ms": 6000}, "broker assigns"),
    ({"instance_id": ""}, "group.instance_id"),
])
def test_group_options_refused(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        GroupOptions(**kw)


# ---- event lines ---------------------------------------------------------------------------------------

def test_parse_events() -> None:
    a = parse_event({"type": "assigned", "partitions": [3, 0], "generation": 4, "reads": 0, "t_ns": 10})
    assert a == Assigned((0, 3), 4, 0, 10)
    r = parse_event({"type": "revoked", "partitions": [1], "generation": None, "lost": True, "reads": 5,
                     "t_ns": 11})
    assert r == Revoked((1,), None, True, 5, 11)
    c = parse_event({"type": "committed", "offsets": {"0": 7, "2": 1}, "ok": True, "error": None, "reads": 7,
                     "t_ns": 12})
    assert isinstance(c, Committed) and c.offsets == {0: 7, 2: 1} and c.ok
    bad = parse_event({"type": "committed", "offsets": {}, "ok": False, "error": "CommitFailedException",
                       "reads": 7, "t_ns": 13})
    assert isinstance(bad, Committed) and bad.error == "CommitFailedException"


@pytest.mark.parametrize(("line", "words"), [
    ({"type": "assigned", "partitions": [0], "reads": 0}, "t_ns"),
    ({"type": "assigned", "partitions": "0", "reads": 0, "t_ns": 1}, "partitions"),
    ({"type": "assigned", "partitions": [-1], "reads": 0, "t_ns": 1}, "partitions"),
    ({"type": "assigned", "partitions": [0], "generation": "1", "reads": 0, "t_ns": 1}, "generation"),
    ({"type": "revoked", "partitions": [0], "reads": 0, "t_ns": 1}, "lost"),
    ({"type": "committed", "offsets": {"x": 1}, "ok": True, "reads": 0, "t_ns": 1}, "offsets"),
    ({"type": "committed", "offsets": {"0": 1}, "ok": False, "error": None, "reads": 0, "t_ns": 1}, "no error"),
    ({"type": "committed", "offsets": {"0": 1}, "ok": True, "reads": True, "t_ns": 1}, "reads"),
    ({"type": "joined", "reads": 0, "t_ns": 1}, "expected one of"),
])
def test_parse_event_refuses(line: dict[str, Any], words: str) -> None:
    with pytest.raises(EventError, match=words):
        parse_event(line)


# ---- the coordinator side, with a fake driver process --------------------------------------------------

FAKE = """
import json, sys, time
spec = json.loads(sys.stdin.readline())
version = {version}
def out(**m):
    sys.stdout.write(json.dumps(m) + "\\n"); sys.stdout.flush()
out(type="hello", protocol=version, now_ns=time.monotonic_ns(), client={{"name": "fake", "version": "0"}})
out(type="assigned", partitions=[0, 1], generation=1, reads=0, t_ns=time.monotonic_ns())
out(type="ready", protocol=version, group_events={events})
out(type="committed", offsets={{"0": 3}}, ok=True, error=None, reads=3, t_ns=time.monotonic_ns())
out(type="revoked", partitions=[1], generation=1, lost=False, reads=3, t_ns=time.monotonic_ns())
out(type="assigned", partitions="oops", generation=2, reads=3, t_ns=time.monotonic_ns())
out(type="result", protocol=version, verify=[[0, 0, 0, 0], [0, 1, 0, 1], [0, 2, 0, 2]], spec_protocol=spec["protocol"])
"""


def _run_fake(tmp_path: Path, spec: WorkerSpec, version: int, events: bool = True) -> list[tuple[Any, ...]]:
    script = tmp_path / "fake_driver.py"
    script.write_text(textwrap.dedent(FAKE.format(version=version, events=events)))
    out: queue.Queue[tuple[Any, ...]] = queue.Queue()
    w = ExternalWorker(spec, "fake", [sys.executable, str(script)], out)
    w.start()
    w.join(timeout=20)
    deadline = time.monotonic() + 5
    got: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        try:
            got.append(out.get(timeout=0.2))
        except queue.Empty:
            if w.exitcode is not None:
                break
    return got


def test_coordinator_takes_v2_events(tmp_path: Path) -> None:
    got = _run_fake(tmp_path, _spec(**{GROUP_OPTIONS: GroupOptions(commit="batch")}), 2)
    kinds = [m[0] for m in got]
    assert kinds == ["event", "ready", "event", "event", "error", "result"], got
    events = [m[3] for m in got if m[0] == "event"]
    assert isinstance(events[0], Assigned) and events[0].partitions == (0, 1)
    assert isinstance(events[1], Committed) and events[1].offsets == {0: 3}
    assert isinstance(events[2], Revoked) and events[2].partitions == (1,)
    assert "bad assigned line" in got[4][3] and "partitions" in got[4][3]
    assert got[-1][3]["spec_protocol"] == 2 and got[-1][3]["protocol"] == 2


def test_coordinator_refuses_a_version_other_than_the_specs(tmp_path: Path) -> None:
    # a v1 spec answered in v2: refused at hello (the process is killed)
    got = _run_fake(tmp_path, _spec(), 2)
    assert got[0][0] == "error" and "its spec asked for 1" in got[0][3]
    # a v2 verify consumer whose ready says no group events
    got = _run_fake(tmp_path, _spec(**{GROUP_OPTIONS: GroupOptions()}), 2, events=False)
    assert any(m[0] == "error" and "group_events" in m[3] for m in got), got


# ---- the events' use -----------------------------------------------------------------------------------

def _reads(*pos: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    return [(p, o, 0, 10 * p + o) for p, o in pos]


def test_member_polls_cut_at_rebalances_and_feed_the_history_checker() -> None:
    # p0 offsets 0..3, a rebalance (generation 2), then p0 again from the committed offset 2
    reads = _reads((0, 0), (0, 1), (0, 2), (0, 3), (0, 2), (0, 3))
    events = [Assigned((0,), 1, 0, 1), Committed({0: 2}, True, None, 2, 2),
              Revoked((0,), 1, False, 4, 3), Assigned((0,), 2, 4, 4)]
    polls = member_polls("m", reads, events)
    assert [(p.index, p.generation, p.rebalance_before, len(p.records)) for p in polls] == [
        (0, 1, True, 4), (1, 2, True, 2)]
    sends = [Send("0", 10 * p + o, f"0:{10 * p + o}", p, o, "ok") for p, o in ((0, 0), (0, 1), (0, 2), (0, 3))]
    assert check(sends, polls).ok       # the rewind follows a rebalance: allowed
    one = member_polls("m", reads, [])  # the same reads without the events: one poll, a rewind
    assert len(one) == 1 and not check(sends, one).ok


def test_ownership_and_overlaps() -> None:
    a = [Assigned((0, 1), 1, 0, 10), Revoked((1,), 1, False, 0, 20)]
    b = [Assigned((), 1, 0, 12), Assigned((1,), 2, 0, 25)]
    held = ownership("a", a) + ownership("b", b)
    assert Holding("a", 1, 10, 20) in held and Holding("a", 0, 10, None) in held and Holding("b", 1, 25, None) in held
    assert overlaps(held) == []
    early = ownership("a", a) + ownership("b", [Assigned((1,), 2, 0, 15)])
    assert overlaps(early) and "p1: b" in overlaps(early)[0]
    # events at or after the cut-off are not judged
    assert ownership("b", [Assigned((1,), 2, 0, 15)], until_ns=15) == []


# ---- which clients have the events ---------------------------------------------------------------------

@pytest.mark.parametrize(("client", "assignor", "words"), [
    ("librdkafka", None, "in-process librdkafka worker reports no assignment/commit events"),
    ("confluent-kafka-go", "sticky", "librdkafka has no eager sticky assignor"),
    ("kafka-go", "sticky", "range, roundrobin or rack affinity only"),
    ("kafka-go", "cooperative-sticky", "only the eager rebalance protocol"),
])
def test_group_checks_na_with_the_clients_reason(client: str, assignor: str | None, words: str) -> None:
    with pytest.raises(NotApplicable, match=rf"N/A \(client {client}\): .*{words}"):
        require_group_events(client, assignor)
    offered = {"java": ASSIGNORS, "franz-go": ASSIGNORS, "sarama": ASSIGNORS,
               "confluent-kafka-go": ("range", "roundrobin", "cooperative-sticky"), "kafka-go": ("range", "roundrobin")}
    for c, assignors in offered.items():       # the clients with protocol v2 group events, and their assignors
        require_group_events(c)
        for a in assignors:
            require_group_events(c, a)
