"""Secrets never reach a file: client configs and scenario documents are redacted before anything is written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact"]

REDACTED = "***REDACTED***"
_SECRET = re.compile(
    r"(password|passwd|secret|token|credential|(^|\.)key\.pem$|ssl\.key\.|keystore\.key|private\.key"
    r"|sasl\.jaas\.config|sasl\.oauthbearer\.config|basic\.auth\.user\.info|ssl\.certificate\.pem$"
    r"|ssl_key|api[._-]?key)",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    """True for config keys whose values are secrets (sasl.password, ssl.key.password, ssl.key.pem, …)."""
    return bool(_SECRET.search(key))


def redact(value: Any) -> Any:
    """A deep copy of ``value`` with every secret-looking key's value replaced by ``REDACTED``.

    Also redacts ``key=value`` strings (``--set`` / ``--client-config`` items) whose key is secret.
    """
    if isinstance(value, Mapping):
        return {k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and "=" in value:
        key = value.split("=", 1)[0]
        if is_secret_key(key.strip()):
            return f"{key}={REDACTED}"
    return value
