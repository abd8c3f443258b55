"""Unit tests of bench.verify.history on synthetic produce/consume histories (no broker)."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bench.verify.history import FINAL_READER, AnomalyKind, HistoryReport, Poll, Send, check
from bench.verify.model import TXN_KINDS

K = AnomalyKind


@dataclass
class History:
    sends: list[Send]
    polls: list[Poll]
    logs: dict[int, list[tuple[int, str | bytes]]]

    def check(self, **kw: object) -> HistoryReport:
        return check(self.sends, self.polls, self.logs, **kw)  # type: ignore[arg-type]

    def next_seq(self, producer: str) -> int:
        return 1 + max(s.seq for s in self.sends if s.producer == producer)

    def last_poll(self, consumer: str) -> Poll:
        return max((q for q in self.polls if q.consumer == consumer), key=lambda q: q.index)

    def replace_poll(self, old: Poll, new: Poll) -> None:
        self.polls[self.polls.index(old)] = new

    def stream(self, consumer: str, p: int) -> list[tuple[int, int, int, str | bytes | None]]:
        """(poll index, position in poll, offset, value) of one consumer's records of partition p."""
        polls = sorted((q for q in self.polls if q.consumer == consumer), key=lambda q: q.index)
        return [(q.index, i, o, v) for q in polls for i, (pp, o, v) in enumerate(q.records) if pp == p]

    def append_record(self, p: int, value: str) -> tuple[int, Poll]:
        """Write value at the end of partition p: final log, and c0's last poll (c0 reads p to the end)."""
        o = len(self.logs[p])
        self.logs[p].append((o, value))
        last = self.last_poll("c0")
        new = dataclasses.replace(last, records=[*last.records, (p, o, value)])
        self.replace_poll(last, new)
        return o, new


def pos(s: Send) -> tuple[int, int]:
    assert s.partition is not None and s.offset is not None
    return s.partition, s.offset


def acked(sends: list[Send]) -> list[tuple[Send, int, int]]:
    return [(s, *pos(s)) for s in sends if s.status == "ok"]


def make_history(rng: random.Random, producers: int = 3, partitions: int = 4, per_producer: int = 40,
                 consumers: int = 2, p_failed: float = 0.05, p_unknown: float = 0.1) -> History:
    """A clean history: interleaved producers; consumers own partition p % n in generation 1 and read
    a prefix; then c0 owns everything in generation 2 and re-reads from a 'committed' offset."""
    logs: dict[int, list[tuple[int, str | bytes]]] = {p: [] for p in range(partitions)}
    sends: list[Send] = []
    left = {f"prod{i}": per_producer for i in range(producers)}
    seq = dict.fromkeys(left, 0)
    t = 0
    while any(left.values()):
        prod = rng.choice([k for k, n in left.items() if n])
        left[prod] -= 1
        v, p, r = f"{prod}-{seq[prod]}", rng.randrange(partitions), rng.random()
        t += 1000
        if r < p_failed:
            sends.append(Send(prod, seq[prod], v, p, None, "failed", t))
        elif r < p_failed + p_unknown:
            if rng.random() < 0.5:  # an indeterminate send may or may not be written
                logs[p].append((len(logs[p]), v))
            sends.append(Send(prod, seq[prod], v, None, None, "unknown", t))
        else:
            sends.append(Send(prod, seq[prod], v, p, len(logs[p]), "ok", t))
            logs[p].append((len(logs[p]), v))
        seq[prod] += 1

    names = [f"c{i}" for i in range(consumers)]
    polls: list[Poll] = []
    index = dict.fromkeys(names, 0)

    def consume(c: str, gen: int, plan: dict[int, tuple[int, int]]) -> None:
        pos = {p: a for p, (a, _) in plan.items()}
        while live := [p for p in plan if pos[p] < plan[p][1]]:
            recs: list[tuple[int, int, str | bytes]] = []
            for p in rng.sample(live, rng.randint(1, len(live))):
                chunk = logs[p][pos[p]:min(pos[p] + rng.randint(1, 6), plan[p][1])]
                recs += [(p, o, v.encode() if rng.random() < 0.3 else v) for o, v in chunk]  # type: ignore[union-attr]
                pos[p] += len(chunk)
            polls.append(Poll(c, index[c], recs, gen))
            index[c] += 1 + (rng.random() < 0.2)  # indexes need only be increasing

    cuts = {p: rng.randint(0, len(logs[p])) for p in logs}
    for i, c in enumerate(names):
        consume(c, 1, {p: (0, cuts[p]) for p in logs if p % consumers == i})
    polls.append(Poll("c0", index["c0"], [], 2))  # an empty poll right after the rebalance
    index["c0"] += 1
    consume("c0", 2, {p: (rng.randint(0, cuts[p]), len(logs[p])) for p in logs})
    return History(sends, polls, logs)


