"""The ApiVersions probe over TLS and SASL, against an embedded Kafka with SASL_PLAINTEXT, SASL_SSL and
mutual-TLS SSL listeners; test certificates are made in a temporary directory by
:func:`bench.brokers.security.make_certificates` (``openssl``), as for ``kbench broker up --option security=``.

Listeners of the broker (one node, KRaft):
  PLAINTEXT       inter-broker, admin (SCRAM users are added through it)
  SASL_PLAINTEXT  PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
  SASL_SSL        PLAIN only (to see a mechanism refused); server certificate names DNS:localhost only
  SSL             client certificate required
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from bench.brokers.security import make_certificates, pem_store_configs
from bench.errors import AuthenticationError, BrokerUnreachableError, ConfigError
from bench.kafka.protocol import ProtocolError, api_versions

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")]

USER, PASSWORD = "alice", "alice-Secret-9f3"
SCRAM_PASSWORD = "scram-Secret-71c"
PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class SecureKafka:
    plaintext: str
    sasl_plaintext: str
    sasl_ssl: str
    ssl: str
    certs: Path

    @property
    def sasl_ssl_localhost(self) -> str:
        return "localhost:" + self.sasl_ssl.rsplit(":", 1)[1]

    @property
    def ssl_localhost(self) -> str:
        return "localhost:" + self.ssl.rsplit(":", 1)[1]


def make_certs(d: Path) -> Path:
    """The key material ``kbench broker up --option security=...`` makes (ca.pem, a broker certificate naming
    DNS:localhost only with its PEM key store, client.pem/client.key), plus other/ca.pem: a CA nobody uses."""
    make_certificates(d, ["localhost"])
    (d / "other").mkdir()
    make_certificates(d / "other", ["localhost"])
    return d


def _free_ports(n: int) -> list[int]:
    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(21000, 39000)
        ports = [base, base + 1000, base + 1, base + 2, base + 3]
        if all(free(p) for p in ports):
            return ports[:n]
    raise RuntimeError("no free ports")


def _broker_configs(ports: list[int], certs: Path) -> dict[str, str]:
    p, ctl, a, b, c = ports
    jaas_plain = f'{PLAIN_LOGIN} required user_{USER}="{PASSWORD}";'
    return {
        "listeners": f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{ctl},SASL_PLAINTEXT://127.0.0.1:{a},"
                     f"SASL_SSL://127.0.0.1:{b},SSL://127.0.0.1:{c}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p},SASL_PLAINTEXT://127.0.0.1:{a},"
                                f"SASL_SSL://localhost:{b},SSL://localhost:{c}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
                                          "SASL_SSL:SASL_SSL,SSL:SSL",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas_plain,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": f"{SCRAM_LOGIN} required;",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": f"{SCRAM_LOGIN} required;",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas_plain,
        **pem_store_configs(certs),
        "listener.name.ssl.ssl.client.auth": "required",
    }


def _add_scram_users(plaintext: str) -> None:
    admin = AdminClient({"bootstrap.servers": plaintext})
    for mech in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):  # one per request (Kafka's rule)
        ups = [UserScramCredentialUpsertion(USER, ScramCredentialInfo(mech, 4096), SCRAM_PASSWORD.encode())]
        for fut in admin.alter_user_scram_credentials(ups).values():
            fut.result(30)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory, _kbench_home: Path) -> Iterator[SecureKafka]:
    from bench.brokers import start_broker

    certs = make_certs(tmp_path_factory.mktemp("certs"))
    ports = _free_ports(5)
    handle = start_broker("kafka", port=ports[0], name=f"test-secure-{os.getpid()}",
                          configs=_broker_configs(ports, certs))
    try:
        kafka = SecureKafka(handle.bootstrap, f"127.0.0.1:{ports[2]}", f"127.0.0.1:{ports[3]}",
                            f"127.0.0.1:{ports[4]}", certs)
        _add_scram_users(kafka.plaintext)
        yield kafka
    finally:
        handle.stop()


def _sasl(mechanism: str, password: str, protocol: str = "SASL_PLAINTEXT", **extra: str) -> dict[str, str]:
    return {"security.protocol": protocol, "sasl.mechanism": mechanism, "sasl.username": USER,
            "sasl.password": password, **extra}


# ------------------------------------------------------------------------------------------------ SASL
def test_sasl_plain_authenticates_after_api_versions(secure_kafka: SecureKafka) -> None:
    plain = api_versions(secure_kafka.plaintext, timeout=10)
    res = api_versions(secure_kafka.sasl_plaintext, timeout=10, security=_sasl("PLAIN", PASSWORD))
    assert res.error_code == 0 and res.request_version == 3 and res.security_protocol == "SASL_PLAINTEXT"
    assert res.sasl is not None and res.sasl.mechanism == "PLAIN" and res.sasl.authenticate_version == 2
    assert set(res.sasl.enabled_mechanisms) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
    assert res.tls_version is None
    assert res.as_json() == plain.as_json() and res.finalized_features == plain.finalized_features


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_authenticates(secure_kafka: SecureKafka, mechanism: str) -> None:
    deadline = time.monotonic() + 30
    while True:  # the credentials were just added: wait until the broker has them
        try:
            res = api_versions(secure_kafka.sasl_plaintext, timeout=10, security=_sasl(mechanism, SCRAM_PASSWORD))
            break
        except AuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert res.sasl is not None and res.sasl.mechanism == mechanism


@pytest.mark.parametrize(("mechanism", "good"), [("PLAIN", PASSWORD), ("SCRAM-SHA-256", SCRAM_PASSWORD),
                                                 ("SCRAM-SHA-512", SCRAM_PASSWORD)])
def test_wrong_password_is_refused_without_leaking_it(secure_kafka: SecureKafka, mechanism: str, good: str) -> None:
    wrong = "Wrong-Pw-" + good
    with pytest.raises(AuthenticationError) as info:
        api_versions(secure_kafka.sasl_plaintext, timeout=10, security=_sasl(mechanism, wrong))
    text = str(info.value) + repr(info.value.__cause__) + repr(info.value.__context__)
    assert "refused" in text and "SASL_AUTHENTICATION_FAILED" in text and f"'{USER}'" in text
    assert wrong not in text and good not in text


def test_mechanism_not_enabled_on_the_listener(secure_kafka: SecureKafka) -> None:
    conf = _sasl("SCRAM-SHA-256", SCRAM_PASSWORD, "SASL_SSL", **{"ssl.ca.location": str(secure_kafka.certs / "ca.pem")})
    with pytest.raises(AuthenticationError, match=r"UNSUPPORTED_SASL_MECHANISM.*enables: PLAIN"):
        api_versions(secure_kafka.sasl_ssl_localhost, timeout=10, security=conf)


def test_plaintext_probe_of_a_sasl_listener_reads_api_versions_only(secure_kafka: SecureKafka) -> None:
    res = api_versions(secure_kafka.sasl_plaintext, timeout=10)
    assert res.error_code == 0 and res.sasl is None and res.supports(17, 1) and res.supports(36, 2)


# ------------------------------------------------------------------------------------------------- TLS
def test_sasl_ssl_with_ca_and_hostname_check(secure_kafka: SecureKafka) -> None:
    conf = _sasl("PLAIN", PASSWORD, "SASL_SSL", **{"ssl.ca.location": str(secure_kafka.certs / "ca.pem")})
    res = api_versions(secure_kafka.sasl_ssl_localhost, timeout=10, security=conf)
    assert res.tls_version in ("TLSv1.2", "TLSv1.3") and res.sasl is not None
    # the same client config works for librdkafka
    producer = Producer({"bootstrap.servers": secure_kafka.sasl_ssl_localhost, **conf})
    md = producer.list_topics(timeout=15)
    assert md.brokers and md.orig_broker_name


def test_hostname_check_and_its_switch(secure_kafka: SecureKafka) -> None:
    ca = str(secure_kafka.certs / "ca.pem")
    conf = _sasl("PLAIN", PASSWORD, "SASL_SSL", **{"ssl.ca.location": ca})
    with pytest.raises(AuthenticationError, match=r"certificate check failed.*(IP address mismatch|127\.0\.0\.1)"):
        api_versions(secure_kafka.sasl_ssl, timeout=10, security=conf)  # the certificate names localhost only
    conf["ssl.endpoint.identification.algorithm"] = "none"
    assert api_versions(secure_kafka.sasl_ssl, timeout=10, security=conf).sasl is not None


def test_unknown_ca_is_refused(secure_kafka: SecureKafka) -> None:
    conf = _sasl("PLAIN", PASSWORD, "SASL_SSL", **{"ssl.ca.location": str(secure_kafka.certs / "other" / "ca.pem")})
    with pytest.raises(AuthenticationError, match="certificate check failed"):
        api_versions(secure_kafka.sasl_ssl_localhost, timeout=10, security=conf)
    conf["enable.ssl.certificate.verification"] = "false"
    assert api_versions(secure_kafka.sasl_ssl_localhost, timeout=10, security=conf).sasl is not None


def test_mutual_tls(secure_kafka: SecureKafka) -> None:
    certs = secure_kafka.certs
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem"),
            "ssl.certificate.location": str(certs / "client.pem"), "ssl.key.location": str(certs / "client.key")}
    res = api_versions(secure_kafka.ssl_localhost, timeout=10, security=conf)
    assert res.error_code == 0 and res.security_protocol == "SSL" and res.sasl is None and res.tls_version
    del conf["ssl.certificate.location"], conf["ssl.key.location"]
    with pytest.raises((AuthenticationError, ProtocolError, BrokerUnreachableError)):
        api_versions(secure_kafka.ssl_localhost, timeout=10, security=conf)  # no client certificate


def test_wrong_protocol_for_the_listener_is_a_clear_error(secure_kafka: SecureKafka) -> None:
    with pytest.raises(ProtocolError, match="a TLS listener"):
        api_versions(secure_kafka.ssl, timeout=5)  # plaintext to TLS
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(secure_kafka.certs / "ca.pem")}
    with pytest.raises(AuthenticationError, match="TLS handshake failed"):
        api_versions(secure_kafka.plaintext, timeout=5, security=conf)  # TLS to plaintext


def test_bad_security_settings_are_config_errors(secure_kafka: SecureKafka) -> None:
    with pytest.raises(ConfigError, match=r"ssl\.ca\.location"):
        api_versions(secure_kafka.sasl_ssl_localhost, timeout=5,
                     security={"security.protocol": "SSL", "ssl.ca.location": str(secure_kafka.certs / "nope.pem")})
