"""Lost or unread? ``--verify``'s lookup of lost and unseen writes in the nodes' log segments.

When the history checker finds acked records nobody read (``lost-write``, ``unseen``), this looks for
each of them (up to :data:`MAX_LOOKUPS`, within :data:`TIMEOUT_S`) in the segment files of its
partition on every node of an embedded Kafka broker (:mod:`bench.verify.segments`), as Kafka's own
system tests do (``validate_delivery``): a record **on_disk** is on some replica's disk (node, offset)
and was not served; a record **gone** is on no node's disk, every copy of its partition having been
read completely; **unknown** when a copy could not be read completely (a codec not decoded here, a
torn tail, the deadline, no node holding the partition). It runs right after the final read, while
every node is still up and before the topic is deleted: the broker deletes its data when it stops.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.load.payload import HEADER_SIZE, decode_header
from bench.results.model import LostLocation, LostLookupSection, LostRecordRecord, SegmentScanRecord
from bench.verify.model import Poll, Send
from bench.verify.segments import FileScan, partition_dirs, scan_file, segment_files

__all__ = ["EXTERNAL_NOTE", "MAX_EXAMPLES", "MAX_LOOKUPS", "TIMEOUT_S", "Missing", "NodeLogDirs",
           "SegmentLookup", "look_up", "missing_acked", "skipped"]

MAX_LOOKUPS = 20_000
TIMEOUT_S = 30.0
MAX_EXAMPLES = 20        # per status
EXTERNAL_NOTE = ("an external broker (--bootstrap): its segment files are not on this host, so lost and "
                 "unseen writes were not looked up on disk")

Status = Literal["on_disk", "gone", "unknown"]
FinalRecords = Mapping[int, Sequence[tuple[int, str | None]]]   # (offset, value id), as FinalRead.records


@dataclass(frozen=True, slots=True)
class Missing:
    """An acked record nobody read (what the history checker calls lost-write or unseen)."""

    value: str
    producer: str
    seq: int
    partition: int | None
    offset: int | None
    kind: str           # "lost-write" (a later offset of its partition was read) or "unseen"


@dataclass(frozen=True)
class NodeLogDirs:
    """One node of an embedded broker and its log directories (``log.dirs``)."""

    node_id: int
    log_dirs: tuple[Path, ...]


def missing_acked(sends: Iterable[Send], polls: Iterable[Poll], final_records: FinalRecords,
                  log_start: Mapping[int, int]) -> list[Missing]:
    """Acked sends whose value no poll and no final read saw, not below the log start (expired), by
    partition and offset; ``kind`` as the history checker decides it (a later offset read or not)."""
    read: set[str] = set()
    top: dict[int, int] = {}
    for p, recs in final_records.items():
        for o, v in recs:
            if v is not None:
                read.add(v)
            top[p] = max(top.get(p, -1), o)
    for poll in polls:
        for p, o, value in poll.records:
            read.add(str(value))
            top[p] = max(top.get(p, -1), o)
    out: list[Missing] = []
    for s in sends:
        if s.status != "ok" or s.value in read:
            continue
        if s.partition is not None and s.offset is not None and s.offset < log_start.get(s.partition, 0):
            continue
        later = s.partition is not None and s.offset is not None and top.get(s.partition, -1) > s.offset
        out.append(Missing(str(s.value), s.producer, s.seq, s.partition, s.offset,
                           "lost-write" if later else "unseen"))
    out.sort(key=lambda m: (m.partition if m.partition is not None else -1,
                            m.offset if m.offset is not None else -1, m.value))
    return out


def skipped(note: str) -> LostLookupSection:
    return {"status": "skipped", "note": note, "looked_up": 0, "not_looked_up": 0, "on_disk": 0, "gone": 0,
            "unknown": 0, "elapsed_s": 0.0, "scans": [], "examples": []}


@dataclass
class _Copy:
    """One node's copy of one partition: what its scan saw and found."""

    node: int
    partition: int
    files: list[FileScan] = field(default_factory=list)
    found: int = 0
    cut_short: str | None = None     # why the scan stopped before the end (the deadline)

    @property
    def complete(self) -> bool:
        return self.cut_short is None and all(
            f.error is None and not f.truncated_tail and not f.undecodable_batches for f in self.files)

    def record(self) -> SegmentScanRecord:
        errors = [f"{Path(f.path).name}: {f.error}" for f in self.files if f.error]
        return {"node": self.node, "partition": self.partition, "files": len(self.files),
                "bytes": sum(f.bytes for f in self.files), "batches": sum(f.batches for f in self.files),
                "records": sum(f.records for f in self.files),
                "undecodable_batches": sum(f.undecodable_batches for f in self.files),
                "truncated_tail": any(f.truncated_tail for f in self.files), "complete": self.complete,
                "found": self.found, "errors": [*errors, *([self.cut_short] if self.cut_short else [])]}


