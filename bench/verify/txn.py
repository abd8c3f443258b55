"""Transactional histories: folding transactions into a history, the version order, and the
precommitted-read and internal (within one transaction) checks.

Input (for whoever feeds real transactional histories to :func:`bench.verify.history.check`):
pass ``txns=[Txn(...), ...]`` next to the plain ``sends`` and ``polls``. A :class:`Txn` holds

- ``id``: unique in the history (e.g. ``"producer-3/17"``: transactional.id and a counter);
- ``outcome``: ``committed`` (``commit_transaction`` returned), ``aborted`` (``abort_transaction``
  returned, or the commit failed for certain), ``unknown`` (the commit timed out or never ran);
- ``sends``: its produce calls as ordinary :class:`Send` s, in ``seq`` order, with the delivery report
  the client got *before* the commit (a transactional send is acked with an offset even when its
  transaction later aborts: keep ``status="ok"`` and the offset);
- ``polls``: its consumer's poll batches (consume-transform-produce) as ordinary :class:`Poll` s,
  with poll indexes from the same per-consumer sequence as that consumer's other polls;
- ``commit_ns``: when commit was called, on the clock of :attr:`Poll.t_ns` (time.monotonic_ns() on one
  host), or None when unknown.

A send or poll given in a transaction must not be given again in ``sends``/``polls``. Polls outside
transactions (plain consumers) say their ``isolation`` (the final read's is
``check(final_isolation=)``); only read_committed reads are judged for precommitted reads. The
commit/abort markers take offsets, so a transactional history needs ``allow_gaps=True`` for the
(raw-offset) ``poll-skip`` check; the internal checks here use the version order instead and are
not fooled by markers.

What the transaction's outcome does to its sends: aborted → counted ``failed`` (never visible, not
lost if unread; reading one is a precommitted read, not an aborted read); unknown → ``unknown``
(may or may not be visible) unless a read_committed poll read one of its records: then it must have
committed (Jepsen's *must-have-committed*) and its acked sends are judged as acked, so one nobody
read is lost or unseen; committed → as sent.

The version order of a partition is the offsets holding *visible* records, ascending: acked sends
outside aborted or unknown transactions, and read_committed reads of values not from an aborted
transaction. Its *index* is dense (markers and aborted records take no index), as in Jepsen.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from bench.verify.model import (
    FINAL_READER,
    OUTCOMES,
    Anomaly,
    AnomalyKind,
    HistoryReport,
    Poll,
    Send,
    Txn,
    Value,
)

__all__ = [
    "TxnIndex", "VersionOrder", "check_internal", "check_precommitted", "fold", "settle_unknown",
    "version_order",
]

K = AnomalyKind
_E = TypeVar("_E")


def norm(v: Value | None) -> str | None:
    """Values as the checker keys them: bytes decoded as UTF-8 with surrogateescape."""
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v


@dataclass(frozen=True, slots=True)
class TxnIndex:
    """The transactions of a history: by id, the writer of each value, the transaction of each poll."""

    txns: dict[str, Txn]
    writer: dict[str, str]  # value -> id of the transaction that sent it
    poll_txn: dict[tuple[str, int], str]  # (consumer, poll index) -> transaction id
    aborted: frozenset[str]  # values sent by aborted transactions


def fold(txns: Iterable[Txn], report: HistoryReport) -> tuple[TxnIndex, list[Send], list[Poll]]:
    """Index transactions and return their sends (status from the outcome) and polls for the history.

    Raises ValueError on a repeated transaction id or an unknown outcome."""
    by_id: dict[str, Txn] = {}
    writer: dict[str, str] = {}
    poll_txn: dict[tuple[str, int], str] = {}
    aborted: set[str] = set()
    sends: list[Send] = []
    polls: list[Poll] = []
    counts = dict.fromkeys(OUTCOMES, 0)
    for t in txns:
        if t.id in by_id:
            raise ValueError(f"transaction id {t.id!r} used twice")
        if t.outcome not in counts:
            raise ValueError(f"transaction {t.id!r}: outcome {t.outcome!r} is not one of {OUTCOMES}")
        counts[t.outcome] += 1
        by_id[t.id] = t
        for s in t.sends:
            v = norm(s.value)
            assert v is not None
            writer[v] = t.id
            if t.outcome == "aborted":
                aborted.add(v)
                s = s._replace(status="failed")
            elif t.outcome == "unknown" and s.status == "ok":
                s = s._replace(status="unknown")
            sends.append(s)
        for q in t.polls:
            if q.consumer == FINAL_READER:
                raise ValueError(f"transaction {t.id!r}: consumer name {FINAL_READER!r} is reserved")
            poll_txn[(q.consumer, q.index)] = t.id
            polls.append(q)
    report.txns_committed, report.txns_aborted, report.txns_unknown = (counts[o] for o in OUTCOMES)
    return TxnIndex(by_id, writer, poll_txn, frozenset(aborted)), sends, polls


def settle_unknown(
    index: TxnIndex, reader_polls: Mapping[str, list[Poll]], by_value: dict[str, Send],
    report: HistoryReport,
) -> None:
    """Unknown-outcome transactions a read_committed poll saw a record of committed: their acked
    sends go back to ``ok`` in ``by_value`` (and from the ``unknown`` to the ``acked`` count)."""
    unknown = {tid for tid, t in index.txns.items() if t.outcome == "unknown"}
    proven: set[str] = set()
    for cpolls in reader_polls.values() if unknown else ():
        for q in cpolls:
            if q.isolation == "read_committed":
                proven.update(w for _, _, raw in q.records if (w := index.writer.get(norm(raw) or "")) in unknown)
    for tid in proven:
        for s in index.txns[tid].sends:
            v = norm(s.value)
            if s.status == "ok" and v is not None and by_value.get(v, s).status == "unknown":
                by_value[v] = s._replace(value=v)
                report.unknown -= 1
                report.acked += 1


@dataclass(slots=True)
class VersionOrder:
    """Per partition: the ascending offsets of visible records and each one's dense index."""

    offsets: dict[int, list[int]] = field(default_factory=dict)
    index: dict[int, dict[int, int]] = field(default_factory=dict)
    value_at: dict[int, dict[int, str]] = field(default_factory=dict)

    def idx(self, p: int, o: int) -> int | None:
        part = self.index.get(p)
        return None if part is None else part.get(o)

    def next_offset(self, p: int, o: int) -> int | None:
        """The first visible offset of partition p after o, or None."""
        offs = self.offsets.get(p, [])
        i = bisect_right(offs, o)
        return offs[i] if i < len(offs) else None