@pytest.fixture
def hist() -> History:
    return make_history(random.Random(7))


def kinds(report: HistoryReport) -> list[AnomalyKind]:
    return [a.kind for a in report.anomalies]


def test_clean_history_is_ok(hist: History) -> None:
    report = hist.check()
    assert report.ok, report.summary()
    assert report.anomalies == [] and not any(report.anomaly_counts.values())
    statuses = [s.status for s in hist.sends]
    assert (report.acked, report.failed, report.unknown) == (
        statuses.count("ok"), statuses.count("failed"), statuses.count("unknown"))
    assert report.failed > 0 and report.unknown > 0
    assert report.read == sum(len(log) for log in hist.logs.values())
    assert report.unknown_read == report.read - report.acked
    assert report.lost == report.unseen == report.duplicated == report.inconsistent == 0
    assert len({q.generation for q in hist.polls}) == 2 and len({q.consumer for q in hist.polls}) == 2
    json.dumps(report.to_dict())
    assert report.summary().startswith(f"acked {report.acked}, failed {report.failed}, ")
    assert f"read {report.read}, lost 0" in report.summary() and "OK" in report.summary()


# --- each anomaly injected alone -----------------------------------------------------------------

def inject_lost(h: History) -> dict[str, object]:
    s, p, off = next(x for x in acked(h.sends) if x[2] < len(h.logs[x[1]]) - 2)
    h.logs[p] = [(o, v) for o, v in h.logs[p] if o != off]
    for q in list(h.polls):
        recs = [r for r in q.records if (r[0], r[1]) != (p, off)]
        h.replace_poll(q, dataclasses.replace(q, records=recs))
    return {"value": s.value, "partition": s.partition, "offsets": (s.offset,), "producer": s.producer,
            "seq": s.seq, "t_ns": s.t_ns, "_check": {"allow_gaps": True}}  # the hole is a gap too


def inject_unseen(h: History) -> dict[str, object]:
    p = 1
    s = Send("prod0", h.next_seq("prod0"), "never-read", p, len(h.logs[p]), "ok", 1)
    h.sends.append(s)
    return {"value": s.value, "partition": p, "offsets": (s.offset,), "producer": "prod0", "seq": s.seq}


def inject_duplicate(h: History) -> dict[str, object]:
    s = next(s for s in h.sends if s.status == "ok" and s.partition == 2)
    o, _ = h.append_record(2, str(s.value))  # e.g. a non-idempotent retry written twice
    return {"value": s.value, "positions": ((2, s.offset), (2, o)), "producer": s.producer}


def inject_inconsistent(h: History) -> dict[str, object]:
    b = Send("prod1", h.next_seq("prod1"), "other-value", None, None, "unknown")
    h.sends.append(b)
    q = next(q for q in h.polls if q.consumer == "c1" and q.records)
    p, o, a = q.records[0]
    h.replace_poll(q, dataclasses.replace(q, records=[(p, o, b.value), *q.records[1:]]))
    a = a.decode() if isinstance(a, bytes) else a
    return {"partition": p, "offsets": (o,), "values": (a, b.value)}


def inject_aborted(h: History) -> dict[str, object]:
    f = Send("prod2", h.next_seq("prod2"), "failed-but-read", 3, None, "failed")
    h.sends.append(f)
    o, q = h.append_record(3, str(f.value))
    return {"value": f.value, "partition": 3, "offsets": (o,), "consumer": "c0", "poll_index": q.index,
            "producer": "prod2", "seq": f.seq}


def inject_unexpected(h: History) -> dict[str, object]:
    o, q = h.append_record(0, "ghost")
    return {"value": "ghost", "partition": 0, "offsets": (o,), "consumer": "c0", "poll_index": q.index}


def inject_nonmono_poll(h: History) -> dict[str, object]:
    q = h.last_poll("c1")
    p, o, v = q.records[-1]
    h.replace_poll(q, dataclasses.replace(q, records=[*q.records, (p, o, v)]))  # redelivered, no rebalance
    return {"consumer": "c1", "partition": p, "offsets": (o, o), "poll_index": q.index,
            "prev_poll_index": q.index}


