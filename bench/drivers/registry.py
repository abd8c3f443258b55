"""The clients kbench can drive, and how to start a worker of each.

``librdkafka`` runs in-process (confluent-kafka-python workers); every other client is an external driver
built on first use into the kbench cache: the Java driver against the ``kafka-clients`` jar of a Kafka
version (:mod:`bench.drivers.javabuild`), the Go drivers from one Go module (:mod:`bench.drivers.gobuild`).
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.errors import ConfigError

__all__ = ["CLIENTS", "DEFAULT_CLIENT", "GO_CLIENT_NAMES", "check_client_config", "driver_command"]

DEFAULT_CLIENT = "librdkafka"
GO_CLIENT_NAMES = ("franz-go", "sarama", "kafka-go", "confluent-kafka-go")
CLIENTS = (DEFAULT_CLIENT, "java", *GO_CLIENT_NAMES)


def _kafka_version(version: str | None) -> str:
    from bench.brokers.kafka import DEFAULT_VERSION

    return version or DEFAULT_VERSION


def driver_command(client: str, kafka_version: str | None) -> list[str]:
    """argv of one worker of ``client`` (building the driver first if needed)."""
    if client == "java":
        from bench.drivers.javabuild import build_java_driver

        return build_java_driver(_kafka_version(kafka_version)).command()
    if client in GO_CLIENT_NAMES:
        from bench.drivers.gobuild import build_go_driver

        return [str(build_go_driver(client))]
    raise ConfigError(f"client {client!r} has no external driver; expected one of {', '.join(CLIENTS[1:])}")


def check_client_config(client: str, role: str, config: Mapping[str, str], kafka_version: str | None) -> None:
    """ConfigError naming the client and the key if ``client`` cannot honour a key of ``config``.

    librdkafka checks its own properties when a client starts (a clear error before any load); the Java
    check needs the driver's list of client properties (built once into the cache)."""
    if client == DEFAULT_CLIENT:
        return
    if client == "java":
        from bench.drivers.javabuild import check_java_config

        check_java_config("producer" if role == "producer" else "consumer", dict(config), _kafka_version(kafka_version))
        return
    if client in GO_CLIENT_NAMES:
        from bench.drivers.gobuild import check_client_config as check_go

        check_go(client, role, config)
        return
    raise ConfigError(f"client {client!r}: expected one of {', '.join(CLIENTS)}")
