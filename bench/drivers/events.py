"""Driver protocol v2 (docs/drivers.md, "Protocol v2"): the consumer-group spec options and events.

Protocol v2 is additive to v1. The coordinator writes ``"protocol": 2`` and a ``group`` options object
(:class:`GroupOptions`) in the spec of a consumer that needs them; a driver that speaks v2 answers
``hello`` and ``ready`` with ``"protocol": 2`` (``ready`` also says whether it reports group events), and
in verify mode writes one line per rebalance callback and per commit, in the order they happened:

* ``{"type": "assigned", "partitions": [...], "generation": g|null, "reads": n, "t_ns": t}``
* ``{"type": "revoked", "partitions": [...], "lost": bool, "generation": g|null, "reads": n, "t_ns": t}``
* ``{"type": "committed", "offsets": {"p": next offset}, "ok": bool, "error": name|null, "reads": n,
  "t_ns": t}``

``reads`` is how many records the driver had handed to the application (its verify reads) when the event
happened, so the events can be placed in the read stream; ``t_ns`` is CLOCK_MONOTONIC. Partitions are
deltas: a cooperative assignor assigns and revokes only what moves, an eager one everything.
:func:`parse_event` turns a line into a typed event or raises :class:`EventError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["ASSIGNORS", "COMMIT_MODES", "EVENT_TYPES", "GROUP_PROTOCOLS", "OFFSET_RESETS", "PROTOCOL_V1", "PROTOCOL_V2",
           "Assigned", "Committed",
           "EventError", "GroupEvent", "GroupOptions", "Revoked", "parse_event"]

PROTOCOL_V1 = 1
PROTOCOL_V2 = 2
#: assignor names of the spec's ``group.assignor`` (a driver maps them to its client's own)
ASSIGNORS = ("range", "roundrobin", "sticky", "cooperative-sticky")
CommitMode = Literal["none", "batch"]
COMMIT_MODES: tuple[CommitMode, ...] = ("none", "batch")
#: ``group.auto_offset_reset``: where a member starts without a (valid) committed offset; ``none``: an error
OffsetReset = Literal["earliest", "latest", "none"]
OFFSET_RESETS: tuple[OffsetReset, ...] = ("earliest", "latest", "none")
#: ``group.group_protocol``: the classic group protocol or KIP-848's consumer protocol
GroupProtocol = Literal["classic", "consumer"]
GROUP_PROTOCOLS: tuple[GroupProtocol, ...] = ("classic", "consumer")
EVENT_TYPES = ("assigned", "revoked", "committed")


class EventError(ValueError):
    """A group event line that does not follow protocol v2; the message names the field."""


@dataclass(frozen=True)
class GroupOptions:
    """The spec's ``group`` object: what a group check sets on a v2 consumer (None: the client's default).

    ``commit="batch"``: commit synchronously, after each poll batch, the offsets of the records handed to
    the application (offset + 1); ``max_records``: stop on its own after handing over that many records
    (the rest of that batch is dropped, neither counted nor committed); ``stop_at_ns``: stop on its own at
    that CLOCK_MONOTONIC time. A member that stops on its own leaves the group and writes its result.
    ``instance_id``: static membership (``group.instance.id``); ``auto_offset_reset``: where it starts without
    a valid committed offset (default: earliest); ``group_protocol``: classic or KIP-848's consumer protocol
    (with ``consumer`` the broker assigns and times: no ``assignor``, ``session_timeout_ms`` or
    ``heartbeat_interval_ms``); ``heartbeat_interval_ms``: ``heartbeat.interval.ms``; ``commit_metadata``: the
    metadata string every commit of the member carries (Java ``OffsetAndMetadata(offset, metadata)``)."""

    assignor: str | None = None
    auto_commit: bool | None = None
    commit: CommitMode = "none"
    session_timeout_ms: int | None = None
    max_records: int | None = None
    stop_at_ns: int | None = None
    instance_id: str | None = None
    auto_offset_reset: OffsetReset | None = None
    group_protocol: GroupProtocol | None = None
    heartbeat_interval_ms: int | None = None
    commit_metadata: str | None = None

    def __post_init__(self) -> None:
        if self.assignor is not None and self.assignor not in ASSIGNORS:
            raise ValueError(f"group.assignor {self.assignor!r}: expected one of {', '.join(ASSIGNORS)}")
        if self.commit not in COMMIT_MODES:
            raise ValueError(f"group.commit {self.commit!r}: expected one of {', '.join(COMMIT_MODES)}")
        if self.commit == "batch" and self.auto_commit:
            raise ValueError("group.commit 'batch' with auto_commit true: pick one way to commit")
        if self.auto_offset_reset is not None and self.auto_offset_reset not in OFFSET_RESETS:
            raise ValueError(f"group.auto_offset_reset {self.auto_offset_reset!r}: expected one of "
                             f"{', '.join(OFFSET_RESETS)}")
        if self.group_protocol is not None and self.group_protocol not in GROUP_PROTOCOLS:
            raise ValueError(f"group.group_protocol {self.group_protocol!r}: expected one of "
                             f"{', '.join(GROUP_PROTOCOLS)}")
        if self.group_protocol == "consumer" and (self.assignor is not None or self.session_timeout_ms is not None
                                                  or self.heartbeat_interval_ms is not None):
            raise ValueError("group.group_protocol 'consumer' with an assignor, session_timeout_ms or "
                             "heartbeat_interval_ms: the broker assigns and times sessions in KIP-848's protocol")
        if self.heartbeat_interval_ms is not None and self.heartbeat_interval_ms <= 0:
            raise ValueError("group.heartbeat_interval_ms: expected a positive number of ms")
        if self.instance_id == "":
            raise ValueError("group.instance_id: expected a non-empty id or null")

    def to_spec(self) -> dict[str, object]:
        """The spec's ``group`` object (every key present, null where the client default applies)."""
        return {"assignor": self.assignor, "auto_commit": self.auto_commit, "commit": self.commit,
                "session_timeout_ms": self.session_timeout_ms, "max_records": self.max_records,
                "stop_at_ns": self.stop_at_ns, "instance_id": self.instance_id,
                "auto_offset_reset": self.auto_offset_reset, "group_protocol": self.group_protocol,
                "heartbeat_interval_ms": self.heartbeat_interval_ms, "commit_metadata": self.commit_metadata}