def inject_poll_skip(h: History) -> dict[str, object]:
    p = next(p for p in h.logs if p % 2 == 1 and len(h.stream("c1", p)) >= 3)
    (i0, _, o0, _), (i1, j1, _, _), (i2, _, o2, _) = h.stream("c1", p)[:3]
    q = next(q for q in h.polls if q.consumer == "c1" and q.index == i1)
    h.replace_poll(q, dataclasses.replace(q, records=[r for j, r in enumerate(q.records) if j != j1]))
    return {"consumer": "c1", "partition": p, "offsets": (o0, o2), "poll_index": i2, "prev_poll_index": i0}


def inject_nonmono_send(h: History) -> dict[str, object]:
    by_key: dict[tuple[str, int], list[Send]] = {}
    for s in h.sends:
        if s.status == "ok":
            by_key.setdefault((s.producer, s.partition), []).append(s)  # type: ignore[arg-type]
    a, b = next(lst[:2] for lst in by_key.values() if len(lst) >= 2)
    swap = {a.value: b.value, b.value: a.value}  # the broker stored b before a
    h.sends = [s._replace(offset=b.offset) if s is a else s._replace(offset=a.offset) if s is b else s
               for s in h.sends]
    h.logs = {p: [(o, swap.get(str(v), v)) for o, v in log] for p, log in h.logs.items()}
    def text(v: str | bytes | None) -> str:
        return v if isinstance(v, str) else bytes(v or b"").decode()

    h.polls = [dataclasses.replace(q, records=[(p, o, swap.get(text(v), v)) for p, o, v in q.records])
               for q in h.polls]
    return {"producer": a.producer, "partition": a.partition, "seq": b.seq, "prev_seq": a.seq,
            "offsets": (b.offset, a.offset), "values": (a.value, b.value), "value": b.value}


INJECTIONS: dict[AnomalyKind, Callable[[History], dict[str, object]]] = {
    K.LOST_WRITE: inject_lost, K.UNSEEN: inject_unseen, K.DUPLICATE: inject_duplicate,
    K.INCONSISTENT_OFFSETS: inject_inconsistent, K.ABORTED_READ: inject_aborted,
    K.UNEXPECTED_READ: inject_unexpected, K.NON_MONOTONIC_POLL: inject_nonmono_poll,
    K.POLL_SKIP: inject_poll_skip, K.NON_MONOTONIC_SEND: inject_nonmono_send,
}


def test_every_kind_has_an_injection() -> None:
    assert set(INJECTIONS) == set(AnomalyKind) - TXN_KINDS  # the rest: tests/test_history_txn.py


@pytest.mark.parametrize("kind", list(INJECTIONS), ids=str)
def test_single_injected_anomaly(hist: History, kind: AnomalyKind) -> None:
    expected = INJECTIONS[kind](hist)
    opts = expected.pop("_check", {})
    report = hist.check(**opts)  # type: ignore[arg-type]
    assert kinds(report) == [kind], report.summary()
    assert report.anomaly_counts == {kind: 1}
    assert not report.ok
    anomaly = report.anomalies[0]
    for name, want in expected.items():
        assert getattr(anomaly, name) == want, (name, anomaly)
    assert anomaly.message and anomaly.message in report.summary()
    d = report.to_dict()
    json.dumps(d)
    assert d["ok"] is False and d["anomaly_counts"] == {str(kind): 1}
    assert d["anomalies"][0]["kind"] == str(kind)


def test_report_counts_per_kind(hist: History) -> None:
    inject_lost(hist)
    report = hist.check(allow_gaps=True)
    assert (report.lost, report.unseen) == (1, 0)
    assert "lost 1," in report.summary()


def test_lost_write_also_shows_as_gap_without_allow_gaps(hist: History) -> None:
    inject_lost(hist)
    report = hist.check()
    assert set(kinds(report)) == {K.LOST_WRITE, K.POLL_SKIP}
    assert FINAL_READER in {a.consumer for a in report.by_kind(K.POLL_SKIP)}


def test_inconsistent_ack_against_read(hist: History) -> None:
    a = next(s for s in hist.sends if s.status == "ok" and s.partition == 0)
    wrong = Send("prod0", hist.next_seq("prod0"), "claims-a's-slot", 0, a.offset, "ok")
    hist.sends.append(wrong)
    report = hist.check()
    (inc,) = report.by_kind(K.INCONSISTENT_OFFSETS)
    assert (inc.partition, inc.offsets, inc.values) == (0, (a.offset,), (a.value, wrong.value))
    assert any("ack to prod0" in s for s in inc.sources) and any("read by" in s for s in inc.sources)
    assert not report.ok