def version_order(
    by_value: Mapping[str, Send], reader_polls: Mapping[str, list[Poll]], index: TxnIndex,
) -> VersionOrder:
    """The version order from acked visible sends and read_committed reads (module docstring)."""
    seen: dict[int, dict[int, str]] = {}
    for v, s in by_value.items():
        if s.status == "ok" and s.partition is not None and s.offset is not None and s.offset >= 0:
            seen.setdefault(s.partition, {}).setdefault(s.offset, v)
    for cpolls in reader_polls.values():
        for q in cpolls:
            if q.isolation != "read_committed":
                continue
            for p, o, raw in q.records:
                rv = norm(raw)
                if rv is not None and rv not in index.aborted:
                    seen.setdefault(p, {}).setdefault(o, rv)
    vo = VersionOrder()
    for p, at in seen.items():
        offs = sorted(at)
        vo.offsets[p] = offs
        vo.index[p] = {o: i for i, o in enumerate(offs)}
        vo.value_at[p] = at
    return vo


def check_precommitted(reader_polls: Mapping[str, list[Poll]], index: TxnIndex, report: HistoryReport) -> None:
    """Read_committed reads of a transaction's record before it committed: of an aborted
    transaction, by the writing transaction itself, or returned before its commit was called."""
    kind = K.PRECOMMITTED_READ
    flagged: set[str] = set()
    for consumer, cpolls in reader_polls.items():
        for q in cpolls:
            if q.isolation != "read_committed":
                continue
            reader = index.poll_txn.get((consumer, q.index))
            for p, o, raw in q.records:
                v = norm(raw)
                w = index.writer.get(v) if v is not None else None
                if w is None or v in flagged:
                    continue
                t = index.txns[w]
                if t.outcome == "aborted":
                    why = f"of aborted transaction {w}"
                elif reader == w:
                    why = f"by its own transaction {w}, before that committed"
                elif t.commit_ns is not None and q.t_ns is not None and q.t_ns < t.commit_ns:
                    why = f"{(t.commit_ns - q.t_ns) / 1e6:.3f} ms before transaction {w} called commit"
                else:
                    continue
                assert v is not None
                flagged.add(v)
                report.precommitted += 1
                if report._want(kind):
                    s = next((s for s in t.sends if norm(s.value) == v), None)
                    report.anomalies.append(Anomaly(
                        kind, f"{v!r} was read at p{p}/o{o} by {consumer} poll {q.index} {why}",
                        value=v, txn=w, partition=p, offsets=(o,), consumer=consumer,
                        poll_index=q.index, producer=s.producer if s else None,
                        seq=s.seq if s else None, sources=(reader,) if reader else ()))


