"""A tiny raw Kafka protocol client: just what black-box checks need and confluent-kafka hides.

Today that is ApiVersions: :func:`api_versions` opens one TCP connection to ``host:port``, sends
ApiVersions v3 (flexible encoding) and falls back to v0 when the broker answers
``UNSUPPORTED_VERSION`` or the v3 answer cannot be parsed. The result maps every advertised API key
to its name and ``(min, max)`` version range.

Wire format reminders (https://kafka.apache.org/protocol):

* every request/response is framed by an int32 big-endian size;
* request header v1 = api_key int16, api_version int16, correlation_id int32, client_id nullable
  string (int16 length); header v2 appends an empty tagged-field section (one varint 0);
* the ApiVersions *response* header is always v0 (correlation id only), even for v3, so that a
  client can always read the error and fall back.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.errors import BrokerError, BrokerUnreachableError

__all__ = [
    "API_NAMES",
    "ApiRange",
    "ApiVersionsResult",
    "ProtocolError",
    "api_name",
    "api_versions",
    "decode_api_versions",
    "encode_api_versions_request",
    "parse_bootstrap",
]

API_VERSIONS_KEY = 18
UNSUPPORTED_VERSION = 35

API_NAMES: Mapping[int, str] = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 4: "LeaderAndIsr", 5: "StopReplica",
    6: "UpdateMetadata", 7: "ControlledShutdown", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions",
    19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId",
    23: "OffsetForLeaderEpoch", 24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn",
    27: "WriteTxnMarkers", 28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls",
    31: "DeleteAcls", 32: "DescribeConfigs", 33: "AlterConfigs", 34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
    44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments", 47: "OffsetDelete", 48: "DescribeClientQuotas",
    49: "AlterClientQuotas", 50: "DescribeUserScramCredentials", 51: "AlterUserScramCredentials",
    52: "Vote", 53: "BeginQuorumEpoch", 54: "EndQuorumEpoch", 55: "DescribeQuorum",
    56: "AlterPartition", 57: "UpdateFeatures", 58: "Envelope", 59: "FetchSnapshot",
    60: "DescribeCluster", 61: "DescribeProducers", 62: "BrokerRegistration", 63: "BrokerHeartbeat",
    64: "UnregisterBroker", 65: "DescribeTransactions", 66: "ListTransactions",
    67: "AllocateProducerIds", 68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
    70: "ControllerRegistration", 71: "GetTelemetrySubscriptions", 72: "PushTelemetry",
    73: "AssignReplicasToDirs", 74: "ListConfigResources", 75: "DescribeTopicPartitions",
    76: "ShareGroupHeartbeat", 77: "ShareGroupDescribe", 78: "ShareFetch", 79: "ShareAcknowledge",
    80: "AddRaftVoter", 81: "RemoveRaftVoter", 82: "UpdateRaftVoter",
    83: "InitializeShareGroupState", 84: "ReadShareGroupState", 85: "WriteShareGroupState",
    86: "DeleteShareGroupState", 87: "ReadShareGroupStateSummary", 88: "StreamsGroupHeartbeat",
    89: "StreamsGroupDescribe", 90: "DescribeShareGroupOffsets", 91: "AlterShareGroupOffsets",
    92: "DeleteShareGroupOffsets",
}


class ProtocolError(BrokerError):
    """The broker's answer could not be decoded (truncated, wrong correlation id, bad length)."""


def api_name(key: int) -> str:
    """The API's name for ``key`` (``"Unknown(123)"`` for keys this table does not know)."""
    return API_NAMES.get(key, f"Unknown({key})")


