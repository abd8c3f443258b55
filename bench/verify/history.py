"""The one history checker: produce/consume histories against Jepsen's Kafka anomaly taxonomy.

A history is what the clients saw: every send (with its delivery-report outcome), every consumer poll
batch, and optionally the final log of each partition read from the start after the run. :func:`check`
joins them on values (unique ids) and on ``(partition, offset)`` positions and reports:

========================  ==========================================================================
lost-write                acked, never read, although a later offset of that partition was read
unseen                    acked, never read, and nothing after it in that partition was read either
duplicate                 one value at two or more positions (acks and reads)
inconsistent-offsets      two values at one position (acks and reads)
aborted-read              a value whose send definitely failed was read
non-monotonic-poll        a consumer's next record of a partition is at or before its previous one,
                          with no rebalance (generation change) in between
poll-skip                 a consumer's next record of a partition skips offsets (``allow_gaps``)
non-monotonic-send        a producer's later acked send lands at a lower offset of the same partition
unexpected-read           a value no send produced was read
(transactional)           the kinds below need ``txns=`` (their input: :mod:`bench.verify.txn`)
precommitted-read         a read_committed poll read a transaction's record before it committed:
                          a record of an aborted transaction, its own transaction's record, or
                          before the writer called commit (``Poll.t_ns`` < ``Txn.commit_ns``)
int-poll-skip             two successive reads of a partition within one transaction skip a visible
                          record of the version order (markers and aborted records do not count)
int-nonmonotonic-poll     ... read at or before the previous one in the version order
int-send-skip             two successive sends of one transaction to a partition land with a visible
                          record between them (tolerated by default: Kafka interleaves them)
int-nonmonotonic-send     ... land at or before the previous one
G0                        a cycle of ww dependencies (write cycle; tolerated by default: Kafka does
                          not isolate concurrent transactions' writes)
G1c                       a cycle of wr dependencies (information flow); with ``g1c_through_ww``, of
                          ww and wr with at least one wr
========================  ==========================================================================

The version order, the dependencies (ww, wr, rw) and the cycle search (Elle-style, strongly
connected components, one minimal cycle per component and kind) are in :mod:`bench.verify.txn`
and :mod:`bench.verify.cycles`. Pairs of reads (sends) within one transaction are judged by the
``int-`` kinds only, not also as non-monotonic-poll / poll-skip (non-monotonic-send).

The final log is checked like one more consumer named :data:`FINAL_READER`. Acked records below the
low watermark (``log_start``) were deleted by retention: counted as ``expired``, never lost. Values
may be ``str`` or ``bytes`` (bytes are decoded as UTF-8 with ``surrogateescape``, so a str id sent
matches the bytes read back). Counts are exact; at most ``max_examples`` anomalies per kind are kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

from bench.verify import cycles, txn
from bench.verify.model import (
    FINAL_READER,
    STATUSES,
    TOLERATED_BY_DEFAULT,
    Anomaly,
    AnomalyKind,
    HistoryReport,
    Isolation,
    Poll,
    Pos,
    Send,
    Txn,
    Value,
    jsonable,
)

__all__ = [
    "FINAL_READER",
    "Anomaly",
    "AnomalyKind",
    "HistoryReport",
    "Poll",
    "Send",
    "Txn",
    "check",
]


def check(
    sends: Iterable[Send],
    polls: Iterable[Poll] = (),
    final_reads: Mapping[int, Sequence[tuple[int, Value | None]]] | None = None,
    *,
    log_start: Mapping[int, int] | None = None,
    expect_order: bool = True,
    allow_gaps: bool = False,
    allow_duplicates: bool = False,
    max_examples: int = 1000,
    txns: Iterable[Txn] = (),
    tolerate: Collection[AnomalyKind] = TOLERATED_BY_DEFAULT,
    g1c_through_ww: bool = False,
    final_isolation: Isolation = "read_committed",
) -> HistoryReport:
    """Check a produce/consume history; see the module docstring for the anomalies.

    ``expect_order=False`` (non-idempotent retries) still reports non-monotonic sends but does not
    fail on them; ``allow_duplicates`` likewise for duplicates; ``allow_gaps`` (compacted topics,
    transaction markers) stops reporting poll skips. ``txns`` are transactions (their sends and
    polls join the history; see :mod:`bench.verify.txn`); kinds in ``tolerate`` are reported but do
    not fail; ``g1c_through_ww`` lets a G1c cycle pass through ww edges (:mod:`bench.verify.cycles`);
    ``final_isolation`` is the isolation level the final read used.
    Raises ValueError on a malformed history (unknown status or outcome, one value sent twice, one
    poll index used twice by a consumer, one transaction id twice).
    """
    failing = set(AnomalyKind) - set(tolerate)
    if not expect_order:
        failing.discard(AnomalyKind.NON_MONOTONIC_SEND)
    if allow_duplicates:
        failing.discard(AnomalyKind.DUPLICATE)
    report = HistoryReport(failing_kinds=frozenset(failing), max_examples=max_examples)
    low = dict(log_start or {})
    index: txn.TxnIndex | None = None
    if txns:
        index, txn_sends, txn_polls = txn.fold(txns, report)
        sends, polls = chain(sends, txn_sends), chain(polls, txn_polls)

    by_value, at, conflicts, order = _index_sends(sends, report)
    _check_send_order(order, report, index.writer if index else {})

    reader_polls: dict[str, list[Poll]] = {}
    for poll in polls:
        reader_polls.setdefault(poll.consumer, []).append(poll)
    if final_reads:
        if FINAL_READER in reader_polls:
            raise ValueError(f"consumer name {FINAL_READER!r} is reserved for final_reads")
        reader_polls[FINAL_READER] = [  # one "poll" per partition, its index = the partition
            Poll(FINAL_READER, p, [(p, o, v) for o, v in final_reads[p]], isolation=final_isolation)
            for p in sorted(final_reads)
        ]
    first_read, extra_pos, high = _scan_reads(
        reader_polls, at, conflicts, low, allow_gaps, report, index.poll_txn if index else {})
    if index is not None:
        txn.settle_unknown(index, reader_polls, by_value, report)
    _judge_values(by_value, first_read, extra_pos, high, low, report, index.aborted if index else ())
    if conflicts:
        _report_conflicts(by_value, reader_polls, conflicts, report)
    if index is not None:
        vo = txn.version_order(by_value, reader_polls, index)
        txn.check_precommitted(reader_polls, index, report)
        txn.check_internal(index, vo, report)
        cycles.check_cycles(index, vo, report, g1c_through_ww)
    rank = {k: i for i, k in enumerate(AnomalyKind)}
    report.anomalies.sort(key=lambda a: rank[a.kind])
    return report


def _index_sends(
    sends: Iterable[Send], report: HistoryReport,
) -> tuple[dict[Any, Send], dict[int, dict[int, Any]], dict[Pos, dict[Any, None]],
           dict[tuple[str, int], list[Send]]]:
    by_value: dict[Any, Send] = {}
    at: dict[int, dict[int, Any]] = {}  # partition -> offset -> first value put there
    conflicts: dict[Pos, dict[Any, None]] = {}  # position -> ordered set of values
    order: dict[tuple[str, int], list[Send]] = {}
    status_count = dict.fromkeys(STATUSES, 0)
    for s in sends:
        v = s.value
        if v.__class__ is bytes:
            v = v.decode("utf-8", "surrogateescape")
            s = s._replace(value=v)
        if v in by_value:
            raise ValueError(f"value {v!r} sent twice (seq {by_value[v].seq} and {s.seq})")
        by_value[v] = s
        st = s.status
        try:
            status_count[st] += 1
        except KeyError:
            raise ValueError(f"send {v!r}: status {st!r} is not one of {STATUSES}") from None
        p, o = s.partition, s.offset
        if st != "ok" or p is None or o is None or o < 0:
            continue
        part = at.get(p)
        if part is None:
            part = at[p] = {}
        old = part.setdefault(o, v)
        if old != v:
            conflicts.setdefault((p, o), {old: None})[v] = None
        key = (s.producer, p)
        lst = order.get(key)
        if lst is None:
            order[key] = [s]
        else:
            lst.append(s)
    report.acked, report.failed, report.unknown = (status_count[x] for x in STATUSES)
    return by_value, at, conflicts, order


def _check_send_order(
    order: dict[tuple[str, int], list[Send]], report: HistoryReport, send_txn: Mapping[Any, str],
) -> None:
    """A producer's sends in seq order land at rising offsets (pairs in one transaction excepted)."""
    kind = AnomalyKind.NON_MONOTONIC_SEND
    for (producer, p), lst in order.items():
        if any(lst[i].seq > lst[i + 1].seq for i in range(len(lst) - 1)):
            lst.sort(key=lambda s: s.seq)
        top = lst[0]
        for s in lst[1:]:
            o, top_o = s.offset, top.offset
            assert o is not None and top_o is not None
            if o > top_o:
                top = s
            elif o < top_o and not (send_txn and _same_txn(send_txn, s.value, top.value)) \
                    and report._want(kind):
                report.anomalies.append(Anomaly(
                    kind, f"producer {producer}: send seq {s.seq} ({s.value!r}) landed at p{p}/o{o}, "
                    f"before earlier send seq {top.seq} ({top.value!r}) at o{top_o}",
                    value=s.value, values=(top.value, s.value), partition=p, offsets=(top_o, o),
                    producer=producer, seq=s.seq, prev_seq=top.seq, t_ns=s.t_ns))


