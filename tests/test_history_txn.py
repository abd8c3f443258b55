"""Unit tests of the transactional kinds of bench.verify.history on synthetic histories (no broker):
precommitted-read, the int- kinds, G0 and G1c; and that clean transactional histories raise none."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.verify.cycles import dependencies, shortest_cycle, strongly_connected
from bench.verify.history import AnomalyKind, HistoryReport, Poll, Send, Txn, check
from bench.verify.model import TOLERATED_BY_DEFAULT, TXN_KINDS, Dep, Outcome
from bench.verify.txn import fold, version_order

K = AnomalyKind


@dataclass
class Entry:
    """One offset of a partition's log: a record (value) or a transaction marker (None)."""

    value: str | None
    state: str  # "visible", "pending", "aborted" (aborted records and markers are never visible)


@dataclass
class TxnHistory:
    """Plain sends/polls, transactions, the raw logs, and the clock."""

    sends: list[Send] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    txns: list[Txn] = field(default_factory=list)
    logs: dict[int, list[Entry]] = field(default_factory=dict)
    t: int = 0

    def tick(self) -> int:
        self.t += 1000
        return self.t

    def append(self, p: int, value: str | None, state: str) -> int:
        self.logs.setdefault(p, []).append(Entry(value, state))
        return len(self.logs[p]) - 1

    def final(self) -> dict[int, list[tuple[int, str | bytes]]]:
        """The final read_committed read: visible records only (markers and aborted ones skipped)."""
        return {p: [(o, e.value) for o, e in enumerate(log) if e.state == "visible" and e.value is not None]
                for p, log in self.logs.items()}

    def check(self, **kw: object) -> HistoryReport:
        return check(self.sends, self.polls, self.final(), txns=self.txns, allow_gaps=True,
                     **kw)  # type: ignore[arg-type]


class Worker:
    """A transactional producer with its consumer (consume-transform-produce), reading in order."""

    def __init__(self, name: str) -> None:
        self.name, self.seq, self.polls, self.k = name, 0, 0, 0
        self.pos: dict[int, int] = {}

    def poll(self, h: TxnHistory, rng: random.Random, parts: list[int], isolation: str = "read_committed",
             ) -> Poll:
        """Read visible records from the position, stopping at the first open transaction's record
        (the last stable offset) and after a random number of records."""
        recs: list[tuple[int, int, str | bytes | None]] = []
        for p in parts:
            log, o, n = h.logs.get(p, []), self.pos.get(p, 0), rng.randint(1, 6)
            while o < len(log) and log[o].state != "pending" and n:
                e = log[o]
                if e.state == "visible" and e.value is not None:
                    recs.append((p, o, e.value.encode() if rng.random() < 0.2 else e.value))
                    n -= 1
                o += 1
            self.pos[p] = o
        q = Poll(f"{self.name}-c", self.polls, recs, 1, t_ns=h.tick(), isolation=isolation)  # type: ignore[arg-type]
        self.polls += 1 + (rng.random() < 0.2)
        return q

    def send(self, h: TxnHistory, p: int, state: str) -> Send:
        v = f"{self.name}-{self.seq}"
        s = Send(self.name, self.seq, v, p, h.append(p, v, state), "ok", h.tick())
        self.seq += 1
        return s


@dataclass
class Open:
    """A transaction under way."""

    sends: list[Send] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)


def txn_op(h: TxnHistory, w: Worker, t: Open, rng: random.Random, partitions: int) -> None:
    """One poll (read_committed: up to the last stable offset) or one send of an open transaction."""
    if rng.random() < 0.5:
        t.polls.append(w.poll(h, rng, rng.sample(range(partitions), rng.randint(1, partitions))))
    else:
        t.sends.append(w.send(h, rng.randrange(partitions), "pending"))


