"""Encoders and decoders of FindCoordinator, OffsetCommit and OffsetFetch, the non-flexible versions (pure; no sockets).

What the conformance check G8 needs to commit *as a given member of a given generation*, which no
client library lets a caller choose (https://kafka.apache.org/protocol, the message specs
``FindCoordinatorRequest/Response.json`` and ``OffsetCommitRequest/Response.json`` of apache/kafka):

* FindCoordinator v1-v2: ``key string, key_type int8`` → ``throttle_time_ms int32, error_code int16,
  error_message nullable string, node_id int32, host string, port int32`` (v0 has neither key_type nor
  throttle/message; v3 is flexible);
* OffsetCommit v2-v7: ``group_id string, generation_id int32, member_id string, group_instance_id
  nullable string (v7+), retention_time_ms int64 (v2-v4), topics [name string, partitions
  [partition_index int32, committed_offset int64, committed_leader_epoch int32 (v6+),
  committed_metadata nullable string]]`` → ``throttle_time_ms int32 (v3+), topics [name string,
  partitions [partition_index int32, error_code int16]]`` (v0-v1 predate or differ; v8 is flexible).

* OffsetFetch v1-v5: ``group_id string, topics [name string, partition_indexes [int32]]`` →
  ``throttle_time_ms int32 (v3+), topics [name string, partitions [partition_index int32, committed_offset
  int64, committed_leader_epoch int32 (v5+), metadata nullable string, error_code int16]], error_code int16
  (v2+)`` (v6 is flexible). C27 reads the committed metadata's bytes with it: confluent-kafka-python's
  TopicPartition copies librdkafka's (not NUL-terminated) metadata with ``strdup``, which can read past it.

Requests use header v1 and responses header v0 (no tagged fields) in these versions. Apache Kafka 4.x
accepts OffsetCommit from v2 (KIP-896 removed v0-v1), so :func:`pick_version` chooses the highest
version of 2..7 the broker advertises.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from bench.kafka.codec import ApiVersionsResult, ProtocolError, Reader, check_correlation, encode_request

__all__ = ["FIND_COORDINATOR_KEY", "OFFSET_COMMIT_KEY", "OFFSET_FETCH_KEY", "FetchedOffset", "FindCoordinatorResponse",
           "OffsetCommitResponse", "OffsetFetchResponse", "decode_find_coordinator", "decode_offset_commit",
           "decode_offset_fetch", "encode_find_coordinator_request", "encode_offset_commit_request",
           "encode_offset_fetch_request", "pick_version"]

FIND_COORDINATOR_KEY = 10
OFFSET_COMMIT_KEY = 8
FIND_COORDINATOR_VERSIONS = (1, 2)
OFFSET_COMMIT_VERSIONS = (2, 3, 4, 5, 6, 7)
OFFSET_FETCH_KEY = 9
OFFSET_FETCH_VERSIONS = (1, 2, 3, 4, 5)


def pick_version(api: ApiVersionsResult, key: int, versions: tuple[int, ...]) -> int:
    """The highest of ``versions`` the broker advertises for API ``key``; ProtocolError if none."""
    rng = api.apis.get(key)
    usable = [v for v in versions if rng is not None and rng.supports(v)]
    if not usable:
        have = f"v{rng.min_version}-v{rng.max_version}" if rng is not None else "not advertised"
        raise ProtocolError(f"API {key}: this codec speaks v{versions[0]}-v{versions[-1]}, the broker {have}")
    return max(usable)


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def _nullable_string(s: str | None) -> bytes:
    return struct.pack(">h", -1) if s is None else _string(s)


def encode_find_coordinator_request(key: str, version: int, correlation_id: int, *, key_type: int = 0,
                                    client_id: str = "kbench") -> bytes:
    """FindCoordinator v1/v2 for ``key`` (``key_type`` 0: a group, 1: a transactional id)."""
    if version not in FIND_COORDINATOR_VERSIONS:
        raise ValueError(f"FindCoordinator version {version} not supported by this encoder")
    return encode_request(FIND_COORDINATOR_KEY, version, correlation_id, _string(key) + struct.pack(">b", key_type),
                          flexible=False, client_id=client_id)


@dataclass(frozen=True)
class FindCoordinatorResponse:
    error_code: int
    error_message: str | None
    node_id: int
    host: str
    port: int
    throttle_time_ms: int = 0


def decode_find_coordinator(payload: bytes, correlation_id: int) -> FindCoordinatorResponse:
    """A FindCoordinator v1/v2 response (size prefix stripped)."""
    r = Reader(payload)
    check_correlation(r, correlation_id)
    throttle, error = r.int32(), r.int16()
    message = r.nullable_string()
    node, host, port = r.int32(), r.string(), r.int32()
    return FindCoordinatorResponse(error, message, node, host, port, throttle)


def encode_offset_commit_request(group: str, generation_id: int, member_id: str,
                                 offsets: Mapping[str, Mapping[int, int]], version: int, correlation_id: int, *,
                                 group_instance_id: str | None = None, client_id: str = "kbench") -> bytes:
    """OffsetCommit v2-v7 committing ``offsets`` (``{topic: {partition: offset}}``) as ``member_id`` of
    ``generation_id``; retention (v2-v4) and leader epochs (v6+) are -1, metadata is null."""
    if version not in OFFSET_COMMIT_VERSIONS:
        raise ValueError(f"OffsetCommit version {version} not supported by this encoder")
    body = _string(group) + struct.pack(">i", generation_id) + _string(member_id)
    if version >= 7:
        body += _nullable_string(group_instance_id)
    if version <= 4:
        body += struct.pack(">q", -1)
    body += struct.pack(">i", len(offsets))
    for topic, parts in offsets.items():
        body += _string(topic) + struct.pack(">i", len(parts))
        for partition, offset in parts.items():
            body += struct.pack(">iq", partition, offset)
            if version >= 6:
                body += struct.pack(">i", -1)
            body += _nullable_string(None)
    return encode_request(OFFSET_COMMIT_KEY, version, correlation_id, body, flexible=False, client_id=client_id)


@dataclass(frozen=True)
class OffsetCommitResponse:
    errors: Mapping[str, Mapping[int, int]]     # topic -> partition -> error code (0: committed)
    throttle_time_ms: int = 0


def decode_offset_commit(payload: bytes, version: int, correlation_id: int) -> OffsetCommitResponse:
    """An OffsetCommit v2-v7 response (size prefix stripped)."""
    r = Reader(payload)
    check_correlation(r, correlation_id)
    throttle = r.int32() if version >= 3 else 0
    errors: dict[str, dict[int, int]] = {}
    for _ in range(max(r.int32(), 0)):
        topic = r.string()
        parts = errors.setdefault(topic, {})
        for _ in range(max(r.int32(), 0)):
            partition = r.int32()
            parts[partition] = r.int16()
    if r.pos != len(payload):
        raise ProtocolError(f"OffsetCommit v{version} response: {len(payload) - r.pos} bytes left over")
    return OffsetCommitResponse(errors, throttle)


def encode_offset_fetch_request(group: str, partitions: Mapping[str, list[int]], version: int, correlation_id: int,
                                *, client_id: str = "kbench") -> bytes:
    """OffsetFetch v1-v5 of ``partitions`` (``{topic: [partition, …]}``) for ``group``."""
    if version not in OFFSET_FETCH_VERSIONS:
        raise ValueError(f"OffsetFetch version {version} not supported by this encoder")
    body = _string(group) + struct.pack(">i", len(partitions))
    for topic, parts in partitions.items():
        body += _string(topic) + struct.pack(">i", len(parts)) + b"".join(struct.pack(">i", p) for p in parts)
    return encode_request(OFFSET_FETCH_KEY, version, correlation_id, body, flexible=False, client_id=client_id)


@dataclass(frozen=True)
class FetchedOffset:
    """One partition's committed offset (-1: none) and metadata, as the broker's bytes (None: null)."""

    offset: int
    metadata: bytes | None
    error_code: int
    leader_epoch: int = -1


@dataclass(frozen=True)
class OffsetFetchResponse:
    partitions: Mapping[str, Mapping[int, FetchedOffset]]   # topic -> partition -> committed
    error_code: int = 0
    throttle_time_ms: int = 0


def decode_offset_fetch(payload: bytes, version: int, correlation_id: int) -> OffsetFetchResponse:
    """An OffsetFetch v1-v5 response (size prefix stripped); metadata stays bytes (no decoding, no repair)."""
    r = Reader(payload)
    check_correlation(r, correlation_id)
    throttle = r.int32() if version >= 3 else 0
    out: dict[str, dict[int, FetchedOffset]] = {}
    for _ in range(max(r.int32(), 0)):
        topic = r.string()
        parts = out.setdefault(topic, {})
        for _ in range(max(r.int32(), 0)):
            partition, offset = r.int32(), r.int64()
            epoch = r.int32() if version >= 5 else -1
            n = r.int16()
            metadata = None if n < 0 else r.take(n)
            parts[partition] = FetchedOffset(offset, metadata, r.int16(), epoch)
    error = r.int16() if version >= 2 else 0
    if r.pos != len(payload):
        raise ProtocolError(f"OffsetFetch v{version} response: {len(payload) - r.pos} bytes left over")
    return OffsetFetchResponse(out, error, throttle)
