"""FindCoordinator and OffsetCommit codecs (bench/kafka/commit_codec.py) against bytes written out here by
hand from the protocol's message specs (apache/kafka ``clients/src/main/resources/common/message/``:
OffsetCommitRequest/Response.json, FindCoordinatorRequest/Response.json), field by field; and the reader
of librdkafka's serialized group metadata that G8 takes the member's generation from."""

from __future__ import annotations

import sys

import pytest

from bench.kafka.codec import ApiRange, ApiVersionsResult, ProtocolError
from bench.kafka.commit_codec import (
    FetchedOffset,
    decode_find_coordinator,
    decode_offset_commit,
    decode_offset_fetch,
    encode_find_coordinator_request,
    encode_offset_commit_request,
    encode_offset_fetch_request,
    pick_version,
)
from conformance._member import GroupMetadata, group_metadata

# request header v1: api_key int16, api_version int16, correlation_id int32, client_id string (int16 length)
HEADER_V2_OFFSET_COMMIT = bytes.fromhex("0008" "0002" "00000007" "0002") + b"kb"

OFFSET_COMMIT_V2_BODY = (
    bytes.fromhex("0001") + b"g"            # group_id "g"
    + bytes.fromhex("00000005")             # generation_id 5
    + bytes.fromhex("0002") + b"m1"         # member_id "m1"
    + bytes.fromhex("ffffffffffffffff")     # retention_time_ms -1 (v2-v4 only)
    + bytes.fromhex("00000001")             # topics: 1
    + bytes.fromhex("0001") + b"t"          #   name "t"
    + bytes.fromhex("00000002")             #   partitions: 2
    + bytes.fromhex("00000000") + bytes.fromhex("0000000000000004") + bytes.fromhex("ffff")   # p0 @4, metadata null
    + bytes.fromhex("00000001") + bytes.fromhex("0000000000000009") + bytes.fromhex("ffff")   # p1 @9, metadata null
)


def framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def test_offset_commit_v2_request_bytes() -> None:
    got = encode_offset_commit_request("g", 5, "m1", {"t": {0: 4, 1: 9}}, 2, 7, client_id="kb")
    assert got == framed(HEADER_V2_OFFSET_COMMIT + OFFSET_COMMIT_V2_BODY)


def test_offset_commit_v5_v6_v7_drop_retention_add_leader_epoch_and_instance_id() -> None:
    head = bytes.fromhex("0001") + b"g" + bytes.fromhex("00000005") + bytes.fromhex("0002") + b"m1"
    topic = bytes.fromhex("00000001") + bytes.fromhex("0001") + b"t" + bytes.fromhex("00000001")
    part = bytes.fromhex("00000000") + bytes.fromhex("0000000000000004")
    v5 = head + topic + part + bytes.fromhex("ffff")
    v6 = head + topic + part + bytes.fromhex("ffffffff") + bytes.fromhex("ffff")   # committed_leader_epoch -1
    v7 = head + bytes.fromhex("ffff") + topic + part + bytes.fromhex("ffffffff" "ffff")  # instance null
    for version, body in ((5, v5), (6, v6), (7, v7)):
        header = bytes.fromhex("0008") + version.to_bytes(2, "big") + bytes.fromhex("00000001" "0002") + b"kb"
        got = encode_offset_commit_request("g", 5, "m1", {"t": {0: 4}}, version, 1, client_id="kb")
        assert got == framed(header + body), version
    with pytest.raises(ValueError, match="OffsetCommit version 8"):
        encode_offset_commit_request("g", 5, "m1", {}, 8, 1)


def test_offset_commit_responses_v2_and_v3() -> None:
    topics = (bytes.fromhex("00000001") + bytes.fromhex("0001") + b"t" + bytes.fromhex("00000002")
              + bytes.fromhex("00000000" "0016")       # p0: ILLEGAL_GENERATION (22)
              + bytes.fromhex("00000001" "0000"))      # p1: no error
    v2 = decode_offset_commit(bytes.fromhex("00000007") + topics, 2, 7)
    assert v2.errors == {"t": {0: 22, 1: 0}} and v2.throttle_time_ms == 0
    v3 = decode_offset_commit(bytes.fromhex("00000007") + bytes.fromhex("00000064") + topics, 3, 7)
    assert v3.errors == {"t": {0: 22, 1: 0}} and v3.throttle_time_ms == 100
    with pytest.raises(ProtocolError, match="correlation id 7, expected 8"):
        decode_offset_commit(bytes.fromhex("00000007") + topics, 2, 8)
    with pytest.raises(ProtocolError, match="left over"):      # a v3 answer read as v2
        decode_offset_commit(bytes.fromhex("00000007") + bytes.fromhex("00000000") + topics, 2, 7)


def test_offset_fetch_request_v1_v5_bytes() -> None:
    body = (bytes.fromhex("0001") + b"g"                      # group_id "g"
            + bytes.fromhex("00000001") + bytes.fromhex("0001") + b"t"   # topics: 1, name "t"
            + bytes.fromhex("00000002" "00000000" "00000003"))           # partition_indexes [0, 3]
    for version in (1, 3, 5):
        header = bytes.fromhex("0009") + version.to_bytes(2, "big") + bytes.fromhex("00000004" "0002") + b"kb"
        assert encode_offset_fetch_request("g", {"t": [0, 3]}, version, 4, client_id="kb") == framed(header + body)
    with pytest.raises(ValueError, match="OffsetFetch version 6"):
        encode_offset_fetch_request("g", {}, 6, 1)


