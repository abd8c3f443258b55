"""The vocabulary of a produce/consume history and of its verdict: sends, polls, transactions,
dependencies, anomalies, report.

:mod:`bench.verify.history` defines the anomaly kinds (its module docstring) and checks histories;
:mod:`bench.verify.txn` describes the transactional input (:class:`Txn`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = [
    "FINAL_READER",
    "OUTCOMES",
    "STATUSES",
    "TOLERATED_BY_DEFAULT",
    "TXN_KINDS",
    "Anomaly",
    "AnomalyKind",
    "Dep",
    "DepKind",
    "HistoryReport",
    "Isolation",
    "Outcome",
    "Poll",
    "Pos",
    "Send",
    "Status",
    "Txn",
    "Value",
    "jsonable",
]

Value = str | bytes
Status = Literal["ok", "failed", "unknown"]
Pos = tuple[int, int]
Outcome = Literal["committed", "aborted", "unknown"]
Isolation = Literal["read_committed", "read_uncommitted"]
DepKind = Literal["ww", "wr", "rw"]

#: consumer name under which the final per-partition reads are checked (poll index 0).
FINAL_READER = "<final>"
STATUSES = ("ok", "failed", "unknown")
OUTCOMES = ("committed", "aborted", "unknown")


class Send(NamedTuple):
    """One produce call. ok: acked at (partition, offset); failed: definitely not written; unknown:
    timed out / indeterminate. ``seq`` is the producer's send order; ``value`` a unique id."""

    producer: str
    seq: int
    value: Value
    partition: int | None = None
    offset: int | None = None
    status: Status = "ok"
    t_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Poll:
    """One consumer poll batch: ``records`` are ``(partition, offset, value)`` in delivery order.

    A rebalance before this poll is a ``generation`` different from the consumer's previous poll
    (None counts as a value) or ``rebalance_before=True``; position jumps across it are allowed.
    ``t_ns``: when the poll returned (the clock of :attr:`Txn.commit_ns`); ``isolation``: the
    consumer's ``isolation.level`` (only read_committed reads are judged for precommitted reads)."""

    consumer: str
    index: int
    records: Sequence[tuple[int, int, Value | None]]
    generation: int | None = None
    rebalance_before: bool = False
    t_ns: int | None = None
    isolation: Isolation = "read_committed"


@dataclass(frozen=True, slots=True)
class Txn:
    """One transaction of a transactional producer (and, consume-transform-produce, its consumer).

    ``id`` is unique in the history; ``sends`` are its produce calls and ``polls`` its consumer's
    poll batches (each also a normal :class:`Send` / :class:`Poll`: pass them here, not again in
    ``check(sends, polls)``). ``outcome``: committed (commit returned ok), aborted (abort returned,
    or commit definitely failed), unknown (commit timed out, or the run ended first).
    ``commit_ns``: when commit was *called* (the clock of :attr:`Poll.t_ns`), or None."""

    id: str
    outcome: Outcome
    sends: Sequence[Send] = ()
    polls: Sequence[Poll] = ()
    commit_ns: int | None = None


class Dep(NamedTuple):
    """A dependency edge ``src -> dst`` between transactions (Adya/Elle):

    - ww: src wrote the version of ``partition`` at ``offsets[0]``, dst the next one at ``offsets[1]``;
    - wr: dst read ``value``, written by src, at ``offsets[0]``;
    - rw: src read ``partition`` up to ``offsets[0]``, dst wrote the next version at ``offsets[1]``."""

    src: str
    dst: str
    kind: DepKind
    partition: int
    offsets: tuple[int, ...]
    value: Value | None = None


class AnomalyKind(enum.StrEnum):
    LOST_WRITE = "lost-write"
    UNSEEN = "unseen"
    DUPLICATE = "duplicate"
    INCONSISTENT_OFFSETS = "inconsistent-offsets"
    ABORTED_READ = "aborted-read"
    NON_MONOTONIC_POLL = "non-monotonic-poll"
    POLL_SKIP = "poll-skip"
    NON_MONOTONIC_SEND = "non-monotonic-send"
    UNEXPECTED_READ = "unexpected-read"
    PRECOMMITTED_READ = "precommitted-read"
    INT_POLL_SKIP = "int-poll-skip"
    INT_NONMONOTONIC_POLL = "int-nonmonotonic-poll"
    INT_SEND_SKIP = "int-send-skip"
    INT_NONMONOTONIC_SEND = "int-nonmonotonic-send"
    G0 = "G0"
    G1C = "G1c"