@dataclass(frozen=True)
class ApiRange:
    """One advertised API: key, name and the inclusive version range."""

    key: int
    name: str
    min_version: int
    max_version: int

    def supports(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version


@dataclass(frozen=True)
class ApiVersionsResult:
    """What a broker advertised. ``request_version`` is the ApiVersions version that was answered."""

    apis: Mapping[int, ApiRange]
    request_version: int
    error_code: int = 0
    throttle_time_ms: int = 0
    finalized_features: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def supports(self, key: int, min_version: int = 0) -> bool:
        """True when API ``key`` is advertised with a max version >= ``min_version``."""
        rng = self.apis.get(key)
        return rng is not None and rng.max_version >= min_version

    def as_json(self) -> dict[str, dict[str, int | str]]:
        """``{"<key>": {"name", "min", "max"}}``, keys as strings, sorted numerically."""
        return {str(k): {"name": r.name, "min": r.min_version, "max": r.max_version}
                for k, r in sorted(self.apis.items())}


# ---------------------------------------------------------------------------------------- encoding
def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _compact_string(s: str) -> bytes:
    raw = s.encode()
    return _uvarint(len(raw) + 1) + raw


def encode_api_versions_request(version: int, correlation_id: int, client_id: str = "kbench",
                                software: tuple[str, str] = ("kbench", "0.1.0")) -> bytes:
    """The framed ApiVersions request (size prefix included) for ``version`` 0..3."""
    if not 0 <= version <= 4:
        raise ValueError(f"ApiVersions version {version} not supported by this encoder")
    cid = client_id.encode()
    header = struct.pack(">hhih", API_VERSIONS_KEY, version, correlation_id, len(cid)) + cid
    if version >= 3:  # request header v2 + flexible body
        header += b"\x00"
        body = _compact_string(software[0]) + _compact_string(software[1]) + b"\x00"
    else:
        body = b""
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


# ---------------------------------------------------------------------------------------- decoding
class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ProtocolError(f"truncated response: need {n} bytes at {self.pos}, have {len(self.buf)}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ProtocolError("varint too long")

    def compact_string(self) -> str:
        n = self.uvarint()
        return "" if n == 0 else self.take(n - 1).decode()

    def skip_tags(self) -> dict[int, bytes]:
        tags = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            tags[tag] = self.take(self.uvarint())
        return tags


def _features(raw: bytes) -> dict[str, tuple[int, int]]:
    r = _Reader(raw)
    out = {}
    for _ in range(max(r.uvarint() - 1, 0)):
        name = r.compact_string()
        hi, lo = r.int16(), r.int16()  # FinalizedFeatures: MaxVersionLevel, then MinVersionLevel
        r.skip_tags()
        out[name] = (lo, hi)
    return out


def decode_api_versions(payload: bytes, version: int, correlation_id: int) -> ApiVersionsResult:
    """Decode an ApiVersions response ``payload`` (size prefix stripped) sent for ``version``.

    A broker that rejects the version answers in v0 layout with ``UNSUPPORTED_VERSION``; that is
    detected from the error code and decoded as v0.
    """
    r = _Reader(payload)
    got = r.int32()
    if got != correlation_id:
        raise ProtocolError(f"correlation id {got}, expected {correlation_id}")
    error = r.int16()
    flexible = version >= 3 and error != UNSUPPORTED_VERSION
    apis: dict[int, ApiRange] = {}
    count = r.uvarint() - 1 if flexible else r.int32()
    for _ in range(max(count, 0)):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        if flexible:
            r.skip_tags()
        apis[key] = ApiRange(key, api_name(key), lo, hi)
    throttle = 0
    features: dict[str, tuple[int, int]] = {}
    if version >= 1 and error != UNSUPPORTED_VERSION:
        throttle = r.int32()
    if flexible:
        tags = r.skip_tags()
        if 2 in tags:  # tag 0 SupportedFeatures, 1 FinalizedFeaturesEpoch, 2 FinalizedFeatures
            features = _features(tags[2])
    return ApiVersionsResult(apis, version if error != UNSUPPORTED_VERSION else 0, error, throttle,
                             features)


# ------------------------------------------------------------------------------------------ client
def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    """First ``host:port`` of a comma-separated bootstrap list (``[v6]:port`` accepted)."""
    first = bootstrap.split(",")[0].strip()
    first = first.split("://", 1)[-1]
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bootstrap {bootstrap!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out reading the response")
        sock.settimeout(remaining)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProtocolError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _roundtrip(addr: tuple[str, int], request: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection(addr, timeout=timeout) as sock:
            sock.sendall(request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4, deadline))
            if not 0 < size < 16 * 1024 * 1024:
                raise ProtocolError(f"implausible response size {size}")
            return _recv_exact(sock, size, deadline)
    except (OSError, TimeoutError) as exc:
        raise BrokerUnreachableError(f"{addr[0]}:{addr[1]}: ApiVersions failed: {exc}") from exc


def api_versions(bootstrap: str, timeout: float = 5.0, versions: tuple[int, ...] = (3, 0)
                 ) -> ApiVersionsResult:
    """Ask the first bootstrap broker which APIs it supports; tries ``versions`` in order.

    Raises :class:`BrokerUnreachableError` when it does not answer, :class:`ProtocolError` when no
    version produced a decodable answer.
    """
    addr = parse_bootstrap(bootstrap)
    last: Exception | None = None
    for i, version in enumerate(versions):
        corr = 1000 + i
        payload = _roundtrip(addr, encode_api_versions_request(version, corr), timeout)
        try:
            result = decode_api_versions(payload, version, corr)
        except ProtocolError as exc:
            last = exc
            continue
        if result.error_code == 0 or (result.apis and version == versions[-1]):
            return result
        last = ProtocolError(f"ApiVersions v{version}: error code {result.error_code}")
    raise ProtocolError(f"{bootstrap}: no usable ApiVersions answer: {last}")