def _same_txn(send_txn: Mapping[Any, str], a: Any, b: Any) -> bool:
    t = send_txn.get(a)
    return t is not None and t == send_txn.get(b)


def _scan_reads(
    reader_polls: dict[str, list[Poll]], at: dict[int, dict[int, Any]],
    conflicts: dict[Pos, dict[Any, None]], low: dict[int, int], allow_gaps: bool, report: HistoryReport,
    poll_txn: Mapping[tuple[str, int], str],
) -> tuple[dict[Any, tuple[int, int, str, int]], dict[Any, set[Pos]], dict[int, int]]:
    """One pass over all reads: positions, per-partition high offsets, poll order checks (not of
    two reads within one transaction: those are the int- kinds)."""
    first_read: dict[Any, tuple[int, int, str, int]] = {}  # value -> (p, o, consumer, poll index)
    extra_pos: dict[Any, set[Pos]] = {}  # value -> further read positions
    high: dict[int, int] = {}  # partition -> highest offset read
    nonmono, skip = AnomalyKind.NON_MONOTONIC_POLL, AnomalyKind.POLL_SKIP
    fr_get, at_get = first_read.get, at.get

    def run_end(p: int, o: int) -> None:  # offsets rise within a run, so its last one is its highest
        if o > high.get(p, -1):
            high[p] = o

    for consumer, cpolls in reader_polls.items():
        cpolls.sort(key=lambda q: q.index)
        last: dict[int, int] = {}  # partition -> last offset read since the last rebalance
        last_poll: dict[int, int] = {}
        last_txn: dict[int, str | None] = {}  # partition -> transaction of the last read
        if consumer == FINAL_READER:  # read from the start: a first offset above log start is a skip
            last = {q.index: low.get(q.index, 0) - 1 for q in cpolls}
            last_poll = {q.index: q.index for q in cpolls}
        prev: Poll | None = None
        for poll in cpolls:
            idx = poll.index
            if prev is not None:
                if idx == prev.index:
                    raise ValueError(f"consumer {consumer}: poll index {idx} used twice")
                if poll.rebalance_before or poll.generation != prev.generation:
                    for p, o in last.items():
                        run_end(p, o)
                    last = {}
            prev = poll
            last_get = last.get
            cur = poll_txn.get((consumer, idx)) if poll_txn else None
            for p, o, v in poll.records:
                if v.__class__ is bytes:
                    v = v.decode("utf-8", "surrogateescape")
                part = at_get(p)  # position -> value
                if part is None:
                    part = at[p] = {}
                old = part.setdefault(o, v)
                if old != v:
                    conflicts.setdefault((p, o), {old: None})[v] = None
                fr = fr_get(v)  # value -> positions
                if fr is None:
                    first_read[v] = (p, o, consumer, idx)
                elif fr[0] != p or fr[1] != o:
                    extra_pos.setdefault(v, set()).add((p, o))
                lo = last_get(p)  # poll order
                if lo is not None and o != lo + 1:
                    judged = cur is None or last_txn.get(p) != cur  # else within one transaction
                    if o <= lo:
                        run_end(p, lo)
                        if judged and report._want(nonmono):
                            report.anomalies.append(Anomaly(
                                nonmono, f"consumer {consumer} poll {idx} read p{p}/o{o} after o{lo} "
                                f"(poll {last_poll[p]}) with no rebalance between",
                                value=v, partition=p, offsets=(lo, o), consumer=consumer,
                                poll_index=idx, prev_poll_index=last_poll[p]))
                    elif judged and not allow_gaps and o > low.get(p, 0) and report._want(skip):
                        report.anomalies.append(Anomaly(
                            skip, f"consumer {consumer} poll {idx} read p{p}/o{o} right after o{lo} "
                            f"(poll {last_poll[p]}), skipping {o - lo - 1} offset(s)",
                            value=v, partition=p, offsets=(lo, o), consumer=consumer,
                            poll_index=idx, prev_poll_index=last_poll[p]))
                last[p] = o
                last_poll[p] = idx
                if poll_txn:
                    last_txn[p] = cur
        for p, o in last.items():
            run_end(p, o)
    return first_read, extra_pos, high