def end_txn(h: TxnHistory, w: Worker, t: Open, rng: random.Random, p_abort: float, p_unknown: float) -> None:
    """Commit or abort: the records become visible or aborted, a marker per partition written."""
    commit = rng.random() >= p_abort
    commit_ns = h.tick() if commit else None
    for s in t.sends:
        assert s.partition is not None and s.offset is not None
        h.logs[s.partition][s.offset].state = "visible" if commit else "aborted"
    for p in sorted({s.partition for s in t.sends if s.partition is not None}):
        h.append(p, None, "aborted")  # the commit/abort marker takes an offset
    outcome: Outcome = "committed" if commit else "aborted"
    if rng.random() < p_unknown:
        outcome = "unknown"
    h.txns.append(Txn(f"{w.name}/{w.k}", outcome, t.sends, t.polls, commit_ns))
    w.k += 1


def make_txn_history(rng: random.Random, workers: int = 3, partitions: int = 3, txns: int = 25,
                     p_abort: float = 0.25, p_unknown: float = 0.1, concurrent: bool = False) -> TxnHistory:
    """A clean history: transactions one at a time (or, ``concurrent``, several open at once, as
    Kafka allows), plain sends and a plain read_committed consumer between their steps; then
    everything is committed and read by the final read."""
    h = TxnHistory(logs={p: [] for p in range(partitions)})
    ws = [Worker(f"w{i}") for i in range(workers)]
    plain, reader = Worker("plain"), Worker("reader")
    open_: dict[int, Open] = {}
    done = 0
    while done < txns or open_:
        if concurrent or not open_:
            if rng.random() < 0.3:
                h.sends.append(plain.send(h, rng.randrange(partitions), "visible"))
            if rng.random() < 0.3:
                h.polls.append(reader.poll(h, rng, list(range(partitions))))
        if concurrent:
            i = rng.randrange(workers) if done < txns else next(iter(open_))
        else:
            i = next(iter(open_)) if open_ else rng.randrange(workers)
        t = open_.get(i)
        if t is None:
            t = open_[i] = Open()
            done += 1
        elif rng.random() < 0.3:
            end_txn(h, ws[i], open_.pop(i), rng, p_abort, p_unknown)
            continue
        txn_op(h, ws[i], t, rng, partitions)
    return h


@pytest.fixture
def hist() -> TxnHistory:
    h = make_txn_history(random.Random(11))
    assert {t.outcome for t in h.txns} == {"committed", "aborted", "unknown"}
    assert any(t.polls and t.sends for t in h.txns)
    return h


def kinds(report: HistoryReport) -> list[AnomalyKind]:
    return [a.kind for a in report.anomalies]


def test_clean_transactional_history_is_ok(hist: TxnHistory) -> None:
    report = hist.check()
    assert report.ok and report.anomalies == [], report.summary()
    outcomes = [t.outcome for t in hist.txns]
    assert (report.txns_committed, report.txns_aborted, report.txns_unknown) == (
        outcomes.count("committed"), outcomes.count("aborted"), outcomes.count("unknown"))
    aborted_sends = sum(len(t.sends) for t in hist.txns if t.outcome == "aborted")
    assert aborted_sends > 0 and report.failed == aborted_sends  # aborted: never visible, not lost
    d = report.to_dict()
    json.dumps(d)
    assert d["counts"]["txns_aborted"] == report.txns_aborted and d["counts"]["precommitted"] == 0
    assert "transactions committed" in report.summary()


def test_plain_history_output_is_unchanged() -> None:
    report = check([Send("p", 0, "a", 0, 0)], final_reads={0: [(0, "a")]})
    assert "txns_committed" not in report.to_dict()["counts"] and "transactions" not in report.summary()


# --- each anomaly injected alone -----------------------------------------------------------------------

