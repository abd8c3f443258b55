"""Helpers of the security checks S1–S8 (conformance/test_security.py): what the broker advertises,
extra principals made through the admin API with the run's (super user's) client config, and ACLs.

Extra principals are SCRAM users (AlterUserScramCredentials) with random passwords that never leave
this process (not in notes, observations or errors); each check deletes its users and ACLs.
"""

from __future__ import annotations

import contextlib
import secrets
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from bench.errors import AuthenticationError, BrokerUnreachableError
from bench.kafka.codec import decode_api_versions, encode_api_versions_request, encode_request
from bench.kafka.protocol import (
    ApiVersionsResult,
    KafkaConnection,
    ProtocolError,
    api_versions,
    authenticate,
    parse_bootstrap,
)
from bench.kafka.security import SecurityConfig
from conformance.verdicts import CheckContext, NotApplicable

__all__ = ["Principal", "SecuredBroker", "error_name", "list_offsets_error", "poll_until", "secured"]

T = TypeVar("T")
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31
DESCRIBE_SCRAM, ALTER_SCRAM = 50, 51
SCRAM = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256, "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}
_SECRET_KEYS = ("sasl.password", "ssl.key.password")


def error_name(exc: BaseException | KafkaError | None) -> str:
    """librdkafka's error name of a KafkaException/KafkaError ('' when there is none)."""
    if isinstance(exc, KafkaError):
        return str(exc.name())
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return str(exc.args[0].name())
    return type(exc).__name__ if exc is not None else ""


def poll_until(probe: Callable[[], T | None], timeout: float, interval: float = 0.25) -> tuple[T | None, float]:
    """Call ``probe`` until it returns non-None or ``timeout`` passes: (value or None, seconds taken)."""
    t0 = time.monotonic()
    while True:
        value = probe()
        if value is not None or time.monotonic() - t0 > timeout:
            return value, time.monotonic() - t0
        time.sleep(interval)


@dataclass(frozen=True)
class Principal:
    """A SCRAM user made for one check; ``conf`` is its librdkafka security config."""

    name: str
    password: str = field(repr=False)
    conf: dict[str, str] = field(repr=False)

    @property
    def principal(self) -> str:
        return f"User:{self.name}"


@dataclass
class SecuredBroker:
    """The run's client security (``--client-config-file``) and what the broker advertised over it."""

    bootstrap: str
    conf: dict[str, str] = field(repr=False)
    probe: ApiVersionsResult | None
    admin: AdminClient

    @property
    def protocol(self) -> str:
        return self.conf.get("security.protocol", "PLAINTEXT").upper()

    @property
    def mechanisms(self) -> tuple[str, ...]:
        return self.probe.sasl.enabled_mechanisms if self.probe and self.probe.sasl else ()

    def require_sasl(self, check: CheckContext) -> None:
        check.require_api(SASL_HANDSHAKE, 1, "SASL")
        check.require_api(SASL_AUTHENTICATE, 0, "SASL")
        if not self.protocol.startswith("SASL_") or self.probe is None or self.probe.sasl is None:
            raise NotApplicable(f"N/A: the run's client config uses {self.protocol}, no SASL listener "
                                "(give --client-config-file of a SASL listener)")

    def require_tls(self, check: CheckContext) -> None:
        if self.protocol not in ("SSL", "SASL_SSL") or self.probe is None or not self.probe.tls_version:
            raise NotApplicable(f"N/A: the run's client config uses {self.protocol}, no TLS listener")

    def require_acls(self, check: CheckContext) -> None:
        for key in (DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS):
            check.require_api(key, 0, "ACLs")
        flt = _filter(ResourceType.ANY, _ANY, _ANY, AclOperation.ANY)
        try:
            self.admin.describe_acls(flt, request_timeout=10).result(timeout=15)
        except KafkaException as exc:
            if error_name(exc) == "SECURITY_DISABLED":
                raise NotApplicable("N/A: DescribeAcls answers SECURITY_DISABLED (no authorizer)") from exc
            raise

    def require_scram(self, check: CheckContext) -> str:
        """The SCRAM mechanism to make users with (the run's, else the first enabled); N/A without one."""
        self.require_sasl(check)
        check.require_api(DESCRIBE_SCRAM, 0, "SCRAM users")
        check.require_api(ALTER_SCRAM, 0, "SCRAM users")
        mine = self.conf.get("sasl.mechanism", self.conf.get("sasl.mechanisms", "")).upper()
        session = self.probe.sasl.mechanism if self.probe and self.probe.sasl else ""
        if mine not in SCRAM or (mine not in self.mechanisms and session != mine):
            raise NotApplicable(f"N/A: no SCRAM mechanism to make principals with (the listener enables "
                                f"{', '.join(self.mechanisms) or 'none'}; the run uses {mine or 'none'})")
        return mine

    def user_conf(self, name: str, password: str, mechanism: str | None = None) -> dict[str, str]:
        conf = {k: v for k, v in self.conf.items() if k not in _SECRET_KEYS}
        conf |= {"sasl.username": name, "sasl.password": password}
        if mechanism:
            conf["sasl.mechanism"] = mechanism
        return conf

    def authenticates(self, conf: Mapping[str, str], timeout: float = 8.0) -> bool | str:
        """True when a new connection authenticates with ``conf``; else the error's text (no secrets)."""
        try:
            api_versions(self.bootstrap, timeout=timeout, security=conf)
        except AuthenticationError as exc:
            return str(exc)
        except (BrokerUnreachableError, ProtocolError) as exc:
            return f"no SASL error, the connection failed: {exc}"
        return True

    def upsert_user(self, name: str, password: str, mechanism: str) -> None:
        ups = UserScramCredentialUpsertion(name, ScramCredentialInfo(SCRAM[mechanism], 4096), password.encode())
        for fut in self.admin.alter_user_scram_credentials([ups], request_timeout=10).values():
            fut.result(timeout=15)

    def delete_user(self, name: str, mechanism: str) -> None:
        dele = UserScramCredentialDeletion(name, SCRAM[mechanism])
        for fut in self.admin.alter_user_scram_credentials([dele], request_timeout=10).values():
            fut.result(timeout=15)

    @contextmanager
    def user(self, name: str, mechanism: str, timeout: float = 20.0) -> Iterator[Principal]:
        """A new SCRAM user that authenticates (waited for); deleted, with every ACL naming it, after."""
        password = secrets.token_urlsafe(16)
        self.upsert_user(name, password, mechanism)
        who = Principal(name, password, self.user_conf(name, password, mechanism))
        try:
            ok, _ = poll_until(lambda: True if self.authenticates(who.conf) is True else None, timeout, 0.3)
            if not ok:
                raise AssertionError(f"a SCRAM user made through AlterUserScramCredentials: observed no "
                                     f"successful authentication within {timeout:g} s, expected one")
            yield who
        finally:
            self.drop_acls(who.principal)
            with contextlib.suppress(KafkaException):  # already deleted by the check (S8)
                self.delete_user(name, mechanism)

    # -- ACLs --------------------------------------------------------------------------------------
    def grant(self, principal: str, restype: ResourceType, name: str, *ops: AclOperation) -> list[AclBinding]:
        bindings = [AclBinding(restype, name, ResourcePatternType.LITERAL, principal, "*", op,
                               AclPermissionType.ALLOW) for op in ops]
        for fut in self.admin.create_acls(bindings, request_timeout=10).values():
            fut.result(timeout=15)
        want = {(b.restype, b.name, b.operation) for b in bindings}

        def applied() -> bool | None:  # DescribeAcls answers from the authorizer: the grants are in force
            have = {(a.restype, a.name, a.operation) for a in self.acls_of(principal)}
            return True if want <= have else None
        poll_until(applied, 10.0, 0.1)
        return bindings

    def acls_of(self, principal: str) -> list[AclBinding]:
        flt = _filter(ResourceType.ANY, _ANY, principal, AclOperation.ANY)
        return list(self.admin.describe_acls(flt, request_timeout=10).result(timeout=15))

    def revoke(self, principal: str, restype: ResourceType, name: str, op: AclOperation) -> list[AclBinding]:
        flt = _filter(restype, name, principal, op)
        out: list[AclBinding] = []
        for fut in self.admin.delete_acls([flt], request_timeout=10).values():
            out += fut.result(timeout=15)
        return out

    def drop_acls(self, principal: str) -> None:
        flt = _filter(ResourceType.ANY, _ANY, principal, AclOperation.ANY)
        try:
            for fut in self.admin.delete_acls([flt], request_timeout=10).values():
                fut.result(timeout=15)
        except KafkaException:
            pass  # best effort cleanup; the user is deleted next


