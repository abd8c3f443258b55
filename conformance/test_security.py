"""Security checks S1–S8 (docs/conformance.md): authentication, TLS, ACLs, metadata leaks, SCRAM changes.

They run over the run's ``--client-config-file`` (a super user on a secured broker, e.g. the one
``kbench broker up kafka --security sasl-scram`` prints) and are N/A where the broker does not advertise
what they need: SaslHandshake and its mechanisms, Describe/Create/DeleteAcls (and an authorizer: not
SECURITY_DISABLED), Describe/AlterUserScramCredentials. Other principals are SCRAM users made by the
check (conformance/_security.py).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, ResourceType

from bench.kafka.closing import close_all
from bench.kafka.protocol import api_versions
from bench.kafka.security import SecurityConfig
from conformance._security import (
    TOPIC_AUTHORIZATION_FAILED,
    SecuredBroker,
    error_name,
    list_offsets_error,
    poll_until,
    secured,
)
from conformance.clients import COMMON_CONF, CONSUMER_CONF, Clients, Names, produce_all
from conformance.plugin import BrokerInfo
from conformance.verdicts import CheckContext, expect, expect_eq

AUTH_BOUND_S = 5.0      # a refused authentication answers within this
ACL_BOUND_S = 20.0      # an ACL change reaches a running client within this


@pytest.fixture
def sec(broker: BrokerInfo, security_conf: dict[str, str], clients: Clients) -> SecuredBroker:
    return secured(broker.bootstrap, security_conf, clients.admin())


def _client_conf(sec: SecuredBroker, user_conf: dict[str, str], **extra: Any) -> dict[str, Any]:
    """A client of the principal in ``user_conf``: COMMON_CONF without the run's own security settings."""
    common = {k: v for k, v in COMMON_CONF.items() if not k.startswith(("security.", "sasl.", "ssl."))}
    return {"bootstrap.servers": sec.bootstrap, **common, **user_conf, **extra}


@pytest.fixture
def owned() -> Iterator[list[Producer | Consumer]]:
    """Clients of extra principals, closed after the check."""
    made: list[Producer | Consumer] = []
    yield made
    close_all([c for c in made if isinstance(c, Consumer)])   # bounded: a refused consumer's close can hang
    for c in made:
        with contextlib.suppress(KafkaException, RuntimeError):  # a fenced/refused client may raise
            if not isinstance(c, Consumer):
                c.purge()
                c.flush(1)


def _scram_with_acls(sec: SecuredBroker, check: CheckContext) -> str:
    """For the ACL checks: the SCRAM mechanism to make their principals with; N/A without SCRAM users, the
    ACL APIs or an authorizer (:meth:`SecuredBroker.require_scram`, then :meth:`SecuredBroker.require_acls`)."""
    mech = sec.require_scram(check)
    sec.require_acls(check)
    return mech


def _produce_errors(p: Producer, topic: str, n: int, timeout: float = 15.0) -> list[str]:
    """Send ``n`` records; the delivery error names ('' for delivered), once all are reported."""
    errors: list[str] = []
    for i in range(n):
        p.produce(topic, value=f"s-{i}".encode(), partition=0,
                  on_delivery=lambda err, _m: errors.append(error_name(err) if err else ""))
    deadline = time.monotonic() + timeout
    while len(errors) < n and time.monotonic() < deadline:
        p.poll(0.1)
    return errors


def _consume(c: Consumer, timeout: float, want: int = 1) -> tuple[list[bytes], list[str]]:
    """Poll until ``want`` records or an error arrive, or ``timeout``: (values, error names)."""
    values: list[bytes] = []
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(values) < want and not errors:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            errors.append(error_name(m.error()))
        else:
            values.append(m.value() or b"")
    return values, errors


def _assigned(sec: SecuredBroker, conf: dict[str, str], topic: str, owned: list[Any], group: str) -> Consumer:
    c = Consumer(_client_conf(sec, conf, **{**CONSUMER_CONF, "group.id": group}))
    owned.append(c)
    c.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING: ListOffsets (DESCRIBE), Fetch (READ)
    return c