#: the kinds only transactional histories can have.
TXN_KINDS = frozenset({
    AnomalyKind.PRECOMMITTED_READ, AnomalyKind.INT_POLL_SKIP, AnomalyKind.INT_NONMONOTONIC_POLL,
    AnomalyKind.INT_SEND_SKIP, AnomalyKind.INT_NONMONOTONIC_SEND, AnomalyKind.G0, AnomalyKind.G1C,
})
#: reported but not failing unless asked (as in Jepsen's Kafka checker): Kafka does not isolate the
#: writes of concurrent transactions, so their sends interleave (int-send-skip) and write cycles
#: (G0) between them are expected.
TOLERATED_BY_DEFAULT = frozenset({AnomalyKind.INT_SEND_SKIP, AnomalyKind.G0})


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomaly. Field use by kind:

    - lost-write / unseen: value, producer, seq, partition, offsets=(acked offset,) (empty if the ack
      had no offset), t_ns
    - duplicate: value, positions (sorted), producer/seq when sent
    - inconsistent-offsets: partition, offsets=(offset,), values, sources (who put each value there)
    - aborted-read / unexpected-read: value, producer/seq/t_ns (aborted), and the first read:
      consumer, poll_index, partition, offsets=(offset,)
    - non-monotonic-poll / poll-skip: consumer, partition, poll_index (the later poll),
      prev_poll_index, offsets=(previous offset, next offset), value (at the next offset)
    - non-monotonic-send: producer, partition, seq (the later send), prev_seq,
      offsets=(earlier send's offset, later send's offset), values=(earlier value, later value)
    - precommitted-read: value, txn (the writer), producer/seq, and the read: consumer, poll_index,
      partition, offsets=(offset,), sources=(reader transaction,) when the reader was in one
    - int-poll-skip / int-nonmonotonic-poll: txn, consumer, partition, poll_index (the later read),
      prev_poll_index, offsets=(earlier offset, later offset), values=(earlier value, later value)
    - int-send-skip / int-nonmonotonic-send: txn, producer, partition, seq (the later send),
      prev_seq, offsets=(earlier send's offset, later send's offset), values
    - G0 / G1c: txns (the cycle, in order, its first repeated at the end), edges (one :class:`Dep`
      per step)
    """

    kind: AnomalyKind
    message: str
    value: Value | None = None
    values: tuple[Value | None, ...] = ()
    partition: int | None = None
    offsets: tuple[int, ...] = ()
    positions: tuple[Pos, ...] = ()
    producer: str | None = None
    seq: int | None = None
    prev_seq: int | None = None
    consumer: str | None = None
    poll_index: int | None = None
    prev_poll_index: int | None = None
    t_ns: int | None = None
    sources: tuple[str, ...] = ()
    txn: str | None = None
    txns: tuple[str, ...] = ()
    edges: tuple[Dep, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; empty/None fields are left out, values are made str."""
        out: dict[str, Any] = {"kind": str(self.kind), "message": self.message}
        for name in self.__slots__[2:]:
            v = getattr(self, name)
            if v is None or v == ():
                continue
            if name in ("value", "values"):
                v = jsonable(v) if name == "value" else [jsonable(x) for x in v]
            elif name == "edges":
                v = [{**e._asdict(), "offsets": list(e.offsets), "value": jsonable(e.value)} for e in v]
            elif isinstance(v, tuple):  # offsets, positions, sources, txns
                v = [list(x) if isinstance(x, tuple) else x for x in v]
            out[name] = v
        return out