def test_ack_and_read_at_different_offsets_is_a_duplicate() -> None:
    report = check([Send("p", 0, "a", 0, 1, "ok")], final_reads={0: [(0, "a")]})
    (dup,) = report.anomalies
    assert (dup.kind, dup.value, dup.positions) == (K.DUPLICATE, "a", ((0, 0), (0, 1)))


def test_unread_ack_at_the_last_read_offset_is_unseen_not_lost() -> None:
    sends = [Send("p", i, f"v{i}", 0, i, "ok") for i in range(3)] + [Send("q", 0, "x", 0, 2, "ok")]
    report = check(sends, final_reads={0: [(i, f"v{i}") for i in range(3)]})
    assert kinds(report) == [K.UNSEEN, K.INCONSISTENT_OFFSETS] and report.anomalies[0].value == "x"
    sends[-1] = sends[-1]._replace(offset=1)
    assert kinds(check(sends, final_reads={0: [(i, f"v{i}") for i in range(3)]})) == [
        K.LOST_WRITE, K.INCONSISTENT_OFFSETS]


# --- flags ------------------------------------------------------------------------------------------

def test_allow_duplicates_reports_but_passes(hist: History) -> None:
    inject_duplicate(hist)
    report = hist.check(allow_duplicates=True)
    assert kinds(report) == [K.DUPLICATE] and report.ok and report.duplicated == 1
    assert "OK (tolerated" in report.summary()


def test_expect_order_false_reports_but_passes(hist: History) -> None:
    inject_nonmono_send(hist)
    report = hist.check(expect_order=False)
    assert kinds(report) == [K.NON_MONOTONIC_SEND] and report.ok
    assert report.to_dict()["ok"] is True


def test_allow_gaps_silences_poll_skips(hist: History) -> None:
    inject_poll_skip(hist)
    report = hist.check(allow_gaps=True)
    assert report.ok and report.anomalies == []


@pytest.mark.parametrize(("generation", "rebalance", "alarm"), [(1, False, True), (2, False, False),
                                                                 (None, False, False), (1, True, False)])
def test_rebalance_allows_rewind(hist: History, generation: int | None, rebalance: bool, alarm: bool) -> None:
    (_, _, o0, v0), *_ = hist.stream("c1", 1)
    last = hist.last_poll("c1")
    assert last.generation == 1
    hist.polls.append(Poll("c1", last.index + 1, [(1, o0, v0)], generation, rebalance))
    report = hist.check()
    assert kinds(report) == ([K.NON_MONOTONIC_POLL] if alarm else [])


# --- final reads, log start, input forms --------------------------------------------------------------

def test_final_reads_only(hist: History) -> None:
    assert check(hist.sends, final_reads=hist.logs).ok
    inject_lost(hist)
    report = check(hist.sends, final_reads=hist.logs, allow_gaps=True)
    assert kinds(report) == [K.LOST_WRITE]
    report = check(hist.sends, final_reads=hist.logs)
    (skip,) = report.by_kind(K.POLL_SKIP)
    assert skip.consumer == FINAL_READER


def test_no_reads_at_all_means_unseen(hist: History) -> None:
    report = check(hist.sends)
    assert report.unseen == report.acked > 0 and report.lost == 0 and not report.ok


def test_log_start_means_expired_not_lost(hist: History) -> None:
    p = max(hist.logs, key=lambda p: len(hist.logs[p]))
    start = len(hist.logs[p]) // 2
    acked_below = sum(1 for _, pp, o in acked(hist.sends) if pp == p and o < start)
    assert acked_below > 0
    logs = {**hist.logs, p: hist.logs[p][start:]}
    report = check(hist.sends, final_reads=logs)
    assert report.lost == acked_below and K.POLL_SKIP in kinds(report) and not report.ok
    report = check(hist.sends, final_reads=logs, log_start={p: start})
    assert report.ok and report.expired == acked_below and report.lost == 0


def test_poll_jump_over_deleted_records_is_not_a_skip() -> None:
    sends = [Send("p", i, f"v{i}", 0, i, "ok") for i in range(10)]
    polls = [Poll("c", 0, [(0, 0, "v0"), (0, 1, "v1")]), Poll("c", 1, [(0, o, f"v{o}") for o in range(6, 10)])]
    assert kinds(check(sends, polls, log_start={0: 6})) == []
    report = check(sends, polls, log_start={0: 5})  # v5 was not deleted, yet skipped
    assert kinds(report) == [K.LOST_WRITE, K.POLL_SKIP] and report.expired == 3


