"""SASL client mechanisms for the raw protocol client: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802,
RFC 7677). Pure: each mechanism turns the server's challenges into client messages; sockets are elsewhere.

A mechanism is driven as ``first = m.start()``, then ``reply = m.step(challenge)`` for every server
message until :attr:`SaslMechanism.done`; :class:`ScramClient` verifies the server's signature in the
last step (a broker that does not know the password cannot fake success). The password is only ever
inside the bytes sent; no error message or ``repr`` contains it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Protocol

from bench.errors import AuthenticationError

__all__ = ["MECHANISMS", "PlainClient", "SaslMechanism", "ScramClient", "mechanism_for"]

#: the mechanisms this client implements (Kafka's names)
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class SaslMechanism(Protocol):
    name: str

    @property
    def done(self) -> bool:
        """True once the exchange is complete from the client's side (nothing more to send)."""
        ...

    def start(self) -> bytes:
        """The client's first message."""
        ...

    def step(self, challenge: bytes) -> bytes | None:
        """The reply to a server message; None when the exchange is complete."""
        ...


class PlainClient:
    """PLAIN: one message ``\\0user\\0password``; the broker's answer ends it."""

    name = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self._username, self._password = username, password
        self._sent = False

    def __repr__(self) -> str:
        return f"PlainClient(username={self._username!r}, password=***)"

    @property
    def done(self) -> bool:
        return self._sent

    def start(self) -> bytes:
        self._sent = True
        return b"\0" + self._username.encode() + b"\0" + self._password.encode()

    def step(self, challenge: bytes) -> bytes | None:
        return None


def _saslname(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise AuthenticationError(f"SCRAM: malformed server message attribute {part[:40]!r}")
        out.setdefault(key, value)
    return out


class ScramClient:
    """SCRAM-SHA-256 / SCRAM-SHA-512 without channel binding (``n,,``), as Kafka implements it."""

    def __init__(self, mechanism: str, username: str, password: str, *, nonce: str | None = None) -> None:
        if mechanism not in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ValueError(f"not a SCRAM mechanism kbench implements: {mechanism}")
        self.name = mechanism
        self._hash = "sha256" if mechanism.endswith("256") else "sha512"
        self._username, self._password = username, password
        self._nonce = nonce or secrets.token_urlsafe(24)
        self._first_bare = ""
        self._server_signature: bytes | None = None
        self._state = "initial"

    def __repr__(self) -> str:
        return f"ScramClient({self.name}, username={self._username!r}, password=***)"

    @property
    def done(self) -> bool:
        return self._state == "done"

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self._hash).digest()

    def start(self) -> bytes:
        self._first_bare = f"n={_saslname(self._username)},r={self._nonce}"
        self._state = "first-sent"
        return ("n,," + self._first_bare).encode()

    def step(self, challenge: bytes) -> bytes | None:
        text = challenge.decode("utf-8", "replace")
        if self._state == "first-sent":
            self._state = "final-sent"
            return self._client_final(text)
        if self._state == "final-sent":
            self._state = "done"
            self._verify(text)
            return None
        raise AuthenticationError(f"{self.name}: unexpected server message after the exchange ended")

    def _client_final(self, server_first: str) -> bytes:
        attrs = _attributes(server_first)
        if "e" in attrs:
            raise AuthenticationError(f"{self.name}: the broker refused the first message: {attrs['e']}")
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), attrs.get("i", "")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise AuthenticationError(f"{self.name}: the broker's nonce does not extend the client's")
        if salt is None or not iterations.isdigit() or int(iterations) < 1:
            raise AuthenticationError(f"{self.name}: server-first message lacks salt or iteration count")
        salted = hashlib.pbkdf2_hmac(self._hash, self._password.encode(), base64.b64decode(salt), int(iterations))
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def _verify(self, server_final: str) -> None:
        attrs = _attributes(server_final)
        if "e" in attrs:
            raise AuthenticationError(f"{self.name}: the broker refused the credentials: {attrs['e']}")
        got = base64.b64decode(attrs.get("v", ""))
        if self._server_signature is None or not hmac.compare_digest(got, self._server_signature):
            raise AuthenticationError(f"{self.name}: the broker's signature is wrong (it does not know the "
                                      "password: a man in the middle, or a misconfigured broker)")


def mechanism_for(mechanism: str, username: str, password: str) -> SaslMechanism:
    """The client for ``mechanism`` (one of :data:`MECHANISMS`)."""
    if mechanism == "PLAIN":
        return PlainClient(username, password)
    if mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        return ScramClient(mechanism, username, password)
    raise ValueError(f"SASL mechanism {mechanism!r} is not implemented (supported: {', '.join(MECHANISMS)})")
