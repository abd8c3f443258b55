"""Driver protocol v2, transactional mode (docs/drivers.md, "Protocol v2: transactions"): the spec's
``transactions`` and ``isolation_level`` fields and the per-transaction events.

A producer whose spec has ``"protocol": 2`` and a ``transactions`` object (:class:`TxnOptions`) is a
transactional producer: it initialises ``transactional_id``, then sends its schedule in transactions of
``messages`` records; transaction *k* ends as ``plan[k]`` says, or (past the plan) is aborted when
``floor((k+1)·abort_ratio) > floor(k·abort_ratio)``. With ``hold``, the transaction still open when the
schedule ends is flushed and held open (a ``txn_held`` line) until ``stop``, then ended as ``hold`` says.
With ``consume`` (:class:`ConsumeTransform`) it is a consume-transform-produce loop instead: each
transaction is one poll batch of the input topic (a read_committed group consumer), written to the spec's
topic, its offsets sent with the transaction; after an abort the consumer goes back to its committed
offsets. A consumer's ``isolation_level`` sets the client's own (``read_committed`` / ``read_uncommitted``).

In verify mode the producer writes, in order:

* ``{"type": "txn_held", "txn": k, "seq_from": a, "seq_to": b, "acked": n, "t_ns": t}``
* ``{"type": "txn", "txn": k, "end": "commit"|"abort", "outcome": "committed"|"aborted"|"unknown",
  "error": text|null, "seq_from": a, "seq_to": b, "acked": n, "begin_ns": t, "end_ns": t, "t_ns": t,
  "input": {"p": [first offset, next offset]}}``

``seq_from``/``seq_to``: the transaction's sends are the producer's sequence numbers ``[seq_from, seq_to)``
(their acks and failures are in the result's ``verify``); ``end_ns``: when commit or abort was called;
``t_ns``: when it returned (CLOCK_MONOTONIC). :func:`parse_txn_event` turns a line into a typed event or
raises :class:`~bench.drivers.events.EventError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from bench.drivers.events import EventError

__all__ = ["ISOLATION_LEVELS", "TXN_ENDS", "TXN_EVENT_TYPES", "TXN_OUTCOMES", "ConsumeTransform", "IsolationLevel",
           "TxnEnd", "TxnEnded", "TxnEvent", "TxnHeld", "TxnOptions", "TxnOutcome", "parse_txn_event"]

TxnEnd = Literal["commit", "abort"]
TxnOutcome = Literal["committed", "aborted", "unknown"]
IsolationLevel = Literal["read_committed", "read_uncommitted"]
TXN_ENDS: tuple[TxnEnd, ...] = ("commit", "abort")
TXN_OUTCOMES: tuple[TxnOutcome, ...] = ("committed", "aborted", "unknown")
ISOLATION_LEVELS: tuple[IsolationLevel, ...] = ("read_committed", "read_uncommitted")
TXN_EVENT_TYPES = ("txn", "txn_held")


@dataclass(frozen=True)
class ConsumeTransform:
    """Consume-transform-produce: read ``topic`` in group ``group`` (read_committed), stop on its own once
    ``records`` input records are committed. Each output value is a fresh 16-byte header (this producer,
    its own sequence) followed by the input value's header, sent to the input's partition number."""

    topic: str
    group: str
    records: int

    def __post_init__(self) -> None:
        if not self.topic or not self.group:
            raise ValueError("transactions.consume: topic and group must be non-empty")
        if self.records <= 0:
            raise ValueError(f"transactions.consume.records {self.records}: expected a positive count")


@dataclass(frozen=True)
class TxnOptions:
    """The spec's ``transactions`` object (module docstring). ``timeout_ms``: transaction.timeout.ms (None:
    the client's default)."""

    transactional_id: str
    messages: int = 1
    abort_ratio: float = 0.0
    plan: tuple[TxnEnd, ...] = ()
    hold: TxnEnd | None = None
    timeout_ms: int | None = None
    consume: ConsumeTransform | None = None

    def __post_init__(self) -> None:
        if not self.transactional_id:
            raise ValueError("transactions.transactional_id: expected a non-empty string")
        if self.messages <= 0:
            raise ValueError(f"transactions.messages {self.messages}: expected a positive count")
        if not 0.0 <= self.abort_ratio <= 1.0:
            raise ValueError(f"transactions.abort_ratio {self.abort_ratio}: expected 0..1")
        bad = [e for e in (*self.plan, *((self.hold,) if self.hold else ())) if e not in TXN_ENDS]
        if bad:
            raise ValueError(f"transactions.plan/hold {bad[0]!r}: expected one of {', '.join(TXN_ENDS)}")
        if self.consume is not None and self.hold is not None:
            raise ValueError("transactions: hold is for a producer's schedule, not consume-transform-produce")

    def end_of(self, k: int) -> TxnEnd:
        """How transaction ``k`` (from 0) ends: ``plan[k]``, else by ``abort_ratio``."""
        if k < len(self.plan):
            return self.plan[k]
        r = self.abort_ratio
        return "abort" if math.floor((k + 1) * r + 1e-9) > math.floor(k * r + 1e-9) else "commit"

    def to_spec(self) -> dict[str, object]:
        consume = None if self.consume is None else {
            "topic": self.consume.topic, "group": self.consume.group, "records": self.consume.records}
        return {"transactional_id": self.transactional_id, "messages": self.messages,
                "abort_ratio": self.abort_ratio, "plan": list(self.plan), "hold": self.hold,
                "timeout_ms": self.timeout_ms, "consume": consume}