class SegmentLookup:
    """Looks missing records up in the segment files of ``nodes`` (see the module docstring)."""

    def __init__(self, nodes: Sequence[NodeLogDirs], *, kind: str = "kafka", max_lookups: int = MAX_LOOKUPS,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.nodes, self.kind = list(nodes), kind
        self.max_lookups, self.timeout_s = max_lookups, timeout_s

    def __call__(self, topic: str, missing: Sequence[Missing], high: Mapping[int, int]) -> LostLookupSection:
        if not any(n.log_dirs for n in self.nodes):
            return skipped(f"the embedded {self.kind} broker keeps no Kafka log segments (no log.dirs in its "
                           "nodes' server.properties)")
        started = time.monotonic()
        deadline = started + self.timeout_s
        wanted = list(missing[:self.max_lookups])
        by_value = {m.value: m for m in wanted}
        found: dict[str, list[LostLocation]] = {}
        copies: list[_Copy] = []
        for p in sorted({m.partition for m in wanted if m.partition is not None}):
            for node in self.nodes:
                for pdir in partition_dirs(list(node.log_dirs), topic, p):
                    copy = _Copy(node.node_id, p)
                    copies.append(copy)
                    self._scan(copy, pdir, by_value, found, high.get(p), deadline)
        counts: dict[Status, int] = {"on_disk": 0, "gone": 0, "unknown": 0}
        examples: list[LostRecordRecord] = []
        for m in wanted:
            status = _status(m, found, copies)
            counts[status] += 1
            if counts[status] <= MAX_EXAMPLES:
                examples.append({"value": m.value, "producer": m.producer, "seq": m.seq, "partition": m.partition,
                                 "acked_offset": m.offset, "kind": "lost-write" if m.kind == "lost-write"
                                 else "unseen", "status": status, "locations": found.get(m.value, [])})
        complete = all(c.complete for c in copies)
        return {"status": "done" if complete else "incomplete",
                "note": None if complete else "some copies were not read completely: records not found there "
                                              "are unknown, not gone",
                "looked_up": len(wanted), "not_looked_up": len(missing) - len(wanted), "on_disk": counts["on_disk"],
                "gone": counts["gone"], "unknown": counts["unknown"],
                "elapsed_s": round(time.monotonic() - started, 3), "scans": [c.record() for c in copies],
                "examples": examples}

    @staticmethod
    def _scan(copy: _Copy, pdir: Path, by_value: Mapping[str, Missing], found: dict[str, list[LostLocation]],
              high: int | None, deadline: float) -> None:
        for path in segment_files(pdir):
            if time.monotonic() > deadline:
                copy.cut_short = "deadline reached before this copy was read to its end"
                return
            scan = FileScan(str(path))
            copy.files.append(scan)
            for n, rec in enumerate(scan_file(path, scan)):
                if n % 4096 == 4095 and time.monotonic() > deadline:
                    copy.cut_short = "deadline reached before this copy was read to its end"
                    return
                v = rec.value_prefix
                if v is None or len(v) < HEADER_SIZE:
                    continue
                _, prod, seq = decode_header(v)
                vid = f"{prod}:{seq}"
                if vid in by_value:
                    copy.found += 1
                    found.setdefault(vid, []).append({"node": copy.node, "offset": rec.offset,
                                                      "beyond_high_watermark": high is not None and rec.offset >= high})


def _status(m: Missing, found: Mapping[str, list[LostLocation]], copies: Sequence[_Copy]) -> Status:
    if m.value in found:
        return "on_disk"
    mine = [c for c in copies if c.partition == m.partition]
    return "gone" if mine and all(c.complete for c in mine) else "unknown"


def look_up(lookup: SegmentLookup | None, topic: str, sends: Iterable[Send], polls: Iterable[Poll],
            final_records: FinalRecords, low: Mapping[int, int], high: Mapping[int, int]) -> LostLookupSection:
    """``verification.lost_lookup`` of a cell: ``lookup`` None (an external broker) is skipped with a note."""
    if lookup is None:
        return skipped(EXTERNAL_NOTE)
    return lookup(topic, missing_acked(sends, polls, final_records, low), high)