def new_txn(h: TxnHistory, tid: str, sends: list[tuple[int, str]], outcome: Outcome = "committed",
            polls: list[Poll] = (), commit_ns: int | None = None) -> Txn:  # type: ignore[assignment]
    """Append a transaction's sends (partition, value) at the end of the logs, then its markers."""
    state = {"committed": "visible", "aborted": "aborted", "unknown": "visible"}[outcome]
    out = [Send(tid, i, v, p, h.append(p, v, state), "ok", h.tick()) for i, (p, v) in enumerate(sends)]
    for p in sorted({p for p, _ in sends}):
        h.append(p, None, "aborted")
    t = Txn(tid, outcome, out, polls, commit_ns)
    h.txns.append(t)
    return t


def visible_run(h: TxnHistory, n: int) -> tuple[int, list[tuple[int, str]]]:
    """n consecutive visible records of one partition (consecutive in the version order)."""
    for p, log in h.final().items():
        if len(log) >= n:
            return p, [(o, str(v)) for o, v in log[:n]]
    raise AssertionError("no partition long enough")


def inject_precommitted_aborted(h: TxnHistory) -> dict[str, object]:
    t = new_txn(h, "ab", [(1, "aborted-v")], "aborted")
    o = t.sends[0].offset
    assert o is not None
    h.polls.append(Poll("late", 0, [(1, o, b"aborted-v")], t_ns=h.tick()))  # read_committed by default
    return {"value": "aborted-v", "txn": "ab", "partition": 1, "offsets": (o,), "consumer": "late",
            "poll_index": 0, "producer": "ab", "seq": 0}


def inject_precommitted_own(h: TxnHistory) -> dict[str, object]:
    o = len(h.logs[2])
    q = Poll("own-c", 0, [(2, o, "own-v")], t_ns=h.t + 1)
    new_txn(h, "own", [(2, "own-v")], polls=[q])
    return {"value": "own-v", "txn": "own", "partition": 2, "offsets": (o,), "consumer": "own-c",
            "sources": ("own",)}


def inject_precommitted_early(h: TxnHistory) -> dict[str, object]:
    commit = h.tick() + 5_000
    t = new_txn(h, "slow", [(0, "early-v")], commit_ns=commit)
    o = t.sends[0].offset
    assert o is not None
    h.polls.append(Poll("early", 0, [(0, o, "early-v")], t_ns=commit - 1_000_000))
    return {"value": "early-v", "txn": "slow", "partition": 0, "offsets": (o,), "consumer": "early"}


def inject_int_poll_skip(h: TxnHistory) -> dict[str, object]:
    p, ((o0, v0), _, (o2, v2)) = visible_run(h, 3)
    new_txn(h, "skipper", [], polls=[Poll("sk-c", 0, [(p, o0, v0)]), Poll("sk-c", 1, [(p, o2, v2)])])
    return {"txn": "skipper", "consumer": "sk-c", "partition": p, "poll_index": 1, "prev_poll_index": 0,
            "offsets": (o0, o2), "values": (v0, v2)}


def inject_int_nonmono_poll(h: TxnHistory) -> dict[str, object]:
    p, ((o0, v0), (o1, v1)) = visible_run(h, 2)
    new_txn(h, "rewinder", [], polls=[Poll("rw-c", 0, [(p, o1, v1), (p, o0, v0)])])
    return {"txn": "rewinder", "consumer": "rw-c", "partition": p, "poll_index": 0, "offsets": (o1, o0),
            "values": (v1, v0)}


def inject_int_send_skip(h: TxnHistory) -> dict[str, object]:
    p = 1
    o = len(h.logs[p])
    a = Send("ss", 0, "ss-a", p, h.append(p, "ss-a", "visible"), "ok", h.tick())
    h.sends.append(Send("other", 0, "other-x", p, h.append(p, "other-x", "visible"), "ok", h.tick()))
    b = Send("ss", 1, "ss-b", p, h.append(p, "ss-b", "visible"), "ok", h.tick())
    h.append(p, None, "aborted")
    h.txns.append(Txn("ss", "committed", [a, b]))
    return {"txn": "ss", "producer": "ss", "partition": p, "seq": 1, "prev_seq": 0, "offsets": (o, o + 2),
            "values": ("ss-a", "ss-b")}


