"""Embedded brokers behind one small interface.

>>> handle = start_broker("kafka", nodes=1)          # or "tansu"
>>> handle.bootstrap                                 # '127.0.0.1:9092'
>>> handle.kill_node(0); handle.restart_node(0)      # fault injection
>>> handle.stop()

State is remembered on disk (see :mod:`bench.brokers.base`), so :func:`get_broker` finds a broker started
by another process. :func:`probe_cluster` is the fast reachability check for external brokers.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from bench.brokers.base import (
    BrokerHandle,
    BrokerState,
    NodeState,
    brokers_root,
    check_ports,
    port_free,
    probe_cluster,
)
from bench.brokers.kafka import CONTROLLER_OFFSET, DEFAULT_VERSION, prepare_kafka
from bench.brokers.tansu import prepare_tansu
from bench.errors import BrokerError, ConfigError

__all__ = [
    "DEFAULT_PORTS",
    "KINDS",
    "BrokerHandle",
    "NodeState",
    "get_broker",
    "list_brokers",
    "probe_cluster",
    "start_broker",
]

KINDS = ("kafka", "tansu")
DEFAULT_PORTS = {"kafka": 9092, "tansu": 9192}


def _ports_needed(kind: str, port: int, nodes: int) -> list[int]:
    ports = [port + i for i in range(nodes)]
    if kind == "kafka":
        ports += [port + CONTROLLER_OFFSET + i for i in range(nodes)]
    return ports


def _auto_port(kind: str, nodes: int) -> int:
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 40000)
        if all(port_free(p) for p in _ports_needed(kind, port, nodes)):
            return port
    raise BrokerError("could not find free loopback ports for an embedded broker")


def get_broker(name: str) -> BrokerHandle | None:
    """The broker remembered under ``name`` (running or not), or None."""
    path = brokers_root() / name / "state.json"
    if not path.exists():
        return None
    return BrokerHandle(BrokerState.load(path))


def list_brokers() -> list[BrokerHandle]:
    root = brokers_root()
    if not root.exists():
        return []
    return [BrokerHandle(BrokerState.load(p)) for p in sorted(root.glob("*/state.json"))]


def start_broker(kind: str, *, nodes: int = 1, port: int | None = None, version: str | None = None,
                 name: str | None = None, configs: Mapping[str, str] | None = None,
                 binary: str | None = None, timeout: float = 90.0,
                 progress: Callable[[str], None] | None = None) -> BrokerHandle:
    """Start an embedded broker and return once it answers metadata requests with all its nodes.

    ``port=None`` means the kind's default port when ``name`` is the default name, else free ports
    picked at random (``port=0`` always picks free ports). Raises a :class:`~bench.errors.BrokerError`
    subclass with a message (and the log tail, if it died) on failure, leaving nothing running.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown broker {kind!r}: expected one of {', '.join(KINDS)}")
    if nodes not in (1, 3):
        raise ConfigError(f"--nodes must be 1 or 3, got {nodes}")
    name = name or kind
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"broker name {name!r}: use letters, digits, '-' and '_'")
    existing = get_broker(name)
    if existing is not None:
        if existing.alive_nodes():
            raise ConfigError(f"a broker named {name!r} is already running at {existing.bootstrap} "
                              f"(stop it with `kbench broker down {name}`, or pass --name)")
        existing.stop()
    if port is None:
        port = DEFAULT_PORTS[kind] if name == kind else 0
    if port == 0:
        port = _auto_port(kind, nodes)
    if not 1 <= port <= 65535 - CONTROLLER_OFFSET - nodes:
        raise ConfigError(f"--port {port} out of range")
    check_ports(_ports_needed(kind, port, nodes))
    base = brokers_root() / name
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    try:
        if kind == "kafka":
            version = version or DEFAULT_VERSION
            node_states = prepare_kafka(base, nodes=nodes, port=port, version=version,
                                        configs=dict(configs or {}), progress=progress)
        else:
            if version:
                raise ConfigError("--version applies to Apache Kafka; Tansu's version is its binary's")
            node_states, version = prepare_tansu(base, nodes=nodes, port=port, binary=binary)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    state = BrokerState(
        name=name, kind=kind, version=version, base_dir=str(base), nodes=node_states,
        bootstrap=",".join(f"127.0.0.1:{n.port}" for n in node_states),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"), configs=dict(configs or {}),
    )
    handle = BrokerHandle(state)
    state.save()
    try:
        for i in range(len(node_states)):
            handle.spawn(i)
        handle.wait_ready(timeout)
    except BaseException:
        handle.stop(keep_data=True)
        raise
    return handle