def test_offset_fetch_responses_keep_the_metadata_bytes() -> None:
    meta = "\u2713 {\"a\": 1} \U0001f680".encode()
    p0 = bytes.fromhex("00000000") + bytes.fromhex("0000000000000014")      # p0 @20
    p1 = bytes.fromhex("00000001") + bytes.fromhex("ffffffffffffffff")      # p1: nothing committed
    topic = bytes.fromhex("00000001") + bytes.fromhex("0001") + b"t" + bytes.fromhex("00000002")
    v1 = (bytes.fromhex("00000009") + topic + p0 + len(meta).to_bytes(2, "big") + meta + bytes.fromhex("0000")
          + p1 + bytes.fromhex("ffff" "0000"))
    got = decode_offset_fetch(v1, 1, 9)
    assert got.partitions == {"t": {0: FetchedOffset(20, meta, 0), 1: FetchedOffset(-1, None, 0)}}
    # v3: throttle first; v2+: a top-level error code last; v5: the leader epoch after the offset
    v5 = (bytes.fromhex("00000009" "00000064") + topic + p0 + bytes.fromhex("00000003") + bytes.fromhex("0000")
          + bytes.fromhex("0000") + p1 + bytes.fromhex("ffffffff" "ffff" "0000") + bytes.fromhex("0000"))
    got5 = decode_offset_fetch(v5, 5, 9)
    assert got5.throttle_time_ms == 100 and got5.error_code == 0
    assert got5.partitions["t"][0] == FetchedOffset(20, b"", 0, 3)   # empty metadata stays empty, not null
    bad = bytes.fromhex("00000009") + topic + p0 + bytes.fromhex("0002") + b"\xd5\x85" + bytes.fromhex("0000")
    assert decode_offset_fetch(bad + p1 + bytes.fromhex("ffff" "0000"), 1, 9).partitions["t"][0].metadata == b"\xd5\x85"
    with pytest.raises(ProtocolError, match="left over"):      # a v2 answer (top-level error) read as v1
        decode_offset_fetch(v1 + bytes.fromhex("0000"), 1, 9)


def test_find_coordinator_v1() -> None:
    got = encode_find_coordinator_request("grp", 1, 3, client_id="kb")
    assert got == framed(bytes.fromhex("000a" "0001" "00000003" "0002") + b"kb"
                         + bytes.fromhex("0003") + b"grp" + bytes.fromhex("00"))   # key, key_type 0 (group)
    answer = (bytes.fromhex("00000003")          # correlation id
              + bytes.fromhex("00000000")        # throttle_time_ms
              + bytes.fromhex("0000")            # error_code
              + bytes.fromhex("ffff")            # error_message null
              + bytes.fromhex("00000002")        # node_id 2
              + bytes.fromhex("0009") + b"127.0.0.1" + bytes.fromhex("00002386"))   # host, port 9094
    resp = decode_find_coordinator(answer, 3)
    assert (resp.error_code, resp.error_message, resp.node_id, resp.host, resp.port) == (0, None, 2, "127.0.0.1", 9094)


def test_pick_version_takes_the_highest_common_non_flexible_version() -> None:
    def api(lo: int, hi: int) -> ApiVersionsResult:
        return ApiVersionsResult({8: ApiRange(8, "OffsetCommit", lo, hi)}, 3)

    versions = (2, 3, 4, 5, 6, 7)
    assert pick_version(api(2, 9), 8, versions) == 7      # Kafka 4.x
    assert pick_version(api(0, 3), 8, versions) == 3
    with pytest.raises(ProtocolError, match="the broker v8-v10"):
        pick_version(api(8, 10), 8, versions)
    with pytest.raises(ProtocolError, match="not advertised"):
        pick_version(ApiVersionsResult({}, 3), 8, versions)


def test_librdkafka_group_metadata() -> None:
    raw = b"CGMDv2:" + (3).to_bytes(4, sys.byteorder) + b"grp\x00rdkafka-1a2b\x00\x01"
    assert group_metadata(raw) == GroupMetadata("grp", 3, "rdkafka-1a2b", None)
    raw = b"CGMDv2:" + (7).to_bytes(4, sys.byteorder) + b"grp\x00m\x00\x00inst\x00"
    assert group_metadata(raw) == GroupMetadata("grp", 7, "m", "inst")
    for bad in (b"CGMDv3:" + raw[7:], raw[:-1], raw + b"x"):
        with pytest.raises(ValueError, match="librdkafka group metadata"):
            group_metadata(bad)


def test_librdkafka_serializes_its_group_metadata_as_read() -> None:
    """The installed librdkafka's own bytes (an unjoined consumer: generation -1, no member id yet)."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "grp-g8", "group.instance.id": "i-1",
                  "log_level": 0})
    try:
        assert group_metadata(c.consumer_group_metadata()) == GroupMetadata("grp-g8", -1, "", "i-1")
    finally:
        c.close()