def inject_int_nonmono_send(h: TxnHistory) -> dict[str, object]:
    p = 0
    o = len(h.logs[p])
    h.append(p, "ns-b", "visible")
    h.append(p, "ns-a", "visible")
    h.append(p, None, "aborted")
    sends = [Send("ns", 0, "ns-a", p, o + 1, "ok"), Send("ns", 1, "ns-b", p, o, "ok")]
    h.txns.append(Txn("ns", "committed", sends))
    return {"txn": "ns", "producer": "ns", "partition": p, "seq": 1, "prev_seq": 0, "offsets": (o + 1, o),
            "values": ("ns-a", "ns-b")}


def inject_g0(h: TxnHistory) -> dict[str, object]:
    o0, o1 = len(h.logs[0]), len(h.logs[1])
    h.append(0, "a0", "visible")
    h.append(0, "b0", "visible")
    h.append(1, "b1", "visible")
    h.append(1, "a1", "visible")
    for p in (0, 1):
        h.append(p, None, "aborted")
        h.append(p, None, "aborted")
    h.txns.append(Txn("ta", "committed", [Send("pa", 0, "a0", 0, o0), Send("pa", 1, "a1", 1, o1 + 1)]))
    h.txns.append(Txn("tb", "committed", [Send("pb", 0, "b0", 0, o0 + 1), Send("pb", 1, "b1", 1, o1)]))
    return {"txns": ("ta", "tb", "ta"),
            "edges": (Dep("ta", "tb", "ww", 0, (o0, o0 + 1)), Dep("tb", "ta", "ww", 1, (o1, o1 + 1)))}


def inject_g1c(h: TxnHistory) -> dict[str, object]:
    ox, oy = len(h.logs[0]), len(h.logs[1])
    tb = new_txn(h, "tb", [(1, "y")], polls=[Poll("cb", 0, [(0, ox, "x")])])
    ta = new_txn(h, "ta", [(0, "x")], polls=[Poll("ca", 0, [(1, oy, "y")])])
    assert (ta.sends[0].offset, tb.sends[0].offset) == (ox, oy)
    return {"txns": ("ta", "tb", "ta"),
            "edges": (Dep("ta", "tb", "wr", 0, (ox,), "x"), Dep("tb", "ta", "wr", 1, (oy,), "y"))}


INJECTIONS: dict[str, tuple[AnomalyKind, Callable[[TxnHistory], dict[str, object]]]] = {
    "precommitted-read-aborted": (K.PRECOMMITTED_READ, inject_precommitted_aborted),
    "precommitted-read-own-write": (K.PRECOMMITTED_READ, inject_precommitted_own),
    "precommitted-read-before-commit": (K.PRECOMMITTED_READ, inject_precommitted_early),
    "int-poll-skip": (K.INT_POLL_SKIP, inject_int_poll_skip),
    "int-nonmonotonic-poll": (K.INT_NONMONOTONIC_POLL, inject_int_nonmono_poll),
    "int-send-skip": (K.INT_SEND_SKIP, inject_int_send_skip),
    "int-nonmonotonic-send": (K.INT_NONMONOTONIC_SEND, inject_int_nonmono_send),
    "G0": (K.G0, inject_g0),
    "G1c": (K.G1C, inject_g1c),
}


def test_every_transactional_kind_has_an_injection() -> None:
    assert {kind for kind, _ in INJECTIONS.values()} == TXN_KINDS


@pytest.mark.parametrize("name", list(INJECTIONS))
def test_single_injected_anomaly(hist: TxnHistory, name: str) -> None:
    kind, inject = INJECTIONS[name]
    expected = inject(hist)
    report = hist.check()
    assert kinds(report) == [kind], report.summary()
    assert report.anomaly_counts == {kind: 1}
    assert report.ok is (kind in TOLERATED_BY_DEFAULT)
    anomaly = report.anomalies[0]
    for attr, want in expected.items():
        assert getattr(anomaly, attr) == want, (attr, anomaly)
    assert anomaly.message and str(kind) in report.to_dict()["anomaly_counts"]
    json.dumps(report.to_dict())
    strict = hist.check(tolerate=())
    assert kinds(strict) == [kind] and not strict.ok


