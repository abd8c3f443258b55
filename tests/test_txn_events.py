"""Driver protocol v2, transactional mode (docs/drivers.md, "Protocol v2: transactions"), pure: the spec's
transactions and isolation_level, the txn / txn_held lines, the coordinator reading them from a fake
driver process, and their mapping to the history checker's transactions."""

from __future__ import annotations

import json
import queue
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bench.drivers.events import EventError
from bench.drivers.external import ISOLATION, TRANSACTIONS, ExternalWorker, spec_line, spec_protocol
from bench.drivers.txn_events import ConsumeTransform, TxnEnded, TxnHeld, TxnOptions, parse_txn_event
from bench.errors import ConfigError
from bench.load.worker import WorkerSpec
from bench.scenario.model import Keys, MessageSize, Payload
from bench.verify.driver_txns import driver_txns
from bench.verify.history import Poll, check
from conformance.txn_client import require_txn
from conformance.verdicts import NotApplicable


def _spec(role: str = "producer", **extra: Any) -> WorkerSpec:
    return WorkerSpec(role=role, index=0, bootstrap="127.0.0.1:1", topic="t", client_config={},
                      warmup_ns=0, duration_ns=10**9, message_size=MessageSize("fixed", 64, 64, 64),
                      payload=Payload("random", 0.0, None), keys=Keys("none", None, 1.2),
                      group="g" if role == "consumer" else None, verify=True, extra=extra)


# ---- spec ----------------------------------------------------------------------------------------------

def test_transactions_and_isolation_make_a_v2_spec() -> None:
    assert spec_protocol(_spec()) == 1 and "transactions" not in spec_line(_spec())
    opts = TxnOptions("tx-1", messages=10, abort_ratio=0.5, hold="commit", timeout_ms=20_000)
    line = spec_line(_spec(**{TRANSACTIONS: opts}))
    assert line["protocol"] == 2 and spec_protocol(_spec(**{TRANSACTIONS: opts})) == 2
    assert line["transactions"] == {"transactional_id": "tx-1", "messages": 10, "abort_ratio": 0.5, "plan": [],
                                    "hold": "commit", "timeout_ms": 20_000, "consume": None}
    ctp = TxnOptions("tx-2", messages=5, plan=("commit", "abort"), consume=ConsumeTransform("in", "g", 40))
    assert spec_line(_spec(**{TRANSACTIONS: ctp}))["transactions"]["consume"] == {
        "topic": "in", "group": "g", "records": 40}
    iso = spec_line(_spec("consumer", **{ISOLATION: "read_committed"}))
    assert iso["protocol"] == 2 and iso["isolation_level"] == "read_committed"
    assert json.loads(json.dumps(line)) == line
    with pytest.raises(ConfigError, match="isolation_level 'serializable'"):
        spec_line(_spec("consumer", **{ISOLATION: "serializable"}))


def test_end_of_follows_the_plan_then_the_abort_ratio() -> None:
    assert [TxnOptions("x", abort_ratio=0.5).end_of(k) for k in range(4)] == ["commit", "abort"] * 2
    assert [TxnOptions("x", abort_ratio=0.25).end_of(k) for k in range(8)].count("abort") == 2
    assert [TxnOptions("x").end_of(k) for k in range(3)] == ["commit"] * 3
    assert [TxnOptions("x", plan=("abort",), abort_ratio=1.0).end_of(k) for k in range(3)] == ["abort"] * 3
    assert [TxnOptions("x", plan=("commit", "abort")).end_of(k) for k in range(3)] == ["commit", "abort", "commit"]