def _read_anomaly(kind: AnomalyKind, what: str, v: Any, fr: tuple[int, int, str, int], **more: Any) -> Anomaly:
    """An anomaly of ``kind`` about value ``v`` and its first read ``fr`` (p, o, consumer, poll index):
    "``what`` was read at p/o by consumer poll N"; ``more``: further :class:`Anomaly` fields."""
    return Anomaly(kind, f"{what} was read at p{fr[0]}/o{fr[1]} by {fr[2]} poll {fr[3]}", value=v,
                   partition=fr[0], offsets=(fr[1],), consumer=fr[2], poll_index=fr[3], **more)


def _judge_values(
    by_value: dict[Any, Send], first_read: dict[Any, tuple[int, int, str, int]],
    extra_pos: dict[Any, set[Pos]], high: dict[int, int], low: dict[int, int],
    report: HistoryReport, txn_aborted: Collection[Any],
) -> None:
    """Per value: lost / unseen / expired, aborted and unexpected reads, duplicates (a read of an
    aborted transaction's value is judged as a precommitted read instead)."""
    report.read = len(first_read)
    for v, s in by_value.items():
        fr = first_read.get(v)
        st = s.status
        if st == "ok":
            p, o = s.partition, s.offset
            pos = (p, o) if p is not None and o is not None and o >= 0 else None
            if fr is None:
                _missing(v, s, pos, high, low, report)
            elif pos is not None and (fr[0], fr[1]) != pos:
                extra_pos.setdefault(v, set()).add(pos)
        elif fr is not None:
            if st == "unknown":
                report.unknown_read += 1
                continue
            if v in txn_aborted:
                continue
            report.aborted_reads += 1
            if report._want(AnomalyKind.ABORTED_READ):
                report.anomalies.append(_read_anomaly(
                    AnomalyKind.ABORTED_READ, f"{v!r} whose send failed (producer {s.producer} seq {s.seq})", v,
                    fr, producer=s.producer, seq=s.seq, t_ns=s.t_ns))
    for v, fr in first_read.items():
        if v in by_value:
            continue
        report.unexpected += 1
        if report._want(AnomalyKind.UNEXPECTED_READ):
            report.anomalies.append(_read_anomaly(AnomalyKind.UNEXPECTED_READ, f"{v!r}, which no send produced",
                                                  v, fr))
    dup = AnomalyKind.DUPLICATE
    for v, more in extra_pos.items():
        fr = first_read[v]  # every value in extra_pos was read
        positions = {*more, (fr[0], fr[1])}
        if len(positions) < 2:
            continue
        report.duplicated += 1
        if report._want(dup):
            ps = tuple(sorted(positions))
            sent = by_value.get(v)
            report.anomalies.append(Anomaly(
                dup, f"{v!r} is at {len(ps)} positions: " + ", ".join(f"p{p}/o{o}" for p, o in ps),
                value=v, positions=ps, producer=sent.producer if sent else None,
                seq=sent.seq if sent else None))