def test_precommitted_count_and_summary(hist: TxnHistory) -> None:
    inject_precommitted_aborted(hist)
    report = hist.check()
    assert report.precommitted == 1 and report.aborted_reads == 0
    assert "precommitted reads 1" in report.summary() and "FAILED" in report.summary()


def test_cycle_anomaly_serialises_its_edges(hist: TxnHistory) -> None:
    inject_g1c(hist)
    (a,) = hist.check().anomalies
    d = a.to_dict()
    assert d["txns"] == ["ta", "tb", "ta"]
    assert d["edges"][0] == {"src": "ta", "dst": "tb", "kind": "wr", "partition": 0,
                             "offsets": [a.edges[0].offsets[0]], "value": "x"}
    assert "ta -wr(p0/" in a.message
    json.dumps(d)


# --- what is not an anomaly ----------------------------------------------------------------------------

def test_aborted_transaction_nobody_read_is_clean() -> None:
    t = Txn("t", "aborted", [Send("p", 0, "a", 0, 0), Send("p", 1, "b", 0, 1)])
    report = check([Send("q", 0, "c", 0, 3)], final_reads={0: [(3, "c")]}, txns=[t], allow_gaps=True)
    assert report.ok and report.anomalies == [] and report.failed == 2 and report.lost == 0


def test_read_uncommitted_may_read_aborted_records() -> None:
    t = Txn("t", "aborted", [Send("p", 0, "a", 0, 0)])
    q = Poll("ru", 0, [(0, 0, "a")], isolation="read_uncommitted")
    report = check([], [q], txns=[t])
    assert report.anomalies == [] and report.ok


def test_a_read_uncommitted_final_read_may_hold_aborted_records() -> None:
    t = Txn("t", "aborted", [Send("p", 0, "a", 0, 0)])
    final = {0: [(0, "a"), (2, "b")]}
    sends = [Send("q", 0, "b", 0, 2)]
    assert kinds(check(sends, final_reads=final, txns=[t], allow_gaps=True)) == [K.PRECOMMITTED_READ]
    report = check(sends, final_reads=final, txns=[t], allow_gaps=True, final_isolation="read_uncommitted")
    assert report.anomalies == [] and report.ok


def test_unknown_outcome_may_or_may_not_be_visible() -> None:
    seen, unseen = Txn("t1", "unknown", [Send("p", 0, "a", 0, 0)]), Txn("t2", "unknown", [Send("p", 1, "b", 0, 2)])
    report = check([], final_reads={0: [(0, "a")]}, txns=[seen, unseen], allow_gaps=True)
    assert report.ok and report.anomalies == []
    assert (report.acked, report.unknown, report.unknown_read) == (1, 1, 0)  # t1 was seen: it committed


def test_an_unknown_transaction_seen_by_a_read_committed_poll_committed() -> None:
    """Jepsen's must-have-committed: u's a was read, so u committed, and its b (acked at o1, below
    the o2 that was read) is lost."""
    u = Txn("u", "unknown", [Send("p", 0, "a", 0, 0), Send("p", 1, "b", 0, 1)])
    final = {0: [(0, "a"), (2, "c")]}
    sends = [Send("q", 0, "c", 0, 2)]
    report = check(sends, final_reads=final, txns=[u], allow_gaps=True)
    assert [(a.kind, a.value) for a in report.anomalies] == [(K.LOST_WRITE, "b")]
    assert (report.acked, report.unknown, report.lost) == (3, 0, 1)
    report = check(sends, final_reads=final, txns=[u], allow_gaps=True, final_isolation="read_uncommitted")
    assert report.anomalies == [] and (report.acked, report.unknown, report.unknown_read) == (1, 2, 1)


