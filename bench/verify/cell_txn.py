"""The transactional half of a cell's history (``workload.transactions`` with ``kbench run --verify``).

A transactional producer's verify data lists its transactions (``txns``: ``(k, outcome, seq_from, seq_to,
commit_ns)``, :mod:`bench.load.txn`); :func:`split_txns` moves each transaction's sends out of the plain
sends into a :class:`~bench.verify.model.Txn` (``id`` ``producer-<i>/<k>``), as the checker's input
contract asks (:mod:`bench.verify.txn`). :func:`txn_section` is the ``verification.transactions`` entry:
the outcomes and the transactional anomaly counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from bench.verify.model import TXN_KINDS, HistoryReport, Outcome, Send, Txn

__all__ = ["split_txns", "txn_records", "txn_section"]

_OUTCOMES = ("committed", "aborted", "unknown")


def txn_records(results: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> dict[int, list[Sequence[Any]]]:
    """Producer index -> its transaction records, for the producers that sent transactionally."""
    out: dict[int, list[Sequence[Any]]] = {}
    for i, r in sorted(results.get("producer", {}).items()):
        ver = r.get("verify") or {}
        if ver.get("txns") is not None:
            out[int(i)] = list(ver["txns"])
    return out


def split_txns(sends: Iterable[Send], records: Mapping[int, Sequence[Sequence[Any]]]) -> tuple[list[Send], list[Txn]]:
    """(the sends outside every transaction, the transactions with their sends in seq order).

    Raises ValueError on a record that is not ``(k, outcome, seq_from, seq_to, commit_ns)``."""
    ranges: dict[str, list[tuple[int, int, str]]] = {}
    txns: dict[str, tuple[Outcome, int | None, list[Send]]] = {}
    for i, recs in records.items():
        for rec in recs:
            k, outcome, lo, hi, commit_ns = rec
            if outcome not in _OUTCOMES or not 0 <= int(lo) <= int(hi):
                raise ValueError(f"producer {i}: transaction record {list(rec)} is not (k, outcome, from, to, ns)")
            tid = f"producer-{i}/{k}"
            ranges.setdefault(str(i), []).append((int(lo), int(hi), tid))
            txns[tid] = (cast(Outcome, outcome), None if commit_ns is None else int(commit_ns), [])
    for rs in ranges.values():
        rs.sort()
    plain: list[Send] = []
    for s in sends:
        owner = _txn_of(ranges.get(str(s.producer), ()), s.seq)
        if owner is None:
            plain.append(s)
        else:
            txns[owner][2].append(s)
    out = [Txn(tid, outcome, tuple(sorted(ss, key=lambda s: s.seq)), commit_ns=ns)
           for tid, (outcome, ns, ss) in txns.items()]
    return plain, out


def _txn_of(ranges: Sequence[tuple[int, int, str]], seq: int) -> str | None:
    """The transaction whose [from, to) holds ``seq`` (ranges are in send order, so ascending)."""
    lo, hi = 0, len(ranges)
    while lo < hi:
        mid = (lo + hi) // 2
        a, b, tid = ranges[mid]
        if seq < a:
            hi = mid
        elif seq >= b:
            lo = mid + 1
        else:
            return tid
    return None


def txn_section(report: HistoryReport, txns: Sequence[Txn]) -> dict[str, Any]:
    """``verification.transactions``: outcomes, the records of aborted ones, and the transactional kinds'
    counts (tolerated kinds marked)."""
    return {
        "committed": report.txns_committed, "aborted": report.txns_aborted, "unknown": report.txns_unknown,
        "records": sum(len(t.sends) for t in txns),
        "records_aborted": sum(len(t.sends) for t in txns if t.outcome == "aborted"),
        "precommitted_reads": report.precommitted,
        "anomalies": {str(k): report.count(k) for k in sorted(TXN_KINDS, key=str)},
        "tolerated": sorted(str(k) for k in TXN_KINDS if k not in report.failing_kinds),
    }