@dataclass(frozen=True)
class Assigned:
    """Partitions added to this member (onPartitionsAssigned / OnPartitionsAssigned)."""

    partitions: tuple[int, ...]
    generation: int | None
    reads: int
    t_ns: int


@dataclass(frozen=True)
class Revoked:
    """Partitions taken from this member; ``lost``: without a clean revoke (onPartitionsLost)."""

    partitions: tuple[int, ...]
    generation: int | None
    lost: bool
    reads: int
    t_ns: int


@dataclass(frozen=True)
class Committed:
    """One synchronous commit: ``offsets`` partition -> the next offset committed; ``ok`` or ``error``."""

    offsets: Mapping[int, int]
    ok: bool
    error: str | None
    reads: int
    t_ns: int


GroupEvent = Assigned | Revoked | Committed


def _int(msg: Mapping[str, object], key: str, *, optional: bool = False) -> int | None:
    v = msg.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise EventError(f"{msg.get('type')}.{key}: expected an integer, got {v!r}")
    return v


def _need_int(msg: Mapping[str, object], key: str) -> int:
    v = _int(msg, key)
    assert v is not None
    return v


def _partitions(msg: Mapping[str, object]) -> tuple[int, ...]:
    v = msg.get("partitions")
    if not isinstance(v, list) or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in v):
        raise EventError(f"{msg.get('type')}.partitions: expected a list of partition numbers, got {v!r}")
    return tuple(sorted(v))


def _offsets(msg: Mapping[str, object]) -> dict[int, int]:
    v = msg.get("offsets")
    if not isinstance(v, dict):
        raise EventError(f"committed.offsets: expected an object partition -> offset, got {v!r}")
    out: dict[int, int] = {}
    for p, o in v.items():
        if not (isinstance(p, str) and p.isdigit()) or not isinstance(o, int) or isinstance(o, bool):
            raise EventError(f"committed.offsets: expected \"partition\": offset, got {p!r}: {o!r}")
        out[int(p)] = o
    return out


def _bool(msg: Mapping[str, object], key: str) -> bool:
    v = msg.get(key)
    if not isinstance(v, bool):
        raise EventError(f"{msg.get('type')}.{key}: expected true or false, got {v!r}")
    return v


def parse_event(msg: Mapping[str, object]) -> GroupEvent:
    """One ``assigned`` / ``revoked`` / ``committed`` line as a typed event (:class:`EventError` if bad)."""
    kind = msg.get("type")
    if kind not in EVENT_TYPES:
        raise EventError(f"type {kind!r}: expected one of {', '.join(EVENT_TYPES)}")
    reads, t_ns = _need_int(msg, "reads"), _need_int(msg, "t_ns")
    if kind == "assigned":
        return Assigned(_partitions(msg), _int(msg, "generation", optional=True), reads, t_ns)
    if kind == "committed":
        ok, error = _bool(msg, "ok"), msg.get("error")
        if error is not None and not isinstance(error, str):
            raise EventError(f"committed.error: expected an error name or null, got {error!r}")
        if not ok and not error:
            raise EventError("committed: ok is false but no error is named")
        return Committed(_offsets(msg), ok, error, reads, t_ns)
    return Revoked(_partitions(msg), _int(msg, "generation", optional=True), _bool(msg, "lost"), reads, t_ns)