def test_concurrent_non_conflicting_transactions_are_clean() -> None:
    """Two transactions open at once on different partitions, each reading what was committed before
    both; a third reads both afterwards."""
    base = [Send("plain", 0, "x0", 0, 0, "ok", 1), Send("plain", 1, "y0", 1, 0, "ok", 2)]
    t1 = Txn("t1", "committed", [Send("p1", 0, "a", 0, 1, "ok", 20), Send("p1", 1, "b", 0, 2, "ok", 40)],
             [Poll("c1", 0, [(1, 0, "y0")], t_ns=10)], commit_ns=50)
    t2 = Txn("t2", "committed", [Send("p2", 0, "c", 1, 1, "ok", 30), Send("p2", 1, "d", 1, 2, "ok", 45)],
             [Poll("c2", 0, [(0, 0, "x0")], t_ns=15)], commit_ns=55)
    t3 = Txn("t3", "committed", [], [Poll("c3", 0, [(0, 1, "a"), (0, 2, "b"), (1, 1, "c"), (1, 2, "d")],
                                          t_ns=70)], commit_ns=80)
    final = {0: [(0, "x0"), (1, "a"), (2, "b")], 1: [(0, "y0"), (1, "c"), (2, "d")]}  # markers at o3
    report = check(base, final_reads=final, txns=[t1, t2, t3], allow_gaps=True)
    assert report.ok and report.anomalies == [], report.summary()


def test_a_cycle_through_ww_is_g1c_only_when_asked() -> None:
    """t1 writes p0/o0, t2 p0/o1 (ww t1->t2); t2 also writes p1/o0 and commits first, then t1 reads it
    (wr t2->t1): legal in Kafka, which does not isolate writes; Adya's G1c."""
    t1 = Txn("t1", "committed", [Send("a", 0, "x", 0, 0)], [Poll("c1", 0, [(1, 0, "y")])])
    t2 = Txn("t2", "committed", [Send("b", 0, "z", 0, 1), Send("b", 1, "y", 1, 0)])
    final = {0: [(0, "x"), (1, "z")], 1: [(0, "y")]}
    assert check([], final_reads=final, txns=[t1, t2], allow_gaps=True).anomalies == []
    report = check([], final_reads=final, txns=[t1, t2], allow_gaps=True, g1c_through_ww=True)
    (a,) = report.anomalies
    assert a.kind == K.G1C and a.txns == ("t1", "t2", "t1") and [d.kind for d in a.edges] == ["ww", "wr"]


def test_many_interleaved_transactions_scale() -> None:
    """4,000 transactions, pairs interleaving their writes to two partitions (2,000 G0s), read by
    one more transaction each: counted exactly, quickly."""
    txns, final = [], {0: [], 1: []}  # type: ignore[var-annotated]
    for i in range(0, 4000, 2):
        a, b = f"t{i}", f"t{i + 1}"
        o = i
        txns.append(Txn(a, "committed", [Send(a, 0, f"{a}-0", 0, o), Send(a, 1, f"{a}-1", 1, o + 1)],
                        [Poll(f"c{a}", 0, [(0, o - 1, f"t{i - 1}-0")] if i else [])]))
        txns.append(Txn(b, "committed", [Send(b, 0, f"{b}-0", 0, o + 1), Send(b, 1, f"{b}-1", 1, o)]))
        final[0] += [(o, f"{a}-0"), (o + 1, f"{b}-0")]
        final[1] += [(o, f"{b}-1"), (o + 1, f"{a}-1")]
    t0 = time.perf_counter()
    report = check([], final_reads=final, txns=txns, max_examples=10)
    elapsed = time.perf_counter() - t0
    assert report.anomaly_counts == {K.G0: 2000} and report.ok and len(report.anomalies) == 10
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_reads_within_a_transaction_are_judged_only_by_the_int_kinds() -> None:
    sends = [Send("p", i, f"v{i}", 0, i) for i in range(4)]
    final = {0: [(i, f"v{i}") for i in range(4)]}
    within = Txn("t", "committed", [], [Poll("c", 0, [(0, 2, "v2"), (0, 1, "v1")])])
    assert kinds(check(sends, final_reads=final, txns=[within])) == [K.INT_NONMONOTONIC_POLL]
    across = [Txn("t1", "committed", [], [Poll("c", 0, [(0, 2, "v2")])]),
              Txn("t2", "committed", [], [Poll("c", 1, [(0, 1, "v1")])])]  # no rebalance between
    assert kinds(check(sends, final_reads=final, txns=across)) == [K.NON_MONOTONIC_POLL]


