"""Group options through a client (issue 15, C11–C17): the capability table's N/A reasons, the event helpers
the checks wait on, and a driver refusing an option it cannot honour (exit 2, the field named)."""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest

from bench.drivers.events import Assigned, Committed, GroupOptions, Revoked
from bench.drivers.external import GROUP_OPTIONS, ExternalWorker, worker_command
from bench.load.worker import WorkerSpec
from bench.scenario.model import Keys, MessageSize, Payload
from bench.verify.group import Holding
from conformance.group_client import GroupMember
from conformance.group_features import GROUP_FEATURES, require_feature
from conformance.group_steps import acked_ends, held_all_at, holdings, progress, settled
from conformance.through_client import ClientRun
from conformance.verdicts import NotApplicable


@pytest.mark.parametrize(("client", "words"), [
    ("kafka-go", "the kafka-go driver does not honour"),   # it has group events (ConsumerGroup), not the options
    ("librdkafka", "in-process librdkafka worker"),
])
def test_features_na_with_the_reason(client: str, words: str) -> None:
    with pytest.raises(NotApplicable, match=rf"N/A \(client {client}\): .*{words}"):
        require_feature(client, "static")
    for c in ("java", "franz-go"):
        for f in ("static", "offset_reset", "kip848"):
            require_feature(c, f)
    for c, features in GROUP_FEATURES.items():
        for f in features:
            require_feature(c, f)


@pytest.mark.parametrize(("client", "words"), [
    ("franz-go", r"franz-go v1\.22\.3's group commits carry no caller metadata"),
    ("kafka-go", r"kafka-go v0\.4\.51's ConsumerGroup commits carry no metadata"),
    ("librdkafka", "in-process librdkafka worker"),
])
def test_commit_metadata_na_names_the_library(client: str, words: str) -> None:
    with pytest.raises(NotApplicable, match=rf"N/A \(client {client}\): .*{words}"):
        require_feature(client, "commit_metadata")
    for c in ("java", "sarama", "confluent-kafka-go"):
        require_feature(c, "commit_metadata")


def test_a_client_with_events_but_not_the_option_is_na(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(GROUP_FEATURES, "franz-go", frozenset({"static"}))
    with pytest.raises(NotApplicable, match=r"franz-go driver does not honour KIP-848"):
        require_feature("franz-go", "kip848")


def _member(name: str, events: list[Any], **kw: Any) -> GroupMember:
    m = GroupMember("java", name, 1, "x:1", "t", "g", GroupOptions())
    m.events = events
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def test_helpers_read_the_events() -> None:
    a = _member("a", [Assigned((0, 1), 1, 0, 10), Committed({0: 4}, True, None, 4, 11),
                      Committed({0: 9}, False, "RebalanceInProgressException", 9, 12),
                      Revoked((1,), 1, False, 9, 20)], stopped_ns=30)
    b = _member("b", [Assigned((), 1, 0, 12), Assigned((1,), 2, 0, 25), Committed({1: 3}, True, None, 3, 26)])
    assert progress([a, b]) == {0: 4, 1: 3}          # a failed commit is no progress
    assert settled([a, b], 2) and not settled([a, b], 3)
    held = holdings([a, b])
    assert Holding("a", 0, 10, 30) in held          # a stopped member holds nothing after its stop
    assert Holding("a", 1, 10, 20) in held and Holding("b", 1, 25, None) in held
    assert held_all_at(b, {1}, 0) == 25 and held_all_at(b, {0, 1}, 0) is None
    run = ClientRun("java", producers={0: {"verify": {"acks": [[0, 0, 0, 0, 1], [1, 5, 0, 1, 2], [0, 1, 0, 2, 3]]}}})
    assert acked_ends(run) == {0: 2, 1: 6}


def _spec(opts: GroupOptions) -> WorkerSpec:
    return WorkerSpec(role="consumer", index=0, bootstrap="127.0.0.1:9", topic="t", client_config={},
                      warmup_ns=0, duration_ns=10**9, message_size=MessageSize("fixed", 64, 64, 64),
                      payload=Payload("random", 0.0, None), keys=Keys("none", None, 1.2), group="g", seed=0,
                      verify=True, extra={GROUP_OPTIONS: opts})


def _unchecked(**kw: object) -> GroupOptions:
    """Options the Python side would refuse, to see the driver refuse them too."""
    o = GroupOptions()
    for k, v in kw.items():
        object.__setattr__(o, k, v)
    return o


@pytest.mark.integration
@pytest.mark.parametrize(("client", "opts", "words"), [
    ("sarama", GroupOptions(instance_id="a"), "group_options"),
    ("franz-go", _unchecked(auto_offset_reset="smallest"), "auto_offset_reset"),
    ("franz-go", _unchecked(group_protocol="consumer", assignor="range"), "group_protocol"),
    ("java", _unchecked(group_protocol="next"), "group_protocol"),
    ("java", _unchecked(group_protocol="consumer", session_timeout_ms=6000), "group_protocol"),
    ("franz-go", GroupOptions(commit="batch", commit_metadata="m"), "commit_metadata"),
    ("kafka-go", GroupOptions(commit="batch", commit_metadata="m"), "commit_metadata"),
    ("kafka-go", GroupOptions(instance_id="a"), "instance_id"),
])
def test_a_driver_refuses_an_option_it_cannot_honour(client: str, opts: GroupOptions, words: str) -> None:
    out: queue.Queue[tuple[Any, ...]] = queue.Queue()
    w = ExternalWorker(_spec(opts), client, worker_command(client, None), out)
    w.start()
    w.join(timeout=30)
    errors: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and w.exitcode is None:
        time.sleep(0.05)
    while not out.empty():
        msg = out.get()
        if msg[0] == "error":
            errors.append(str(msg[3]))
    assert w.exitcode == 2, (w.exitcode, errors, w.stderr_tail())
    assert any(words in e for e in errors), errors