def test_bytes_and_str_values_match() -> None:
    sends = [Send("p", 0, "a", 0, 0, "ok"), Send("p", 1, b"\xff\x00", 0, 1, "ok")]
    report = check(sends, [Poll("c", 0, [(0, 0, b"a"), (0, 1, b"\xff\x00")])])
    assert report.ok and report.read == 2
    json.dumps(check(sends).to_dict(), ensure_ascii=False).encode()  # undecodable bytes still serialise


def test_ack_without_offset_is_unseen_without_offsets() -> None:
    report = check([Send("p", 0, "a", 0, None, "ok"), Send("p", 1, "b", 0, 0, "ok")],
                   final_reads={0: [(0, "b")]})
    (a,) = report.anomalies
    assert (a.kind, a.value, a.offsets) == (K.UNSEEN, "a", ())


def test_unknown_sends_never_fail() -> None:
    sends = [Send("p", 0, "a", status="unknown"), Send("p", 1, "b", status="unknown"), Send("p", 2, "c", 0, 0)]
    report = check(sends, final_reads={0: [(0, "c"), (1, "b")]})
    assert report.ok and (report.unknown, report.unknown_read) == (2, 1)


def test_cap_keeps_exact_counts() -> None:
    sends = [Send("p", i, f"v{i}", 0, i, "ok") for i in range(50)]
    report = check(sends, max_examples=5)
    assert report.unseen == 50 and report.anomaly_counts == {K.UNSEEN: 50} and len(report.anomalies) == 5
    assert report.to_dict()["truncated"] is True


@pytest.mark.parametrize("bad", [
    [Send("p", 0, "a", 0, 0), Send("q", 0, "a", 0, 1)],
    [Send("p", 0, "a", 0, 0, "acked")],  # type: ignore[arg-type]
])
def test_malformed_sends_raise(bad: list[Send]) -> None:
    with pytest.raises(ValueError, match="'a'"):
        check(bad)


def test_malformed_polls_raise() -> None:
    with pytest.raises(ValueError, match="poll index 3"):
        check([], [Poll("c", 3, []), Poll("c", 3, [])])
    with pytest.raises(ValueError, match="reserved"):
        check([], [Poll(FINAL_READER, 0, [])], {0: []})


def test_scales_linearly() -> None:
    n, parts = 100_000, 4
    sends = [Send(f"p{i % 3}", i, f"v{i}", i % parts, i // parts, "ok") for i in range(n)]
    recs: list[tuple[int, int, str | bytes | None]] = sorted((pp, o, s.value) for s, pp, o in acked(sends))
    polls = [Poll("c", k, recs[k * 500:(k + 1) * 500]) for k in range(n // 500)]
    logs = {p: [(o, v) for pp, o, v in recs if pp == p] for p in range(parts)}
    t0 = time.perf_counter()
    report = check(sends, polls, logs)
    elapsed = time.perf_counter() - t0
    assert report.ok and report.read == n
    assert elapsed < 10, f"{elapsed:.1f} s for {n} sends + {2 * n} reads"


# --- properties ----------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(rng=st.randoms(use_true_random=False), producers=st.integers(1, 4), partitions=st.integers(1, 4),
       per_producer=st.integers(0, 25), consumers=st.integers(1, 3), use_final=st.booleans())
def test_random_clean_histories_never_alarm(rng: random.Random, producers: int, partitions: int,
                                            per_producer: int, consumers: int, use_final: bool) -> None:
    h = make_history(rng, producers, partitions, per_producer, consumers, p_failed=0.1, p_unknown=0.2)
    rng.shuffle(h.sends)
    rng.shuffle(h.polls)
    report = check(h.sends, h.polls, h.logs if use_final else None)
    assert report.ok and report.anomalies == [], report.summary()
    assert report.acked == sum(s.status == "ok" for s in h.sends)


@settings(max_examples=40, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_random_lost_write_is_found(rng: random.Random) -> None:
    h = make_history(rng, per_producer=15)
    victims = [x for x in acked(h.sends) if x[2] < len(h.logs[x[1]]) - 1]
    assume(victims)
    s, p, off = rng.choice(victims)
    h.logs[p] = [(o, v) for o, v in h.logs[p] if o != off]
    report = check(h.sends, (), h.logs, allow_gaps=True)
    assert [(a.kind, a.value) for a in report.anomalies] == [(K.LOST_WRITE, s.value)]