def test_a_rewind_within_a_transaction_still_bounds_what_was_read() -> None:
    """t reads o3 then o1: o3 was read, so v2 (acked at o2, never read) is lost, not unseen."""
    sends = [Send("p", i, f"v{i}", 0, i) for i in range(4)]
    t = Txn("t", "committed", [], [Poll("c", 0, [(0, 0, "v0"), (0, 3, "v3"), (0, 1, "v1")])])
    report = check(sends, txns=[t], allow_gaps=True)
    assert kinds(report) == [K.LOST_WRITE, K.INT_POLL_SKIP, K.INT_NONMONOTONIC_POLL]
    assert report.anomalies[0].value == "v2"


def test_rebalance_inside_a_transaction_resets_its_positions() -> None:
    sends = [Send("p", i, f"v{i}", 0, i) for i in range(4)]
    t = Txn("t", "committed", [], [Poll("c", 0, [(0, 2, "v2")], 1), Poll("c", 1, [(0, 0, "v0")], 2)])
    assert kinds(check(sends, final_reads={0: [(i, f"v{i}") for i in range(4)]}, txns=[t])) == []


def test_markers_and_aborted_records_are_no_internal_skip() -> None:
    """o1 is an aborted record, o2 its marker: a transaction reading o0 then o3 skips nothing visible."""
    ab = Txn("ab", "aborted", [Send("q", 0, "x", 0, 1)])
    rd = Txn("rd", "committed", [], [Poll("c", 0, [(0, 0, "v0"), (0, 3, "v3")])])
    sends = [Send("p", 0, "v0", 0, 0), Send("p", 1, "v3", 0, 3)]
    report = check(sends, final_reads={0: [(0, "v0"), (3, "v3")]}, txns=[ab, rd], allow_gaps=True)
    assert report.anomalies == []
    bad = Poll("bad", 0, [(0, 1, "x")])  # a read_committed consumer that did see the aborted record
    report = check(sends, [bad], {0: [(0, "v0"), (3, "v3")]}, txns=[ab, rd], allow_gaps=True)
    assert kinds(report) == [K.PRECOMMITTED_READ]  # and no int-poll-skip for rd, which was right


