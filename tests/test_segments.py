"""The segment reader (bench/verify/segments.py) and the lost-write lookup (bench/verify/lost.py).

The batches are encoded here from the protocol documentation's "Record Batch" layout (KIP-98), field
by field, not with the code under test: 61-byte header, big-endian, zig-zag varints in the records.
The integration test reads the segment files of a real embedded Kafka node.
"""

from __future__ import annotations

import gzip
import os
import struct
import time
import uuid
from pathlib import Path

import pytest

from bench.load.payload import HEADER
from bench.verify.lost import Missing, NodeLogDirs, SegmentLookup, look_up, missing_acked
from bench.verify.model import Poll, Send
from bench.verify.segments import FileScan, iter_batch_records, read_log_dirs, scan_file


def zigzag(n: int) -> bytes:
    """A signed varint as the spec writes it: zig-zag, then 7 bits a byte, low first."""
    u = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = u & 0x7F
        u >>= 7
        if u:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record(offset_delta: int, value: bytes | None, key: bytes | None = b"k", headers: int = 0) -> bytes:
    body = bytes([0]) + zigzag(offset_delta * 3) + zigzag(offset_delta)   # attributes, timestampDelta, offsetDelta
    body += zigzag(-1) if key is None else zigzag(len(key)) + key
    body += zigzag(-1) if value is None else zigzag(len(value)) + value
    body += zigzag(headers) + b"".join(zigzag(1) + b"h" + zigzag(2) + b"hv" for _ in range(headers))
    return zigzag(len(body)) + body


def batch(base: int, values: list[bytes | None], *, codec: int = 0, control: bool = False, magic: int = 2) -> bytes:
    records = b"".join(record(i, v, headers=i % 2) for i, v in enumerate(values))
    if codec == 1:
        records = gzip.compress(records)
    attributes = codec | (0x20 if control else 0)
    # after batchLength: partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta, baseTimestamp,
    # maxTimestamp, producerId, producerEpoch, baseSequence, records count
    rest = struct.pack(">ibIhiqqqhii", 0, magic, 0, attributes, len(values) - 1, 1_700_000_000_000,
                       1_700_000_000_009, -1, -1, -1, len(values)) + records
    return struct.pack(">qi", base, len(rest)) + rest


def kb(producer: int, seq: int, pad: bytes = b"payload") -> bytes:
    return HEADER.pack(123, producer, seq >> 32, seq & 0xFFFFFFFF) + pad


def test_a_plain_batch_gives_every_offset_and_value_prefix() -> None:
    kind, recs = iter_batch_records(batch(40, [kb(1, 5), None, b"short", kb(2, 7)]))
    assert kind == "ok"
    assert [r.offset for r in recs] == [40, 41, 42, 43]
    assert recs[0].value_prefix == kb(1, 5)[:16] and recs[1].value_prefix is None
    assert recs[2].value_prefix == b"short" and recs[3].value_prefix == kb(2, 7)[:16]


def test_gzip_batches_are_decoded_other_codecs_and_old_formats_are_counted_undecodable() -> None:
    kind, recs = iter_batch_records(batch(0, [kb(1, 1), kb(1, 2)], codec=1))
    assert kind == "ok" and [r.offset for r in recs] == [0, 1] and recs[1].value_prefix == kb(1, 2)[:16]
    for codec in (2, 3, 4):   # snappy, lz4, zstd
        assert iter_batch_records(batch(0, [kb(1, 1)], codec=codec)) == ("undecodable", [])
    assert iter_batch_records(batch(0, [kb(1, 1)], magic=1)) == ("undecodable", [])
    assert iter_batch_records(batch(0, [kb(1, 1)], control=True)) == ("control", [])


def test_a_file_of_batches_with_a_torn_tail(tmp_path: Path) -> None:
    data = batch(0, [kb(1, 0), kb(1, 1)]) + batch(2, [kb(1, 2)], codec=1) + batch(3, [None], control=True)
    torn = batch(4, [kb(1, 3)])
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(data + torn[:-5])
    scan = FileScan(str(path))
    recs = list(scan_file(path, scan))
    assert [r.offset for r in recs] == [0, 1, 2]
    assert (scan.batches, scan.records, scan.control_batches, scan.truncated_tail, scan.error) == (3, 3, 1, True, None)
    path.write_bytes(data + b"\0" * 64)   # preallocated zeros end the log, not a torn tail
    scan = FileScan(str(path))
    assert len(list(scan_file(path, scan))) == 3 and not scan.truncated_tail