def check_internal(index: TxnIndex, vo: VersionOrder, report: HistoryReport) -> None:
    """Within each transaction: successive reads, and successive sends, of one partition must be
    adjacent in the version order (skip: a visible record between; non-monotonic: at or before)."""
    for t in index.txns.values():
        _internal_polls(t, vo, report)
        _internal_sends(t, vo, report)


def _step(last: dict[int, tuple[int, _E]], p: int, i: int, entry: _E, skip: AnomalyKind, back: AnomalyKind
          ) -> tuple[AnomalyKind, int, _E] | None:
    """Record ``entry``, at version index ``i``, as partition ``p``'s latest in ``last``. None when it directly
    follows the previous one (or is the first); else (``skip`` if visible records lie between them, ``back``
    if it is at or before the previous one; how many visible records lie between; the previous entry)."""
    before = last.get(p)
    last[p] = (i, entry)
    if before is None or i == before[0] + 1:
        return None
    return (skip if i > before[0] + 1 else back), i - before[0] - 1, before[1]


def _internal_polls(t: Txn, vo: VersionOrder, report: HistoryReport) -> None:
    last: dict[int, tuple[int, tuple[int, str | None, int]]] = {}  # p -> (index, (offset, value, poll index))
    prev: Poll | None = None
    for q in sorted(t.polls, key=lambda q: (q.consumer, q.index)):
        if prev is not None and (q.consumer != prev.consumer or q.rebalance_before
                                 or q.generation != prev.generation):
            last = {}  # a rebalance inside the transaction: all bets are off for positions
        prev = q
        for p, o, raw in q.records:
            i = vo.idx(p, o)
            if i is None:
                continue
            v = norm(raw)
            step = _step(last, p, i, (o, v, q.index), K.INT_POLL_SKIP, K.INT_NONMONOTONIC_POLL)
            if step is None or not report._want(step[0]):
                continue
            kind, between, (b_offset, b_value, b_poll) = step
            what = (f"skipping {between} visible record(s)" if kind == K.INT_POLL_SKIP
                    else "at or before it in the log")
            report.anomalies.append(Anomaly(
                kind, f"transaction {t.id}: {q.consumer} poll {q.index} read p{p}/o{o} after "
                f"o{b_offset} (poll {b_poll}) in the same transaction, {what}",
                txn=t.id, consumer=q.consumer, partition=p, poll_index=q.index,
                prev_poll_index=b_poll, offsets=(b_offset, o), values=(b_value, v), value=v))


def _internal_sends(t: Txn, vo: VersionOrder, report: HistoryReport) -> None:
    last: dict[int, tuple[int, Send]] = {}  # p -> (index, send)
    for s in sorted(t.sends, key=lambda s: s.seq):
        p, o = s.partition, s.offset
        if s.status != "ok" or p is None or o is None:
            continue
        i = vo.idx(p, o)
        if i is None:
            continue
        step = _step(last, p, i, s, K.INT_SEND_SKIP, K.INT_NONMONOTONIC_SEND)
        if step is None or not report._want(step[0]):
            continue
        kind, between, b = step
        what = f"{between} visible record(s) between them" if kind == K.INT_SEND_SKIP else "at or before it"
        report.anomalies.append(Anomaly(
            kind, f"transaction {t.id}: send seq {s.seq} ({norm(s.value)!r}) landed at p{p}/o{o}, "
            f"after send seq {b.seq} at o{b.offset}: {what}",
            txn=t.id, producer=s.producer, partition=p, seq=s.seq, prev_seq=b.seq,
            offsets=(b.offset if b.offset is not None else -1, o), values=(norm(b.value), norm(s.value)),
            value=norm(s.value)))
