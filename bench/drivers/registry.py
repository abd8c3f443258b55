"""The clients kbench can drive, and how to start a worker of each.

``librdkafka`` runs in-process (confluent-kafka-python workers); every other client is an external driver
built on first use into the kbench cache: the Java driver against the ``kafka-clients`` jar of a Kafka
version (:mod:`bench.drivers.javabuild`), the Go drivers from one Go module (:mod:`bench.drivers.gobuild`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import cast

from bench.errors import ConfigError

__all__ = ["CLIENTS", "DEFAULT_CLIENT", "GO_CLIENTS", "check_client_config", "driver_command"]

DEFAULT_CLIENT = "librdkafka"
GO_CLIENTS = ("franz-go", "sarama", "kafka-go", "confluent-kafka-go")
CLIENTS = (DEFAULT_CLIENT, "java", *GO_CLIENTS)


def _builder(module: str, name: str) -> Callable[..., object]:
    try:
        return cast(Callable[..., object], getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError):
        raise ConfigError(f"this kbench has no {module}.{name}: the driver is not installed") from None


def driver_command(client: str, kafka_version: str | None) -> list[str]:
    """argv of one worker of ``client`` (building the driver first if needed)."""
    if client == "java":
        from bench.brokers.kafka import DEFAULT_VERSION

        from bench.drivers.javabuild import build_java_driver

        return build_java_driver(kafka_version or DEFAULT_VERSION, progress=None).command()
    if client in GO_CLIENTS:
        path = _builder("bench.drivers.gobuild", "build_go_driver")(client, progress=None)
        return [str(path)]
    raise ConfigError(f"client {client!r} has no external driver; expected one of {', '.join(CLIENTS[1:])}")


def check_client_config(client: str, role: str, config: Mapping[str, str], kafka_version: str | None) -> None:
    """ConfigError naming the client and the key if ``client`` cannot honour a key of ``config``."""
    if client == DEFAULT_CLIENT or client == "confluent-kafka-go":
        return      # librdkafka properties; librdkafka itself rejects unknown ones when the client starts
    if client == "java":
        from bench.brokers.kafka import DEFAULT_VERSION

        _builder("bench.drivers.javabuild", "check_java_config")(role, dict(config), kafka_version or DEFAULT_VERSION)
        return
    if client in GO_CLIENTS:
        _builder("bench.drivers.gobuild", "check_client_config")(client, role, dict(config))
        return
    raise ConfigError(f"client {client!r}: expected one of {', '.join(CLIENTS)}")
