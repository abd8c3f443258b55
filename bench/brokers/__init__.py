"""Brokers behind one Service protocol (:mod:`bench.brokers.service`), one class per kind.

>>> handle = start_broker("kafka", nodes=1)          # or "kafka-zk", "tansu", "kfake"
>>> handle.bootstrap                                 # '127.0.0.1:9092'
>>> handle.kill_node(0); handle.restart_node(0)      # fault injection
>>> handle.stop()

Kinds: ``kafka`` (KRaft, 3.3-4.x), ``kafka-zk`` (ZooKeeper mode, 2.8-3.9), ``tansu``, ``kfake``; the
registry (:mod:`bench.brokers.registry`) maps each to a runtime (local processes by default). State is
remembered on disk (see :mod:`bench.brokers.base`), so :func:`get_broker` finds a broker started by
another process. :func:`probe_cluster` is the fast reachability check for external brokers.
"""

from __future__ import annotations

from bench.brokers.base import NodeState, probe_cluster
from bench.brokers.registry import (
    DEFAULT_PORTS,
    KINDS,
    RUNTIMES,
    fetch_broker,
    get_broker,
    kind_names,
    list_brokers,
    start_broker,
)
from bench.brokers.service import NodeLog, Service, StartRequest

__all__ = [
    "DEFAULT_PORTS",
    "KINDS",
    "RUNTIMES",
    "BrokerHandle",
    "NodeLog",
    "NodeState",
    "Service",
    "StartRequest",
    "fetch_broker",
    "get_broker",
    "kind_names",
    "list_brokers",
    "probe_cluster",
    "start_broker",
]

BrokerHandle = Service   # the name callers used before the Service protocol