@dataclass(frozen=True)
class TxnHeld:
    """The transaction left open at the schedule's end (``hold``): flushed, waiting for ``stop``."""

    txn: int
    seq_from: int
    seq_to: int
    acked: int
    t_ns: int


@dataclass(frozen=True)
class TxnEnded:
    """One transaction's end: what was asked (``end``), what came of it, and its sends ``[seq_from, seq_to)``.

    ``outcome``: committed (commit returned), aborted (abort returned, possibly after a failed commit:
    ``error`` says why), unknown (the commit failed and no abort followed: it may or may not have
    committed). ``input``: consume-transform-produce, per input partition ``(first offset, next offset)``."""

    txn: int
    end: TxnEnd
    outcome: TxnOutcome
    error: str | None
    seq_from: int
    seq_to: int
    acked: int
    begin_ns: int
    end_ns: int
    t_ns: int
    input: Mapping[int, tuple[int, int]]


TxnEvent = TxnHeld | TxnEnded


def _int(msg: Mapping[str, object], key: str) -> int:
    v = msg.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise EventError(f"{msg.get('type')}.{key}: expected a non-negative integer, got {v!r}")
    return v


def _choice(msg: Mapping[str, object], key: str, allowed: tuple[str, ...]) -> str:
    v = msg.get(key)
    if v not in allowed:
        raise EventError(f"{msg.get('type')}.{key}: expected one of {', '.join(allowed)}, got {v!r}")
    return cast(str, v)


def _input(msg: Mapping[str, object]) -> dict[int, tuple[int, int]]:
    v = msg.get("input") or {}
    if not isinstance(v, dict):
        raise EventError(f"txn.input: expected an object partition -> [first, next], got {v!r}")
    out: dict[int, tuple[int, int]] = {}
    for p, rng in v.items():
        if not (isinstance(p, str) and p.isdigit() and isinstance(rng, list) and len(rng) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in rng) and rng[0] <= rng[1]):
            raise EventError(f"txn.input: expected \"partition\": [first, next], got {p!r}: {rng!r}")
        out[int(p)] = (rng[0], rng[1])
    return out


def parse_txn_event(msg: Mapping[str, object]) -> TxnEvent:
    """One ``txn`` / ``txn_held`` line as a typed event (EventError naming the field if bad)."""
    kind = msg.get("type")
    if kind not in TXN_EVENT_TYPES:
        raise EventError(f"type {kind!r}: expected one of {', '.join(TXN_EVENT_TYPES)}")
    txn, seq_from, seq_to, acked = (_int(msg, k) for k in ("txn", "seq_from", "seq_to", "acked"))
    if seq_to < seq_from or acked > seq_to - seq_from:
        raise EventError(f"{kind}: expected seq_from <= seq_to and acked <= their difference, got "
                         f"[{seq_from}, {seq_to}) acked {acked}")
    if kind == "txn_held":
        return TxnHeld(txn, seq_from, seq_to, acked, _int(msg, "t_ns"))
    error = msg.get("error")
    if error is not None and not isinstance(error, str):
        raise EventError(f"txn.error: expected an error text or null, got {error!r}")
    outcome = cast(TxnOutcome, _choice(msg, "outcome", TXN_OUTCOMES))
    if outcome == "unknown" and not error:
        raise EventError("txn: outcome unknown but no error is given")
    return TxnEnded(txn, cast(TxnEnd, _choice(msg, "end", TXN_ENDS)), outcome, error, seq_from, seq_to, acked,
                    _int(msg, "begin_ns"), _int(msg, "end_ns"), _int(msg, "t_ns"), _input(msg))