# ------------------------------------------------------------------------------------------ S1–S3
@pytest.mark.check("S1", "SASL authentication: right credentials in, wrong password and unknown user out")
def test_s1_authentication(check: CheckContext, sec: SecuredBroker, names: Names) -> None:
    sec.require_sasl(check)
    assert sec.probe is not None and sec.probe.sasl is not None
    check.observe(mechanism=sec.probe.sasl.mechanism, enabled=list(sec.mechanisms))
    if not sec.mechanisms:
        check.note("SaslHandshake listed no enabled mechanisms (Kafka lists them)")
    cases = {"wrong password": sec.user_conf(sec.conf.get("sasl.username", ""),
                                             "wrong-" + secrets.token_hex(6)),
             "unknown user": sec.user_conf(names.topic("s1-nobody"), "whatever-" + secrets.token_hex(6))}
    for what, conf in cases.items():
        t0 = time.monotonic()
        refusal = sec.authenticates(conf, timeout=AUTH_BOUND_S * 2)
        took = time.monotonic() - t0
        expect(refusal is not True, f"{what}: authentication", "accepted", "refused")
        expect("SASL_AUTHENTICATION_FAILED" in str(refusal), f"{what}: SaslAuthenticate error",
               str(refusal)[:200], "SASL_AUTHENTICATION_FAILED")
        expect(took < AUTH_BOUND_S, f"{what}: time to the refusal", f"{took:.2f} s", f"< {AUTH_BOUND_S:g} s")
        check.observe(**{what.replace(" ", "_") + "_s": round(took, 3)})
    librdkafka = AdminClient(_client_conf(sec, cases["wrong password"], log_level=0))
    with pytest.raises(KafkaException):
        librdkafka.list_topics(timeout=AUTH_BOUND_S)


@pytest.mark.check("S2", "unauthenticated connection to a SASL listener refused")
def test_s2_unauthenticated(check: CheckContext, sec: SecuredBroker) -> None:
    sec.require_sasl(check)
    plain = {k: v for k, v in sec.conf.items() if not k.startswith("sasl.")}
    plain["security.protocol"] = "SSL" if sec.protocol == "SASL_SSL" else "PLAINTEXT"
    probe = api_versions(sec.bootstrap, timeout=10, security=plain)  # allowed before authentication
    check.observe(api_versions_before_auth=probe.error_code == 0)
    t0 = time.monotonic()
    with pytest.raises(KafkaException) as info:  # Metadata without SASL: the broker closes the connection
        AdminClient(_client_conf(sec, plain, log_level=0)).list_topics(timeout=6)
    check.observe(metadata_without_sasl=error_name(info.value), after_s=round(time.monotonic() - t0, 2))
    md = AdminClient(_client_conf(sec, sec.conf)).list_topics(timeout=10)  # the control: with SASL it works
    expect(bool(md.brokers), "metadata with the run's credentials", len(md.brokers), "brokers listed")


