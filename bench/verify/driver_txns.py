"""A transactional driver's events and acks as the history checker's transactions (:class:`Txn`).

A producer in protocol v2's transactional mode (:mod:`bench.drivers.txn_events`) reports each transaction's
end (:class:`TxnEnded`: outcome, its sends as the sequence range ``[seq_from, seq_to)``) and, in its result's
``verify``, every ack ``(partition, offset, producer, seq, ack_ns)`` and failed send. :func:`driver_txns`
joins them: one :class:`Txn` per transaction with its sends (acked at their offsets, failed, or unknown when
neither came), its outcome and ``commit_ns`` (when commit was called). A transaction held open that never
ended (the run stopped first), and sends outside every reported transaction, are an unknown-outcome
transaction each, so no send is dropped from the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.drivers.txn_events import TxnEnded, TxnEvent, TxnHeld
from bench.verify.cell import DEFINITE_FAILURES, value_id
from bench.verify.model import Send, Txn

__all__ = ["driver_txns", "txn_id"]


def txn_id(producer: int, k: int | str) -> str:
    """The history id of producer ``producer``'s transaction ``k`` (``"p<producer>/<k>"``)."""
    return f"p{producer}/{k}"


def _sends(producer: int, seqs: Iterable[int], acks: Mapping[int, Sequence[Any]],
           failed: Mapping[int, str]) -> list[Send]:
    out: list[Send] = []
    for seq in seqs:
        vid = value_id(producer, seq)
        ack = acks.get(seq)
        if ack is not None:
            p, o, _prod, _seq, t = ack
            out.append(Send(str(producer), seq, vid, int(p), int(o) if o is not None and o >= 0 else None, "ok",
                            int(t)))
        elif seq in failed:
            out.append(Send(str(producer), seq, vid, status="failed" if failed[seq] in DEFINITE_FAILURES
                            else "unknown"))
        else:
            out.append(Send(str(producer), seq, vid, status="unknown"))
    return out


def driver_txns(producer: int, result: Mapping[str, Any], events: Iterable[TxnEvent]) -> list[Txn]:
    """The transactions of producer ``producer`` from its ``txn`` events and its result's verify data."""
    events = list(events)
    ver = result.get("verify") or {}
    acks = {int(row[3]): row for row in ver.get("acks", [])}
    failed = {int(seq): str(name) for _prod, seq, name in ver.get("failed", [])}
    sent = int(ver.get("sent") or 0)
    txns: list[Txn] = []
    covered: set[int] = set()
    ended = {e.txn for e in events if isinstance(e, TxnEnded)}
    for e in events:
        if isinstance(e, TxnHeld) and e.txn in ended:
            continue
        seqs = range(e.seq_from, e.seq_to)
        covered.update(seqs)
        sends = _sends(producer, seqs, acks, failed)
        if isinstance(e, TxnEnded):
            txns.append(Txn(txn_id(producer, e.txn), e.outcome, sends,
                            commit_ns=e.end_ns if e.end == "commit" else None))
        else:
            txns.append(Txn(txn_id(producer, e.txn), "unknown", sends))
    rest = [s for s in range(sent) if s not in covered] + [s for s in sorted({*acks, *failed}) if s >= sent]
    if rest:
        txns.append(Txn(txn_id(producer, "unreported"), "unknown", _sends(producer, rest, acks, failed)))
    return txns
