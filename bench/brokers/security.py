"""Secured embedded Apache Kafka: a security MODE -> server properties, key material and the client
properties kbench itself uses (``kbench broker up kafka --security MODE``, i.e. ``--option security=MODE``).

Modes (every one with ``StandardAuthorizer``, ``allow.everyone.if.no.acl.found=false`` and super users
for kbench and for the brokers themselves)::

    sasl-plain   client listener SASL_SSL, mechanism PLAIN (users in the listener's JAAS config)
    sasl-scram   client listener SASL_SSL, SCRAM-SHA-256 and SCRAM-SHA-512 (users made by the storage
                 tool at format time; more through AlterUserScramCredentials)
    tls          client listener SSL, client certificate requested (none: principal ANONYMOUS, no ACLs)
    mtls         client listener SSL, client certificate required

TLS everywhere: a CA and a broker certificate (DNS:localhost, IP:127.0.0.1 and the advertised host) are
made with ``openssl`` per broker; clients verify the host name (``ssl.endpoint.identification.algorithm
=https``). The controller listener is SASL_SSL/PLAIN (SASL modes) or SSL with a required certificate.

Everything lives in ``<broker state dir>/security/`` (mode 0700, files 0600), removed with the broker:
``secrets.properties`` (the broker's own secret store, read through Kafka's FileConfigProvider, so
``server.properties`` and ``state.json`` hold references, never a password), the keys and certificates,
and ``client.properties``: librdkafka properties for ``--client-config-file`` (kbench's super user).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BrokerStartError, ConfigError

__all__ = ["BROKER_USER", "MODES", "SUPER_USER", "SecurityPlan", "client_properties_path", "load_properties",
           "make_certificates", "pem_store_configs", "plan_security", "probe_config"]

MODES = ("sasl-plain", "sasl-scram", "tls", "mtls")
SUPER_USER = "kbench"            # kbench's own principal (User:kbench, or User:CN=kbench with a certificate)
BROKER_USER = "kbench-broker"    # the brokers' principal (inter-broker and controller connections)
SECURITY_DIR = "security"
CLIENT_PROPERTIES = "client.properties"
SECRETS = "secrets.properties"
_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_PROVIDER = "org.apache.kafka.common.config.provider.FileConfigProvider"


@dataclass(frozen=True)
class SecurityPlan:
    """What a secured Kafka needs: server properties (no secrets in them), extra ``kafka-storage format``
    arguments (SCRAM users), and where kbench's client properties are."""

    mode: str
    configs: dict[str, str]
    format_args: tuple[str, ...]
    client_properties: Path


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file that is 0600 from its creation (never readable by others, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def _openssl(*args: str, cwd: Path) -> None:
    try:
        proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError as exc:
        raise BrokerStartError("--security needs the openssl command to make certificates (install openssl)") from exc
    if proc.returncode != 0:
        raise BrokerStartError(f"openssl {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")


def _san(hosts: list[str]) -> str:
    names = []
    for host in dict.fromkeys(hosts):
        try:
            ipaddress.ip_address(host)
            names.append(f"IP:{host}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(names)


def _cert(d: Path, name: str, cn: str, ext: str) -> None:
    """``name``.key (unencrypted PKCS#8, 0600) and ``name``.pem signed by the CA in ``d``."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "30", "-extfile", f"{name}.ext", cwd=d)
    for leftover in (f"{name}.csr", f"{name}.ext"):
        (d / leftover).unlink()


def make_certificates(d: Path, hosts: list[str]) -> None:
    """A CA, a broker certificate for ``hosts`` (serverAuth and clientAuth: brokers are each other's
    clients) with its PEM key store, and kbench's client certificate (CN=kbench)."""
    old = os.umask(0o077)  # keys are 0600 from the start
    try:
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", "30", "-subj", "/CN=kbench CA", cwd=d)
        _cert(d, "broker", BROKER_USER,
              f"subjectAltName={_san(hosts)}\nextendedKeyUsage=serverAuth,clientAuth\n")
        _cert(d, "client", SUPER_USER, "extendedKeyUsage=clientAuth\n")
        _write_private(d / "broker-keystore.pem", (d / "broker.key").read_text() + (d / "broker.pem").read_text())
    finally:
        os.umask(old)


def pem_store_configs(d: Path) -> dict[str, str]:
    """Kafka server properties naming the key store and trust store :func:`make_certificates` wrote in ``d``."""
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(d / "broker-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(d / "ca.pem"),
    }


def _props(values: Mapping[str, str]) -> str:
    # java.util.Properties: a backslash escapes; JAAS values hold none, but be safe
    return "".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in values.items())


def _plain_jaas(user: str, password: str, users: Mapping[str, str]) -> str:
    table = " ".join(f'user_{u}="{p}"' for u, p in users.items())
    return f'{_PLAIN} required username="{user}" password="{password}" {table};'


def _common(sec: Path, super_users: list[str]) -> dict[str, str]:
    return {
        "authorizer.class.name": _AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": ";".join(super_users),
        "config.providers": "file",
        "config.providers.file.class": _PROVIDER,
        **pem_store_configs(sec),
        "ssl.endpoint.identification.algorithm": "https",
    }


def _sasl_plan(mode: str, sec: Path) -> tuple[dict[str, str], dict[str, str], tuple[str, ...], dict[str, str]]:
    """(server configs, secret store entries, storage-tool args, client properties) of a SASL mode."""
    broker_pw, kbench_pw = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    ref = f"${{file:{sec / SECRETS}:%s}}"
    store = {"controller.jaas": _plain_jaas(BROKER_USER, broker_pw, {BROKER_USER: broker_pw})}
    # the client listener keeps the name PLAINTEXT (kafka.py writes per-node listeners with it): mapped to SASL_SSL
    configs = {
        "listener.security.protocol.map": "PLAINTEXT:SASL_SSL,CONTROLLER:SASL_SSL",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": ref % "controller.jaas",
    }
    args: tuple[str, ...] = ()
    if mode == "sasl-plain":
        store["client.jaas"] = _plain_jaas(BROKER_USER, broker_pw, {BROKER_USER: broker_pw, SUPER_USER: kbench_pw})
        configs |= {"listener.name.plaintext.sasl.enabled.mechanisms": "PLAIN",
                    "sasl.mechanism.inter.broker.protocol": "PLAIN",
                    "listener.name.plaintext.plain.sasl.jaas.config": ref % "client.jaas"}
        mechanism = "PLAIN"
    else:
        store["scram.jaas"] = f'{_SCRAM} required username="{BROKER_USER}" password="{broker_pw}";'
        configs |= {"listener.name.plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
                    "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                    "listener.name.plaintext.scram-sha-256.sasl.jaas.config": ref % "scram.jaas",
                    "listener.name.plaintext.scram-sha-512.sasl.jaas.config": ref % "scram.jaas"}
        args = tuple(a for user, pw in ((BROKER_USER, broker_pw), (SUPER_USER, kbench_pw))
                     for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512")
                     for a in ("--add-scram", f"{mech}=[name={user},password={pw}]"))
        mechanism = "SCRAM-SHA-512"
    client = {"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism, "sasl.username": SUPER_USER,
              "sasl.password": kbench_pw, "ssl.ca.location": str(sec / "ca.pem"),
              "ssl.endpoint.identification.algorithm": "https"}
    return configs, store, args, client


def plan_security(mode: str, base: Path, hosts: list[str]) -> SecurityPlan:
    """Make the key material of ``mode`` under ``base``/security and return the plan (ConfigError for an
    unknown mode). ``hosts``: the names clients connect to (the broker certificate names each)."""
    if mode not in MODES:
        raise ConfigError(f"--security {mode!r}: expected one of {', '.join(MODES)}")
    sec = _private_dir(base / SECURITY_DIR)
    make_certificates(sec, ["localhost", "127.0.0.1", *hosts])
    if mode.startswith("sasl-"):
        configs, store, args, client = _sasl_plan(mode, sec)
        configs |= _common(sec, [f"User:{SUPER_USER}", f"User:{BROKER_USER}"])
    else:
        configs = _common(sec, [f"User:CN={SUPER_USER}", f"User:CN={BROKER_USER}"]) | {
            "listener.security.protocol.map": "PLAINTEXT:SSL,CONTROLLER:SSL",
            "ssl.client.auth": "required" if mode == "mtls" else "requested",
            "listener.name.controller.ssl.client.auth": "required"}
        store, args = {}, ()
        client = {"security.protocol": "SSL", "ssl.ca.location": str(sec / "ca.pem"),
                  "ssl.certificate.location": str(sec / "client.pem"), "ssl.key.location": str(sec / "client.key"),
                  "ssl.endpoint.identification.algorithm": "https"}
    _write_private(sec / SECRETS, _props(store))
    path = sec / CLIENT_PROPERTIES
    _write_private(path, f"# kbench super user for this {mode} broker: --client-config-file {path}\n"
                   + "".join(f"{k}={v}\n" for k, v in client.items()))
    return SecurityPlan(mode, configs, args, path)


def client_properties_path(base_dir: str | Path) -> Path:
    """Where :func:`plan_security` wrote the client properties of the broker in ``base_dir``."""
    return Path(base_dir) / SECURITY_DIR / CLIENT_PROPERTIES


def load_properties(path: str | Path) -> dict[str, str]:
    """``key=value`` lines (``#`` comments, blank lines skipped) of a librdkafka client-properties file;
    ConfigError naming the file and line (never the value) when unreadable or malformed."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"client properties {path}: cannot read ({exc.strerror})") from exc
    conf: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{n}: expected key=value (librdkafka client property)")
        conf[key.strip()] = value.strip()
    return conf


def probe_config(base_dir: str | Path, options: Mapping[str, str]) -> dict[str, str] | None:
    """The client properties readiness probes of a broker started with ``security=MODE`` need, else None."""
    if not options.get("security"):
        return None
    return load_properties(client_properties_path(base_dir))
