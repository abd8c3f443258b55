"""bench.kafka.protocol (raw ApiVersions) and bench.kafka.murmur2: offline encoding/decoding + live brokers.

TLS and SASL: tests/test_protocol_security.py (live), tests/test_kafka_sasl.py (offline).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Producer

from bench.errors import BrokerUnreachableError
from bench.kafka.admin import TopicAdmin
from bench.kafka.murmur2 import murmur2, partition_for, to_positive
from bench.kafka.protocol import (
    ProtocolError,
    api_name,
    api_versions,
    decode_api_versions,
    encode_api_versions_request,
    parse_bootstrap,
)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def v0_response(corr: int, apis: list[tuple[int, int, int]], error: int = 0) -> bytes:
    body = struct.pack(">ihi", corr, error, len(apis))
    return body + b"".join(struct.pack(">hhh", *a) for a in apis)


def v3_response(corr: int, apis: list[tuple[int, int, int]], features: dict[str, tuple[int, int]]
                ) -> bytes:
    body = struct.pack(">ih", corr, 0) + _uvarint(len(apis) + 1)
    body += b"".join(struct.pack(">hhh", *a) + b"\x00" for a in apis)
    body += struct.pack(">i", 7)  # throttle
    feat = _uvarint(len(features) + 1)
    for name, (lo, hi) in features.items():
        feat += _uvarint(len(name) + 1) + name.encode() + struct.pack(">hh", hi, lo) + b"\x00"
    tags = [(1, struct.pack(">q", 42)), (2, feat)]
    body += _uvarint(len(tags)) + b"".join(_uvarint(t) + _uvarint(len(v)) + v for t, v in tags)
    return body


# ------------------------------------------------------------------------------------------ offline
def test_encode_v0_request_exact_bytes() -> None:
    req = encode_api_versions_request(0, 7, client_id="ab")
    payload = struct.pack(">hhih", 18, 0, 7, 2) + b"ab"
    assert req == struct.pack(">i", len(payload)) + payload


def test_encode_v3_request_is_flexible() -> None:
    req = encode_api_versions_request(3, 9, client_id="c", software=("sw", "1.0"))
    header = struct.pack(">hhih", 18, 3, 9, 1) + b"c" + b"\x00"
    body = b"\x03sw" + b"\x041.0" + b"\x00"
    assert req[4:] == header + body
    assert struct.unpack(">i", req[:4])[0] == len(header + body)
    with pytest.raises(ValueError):
        encode_api_versions_request(9, 1)


def test_decode_v0_and_names() -> None:
    res = decode_api_versions(v0_response(5, [(0, 0, 9), (18, 0, 3), (999, 1, 2)]), 0, 5)
    assert res.request_version == 0 and res.error_code == 0
    assert res.apis[0].name == "Produce" and (res.apis[0].min_version, res.apis[0].max_version) == (0, 9)
    assert res.apis[999].name == "Unknown(999)"
    assert res.supports(0, 9) and not res.supports(0, 10) and not res.supports(1)
    assert res.as_json()["18"] == {"name": "ApiVersions", "min": 0, "max": 3}
    assert api_name(60) == "DescribeCluster"


def test_decode_v3_with_tagged_features() -> None:
    raw = v3_response(11, [(1, 4, 17), (68, 0, 1)], {"metadata.version": (1, 30)})
    res = decode_api_versions(raw, 3, 11)
    assert res.request_version == 3 and res.throttle_time_ms == 7
    assert {k: (r.min_version, r.max_version) for k, r in res.apis.items()} == {1: (4, 17), 68: (0, 1)}
    assert res.finalized_features == {"metadata.version": (1, 30)}


def test_decode_unsupported_version_answer_is_v0_layout() -> None:
    res = decode_api_versions(v0_response(3, [(18, 0, 2)], error=35), 3, 3)
    assert res.error_code == 35 and res.request_version == 0 and res.apis[18].max_version == 2


def test_decode_rejects_bad_answers() -> None:
    with pytest.raises(ProtocolError, match="correlation"):
        decode_api_versions(v0_response(1, []), 0, 2)
    with pytest.raises(ProtocolError, match="truncated"):
        decode_api_versions(v0_response(1, [(0, 0, 9)])[:-2], 0, 1)


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:9092", ("127.0.0.1", 9092)), ("a:1,b:2", ("a", 1)),
    ("PLAINTEXT://h:9", ("h", 9)), ("[::1]:9092", ("::1", 9092)),
])
def test_parse_bootstrap(text: str, want: tuple[str, int]) -> None:
    assert parse_bootstrap(text) == want


def test_parse_bootstrap_rejects() -> None:
    with pytest.raises(ValueError):
        parse_bootstrap("nohost")


@pytest.fixture
def fake_broker() -> Iterator[Callable[[Callable[[int, int], bytes]], str]]:
    """A one-thread loopback server answering each request with ``answer(version, corr)``."""
    servers: list[socket.socket] = []

    def start(answer: Callable[[int, int], bytes]) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        srv.settimeout(5)
        servers.append(srv)

        def serve() -> None:
            for _ in range(4):
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    size = struct.unpack(">i", conn.recv(4))[0]
                    req = conn.recv(size)
                    _, version, corr = struct.unpack(">hhi", req[:8])
                    out = answer(version, corr)
                    conn.sendall(struct.pack(">i", len(out)) + out)
        threading.Thread(target=serve, daemon=True).start()
        return f"127.0.0.1:{srv.getsockname()[1]}"

    yield start
    for srv in servers:
        srv.close()


def test_api_versions_falls_back_to_v0(fake_broker: Callable[..., str]) -> None:
    seen: list[int] = []

    def answer(version: int, corr: int) -> bytes:
        seen.append(version)
        if version >= 3:
            return v0_response(corr, [(18, 0, 2)], error=35)
        return v0_response(corr, [(0, 0, 8), (18, 0, 2)])

    res = api_versions(fake_broker(answer), timeout=3)
    assert seen == [3, 0]
    assert res.request_version == 0 and res.error_code == 0 and set(res.apis) == {0, 18}


def test_api_versions_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(BrokerUnreachableError):
            api_versions(f"127.0.0.1:{port}", timeout=1)


# ------------------------------------------------------------------------------------------ murmur2
# Apache Kafka's own vectors for org.apache.kafka.common.utils.Utils.murmur2 (signed Java ints)
JAVA_VECTORS = [
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971), (b"abc", 479470107),
]


@pytest.mark.parametrize(("key", "want"), JAVA_VECTORS)
def test_murmur2_java_vectors(key: bytes, want: int) -> None:
    assert murmur2(key) == want


def test_partition_for() -> None:
    assert to_positive(-1) == 0x7FFFFFFF
    assert partition_for(b"21", 7) == (-973932308 & 0x7FFFFFFF) % 7
    assert -(2**31) <= murmur2(b"") < 2**31  # empty key: no body, no tail
    with pytest.raises(ValueError):
        partition_for(b"k", 0)


# ------------------------------------------------------------------------------------------ brokers
@pytest.mark.integration
def test_api_versions_live_kafka(kafka_bootstrap: str) -> None:
    res = api_versions(kafka_bootstrap, timeout=10)
    assert res.error_code == 0 and res.request_version == 3
    for key in (0, 1, 3, 18, 19):  # Produce, Fetch, Metadata, ApiVersions, CreateTopics
        assert res.supports(key), api_name(key)
    assert res.apis[18].max_version >= 3
    assert "metadata.version" in res.finalized_features
    v0 = api_versions(kafka_bootstrap, timeout=10, versions=(0,))
    assert {k: (r.min_version, r.max_version) for k, r in v0.apis.items()} == \
        {k: (r.min_version, r.max_version) for k, r in res.apis.items()}


@pytest.mark.integration
def test_murmur2_matches_librdkafka_murmur2_random(kafka_bootstrap: str) -> None:
    """The vectors are checked against what a real client + broker do, not only against constants."""
    topic = f"kbench-murmur2-{time.monotonic_ns()}"
    admin = TopicAdmin(kafka_bootstrap)
    admin.create_topic(topic, partitions=7, timeout_s=20)
    try:
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random",
                             "message.timeout.ms": 15000})
        keys = [k for k, _ in JAVA_VECTORS] + [b"key-%d" % i for i in range(50)]
        got: dict[bytes, int] = {}
        for key in keys:
            producer.produce(topic, key=key, value=b"v",
                             on_delivery=lambda err, msg: got.__setitem__(msg.key(), msg.partition()))
        assert producer.flush(20) == 0
        assert got == {k: partition_for(k, 7) for k in keys}
    finally:
        admin.delete_topic(topic, timeout_s=20)
        admin.close()