def test_a_corrupt_batch_stops_the_file_with_an_error_naming_the_byte(tmp_path: Path) -> None:
    good = batch(0, [kb(1, 0)])
    bad = bytearray(batch(1, [kb(1, 1)]))
    bad[61] = 0x7F     # the first record's length varint: 63 bytes, longer than the batch
    path = tmp_path / "x.log"
    path.write_bytes(good + bytes(bad))
    scan = FileScan(str(path))
    assert [r.offset for r in scan_file(path, scan)] == [0]
    assert scan.error is not None and f"at byte {len(good)}" in scan.error and "runs past" in scan.error


def test_log_dirs_come_from_server_properties(tmp_path: Path) -> None:
    (tmp_path / "server.properties").write_text("# log.dirs=/nope\nnode.id=1\nlog.dirs = /a/log,/b/log\n")
    assert read_log_dirs(tmp_path) == [Path("/a/log"), Path("/b/log")]
    assert read_log_dirs(tmp_path / "missing") == []


def _sends() -> list[Send]:
    return [Send("1", s, f"1:{s}", 0, s) for s in range(6)] + [Send("1", 6, "1:6", 0, None, status="unknown")]


def test_missing_acked_is_lost_or_unseen_as_the_checker_says_and_skips_expired() -> None:
    final = {0: [(1, "1:1"), (3, "1:3")]}
    polls = [Poll("c", 0, [(0, 2, "1:2")])]
    got = missing_acked(_sends(), polls, final, {0: 1})   # 1:0 is below the log start: expired
    assert got == [Missing("1:4", "1", 4, 0, 4, "unseen"), Missing("1:5", "1", 5, 0, 5, "unseen")]
    got = missing_acked(_sends(), [], {0: [(5, "1:5")]}, {})
    assert [(m.value, m.kind) for m in got] == [("1:0", "lost-write"), ("1:1", "lost-write"), ("1:2", "lost-write"),
                                                ("1:3", "lost-write"), ("1:4", "lost-write")]


def _node(tmp_path: Path, node_id: int, topic: str, segments: dict[int, bytes]) -> NodeLogDirs:
    for p, data in segments.items():
        d = tmp_path / f"n{node_id}" / "log" / f"{topic}-{p}"
        d.mkdir(parents=True)
        (d / "00000000000000000000.log").write_bytes(data)
    return NodeLogDirs(node_id, (tmp_path / f"n{node_id}" / "log",))


def test_lookup_classifies_on_disk_gone_and_unknown(tmp_path: Path) -> None:
    nodes = [_node(tmp_path, 1, "t", {0: batch(0, [kb(1, 0), kb(1, 1)]), 1: batch(0, [kb(1, 9)], codec=3)}),
             _node(tmp_path, 2, "t", {0: batch(0, [kb(1, 0)]) + batch(1, [kb(1, 2)])})]
    missing = [Missing("1:1", "1", 1, 0, 1, "lost-write"), Missing("1:2", "1", 2, 0, 1, "unseen"),
               Missing("1:7", "1", 7, 0, 7, "unseen"), Missing("1:8", "1", 8, 1, 0, "unseen"),
               Missing("1:3", "1", 3, 2, 0, "unseen")]    # no node holds partition 2
    doc = SegmentLookup(nodes)("t", missing, {0: 2})
    assert (doc["status"], doc["looked_up"], doc["on_disk"], doc["gone"], doc["unknown"]) == ("incomplete", 5, 2, 1, 2)
    by = {e["value"]: e for e in doc["examples"]}
    assert by["1:1"]["status"] == "on_disk" and by["1:1"]["locations"] == [
        {"node": 1, "offset": 1, "beyond_high_watermark": False}]
    assert by["1:2"]["locations"] == [{"node": 2, "offset": 1, "beyond_high_watermark": False}]
    assert by["1:7"]["status"] == "gone" and by["1:7"]["locations"] == []
    assert by["1:8"]["status"] == "unknown" and by["1:3"]["status"] == "unknown"
    scans = {(s["node"], s["partition"]): s for s in doc["scans"]}
    assert set(scans) == {(1, 0), (1, 1), (2, 0)} and scans[(1, 1)]["undecodable_batches"] == 1
    assert scans[(2, 0)] == {"node": 2, "partition": 0, "files": 1, "bytes": len(batch(0, [kb(1, 0)])) * 2,
                             "batches": 2, "records": 2, "undecodable_batches": 0, "truncated_tail": False,
                             "complete": True, "found": 1, "errors": []}


