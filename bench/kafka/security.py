"""Connection security from librdkafka-style client config: TLS and SASL settings for kbench's own
protocol client (:func:`bench.kafka.protocol.api_versions`), so one client config serves both.

Keys read (librdkafka's names and defaults)::

    security.protocol                       PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL (any case)
    sasl.mechanism (alias sasl.mechanisms)  PLAIN (default) | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl.username, sasl.password
    ssl.ca.location                         CA file or directory; unset or "probe": the system's CAs
    ssl.certificate.location, ssl.key.location, ssl.key.password   client certificate (mutual TLS)
    ssl.endpoint.identification.algorithm   https (default: the certificate must name the host) | none
    enable.ssl.certificate.verification     true (default) | false

Other keys are ignored (they are producer/consumer settings). Settings the probe cannot honour
(inline PEM, keystores, GSSAPI, OAUTHBEARER) are a :class:`~bench.errors.ConfigError` naming the key.
Secrets (``sasl.password``, ``ssl.key.password``) never appear in ``repr``, errors or :meth:`describe`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.errors import ConfigError
from bench.kafka.sasl import MECHANISMS

__all__ = ["PROTOCOLS", "SECURITY_KEYS", "SecurityConfig"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SECURITY_KEYS = ("security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
                 "ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
                 "ssl.endpoint.identification.algorithm", "enable.ssl.certificate.verification")
_SECRET_KEYS = ("sasl.password", "ssl.key.password")
#: security settings of librdkafka that this client does not implement
_UNSUPPORTED = ("ssl.ca.pem", "ssl.certificate.pem", "ssl.key.pem", "ssl.keystore.location",
                "ssl_certificate", "ssl_key", "sasl.oauthbearer.config", "sasl.oauthbearer.method")


def _text(config: Mapping[str, object], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | bool):
        raise ConfigError(f"{key}: expected a string" + ("" if key in _SECRET_KEYS else f", got {value!r}"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flag(config: Mapping[str, object], key: str, default: bool) -> bool:
    text = _text(config, key)
    if text is None:
        return default
    if text.lower() not in ("true", "false"):
        raise ConfigError(f"{key}: expected true or false, got {text!r}")
    return text.lower() == "true"


@dataclass(frozen=True)
class SecurityConfig:
    """How to secure and authenticate a connection; build it with :meth:`from_client_config`."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None  # set iff protocol is SASL_*
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_location: str | None = None
    certificate_location: str | None = None
    key_location: str | None = None
    key_password: str | None = field(default=None, repr=False)
    check_hostname: bool = True
    verify_certificates: bool = True

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @classmethod
    def from_client_config(cls, config: Mapping[str, object] | None) -> SecurityConfig:
        """The security settings of a librdkafka client config (other keys ignored); ConfigError if invalid."""
        config = config or {}
        for key in _UNSUPPORTED:
            if config.get(key) is not None:
                raise ConfigError(f"{key}: not supported by kbench's protocol client (use the *.location "
                                  "settings: ssl.ca.location, ssl.certificate.location, ssl.key.location)")
        protocol = (_text(config, "security.protocol") or "PLAINTEXT").upper()
        if protocol not in PROTOCOLS:
            raise ConfigError(f"security.protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        mechanism = _text(config, "sasl.mechanism") or _text(config, "sasl.mechanisms")
        username, password = _text(config, "sasl.username"), _text(config, "sasl.password")
        if protocol.startswith("SASL_"):
            mechanism = (mechanism or "PLAIN").upper()
            if mechanism not in MECHANISMS:
                raise ConfigError(f"sasl.mechanism: {mechanism} is not implemented by kbench's protocol client "
                                  f"(supported: {', '.join(MECHANISMS)})")
            if not username or password is None:
                raise ConfigError(f"security.protocol {protocol} with sasl.mechanism {mechanism} needs "
                                  "sasl.username and sasl.password")
        else:
            mechanism = None
        algorithm = (_text(config, "ssl.endpoint.identification.algorithm") or "https").lower()
        if algorithm not in ("https", "none"):
            raise ConfigError(f"ssl.endpoint.identification.algorithm: expected https or none, got {algorithm!r}")
        return cls(protocol, mechanism, username, password, _text(config, "ssl.ca.location"),
                   _text(config, "ssl.certificate.location"), _text(config, "ssl.key.location"),
                   _text(config, "ssl.key.password"), check_hostname=algorithm == "https",
                   verify_certificates=_flag(config, "enable.ssl.certificate.verification", True))

    def describe(self) -> dict[str, str]:
        """The settings as librdkafka keys, secrets replaced by ``***`` (for logs and result documents)."""
        out = {"security.protocol": self.protocol}
        if self.sasl_mechanism:
            out |= {"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.username or "",
                    "sasl.password": "***"}
        if self.tls:
            out |= {k: v for k, v in (("ssl.ca.location", self.ca_location),
                                      ("ssl.certificate.location", self.certificate_location),
                                      ("ssl.key.location", self.key_location)) if v}
            if self.key_password is not None:
                out["ssl.key.password"] = "***"
            out["ssl.endpoint.identification.algorithm"] = "https" if self.check_hostname else "none"
            out["enable.ssl.certificate.verification"] = str(self.verify_certificates).lower()
        return out

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context (TLS 1.2+) from these settings; ConfigError naming the key of a bad file."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ca = self.ca_location
        if ca and ca != "probe":
            try:
                if os.path.isdir(ca):
                    ctx.load_verify_locations(capath=ca)
                else:
                    ctx.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"ssl.ca.location {ca}: cannot load CA certificates: {exc}") from exc
        if self.certificate_location or self.key_location:
            if not self.certificate_location:
                raise ConfigError("ssl.key.location is set without ssl.certificate.location")
            try:
                ctx.load_cert_chain(self.certificate_location, self.key_location, password=self.key_password)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"ssl.certificate.location {self.certificate_location} / ssl.key.location "
                                  f"{self.key_location}: cannot load the client certificate: "
                                  f"{type(exc).__name__} {getattr(exc, 'reason', None) or exc.errno}") from exc
        ctx.check_hostname = self.check_hostname and self.verify_certificates
        if not self.verify_certificates:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