@dataclass
class HistoryReport:
    """Counts, anomalies and verdict of one history. ``ok`` is False iff a failing kind occurred.

    Counts: sends by status (``acked``/``failed``/``unknown``, ``unknown_read`` of which were read);
    ``read`` distinct values read (any source); per-value ``lost``, ``unseen``, ``expired`` (acked,
    below ``log_start``), ``duplicated``, ``aborted_reads``, ``unexpected``; ``inconsistent``
    positions. Transactions by outcome (``txns_committed``/``txns_aborted``/``txns_unknown``) and
    ``precommitted`` values read too early. ``anomaly_counts`` is exact per kind; ``anomalies``
    keeps ``max_examples`` per kind.
    """

    acked: int = 0
    failed: int = 0
    unknown: int = 0
    unknown_read: int = 0
    read: int = 0
    lost: int = 0
    unseen: int = 0
    expired: int = 0
    duplicated: int = 0
    inconsistent: int = 0
    aborted_reads: int = 0
    unexpected: int = 0
    txns_committed: int = 0
    txns_aborted: int = 0
    txns_unknown: int = 0
    precommitted: int = 0
    anomaly_counts: dict[AnomalyKind, int] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)
    failing_kinds: frozenset[AnomalyKind] = frozenset(AnomalyKind)
    max_examples: int = 1000

    def _want(self, kind: AnomalyKind) -> bool:
        """Count one anomaly of ``kind``; True if it is still to be kept (below max_examples)."""
        n = self.anomaly_counts.get(kind, 0) + 1
        self.anomaly_counts[kind] = n
        return n <= self.max_examples

    @property
    def has_txns(self) -> bool:
        return bool(self.txns_committed or self.txns_aborted or self.txns_unknown)

    @property
    def ok(self) -> bool:
        return not any(self.anomaly_counts.get(k, 0) for k in self.failing_kinds)

    def count(self, kind: AnomalyKind) -> int:
        return self.anomaly_counts.get(kind, 0)

    def by_kind(self, kind: AnomalyKind) -> list[Anomaly]:
        return [a for a in self.anomalies if a.kind == kind]

    @property
    def failures(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.kind in self.failing_kinds]

    def to_dict(self) -> dict[str, Any]:
        counts = {name: getattr(self, name) for name in (
            "acked", "failed", "unknown", "unknown_read", "read", "lost", "unseen", "expired",
            "duplicated", "inconsistent", "aborted_reads", "unexpected")}
        if self.has_txns:
            counts.update({name: getattr(self, name) for name in _TXN_COUNTS})
        return {
            "ok": self.ok,
            "counts": counts,
            "anomaly_counts": {str(k): n for k, n in sorted(self.anomaly_counts.items()) if n},
            "failing_kinds": sorted(str(k) for k in self.failing_kinds),
            "anomalies": [a.to_dict() for a in self.anomalies],
            "truncated": any(n > self.max_examples for n in self.anomaly_counts.values()),
            "summary": self.summary(),
        }

    def summary(self) -> str:
        k = AnomalyKind
        text = (
            f"acked {self.acked}, failed {self.failed}, unknown {self.unknown} "
            f"({self.unknown_read} read), read {self.read}, lost {self.lost}, unseen {self.unseen}, "
            f"expired {self.expired}, duplicated {self.duplicated}, "
            f"inconsistent offsets {self.inconsistent}, aborted reads {self.aborted_reads}, "
            f"unexpected reads {self.unexpected}, non-monotonic polls {self.count(k.NON_MONOTONIC_POLL)}, "
            f"poll skips {self.count(k.POLL_SKIP)}, non-monotonic sends {self.count(k.NON_MONOTONIC_SEND)}"
        )
        if self.has_txns:
            text += (
                f"; transactions committed {self.txns_committed}, aborted {self.txns_aborted}, "
                f"unknown {self.txns_unknown}, precommitted reads {self.precommitted}, internal "
                f"poll skips {self.count(k.INT_POLL_SKIP)}, internal non-monotonic polls "
                f"{self.count(k.INT_NONMONOTONIC_POLL)}, internal send skips {self.count(k.INT_SEND_SKIP)}, "
                f"internal non-monotonic sends {self.count(k.INT_NONMONOTONIC_SEND)}, "
                f"G0 {self.count(k.G0)}, G1c {self.count(k.G1C)}"
            )
        if self.ok:
            tolerated = [a for a in self.anomalies if a.kind not in self.failing_kinds]
            return text + (" — OK (tolerated: " + tolerated[0].message + ")" if tolerated else " — OK")
        failures = self.failures
        return text + (f" — FAILED; first: {failures[0].message}" if failures else " — FAILED")


_TXN_COUNTS = ("txns_committed", "txns_aborted", "txns_unknown", "precommitted")


def jsonable(v: object) -> object:
    """Values as UTF-8-safe text (undecodable bytes were kept as surrogates; show them escaped)."""
    if isinstance(v, str):
        v = v.encode("utf-8", "surrogateescape")
    return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v