def test_lookup_is_capped_and_external_or_segmentless_brokers_are_skipped(tmp_path: Path) -> None:
    nodes = [_node(tmp_path, 1, "t", {0: batch(0, [kb(1, 0)])})]
    missing = [Missing(f"1:{s}", "1", s, 0, s, "unseen") for s in range(5)]
    doc = SegmentLookup(nodes, max_lookups=2)("t", missing, {0: 1})
    assert (doc["looked_up"], doc["not_looked_up"], doc["on_disk"], doc["gone"]) == (2, 3, 1, 1)
    assert doc["examples"][0]["locations"] == [{"node": 1, "offset": 0, "beyond_high_watermark": False}]
    ext = look_up(None, "t", _sends(), [], {}, {}, {})
    assert ext["status"] == "skipped" and ext["note"] is not None and "--bootstrap" in ext["note"]
    none = SegmentLookup([NodeLogDirs(1, ())], kind="tansu")("t", missing, {})
    assert none["status"] == "skipped" and "tansu" in str(none["note"])


@pytest.mark.integration
def test_a_record_the_reader_missed_is_on_disk_and_one_never_written_is_gone(kafka_bootstrap: str) -> None:
    """One embedded Kafka node: records produced for real; the history says the consumer did not read
    one of them (it is on disk at its acked offset) and that a record never written was acked (gone)."""
    from confluent_kafka import Producer

    from bench.brokers import list_brokers
    from bench.kafka.admin import TopicAdmin
    from bench.verify.cell import read_topic

    handles = [h for h in list_brokers() if h.bootstrap == kafka_bootstrap]
    if not handles or os.environ.get("KBENCH_BOOTSTRAP"):
        pytest.skip("needs the session's embedded Kafka (its nodes' log directories)")
    (handle,) = handles
    topic = f"kbench-lost-{uuid.uuid4().hex[:8]}"
    acks: list[tuple[int, int, int]] = []    # (partition, offset, seq)
    with TopicAdmin(kafka_bootstrap) as admin:
        admin.create_topic(topic, partitions=2)
        try:
            for codec in ("none", "gzip"):
                producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "compression.type": codec})
                for seq in range(len(acks), len(acks) + 50):
                    producer.produce(topic, kb(3, seq, b"x" * 100), partition=seq % 2,
                                     on_delivery=lambda e, m, s=seq: acks.append((m.partition(), m.offset(), s)))
                assert producer.flush(15) == 0
            final = read_topic(kafka_bootstrap, topic, timeout_s=30)
            assert final.complete and sum(len(r) for r in final.records.values()) == 100
            p, o, seq = next(a for a in acks if a[0] == 1 and a[2] >= 50)   # a gzip batch's record
            final.records[p] = [(off, v) for off, v in final.records[p] if off != o]   # "the reader did not read it"
            sends = [Send("3", s, f"3:{s}", pp, oo) for pp, oo, s in acks]
            sends.append(Send("3", 10_000, "3:10000", 0, 10))     # acked (fabricated) at an offset never written
            nodes = [NodeLogDirs(n.node_id, tuple(read_log_dirs(Path(n.data_dir)))) for n in handle.nodes]
            started = time.monotonic()
            doc = look_up(SegmentLookup(nodes), topic, sends, [], final.records, final.low, final.high)
            elapsed = time.monotonic() - started
        finally:
            admin.delete_topic(topic)
    assert (doc["status"], doc["looked_up"], doc["on_disk"], doc["gone"], doc["unknown"]) == ("done", 2, 1, 1, 0), doc
    by = {e["value"]: e for e in doc["examples"]}
    assert by[f"3:{seq}"]["status"] == "on_disk" and by[f"3:{seq}"]["kind"] == "lost-write"
    assert by[f"3:{seq}"]["locations"] == [{"node": 1, "offset": o, "beyond_high_watermark": False}]
    assert by["3:10000"]["status"] == "gone" and by["3:10000"]["kind"] == "lost-write"
    assert {s["partition"]: s["records"] for s in doc["scans"]} == {0: 50, 1: 50}
    assert elapsed < 5, elapsed


def test_the_reports_line_says_on_disk_and_gone() -> None:
    from bench.report.verification import verification_line

    assert verification_line({"label": "c"}) is None
    cell = {"verification": {"ok": False, "counts": {"acked": 75001, "lost": 3, "unseen": 2},
                             "lost_lookup": {"status": "done", "on_disk": 1, "gone": 4, "unknown": 0,
                                             "not_looked_up": 0}}}
    assert verification_line(cell) == ("verification FAILED: acked 75,001, lost 3, unseen 2, duplicated 0; on the "
                                       "nodes' disks: 1 on disk but not served, 4 gone, 0 unknown")
    cell["verification"]["lost_lookup"] = {"status": "skipped", "note": "external"}
    assert str(verification_line(cell)).endswith("; not looked up on disk (external)")
