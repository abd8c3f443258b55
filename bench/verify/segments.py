"""Read the record batches of Kafka log segment files (``<log dir>/<topic>-<partition>/*.log``) directly.

What ``--verify``'s lost-write lookup (:mod:`bench.verify.lost`) needs of a segment is every record's
offset and the first bytes of its value (kbench's 16-byte header: intended send ns, producer, seq).
It reads the files itself rather than running Kafka's ``DumpLogSegments``:

* ``DumpLogSegments --print-data-log`` prints a value through a *string* decoder: the binary header's
  bytes that are not valid UTF-8 become U+FFFD, so the producer and sequence cannot be recovered from
  its output (no byte-preserving decoder ships with Kafka);
* the tool is ``kafka.tools.DumpLogSegments`` in 3.9's core jar but ``org.apache.kafka.tools.DumpLogSegments``
  in 4.3's ``kafka-tools`` jar (KAFKA-14579, rewritten in Java), which is not among the broker's runtime
  jars kbench caches; its text output is not a stable format;
* a JVM per node costs seconds of CPU on a small box, during a run.

The format read is the v2 record batch (magic 2, every Kafka since 0.11; KIP-98), from the protocol
documentation ("Record Batch"): ``baseOffset int64, batchLength int32, partitionLeaderEpoch int32,
magic int8, crc uint32, attributes int16, lastOffsetDelta int32, baseTimestamp int64, maxTimestamp
int64, producerId int64, producerEpoch int16, baseSequence int32, records [Record]`` (an int32 count,
then the records, compressed as a whole when ``attributes & 7`` is not 0); a record is ``length varint,
attributes int8, timestampDelta varlong, offsetDelta varint, key varbytes, value varbytes, headers``
(zig-zag varints). Control batches (transaction markers) are skipped. Uncompressed and gzip batches
are decoded; snappy, lz4 and zstd batches (and older magic 0/1 message sets) are counted as
*undecodable*, so a record not found there is "unknown", not "gone". The CRC is not verified (CRC-32C
has no standard-library implementation); a batch that runs past the end of the file (a write in
progress, or a torn tail after a crash) ends the file's scan and is counted.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BATCH_HEADER", "BatchError", "FileScan", "SegmentRecord", "iter_batch_records", "partition_dirs",
           "read_log_dirs", "scan_file", "segment_files"]

#: baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta, baseTimestamp,
#: maxTimestamp, producerId, producerEpoch, baseSequence, record count (61 bytes, big-endian)
BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
_LOG_OVERHEAD = 12          # baseOffset + batchLength: batchLength counts the bytes after it
_COMPRESSION_MASK = 0x07
_CONTROL_FLAG = 0x20
_GZIP = 1
_PREFIX = 16                # the value bytes kept per record (kbench's header)


class BatchError(ValueError):
    """A record batch that does not parse (the message says where and why)."""


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """One record of a segment: its offset and the first ``_PREFIX`` bytes of its value (None: a null value)."""

    offset: int
    value_prefix: bytes | None


@dataclass
class FileScan:
    """What scanning one segment file saw."""

    path: str
    bytes: int = 0
    batches: int = 0
    records: int = 0
    control_batches: int = 0
    undecodable_batches: int = 0    # compressed with a codec not decoded here, or an old message format
    truncated_tail: bool = False    # the last batch runs past the end of the file
    error: str | None = None        # a batch that did not parse: the rest of the file is not read


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint (varlong) at ``pos``: (value, next position)."""
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise BatchError("varint runs past the end of the records")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise BatchError("varint longer than 10 bytes")


def _records(data: bytes, count: int, base_offset: int) -> Iterator[SegmentRecord]:
    """The ``count`` records encoded in ``data`` (a batch's records section, decompressed)."""
    pos = 0
    for _ in range(count):
        length, pos = _varint(data, pos)
        end = pos + length
        if length < 0 or end > len(data):
            raise BatchError(f"record of {length} bytes runs past the end of the batch")
        pos += 1                                # attributes
        _, pos = _varint(data, pos)             # timestampDelta
        delta, pos = _varint(data, pos)         # offsetDelta
        key_len, pos = _varint(data, pos)
        pos += max(0, key_len)
        value_len, pos = _varint(data, pos)
        if pos + max(0, value_len) > end:
            raise BatchError(f"record value of {value_len} bytes runs past the record's end")
        value = None if value_len < 0 else bytes(data[pos:pos + min(value_len, _PREFIX)])
        yield SegmentRecord(base_offset + delta, value)
        pos = end                               # headers are not needed


