"""Encoders and decoders of the few Kafka requests kbench speaks itself (pure; no sockets).

ApiVersions v0-v4, SaslHandshake v1 and SaslAuthenticate v0-v2. Wire format reminders
(https://kafka.apache.org/protocol):

* every request/response is framed by an int32 big-endian size;
* request header v1 = api_key int16, api_version int16, correlation_id int32, client_id nullable
  string (int16 length); header v2 appends an empty tagged-field section (one varint 0);
* response header v0 = correlation id; v1 (flexible responses) appends a tagged-field section;
* the ApiVersions *response* header is always v0 (correlation id only), even for v3, so that a
  client can always read the error and fall back.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.errors import BrokerError
from bench.kafka.api_names import API_NAMES

__all__ = [
    "API_NAMES",
    "API_VERSIONS_KEY",
    "SASL_AUTHENTICATE_KEY",
    "SASL_HANDSHAKE_KEY",
    "ApiRange",
    "ApiVersionsResult",
    "ProtocolError",
    "Reader",
    "SaslAuthenticateResponse",
    "SaslHandshakeResponse",
    "SaslSession",
    "api_name",
    "check_correlation",
    "decode_api_versions",
    "decode_sasl_authenticate",
    "decode_sasl_handshake",
    "encode_api_versions_request",
    "encode_request",
    "encode_sasl_authenticate_request",
    "encode_sasl_handshake_request",
]

SASL_HANDSHAKE_KEY = 17
SASL_AUTHENTICATE_KEY = 36
API_VERSIONS_KEY = 18
UNSUPPORTED_VERSION = 35


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
class SaslSession:
    """A successful SASL authentication: the mechanism used, what the broker enabled, and the session
    lifetime the broker granted (0: none, i.e. no re-authentication required)."""

    mechanism: str
    enabled_mechanisms: tuple[str, ...]
    session_lifetime_ms: int = 0
    authenticate_version: int = 2


@dataclass(frozen=True)
class ApiVersionsResult:
    """What a broker advertised. ``request_version`` is the ApiVersions version that was answered.

    ``security_protocol``, ``tls_version`` and ``sasl`` say how the probe's connection was secured and
    authenticated (set by :func:`bench.kafka.protocol.api_versions`, not by the decoder)."""

    apis: Mapping[int, ApiRange]
    request_version: int
    error_code: int = 0
    throttle_time_ms: int = 0
    finalized_features: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    security_protocol: str = "PLAINTEXT"
    tls_version: str | None = None
    sasl: SaslSession | None = None

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


def _compact_bytes(raw: bytes) -> bytes:
    return _uvarint(len(raw) + 1) + raw


def encode_request(api_key: int, version: int, correlation_id: int, body: bytes, *,
                   flexible: bool, client_id: str = "kbench") -> bytes:
    """A framed request: size, header v1 (v2 with its empty tagged fields when ``flexible``), body."""
    cid = client_id.encode()
    header = struct.pack(">hhih", api_key, version, correlation_id, len(cid)) + cid
    if flexible:
        header += b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def encode_sasl_handshake_request(mechanism: str, correlation_id: int, client_id: str = "kbench") -> bytes:
    """SaslHandshake v1 (the mechanism; authentication bytes then go in SaslAuthenticate requests)."""
    raw = mechanism.encode()
    return encode_request(SASL_HANDSHAKE_KEY, 1, correlation_id, struct.pack(">h", len(raw)) + raw,
                          flexible=False, client_id=client_id)


def encode_sasl_authenticate_request(auth_bytes: bytes, version: int, correlation_id: int,
                                     client_id: str = "kbench") -> bytes:
    """SaslAuthenticate v0-v2 (v2 is flexible) carrying one SASL client message."""
    if not 0 <= version <= 2:
        raise ValueError(f"SaslAuthenticate version {version} not supported by this encoder")
    flexible = version >= 2
    body = (_compact_bytes(auth_bytes) + b"\x00" if flexible
            else struct.pack(">i", len(auth_bytes)) + auth_bytes)
    return encode_request(SASL_AUTHENTICATE_KEY, version, correlation_id, body, flexible=flexible,
                          client_id=client_id)


def encode_api_versions_request(version: int, correlation_id: int, client_id: str = "kbench",
                                software: tuple[str, str] = ("kbench", "0.1.0")) -> bytes:
    """The framed ApiVersions request (size prefix included) for ``version`` 0..4."""
    if not 0 <= version <= 4:
        raise ValueError(f"ApiVersions version {version} not supported by this encoder")
    body = _compact_string(software[0]) + _compact_string(software[1]) + b"\x00" if version >= 3 else b""
    return encode_request(API_VERSIONS_KEY, version, correlation_id, body, flexible=version >= 3,
                          client_id=client_id)


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

    def compact_nullable_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode("utf-8", "replace")

    def string(self) -> str:
        n = self.int16()
        return "" if n <= 0 else self.take(n).decode("utf-8", "replace")

    def nullable_string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

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




@dataclass(frozen=True)
class SaslHandshakeResponse:
    error_code: int
    mechanisms: tuple[str, ...]  # the mechanisms the broker enabled on this listener


@dataclass(frozen=True)
class SaslAuthenticateResponse:
    error_code: int
    error_message: str | None
    auth_bytes: bytes
    session_lifetime_ms: int = 0


def _check_correlation(r: _Reader, correlation_id: int) -> None:
    got = r.int32()
    if got != correlation_id:
        raise ProtocolError(f"correlation id {got}, expected {correlation_id}")


Reader = _Reader                      # for the other codecs (bench.kafka.commit_codec)
check_correlation = _check_correlation


def decode_sasl_handshake(payload: bytes, correlation_id: int) -> SaslHandshakeResponse:
    """A SaslHandshake v0/v1 response (header v0)."""
    r = _Reader(payload)
    _check_correlation(r, correlation_id)
    error = r.int16()
    mechanisms = tuple(r.string() for _ in range(max(r.int32(), 0)))
    return SaslHandshakeResponse(error, mechanisms)


def decode_sasl_authenticate(payload: bytes, version: int, correlation_id: int) -> SaslAuthenticateResponse:
    """A SaslAuthenticate v0-v2 response (v2: header v1 and compact fields)."""
    r = _Reader(payload)
    _check_correlation(r, correlation_id)
    if version >= 2:
        r.skip_tags()
        error = r.int16()
        message = r.compact_nullable_string()
        auth = r.take(max(r.uvarint() - 1, 0))
    else:
        error = r.int16()
        message = r.nullable_string()
        n = r.int32()
        auth = r.take(n) if n > 0 else b""
    lifetime = r.int64() if version >= 1 else 0
    return SaslAuthenticateResponse(error, message, auth, lifetime)
