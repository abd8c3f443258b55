"""kbench: benchmark and conformance harness for Apache Kafka and Kafka-compatible brokers."""

from __future__ import annotations

from bench.errors import (
    BrokerError,
    ConfigError,
    KbenchError,
    ResultError,
    RunAborted,
    ScenarioError,
)

__version__ = "0.1.0"

__all__ = [
    "BrokerError",
    "ConfigError",
    "KbenchError",
    "ResultError",
    "RunAborted",
    "ScenarioError",
    "__version__",
]