def iter_batch_records(batch: bytes) -> tuple[str, list[SegmentRecord]]:
    """The records of one whole batch (``baseOffset`` through its last byte): ("ok" | "control" |
    "undecodable", records). Raises BatchError when it does not parse."""
    if len(batch) < BATCH_HEADER.size:
        magic = batch[16] if len(batch) > 16 else -1
        if magic in (0, 1):
            return "undecodable", []
        raise BatchError(f"batch of {len(batch)} bytes is shorter than a v2 header ({BATCH_HEADER.size})")
    (base, _length, _epoch, magic, _crc, attributes, _last_delta, _t0, _tmax, _pid, _pepoch, _bseq,
     count) = BATCH_HEADER.unpack_from(batch)
    if magic != 2:
        return "undecodable", []           # magic 0/1: a message set (no v2 topic holds one)
    if attributes & _CONTROL_FLAG:
        return "control", []
    codec = attributes & _COMPRESSION_MASK
    body: bytes = batch[BATCH_HEADER.size:]
    if codec == _GZIP:
        try:
            body = zlib.decompress(bytes(body), wbits=31)
        except zlib.error as exc:
            raise BatchError(f"gzip batch at offset {base} does not decompress: {exc}") from exc
    elif codec != 0:
        return "undecodable", []
    if count < 0:
        raise BatchError(f"batch at offset {base} has a negative record count {count}")
    return "ok", list(_records(body, count, base))


def scan_file(path: Path, scan: FileScan | None = None) -> Iterator[SegmentRecord]:
    """Every record of the segment file ``path``, in file order, one batch read at a time; ``scan`` (if
    given) counts what was seen and says why the scan stopped early. Closing the iterator early (a
    deadline) closes the file."""
    scan = scan if scan is not None else FileScan(str(path))
    pos = 0
    try:
        with open(path, "rb") as f:
            scan.bytes = size = f.seek(0, 2)
            f.seek(0)
            while pos + _LOG_OVERHEAD <= size:
                head = f.read(_LOG_OVERHEAD)
                base, length = struct.unpack(">qi", head)
                if length == 0 and base == 0:
                    return                     # preallocated zeros (file.preallocate): the log ends here
                if length < 0 or pos + _LOG_OVERHEAD + length > size:
                    scan.truncated_tail = True
                    return
                body = f.read(length)
                if len(body) < length:         # the file shrank while being read
                    scan.truncated_tail = True
                    return
                kind, records = iter_batch_records(head + body)
                scan.batches += 1
                scan.control_batches += kind == "control"
                scan.undecodable_batches += kind == "undecodable"
                scan.records += len(records)
                pos += _LOG_OVERHEAD + length
                yield from records
            scan.truncated_tail = pos != size
    except FileNotFoundError:
        scan.error = "the file went away during the scan (a segment deleted or renamed)"
    except OSError as exc:
        scan.error = f"unreadable: {exc}"
    except BatchError as exc:
        scan.error = f"at byte {pos}: {exc}"


def read_log_dirs(data_dir: Path) -> list[Path]:
    """A node's log directories: ``log.dirs`` (else ``log.dir``) of ``<data_dir>/server.properties``;
    empty when there is no such file or key (not a Kafka node)."""
    props = data_dir / "server.properties"
    try:
        lines = props.read_text().splitlines()
    except OSError:
        return []
    found: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", "!")):
            found[key.strip()] = value.strip()
    value = found.get("log.dirs") or found.get("log.dir") or ""
    return [Path(d) for d in value.split(",") if d.strip()]


def partition_dirs(log_dirs: list[Path], topic: str, partition: int) -> list[Path]:
    """The directories of ``topic``-``partition`` under ``log_dirs`` (a topic being deleted is renamed to
    ``<topic>-<p>.<uuid>-delete``: not included)."""
    return [d / f"{topic}-{partition}" for d in log_dirs if (d / f"{topic}-{partition}").is_dir()]


def segment_files(partition_dir: Path) -> list[Path]:
    """The ``.log`` segment files of a partition directory, by base offset (their names)."""
    return sorted(partition_dir.glob("*.log"), key=lambda p: p.name)