@pytest.mark.parametrize(("kw", "words"), [
    ({"transactional_id": ""}, "transactional_id"),
    ({"messages": 0}, "messages"),
    ({"abort_ratio": 1.5}, "abort_ratio"),
    ({"plan": ("commit", "rollback")}, "rollback"),
    ({"hold": "later"}, "later"),
    ({"hold": "commit", "consume": ConsumeTransform("in", "g", 1)}, "hold"),
])
def test_txn_options_refused(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        TxnOptions(**{"transactional_id": "x", **kw})
    with pytest.raises(ValueError, match="records"):
        ConsumeTransform("in", "g", 0)


# ---- event lines ---------------------------------------------------------------------------------------

END = {"type": "txn", "txn": 1, "end": "commit", "outcome": "committed", "error": None, "seq_from": 10,
       "seq_to": 20, "acked": 10, "begin_ns": 5, "end_ns": 6, "t_ns": 7, "input": {"0": [3, 8]}}


def test_parse_txn_events() -> None:
    e = parse_txn_event(END)
    assert e == TxnEnded(1, "commit", "committed", None, 10, 20, 10, 5, 6, 7, {0: (3, 8)})
    h = parse_txn_event({"type": "txn_held", "txn": 2, "seq_from": 20, "seq_to": 30, "acked": 10, "t_ns": 9})
    assert h == TxnHeld(2, 20, 30, 10, 9)
    fenced = parse_txn_event({**END, "outcome": "unknown", "error": "ProducerFencedException: newer epoch"})
    assert isinstance(fenced, TxnEnded) and fenced.outcome == "unknown"


@pytest.mark.parametrize(("patch", "words"), [
    ({"outcome": "maybe"}, "outcome"),
    ({"end": "rollback"}, "end"),
    ({"outcome": "unknown"}, "no error"),
    ({"seq_to": 5}, "seq_from <= seq_to"),
    ({"acked": 11}, "acked"),
    ({"t_ns": -1}, "t_ns"),
    ({"input": {"0": [8, 3]}}, "input"),
    ({"error": 3}, "error"),
    ({"type": "txn_begun"}, "expected one of"),
])
def test_parse_txn_event_refuses(patch: dict[str, Any], words: str) -> None:
    with pytest.raises(EventError, match=words):
        parse_txn_event({**END, **patch})


# ---- the coordinator side, with a fake driver process --------------------------------------------------

FAKE = """
import json, sys, time
spec = json.loads(sys.stdin.readline())
def out(**m):
    sys.stdout.write(json.dumps(m) + "\\n"); sys.stdout.flush()
out(type="hello", protocol=2, now_ns=time.monotonic_ns(), client={"name": "fake", "version": "0"})
out(type="ready", protocol=2)
out(type="txn", txn=0, end="commit", outcome="committed", error=None, seq_from=0, seq_to=2, acked=2,
    begin_ns=1, end_ns=2, t_ns=3, input={})
out(type="txn_held", txn=1, seq_from=2, seq_to=3, acked=1, t_ns=4)
out(type="txn", txn=1, end="commit", outcome="sure", seq_from=2, seq_to=3, acked=1, begin_ns=1, end_ns=2, t_ns=3)
out(type="result", protocol=2, transactions=spec["transactions"])
"""


def test_coordinator_takes_txn_events(tmp_path: Path) -> None:
    script = tmp_path / "fake_driver.py"
    script.write_text(textwrap.dedent(FAKE))
    out: queue.Queue[tuple[Any, ...]] = queue.Queue()
    w = ExternalWorker(_spec(**{TRANSACTIONS: TxnOptions("tx", hold="commit")}), "fake",
                       [sys.executable, str(script)], out)
    w.start()
    w.join(timeout=20)
    got: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            got.append(out.get(timeout=0.2))
        except queue.Empty:
            if w.exitcode is not None:
                break
    assert [m[0] for m in got] == ["ready", "event", "event", "error", "result"], got
    assert isinstance(got[1][3], TxnEnded) and isinstance(got[2][3], TxnHeld)
    assert "bad txn line" in got[3][3] and "outcome" in got[3][3]
    assert got[-1][3]["transactions"]["transactional_id"] == "tx"


# ---- mapping to the history checker --------------------------------------------------------------------

def _ended(k: int, end: str, outcome: str, a: int, b: int, error: str | None = None) -> TxnEnded:
    return TxnEnded(k, end, outcome, error, a, b, b - a, 100 * k, 100 * k + 50, 100 * k + 60, {})  # type: ignore[arg-type]


def test_driver_txns_and_the_history_checker() -> None:
    # producer 0: txn 0 committed (seq 0, 1 at offsets 0, 1), txn 1 aborted (2, 3 at 2, 3; marker at 4),
    # txn 2 held then fenced (seq 4 at 6); seq 5 failed outside any reported transaction
    result = {"verify": {"acks": [[0, o, 0, s, 1000 + s] for s, o in ((0, 0), (1, 1), (2, 2), (3, 3), (4, 6))],
                         "failed": [[0, 5, "ProducerFencedException"]], "unacked_seq_from": None, "sent": 6}}
    events = [_ended(0, "commit", "committed", 0, 2), _ended(1, "abort", "aborted", 2, 4), TxnHeld(2, 4, 5, 1, 1),
              _ended(2, "commit", "unknown", 4, 5, "ProducerFencedException: fenced")]
    txns = driver_txns(0, result, events)
    assert [(t.id, t.outcome, [s.seq for s in t.sends]) for t in txns] == [
        ("p0/0", "committed", [0, 1]), ("p0/1", "aborted", [2, 3]), ("p0/2", "unknown", [4]),
        ("p0/unreported", "unknown", [5])]
    assert txns[0].commit_ns == 50 and txns[1].commit_ns is None
    final = {0: [(0, "0:0"), (1, "0:1")]}
    assert check([], [Poll("c", 0, [(0, 0, "0:0"), (0, 1, "0:1")])], final, txns=txns, allow_gaps=True).ok
    # read_committed reading an aborted record: a precommitted read; a committed record never read: lost
    bad = check([], [Poll("c", 0, [(0, 0, "0:0"), (0, 2, "0:2")])], {0: [(0, "0:0"), (2, "0:2")]},
                txns=txns, allow_gaps=True)
    assert not bad.ok and bad.precommitted == 1 and bad.lost + bad.unseen >= 1
    # read_uncommitted may read it
    assert check([], [Poll("u", 0, [(0, o, f"0:{o}") for o in range(4)], isolation="read_uncommitted")], final,
                 txns=txns, allow_gaps=True).ok


@pytest.mark.parametrize(("client", "consume", "words"), [
    ("kafka-go", False, "kafka-go has no transactions"),
    ("confluent-kafka-go", False, "no protocol v2 transactional mode yet"),
    ("librdkafka", False, "in-process librdkafka worker"),
    ("sarama", True, "no consume-transform-produce yet"),
])
def test_txn_checks_na_with_the_clients_reason(client: str, consume: bool, words: str) -> None:
    with pytest.raises(NotApplicable, match=rf"N/A \(client {client}\): .*{words}"):
        require_txn(client, consume=consume)
    for c in ("java", "franz-go"):
        require_txn(c, consume=True)
    require_txn("sarama")