def _tls_handshake(sec: SecuredBroker, conf: dict[str, str], server_name: str) -> str | None:
    """None when a TLS handshake (hostname checked) with ``server_name`` succeeds, else the error."""
    host, port = sec.bootstrap.split(",")[0].rsplit(":", 1)
    ctx = SecurityConfig.from_client_config({**conf, "ssl.endpoint.identification.algorithm": "https"}).ssl_context()
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            tls.getpeercert()
    except ssl.SSLCertVerificationError as exc:
        return f"certificate refused: {exc.verify_message}"
    except (ssl.SSLError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.mark.check("S3", "TLS: hostname verification; mTLS without a client certificate refused")
def test_s3_tls(check: CheckContext, sec: SecuredBroker, clients: Clients) -> None:
    sec.require_tls(check)
    host = sec.bootstrap.split(",")[0].rsplit(":", 1)[0]
    expect_eq(_tls_handshake(sec, sec.conf, host), None, f"TLS handshake naming {host}")
    other = _tls_handshake(sec, sec.conf, "kbench-not-this-broker.invalid")
    expect(other is not None and other.startswith("certificate refused"), "TLS naming another host",
           other, "the certificate refused (hostname mismatch)")
    if not sec.conf.get("ssl.certificate.location"):
        check.note("the run's client config has no client certificate: mTLS part not applicable")
        return
    topic = clients.create_topic()
    nocert = {k: v for k, v in sec.conf.items() if k not in ("ssl.certificate.location", "ssl.key.location",
                                                               "ssl.key.password")}
    try:
        md = AdminClient(_client_conf(sec, nocert, log_level=0)).list_topics(timeout=8)
    except KafkaException as exc:
        check.note(f"without a client certificate: refused ({error_name(exc)})")
        return
    seen = topic in md.topics and md.topics[topic].error is None
    expect(not seen, "metadata without a client certificate (anonymous TLS)", f"{topic} visible",
           "the connection refused, or the topic hidden (no ACL for the anonymous principal)")
    check.note("without a client certificate: connected anonymously and given no access")


# ------------------------------------------------------------------------------------------ S4–S6
@pytest.mark.check("S4", "topic ACLs: no READ, no consume; no WRITE, no produce, nothing stored")
def test_s4_topic_acls(check: CheckContext, sec: SecuredBroker, clients: Clients, names: Names,
                       owned: list[Any]) -> None:
    mech = _scram_with_acls(sec, check)
    topic = clients.create_topic()
    with sec.user(names.topic("s4-user"), mech) as u:
        sec.grant(u.principal, ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
        groups = names.group("s4"), names.group("s4")
        for group in groups:  # only the topic's READ is missing
            sec.grant(u.principal, ResourceType.GROUP, group, AclOperation.READ)
        p = Producer(_client_conf(sec, u.conf, acks="all", **{"message.timeout.ms": 8000}))
        owned.append(p)
        errs = _produce_errors(p, topic, 3)
        expect(len(errs) == 3 and all(e == "TOPIC_AUTHORIZATION_FAILED" for e in errs),
               "produce without WRITE", errs, "3 x TOPIC_AUTHORIZATION_FAILED")
        expect_eq(clients.watermarks(topic, 0)[1], 0, "records stored after the refused produce")
        produce_all(clients.producer(), topic, [{"value": b"stored", "partition": 0}])
        values, errors = _consume(_assigned(sec, u.conf, topic, owned, groups[0]), 10)
        expect(not values and "TOPIC_AUTHORIZATION_FAILED" in errors, "consume without READ",
               {"records": len(values), "errors": errors}, "no record, TOPIC_AUTHORIZATION_FAILED")
        sec.grant(u.principal, ResourceType.TOPIC, topic, AclOperation.READ, AclOperation.WRITE)
        ok, took = poll_until(lambda: True if _produce_errors(p, topic, 1) == [""] else None, ACL_BOUND_S, 0.5)
        expect(bool(ok), "produce once WRITE is granted (the control)", "refused", f"delivered within "
               f"{ACL_BOUND_S:g} s")
        values, errors = _consume(_assigned(sec, u.conf, topic, owned, groups[1]), ACL_BOUND_S)
        expect(values[:1] == [b"stored"], "consume once READ is granted (the control)",
               {"records": values[:2], "errors": errors}, "the stored record")
        check.observe(grant_to_produce_s=round(took, 2))


@pytest.mark.check("S5", "group and transactional-id ACLs; idempotent writes under ACLs")
def test_s5_group_txn_idempotent(check: CheckContext, sec: SecuredBroker, clients: Clients, names: Names,
                                 owned: list[Any]) -> None:
    mech = _scram_with_acls(sec, check)
    topic, group, txn = clients.create_topic(), names.group("s5"), names.txn_id("s5")
    with sec.user(names.topic("s5-user"), mech) as u:
        sec.grant(u.principal, ResourceType.TOPIC, topic, AclOperation.DESCRIBE, AclOperation.READ,
                  AclOperation.WRITE)
        idem = Producer(_client_conf(sec, u.conf, acks="all", **{"enable.idempotence": True,
                                                                 "message.timeout.ms": 10000}))
        owned.append(idem)
        errs = _produce_errors(idem, topic, 10)
        if any(e == "CLUSTER_AUTHORIZATION_FAILED" for e in errs):  # before KIP-679: IdempotentWrite on cluster
            check.note("idempotent produce needed IDEMPOTENT_WRITE on the cluster (pre KIP-679 rule)")
            sec.grant(u.principal, ResourceType.BROKER, "kafka-cluster", AclOperation.IDEMPOTENT_WRITE)
            errs = _produce_errors(idem, topic, 10)
        expect(errs == [""] * 10, "idempotent produce with WRITE on the topic", errs, "10 delivered")
        expect_eq(clients.watermarks(topic, 0)[1], 10, "records stored by the idempotent producer (no duplicates)")
        c = Consumer(_client_conf(sec, u.conf, **{**CONSUMER_CONF, "group.id": group}))
        owned.append(c)
        c.subscribe([topic])
        values, errors = _consume(c, 15)
        expect(not values and "GROUP_AUTHORIZATION_FAILED" in errors, "consume in a group without READ on it",
               {"records": len(values), "errors": errors}, "no record, GROUP_AUTHORIZATION_FAILED")
        tp = Producer(_client_conf(sec, u.conf, **{"transactional.id": txn, "transaction.timeout.ms": 10000}))
        owned.append(tp)
        with pytest.raises(KafkaException) as info:
            tp.init_transactions(15)
        expect_eq(error_name(info.value), "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
                  "InitProducerId without WRITE on the transactional id")
        sec.grant(u.principal, ResourceType.GROUP, group, AclOperation.READ)
        sec.grant(u.principal, ResourceType.TRANSACTIONAL_ID, txn, AclOperation.WRITE, AclOperation.DESCRIBE)
        c2 = Consumer(_client_conf(sec, u.conf, **{**CONSUMER_CONF, "group.id": group}))
        owned.append(c2)
        c2.subscribe([topic])
        values, errors = _consume(c2, ACL_BOUND_S, want=10)
        expect(len(values) == 10, "consume in the group once READ on it is granted (the control)",
               {"records": len(values), "errors": errors}, "10 records")
        tp2 = Producer(_client_conf(sec, u.conf, **{"transactional.id": txn, "transaction.timeout.ms": 10000}))
        owned.append(tp2)
        tp2.init_transactions(20)
        tp2.begin_transaction()
        tp2.produce(topic, b"txn", partition=0)
        tp2.commit_transaction(20)


@pytest.mark.check("S6", "no metadata leak: a topic without DESCRIBE is absent from Metadata and ListOffsets")
def test_s6_metadata_leak(check: CheckContext, sec: SecuredBroker, clients: Clients, names: Names) -> None:
    mech = _scram_with_acls(sec, check)
    seen, hidden = clients.create_topic(tag="s6-seen"), clients.create_topic(tag="s6-hidden")
    with sec.user(names.topic("s6-user"), mech) as u:
        sec.grant(u.principal, ResourceType.TOPIC, seen, AclOperation.DESCRIBE)
        admin = AdminClient(_client_conf(sec, u.conf))

        def listed() -> dict[str, Any] | None:
            md = admin.list_topics(timeout=10)
            return dict(md.topics) if seen in md.topics else None
        topics, _ = poll_until(listed, ACL_BOUND_S, 0.5)
        expect(topics is not None, "the topic with DESCRIBE in Metadata (the control)", "absent", "listed")
        assert topics is not None
        expect(hidden not in topics, "the topic without DESCRIBE in Metadata (all topics)", "listed", "absent")
        one = admin.list_topics(topic=hidden, timeout=10).topics.get(hidden)
        leaked = one is not None and one.error is None and bool(one.partitions)
        expect(not leaked, "Metadata naming the topic without DESCRIBE", "partitions and leaders returned",
               "TOPIC_AUTHORIZATION_FAILED, no partitions")
        check.observe(metadata_named=error_name(one.error) if one is not None else "absent")
        code = list_offsets_error(sec.bootstrap, u.conf, hidden)  # librdkafka would not send it (no leader known)
        expect_eq(code, TOPIC_AUTHORIZATION_FAILED, "ListOffsets error code for the topic without DESCRIBE")
        expect_eq(list_offsets_error(sec.bootstrap, u.conf, seen), 0, "ListOffsets of the topic with DESCRIBE")


# ------------------------------------------------------------------------------------------ S7–S8
def _until_refused(c: Consumer, producer: Producer, topic: str) -> tuple[int, list[str], float]:
    """Produce a record every 0.5 s while ``c`` polls, until it gets an error or ACL_BOUND_S passes:
    (records it still read meanwhile, errors, seconds). Records read before the deletion reached the
    broker's authorizer are allowed: the check bounds the time, not the propagation."""
    t0, late, n = time.monotonic(), 0, 0
    errors: list[str] = []
    while time.monotonic() - t0 < ACL_BOUND_S and not errors:
        produce_all(producer, topic, [{"value": f"late-{n}".encode(), "partition": 0}])
        n += 1
        values, errors = _consume(c, 0.5)
        late += len(values)
    return late, errors, time.monotonic() - t0


@pytest.mark.check("S7", "CreateAcls / DescribeAcls / DeleteAcls round trip, seen by a running client")
def test_s7_acl_round_trip(check: CheckContext, sec: SecuredBroker, clients: Clients, names: Names,
                           owned: list[Any]) -> None:
    mech = _scram_with_acls(sec, check)
    topic = clients.create_topic()
    produce_all(clients.producer(), topic, [{"value": b"one", "partition": 0}])
    with sec.user(names.topic("s7-user"), mech) as u:
        described = sec.grant(u.principal, ResourceType.TOPIC, topic, AclOperation.DESCRIBE)
        group = names.group("s7")
        described += sec.grant(u.principal, ResourceType.GROUP, group, AclOperation.READ)
        acls, _ = poll_until(lambda: sec.acls_of(u.principal) or None, 10)
        expect_eq(sorted((a.name, str(a.operation)) for a in acls or []),
                  sorted((b.name, str(b.operation)) for b in described), "DescribeAcls after CreateAcls")
        c = _assigned(sec, u.conf, topic, owned, group)
        values, errors = _consume(c, 10)
        expect(not values, "a running consumer before READ is granted", values, "no record")
        t0 = time.monotonic()
        sec.grant(u.principal, ResourceType.TOPIC, topic, AclOperation.READ)
        values, errors = _consume(c, ACL_BOUND_S)
        granted_s = time.monotonic() - t0
        expect(values == [b"one"], "the running consumer after CreateAcls(READ)",
               {"records": values, "errors": errors[-3:]}, f"the record within {ACL_BOUND_S:g} s")
        deleted = sec.revoke(u.principal, ResourceType.TOPIC, topic, AclOperation.READ)
        expect_eq([a.operation for a in deleted], [AclOperation.READ], "DeleteAcls returns the deleted binding")
        late, errors, revoked_s = _until_refused(c, clients.producer(), topic)
        expect("TOPIC_AUTHORIZATION_FAILED" in errors, "the running consumer after DeleteAcls(READ)",
               {"records_after_delete": late, "errors": errors[-3:]},
               f"TOPIC_AUTHORIZATION_FAILED within {ACL_BOUND_S:g} s")
        left = sorted((a.name, str(a.operation)) for a in sec.acls_of(u.principal))
        expect_eq(left, sorted((b.name, str(b.operation)) for b in described), "DescribeAcls after DeleteAcls")
        check.observe(grant_seen_s=round(granted_s, 2), revoke_seen_s=round(revoked_s, 2),
                      records_read_after_delete=late)


@pytest.mark.check("S8", "SCRAM credential changes: a new password replaces the old, a deleted user is refused")
def test_s8_scram_changes(check: CheckContext, sec: SecuredBroker, names: Names) -> None:
    mech = sec.require_scram(check)
    name = names.topic("s8-user")
    with sec.user(name, mech) as u:
        new_password = secrets.token_hex(6) + "-new"
        sec.upsert_user(name, new_password, mech)
        new_conf = sec.user_conf(name, new_password, mech)
        ok, changed_s = poll_until(lambda: True if sec.authenticates(u.conf) is not True else None, ACL_BOUND_S)
        expect(bool(ok), "the old password after the change", "still accepted", f"refused within {ACL_BOUND_S:g} s")
        expect_eq(sec.authenticates(new_conf), True, "the new password after the change")
        sec.delete_user(name, mech)
        refused, deleted_s = poll_until(lambda: r if (r := sec.authenticates(new_conf)) is not True else None,
                                        ACL_BOUND_S)
        expect(isinstance(refused, str) and "SASL_AUTHENTICATION_FAILED" in refused,
               "a new connection of the deleted user", refused, "SASL_AUTHENTICATION_FAILED")
        check.observe(password_change_s=round(changed_s, 2), deletion_s=round(deleted_s, 2))