def _missing(
    v: Any, s: Send, pos: Pos | None, high: dict[int, int], low: dict[int, int],
    report: HistoryReport,
) -> None:
    """An acked value nobody read: expired (below the low watermark), lost or unseen."""
    p = s.partition
    if pos is not None and pos[1] < low.get(pos[0], 0):
        report.expired += 1
        return
    top = high.get(p, -1) if p is not None else -1
    if pos is not None and top > pos[1]:
        kind, why = AnomalyKind.LOST_WRITE, f"though p{p} was read up to o{top}"
        report.lost += 1
    else:
        kind, why = AnomalyKind.UNSEEN, "and nothing after it was read"
        report.unseen += 1
    if report._want(kind):
        where = f"p{p}/o{pos[1]}" if pos is not None else f"p{p} (no offset)"
        report.anomalies.append(Anomaly(
            kind, f"{v!r} acked to {s.producer} (seq {s.seq}) at {where} was never read, {why}",
            value=v, partition=p, offsets=(pos[1],) if pos is not None else (),
            producer=s.producer, seq=s.seq, t_ns=s.t_ns))


def _report_conflicts(
    by_value: dict[Any, Send], reader_polls: dict[str, list[Poll]],
    conflicts: dict[Pos, dict[Any, None]], report: HistoryReport,
) -> None:
    """Second pass, only over conflicting positions: who put which value there."""
    sources: dict[Pos, list[str]] = {pos: [] for pos in conflicts}
    for pos, values in conflicts.items():
        for v in values:
            s = by_value.get(v)
            if s is not None and s.status == "ok" and (s.partition, s.offset) == pos:
                sources[pos].append(f"{v!r}: ack to {s.producer} seq {s.seq}")
    for consumer, cpolls in reader_polls.items():
        for poll in cpolls:
            for p, o, v in poll.records:
                srcs = sources.get((p, o))
                if srcs is not None and len(srcs) < 20:
                    srcs.append(f"{jsonable(v)!r}: read by {consumer} poll {poll.index}")
    kind = AnomalyKind.INCONSISTENT_OFFSETS
    for (p, o), values in conflicts.items():
        report.inconsistent += 1
        if report._want(kind):
            who = tuple(dict.fromkeys(sources[(p, o)]))
            report.anomalies.append(Anomaly(
                kind, f"p{p}/o{o} holds {len(values)} values: " + "; ".join(who),
                values=tuple(values), partition=p, offsets=(o,), sources=who))
