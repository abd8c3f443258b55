"""The environment recorded with every result: host, software versions, broker identity."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from typing import Any

import psutil

from bench import __version__

__all__ = ["client_versions", "host_info"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def client_versions() -> dict[str, Any]:
    import confluent_kafka

    return {
        "kbench": __version__,
        "python": platform.python_version(),
        "confluent_kafka": _version_text(confluent_kafka.version()),
        "librdkafka": confluent_kafka.libversion()[0],
        "hdrhistogram": _version("hdrhistogram"),
        "numpy": _version("numpy"),
    }


def host_info() -> dict[str, Any]:
    freq = psutil.cpu_freq()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpu_mhz": round(freq.current) if freq else None,
        "memory_bytes": psutil.virtual_memory().total,
        "load_avg_1m": os.getloadavg()[0],
        "ci": bool(os.environ.get("CI")),
    }


def _version_text(version: object) -> str:
    """confluent-kafka's ``version()`` is a ``(str, int)`` tuple in older releases and a ``str`` in 2.16."""
    return str(version[0]) if isinstance(version, tuple) else str(version)
