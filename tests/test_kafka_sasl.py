"""Offline: SASL mechanisms (RFC 7677 vector), security settings from librdkafka keys, SASL request codecs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import struct

import pytest

from bench.errors import AuthenticationError, ConfigError
from bench.kafka.codec import (
    decode_sasl_authenticate,
    decode_sasl_handshake,
    encode_sasl_authenticate_request,
    encode_sasl_handshake_request,
)
from bench.kafka.sasl import PlainClient, ScramClient, mechanism_for
from bench.kafka.security import SecurityConfig

# RFC 7677 section 3: SCRAM-SHA-256, user "user", password "pencil"
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_sha256_rfc7677_vector() -> None:
    c = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=RFC_NONCE)
    assert c.start() == b"n,,n=user,r=" + RFC_NONCE.encode()
    assert c.step(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    assert not c.done
    assert c.step(RFC_SERVER_FINAL) is None and c.done


def _server_side(mechanism: str, password: str, client_first: bytes, client_final: bytes,
                 server_first: str) -> bytes:
    """An independent server computation of v= (RFC 5802 section 3) for SHA-512."""
    h = "sha512" if mechanism.endswith("512") else "sha256"
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(h, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    without_proof = client_final.decode().rsplit(",p=", 1)[0]
    auth = f"{client_first.decode()[3:]},{server_first},{without_proof}".encode()
    stored = hashlib.new(h, hmac.new(salted, b"Client Key", h).digest()).digest()
    client_key = bytes(a ^ b for a, b in zip(base64.b64decode(client_final.decode().rsplit(",p=", 1)[1]),
                                             hmac.new(stored, auth, h).digest(), strict=True))
    assert hashlib.new(h, client_key).digest() == stored  # the proof is right
    return b"v=" + base64.b64encode(hmac.new(hmac.new(salted, b"Server Key", h).digest(), auth, h).digest())


def test_scram_sha512_against_an_independent_server_computation() -> None:
    c = ScramClient("SCRAM-SHA-512", "al=i,ce", "pw", nonce="abc")
    first = c.start()
    assert first == b"n,,n=al=3Di=2Cce,r=abc"  # RFC 5802 saslname escaping
    server_first = "r=abcXYZ,s=" + base64.b64encode(b"salt-bytes").decode() + ",i=4096"
    final = c.step(server_first.encode())
    assert final is not None
    assert c.step(_server_side("SCRAM-SHA-512", "pw", first, final, server_first)) is None and c.done


@pytest.mark.parametrize(("server_first", "server_final", "match"), [
    (b"r=other,s=c2FsdA==,i=4096", None, "nonce"),
    (b"r=abcX,i=4096", None, "salt"),
    (b"e=unknown-user", None, "refused the first message"),
    (b"r=abcX,s=c2FsdA==,i=4096", b"v=" + base64.b64encode(b"x" * 32), "signature is wrong"),
    (b"r=abcX,s=c2FsdA==,i=4096", b"e=invalid-proof", "refused the credentials: invalid-proof"),
])
def test_scram_refuses_bad_server_messages(server_first: bytes, server_final: bytes | None, match: str) -> None:
    c = ScramClient("SCRAM-SHA-256", "u", "secret-pw", nonce="abc")
    c.start()
    with pytest.raises(AuthenticationError, match=match) as info:
        c.step(server_first)
        assert server_final is not None
        c.step(server_final)
    assert "secret-pw" not in str(info.value)


def test_plain_and_reprs_hide_the_password() -> None:
    p = PlainClient("bob", "hunter2")
    assert p.start() == b"\0bob\0hunter2" and p.done and p.step(b"") is None
    assert "hunter2" not in repr(p) and "hunter2" not in repr(ScramClient("SCRAM-SHA-256", "bob", "hunter2"))
    assert isinstance(mechanism_for("SCRAM-SHA-512", "u", "p"), ScramClient)
    with pytest.raises(ValueError, match="GSSAPI"):
        mechanism_for("GSSAPI", "u", "p")


# ---------------------------------------------------------------------------------------- security
def test_security_from_librdkafka_keys() -> None:
    assert SecurityConfig.from_client_config(None) == SecurityConfig()
    assert SecurityConfig.from_client_config({"acks": "all", "linger.ms": 5}).protocol == "PLAINTEXT"
    s = SecurityConfig.from_client_config({"security.protocol": "sasl_ssl", "sasl.mechanisms": "scram-sha-512",
                                           "sasl.username": "u", "sasl.password": "hunter2",
                                           "ssl.endpoint.identification.algorithm": "none",
                                           "ssl.ca.location": "/ca.pem", "ssl.key.password": "keypw"})
    assert (s.protocol, s.sasl_mechanism, s.tls, s.sasl, s.check_hostname) == (
        "SASL_SSL", "SCRAM-SHA-512", True, True, False)
    assert "hunter2" not in repr(s) and "keypw" not in repr(s)
    d = s.describe()
    assert d["sasl.password"] == "***" and d["ssl.key.password"] == "***" and d["sasl.username"] == "u"
    assert "hunter2" not in str(d) and d["ssl.ca.location"] == "/ca.pem"
    plain = SecurityConfig.from_client_config({"security.protocol": "SASL_PLAINTEXT", "sasl.username": "u",
                                               "sasl.password": ""})
    assert plain.sasl_mechanism == "PLAIN" and not plain.tls  # PLAIN is librdkafka's default mechanism


@pytest.mark.parametrize(("config", "match"), [
    ({"security.protocol": "TLS"}, "security.protocol: expected one of"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI", "sasl.username": "u", "sasl.password": "x"},
     "GSSAPI is not implemented"),
    ({"security.protocol": "SASL_SSL", "sasl.password": "s3cr3t-value"}, "needs sasl.username"),
    ({"security.protocol": "SSL", "ssl.key.pem": "-----BEGIN"}, "ssl.key.pem: not supported"),
    ({"ssl.endpoint.identification.algorithm": "dns"}, "expected https or none"),
    ({"enable.ssl.certificate.verification": "maybe"}, "expected true or false"),
    ({"security.protocol": "SASL_SSL", "sasl.username": "u", "sasl.password": ["s3cr3t-value"]},
     "sasl.password: expected a string$"),
])
def test_bad_security_settings(config: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        SecurityConfig.from_client_config(config)
    assert "s3cr3t-value" not in str(info.value)


def test_ssl_context_settings() -> None:
    ctx = SecurityConfig(protocol="SSL").ssl_context()
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    off = SecurityConfig(protocol="SSL", verify_certificates=False).ssl_context()
    assert not off.check_hostname and off.verify_mode == ssl.CERT_NONE
    with pytest.raises(ConfigError, match=r"without ssl\.certificate\.location"):
        SecurityConfig(protocol="SSL", key_location="/k.pem").ssl_context()
    with pytest.raises(ConfigError, match="cannot load the client certificate"):
        SecurityConfig(protocol="SSL", certificate_location="/nonexistent.pem", key_password="kp-secret").ssl_context()


# ------------------------------------------------------------------------------------------- codec
def test_sasl_handshake_request_and_response() -> None:
    req = encode_sasl_handshake_request("PLAIN", 7, client_id="c")
    assert req[4:] == struct.pack(">hhih", 17, 1, 7, 1) + b"c" + struct.pack(">h", 5) + b"PLAIN"
    resp = struct.pack(">ihi", 7, 33, 2) + struct.pack(">h", 5) + b"PLAIN" + struct.pack(">h", 13) + b"SCRAM-SHA-256"
    hs = decode_sasl_handshake(resp, 7)
    assert hs.error_code == 33 and hs.mechanisms == ("PLAIN", "SCRAM-SHA-256")


def test_sasl_authenticate_v2_and_v0() -> None:
    req = encode_sasl_authenticate_request(b"abc", 2, 9, client_id="c")
    assert req[4:] == struct.pack(">hhih", 36, 2, 9, 1) + b"c" + b"\x00" + b"\x04abc" + b"\x00"
    v2 = struct.pack(">i", 9) + b"\x00" + struct.pack(">h", 58) + b"\x07failed" + b"\x03xy" + \
        struct.pack(">q", 3600_000) + b"\x00"
    r = decode_sasl_authenticate(v2, 2, 9)
    assert (r.error_code, r.error_message, r.auth_bytes, r.session_lifetime_ms) == (58, "failed", b"xy", 3600_000)
    v0req = encode_sasl_authenticate_request(b"abc", 0, 3, client_id="c")
    assert v0req[4:] == struct.pack(">hhih", 36, 0, 3, 1) + b"c" + struct.pack(">i", 3) + b"abc"
    v0 = struct.pack(">ih", 3, 0) + struct.pack(">h", -1) + struct.pack(">i", 2) + b"ok"
    r0 = decode_sasl_authenticate(v0, 0, 3)
    assert (r0.error_code, r0.error_message, r0.auth_bytes, r0.session_lifetime_ms) == (0, None, b"ok", 0)
    with pytest.raises(ValueError):
        encode_sasl_authenticate_request(b"", 3, 1)
