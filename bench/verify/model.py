"""The vocabulary of a produce/consume history and of its verdict: sends, polls, anomalies, report.

:mod:`bench.verify.history` defines the anomaly kinds (its module docstring) and checks histories.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = [
    "FINAL_READER",
    "STATUSES",
    "Anomaly",
    "AnomalyKind",
    "HistoryReport",
    "Poll",
    "Pos",
    "Send",
    "Status",
    "Value",
    "jsonable",
]

Value = str | bytes
Status = Literal["ok", "failed", "unknown"]
Pos = tuple[int, int]

#: consumer name under which the final per-partition reads are checked (poll index 0).
FINAL_READER = "<final>"
STATUSES = ("ok", "failed", "unknown")


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
    (None counts as a value) or ``rebalance_before=True``; position jumps across it are allowed."""

    consumer: str
    index: int
    records: Sequence[tuple[int, int, Value | None]]
    generation: int | None = None
    rebalance_before: bool = False


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; empty/None fields are left out, values are made str."""
        out: dict[str, Any] = {"kind": str(self.kind), "message": self.message}
        for name in self.__slots__[2:]:
            v = getattr(self, name)
            if v is None or v == ():
                continue
            if name in ("value", "values"):
                v = jsonable(v) if name == "value" else [jsonable(x) for x in v]
            elif isinstance(v, tuple):  # offsets, positions, sources
                v = [list(x) if isinstance(x, tuple) else x for x in v]
            out[name] = v
        return out


@dataclass
class HistoryReport:
    """Counts, anomalies and verdict of one history. ``ok`` is False iff a failing kind occurred.

    Counts: sends by status (``acked``/``failed``/``unknown``, ``unknown_read`` of which were read);
    ``read`` distinct values read (any source); per-value ``lost``, ``unseen``, ``expired`` (acked,
    below ``log_start``), ``duplicated``, ``aborted_reads``, ``unexpected``; ``inconsistent``
    positions. ``anomaly_counts`` is exact per kind; ``anomalies`` keeps ``max_examples`` per kind.
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
        if self.ok:
            tolerated = [a for a in self.anomalies if a.kind not in self.failing_kinds]
            return text + (" — OK (tolerated: " + tolerated[0].message + ")" if tolerated else " — OK")
        failures = self.failures
        return text + (f" — FAILED; first: {failures[0].message}" if failures else " — FAILED")


def jsonable(v: object) -> object:
    """Values as UTF-8-safe text (undecodable bytes were kept as surrogates; show them escaped)."""
    if isinstance(v, str):
        v = v.encode("utf-8", "surrogateescape")
    return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v