def secured(bootstrap: str, conf: Mapping[str, str], admin: AdminClient) -> SecuredBroker:
    """Probe the broker with the run's client security (None probe when it cannot authenticate)."""
    probe: ApiVersionsResult | None
    try:
        probe = api_versions(bootstrap, timeout=10, security=conf)
    except (AuthenticationError, BrokerUnreachableError):
        probe = None
    return SecuredBroker(bootstrap, dict(conf), probe, admin)


_ANY: Any = None  # "any" in an ACL filter (confluent-kafka's stubs type these str)


def _filter(restype: ResourceType, name: str, principal: str, op: AclOperation) -> AclBindingFilter:
    pattern = ResourcePatternType.ANY if name is None else ResourcePatternType.LITERAL
    return AclBindingFilter(restype, name, pattern, principal, _ANY, op, AclPermissionType.ANY)


LIST_OFFSETS = 2
TOPIC_AUTHORIZATION_FAILED = 29


def list_offsets_error(bootstrap: str, conf: Mapping[str, str], topic: str, timeout: float = 10.0) -> int:
    """The error code a ListOffsets v1 (latest, partition 0 of ``topic``) gets on a connection authenticated
    with ``conf``: asked of the broker itself, not filtered by a client's metadata cache."""
    sec = SecurityConfig.from_client_config(conf)
    with KafkaConnection(parse_bootstrap(bootstrap), sec, time.monotonic() + timeout) as conn:
        corr = conn.next_correlation_id()
        api = decode_api_versions(conn.request(encode_api_versions_request(3, corr)), 3, corr)
        if sec.sasl:
            authenticate(conn, api)
        name = topic.encode()
        body = struct.pack(">ii", -1, 1) + struct.pack(">h", len(name)) + name + struct.pack(">iiq", 1, 0, -1)
        corr = conn.next_correlation_id()
        payload = conn.request(encode_request(LIST_OFFSETS, 1, corr, body, flexible=False))
    (got,) = struct.unpack_from(">i", payload, 0)
    if got != corr:
        raise AssertionError(f"ListOffsets: correlation id {got}, expected {corr}")
    pos = 8  # correlation id, topic count
    (nlen,) = struct.unpack_from(">h", payload, pos)
    pos += 2 + nlen + 4  # name, partition count
    _partition, error_code = struct.unpack_from(">ih", payload, pos)
    return int(error_code)