@pytest.mark.parametrize(("txns", "match"), [
    ([Txn("t", "committed"), Txn("t", "aborted")], "used twice"),
    ([Txn("t", "comitted")], "outcome"),  # type: ignore[arg-type]
])
def test_malformed_transactions_raise(txns: list[Txn], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check([], txns=txns)


def test_a_send_in_a_transaction_and_in_sends_is_sent_twice() -> None:
    s = Send("p", 0, "a", 0, 0)
    with pytest.raises(ValueError, match="sent twice"):
        check([s], txns=[Txn("t", "committed", [s])])


# --- the graph -------------------------------------------------------------------------------------------

def test_dependencies_ww_wr_rw() -> None:
    """t1 writes p0/o0, t2 writes p0/o1 (ww t1->t2); t3 reads p0/o0 (wr t1->t3) and, having read
    only up to o0, is followed by t2's version (rw t3->t2)."""
    t1 = Txn("t1", "committed", [Send("a", 0, "v0", 0, 0)])
    t2 = Txn("t2", "committed", [Send("b", 0, "v1", 0, 1)])
    t3 = Txn("t3", "committed", [], [Poll("c", 0, [(0, 0, "v0")])])
    gone = Txn("t4", "aborted", [Send("d", 0, "z", 0, 2)])
    report = HistoryReport()
    index, sends, polls = fold([t1, t2, t3, gone], report)
    by_value = {str(s.value): s for s in sends}
    vo = version_order(by_value, {"c": list(polls)}, index)
    assert vo.offsets == {0: [0, 1]}  # the aborted record is not a version
    assert set(dependencies(index, vo)) == {
        Dep("t1", "t2", "ww", 0, (0, 1)), Dep("t1", "t3", "wr", 0, (0,), "v0"), Dep("t3", "t2", "rw", 0, (0, 1))}
    assert report.txns_aborted == 1


def test_strongly_connected_and_shortest_cycle() -> None:
    def dep(a: str, b: str) -> Dep:
        return Dep(a, b, "ww", 0, (0, 1))

    edges = [dep("a", "b"), dep("b", "c"), dep("c", "a"), dep("c", "b"), dep("d", "a"), dep("e", "f")]
    adj: dict[str, dict[str, Dep]] = {}
    for d in edges:
        adj.setdefault(d.src, {})[d.dst] = d
    comps = strongly_connected("abcdef", adj)
    assert [sorted(c) for c in comps] == [["a", "b", "c"]]
    cyc = shortest_cycle(comps[0], adj)
    assert cyc is not None and len(cyc) == 2 and {d.src for d in cyc} == {"b", "c"}
    through = shortest_cycle(comps[0], adj, [dep("a", "b")])
    assert through is not None and [d.src for d in through] == ["a", "b", "c"]


# --- properties ------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(rng=st.randoms(use_true_random=False), workers=st.integers(1, 4), partitions=st.integers(1, 4),
       txns=st.integers(0, 40), p_abort=st.floats(0, 1), p_unknown=st.floats(0, 0.5))
def test_random_clean_serial_transactional_histories_never_alarm(
        rng: random.Random, workers: int, partitions: int, txns: int, p_abort: float, p_unknown: float) -> None:
    h = make_txn_history(rng, workers, partitions, txns, p_abort, p_unknown)
    rng.shuffle(h.txns)
    report = h.check(tolerate=())
    assert report.ok and report.anomalies == [], report.summary()
    assert report.txns_committed + report.txns_aborted + report.txns_unknown == len(h.txns)


@settings(max_examples=60, deadline=None)
@given(rng=st.randoms(use_true_random=False), workers=st.integers(2, 4), partitions=st.integers(1, 3),
       txns=st.integers(0, 40), p_abort=st.floats(0, 1))
def test_random_clean_concurrent_transactional_histories_fail_nothing(
        rng: random.Random, workers: int, partitions: int, txns: int, p_abort: float) -> None:
    """Kafka's own concurrency (interleaved open transactions, read_committed consumers stopping at
    the last stable offset) raises at most the kinds tolerated by default."""
    h = make_txn_history(rng, workers, partitions, txns, p_abort, 0.1, concurrent=True)
    report = h.check()
    assert report.ok and set(kinds(report)) <= TOLERATED_BY_DEFAULT, report.summary()


def test_concurrent_kafka_transactions_do_show_the_tolerated_kinds() -> None:
    seen: set[AnomalyKind] = set()
    for seed in range(20):
        seen |= set(kinds(make_txn_history(random.Random(seed), 3, 2, 30, concurrent=True).check()))
    assert seen == TOLERATED_BY_DEFAULT


@settings(max_examples=30, deadline=None)
@given(rng=st.randoms(use_true_random=False), name=st.sampled_from(sorted(INJECTIONS)))
def test_random_histories_find_each_injected_kind(rng: random.Random, name: str) -> None:
    h = make_txn_history(rng, partitions=3, txns=30, p_abort=0.2)
    if name in ("int-poll-skip", "int-nonmonotonic-poll") and max(len(v) for v in h.final().values()) < 3:
        return
    kind, inject = INJECTIONS[name]
    inject(h)
    assert kinds(h.check()) == [kind]
