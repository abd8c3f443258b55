"""Brokers' remembered state, ports, readiness and log tails (shared by every kind and runtime).

A broker's state — nodes, pids, ports, data and log paths, command lines — is written to
``<state_dir>/brokers/<name>/state.json``, so ``status``/``logs``/``down`` work from another shell.
The processes themselves are run by :mod:`bench.brokers.process`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._paths import state_dir
from bench.errors import BrokerError, BrokerStartError, BrokerUnreachableError, PortInUseError

__all__ = ["BrokerState", "NetnsState", "NodeState", "brokers_root", "check_ports", "port_free", "probe_cluster",
           "tail", "wait_ready"]


@dataclass
class NodeState:
    """One broker process: how to start it and where it is."""

    node_id: int
    port: int
    cmd: list[str]
    data_dir: str
    log_file: str
    controller_port: int | None = None
    env: dict[str, str] | None = None
    pid: int | None = None
    create_time: float | None = None
    role: str = "broker"                        # or "zookeeper", ...
    extra: dict[str, str] | None = None         # runtime-specific (a container id, ...)
    host: str | None = None                     # its own address (--netns); None: the bootstrap's host


@dataclass
class NetnsState:
    """The network-namespace topology of a ``--netns`` broker (:mod:`bench.brokers.netns_nodes`): enough
    to find it again from another process (the addresses follow from the subnet and the names' order)."""

    prefix: str           # every namespace and the host veth start with it
    subnet: str           # its /24 of 198.18.0.0/15
    names: list[str]      # topology node names, node i+1 is names[i]


@dataclass
class BrokerState:
    """Everything ``kbench broker status/down`` needs to find a running broker again."""

    name: str
    kind: str
    version: str
    bootstrap: str
    base_dir: str
    nodes: list[NodeState]
    started_at: str = ""
    configs: dict[str, str] = field(default_factory=dict)
    runtime: str = "process"
    aux: list[NodeState] = field(default_factory=list)   # started first, stopped last (ZooKeeper)
    brokers: int | None = None     # brokers metadata lists when ready (default: len(nodes))
    options: dict[str, str] = field(default_factory=dict)
    netns: NetnsState | None = None  # --netns: the nodes' namespaces, torn down with the broker

    @classmethod
    def load(cls, path: Path) -> BrokerState:
        try:
            doc = json.loads(path.read_text())
            doc["nodes"] = [NodeState(**n) for n in doc["nodes"]]
            doc["aux"] = [NodeState(**n) for n in doc.get("aux", [])]
            doc["netns"] = NetnsState(**doc["netns"]) if doc.get("netns") else None
            return cls(**doc)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise BrokerError(f"unreadable broker state {path}: {exc} (remove that directory)") from exc

    def save(self) -> None:
        path = Path(self.base_dir) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)


def brokers_root() -> Path:
    return state_dir() / "brokers"


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``host:port`` can be bound (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: list[int]) -> None:
    taken = [p for p in ports if not port_free(p)]
    if taken:
        raise PortInUseError(
            f"port{'s' if len(taken) > 1 else ''} {', '.join(map(str, taken))} on 127.0.0.1 already in use; "
            "stop what listens there (`kbench broker status`) or choose another with --port"
        )


def probe_cluster(bootstrap: str, timeout: float = 5.0, extra: dict[str, str] | None = None) -> dict[str, object]:
    """Ask ``bootstrap`` for metadata; return cluster id and brokers, or raise BrokerUnreachableError.

    ``extra``: client properties (SASL/TLS) needed to talk to it."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap,
                            "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),  # librdkafka min
                            "log_level": 0, "logger": _silent_logger, **(extra or {})}
    admin = AdminClient(conf)
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachableError(
            f"broker at {bootstrap} did not answer a metadata request within {timeout:g} s ({exc.args[0]})"
        ) from exc
    return {
        "cluster_id": md.cluster_id,
        "controller_id": md.controller_id,
        "brokers": {str(b.id): f"{b.host}:{b.port}" for b in md.brokers.values()},
    }


class _SilentLogger:
    def log(self, *_args: object) -> None:
        return None

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *a, **k: None


_silent_logger = _SilentLogger()


def tail(path: str | Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ('' if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_ready(bootstrap: str, expected_brokers: int, timeout: float,
               died: Callable[[], str | None] = lambda: None,
               extra: dict[str, str] | None = None) -> dict[str, object]:
    """Poll metadata until ``expected_brokers`` are listed; ``died()`` returns a reason to give up early.

    ``extra``: client properties (SASL/TLS) of a secured broker."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        reason = died()
        if reason:
            raise BrokerStartError(reason)
        try:
            info = probe_cluster(bootstrap, timeout=min(2.0, max(0.2, deadline - time.monotonic())),
                                 extra=extra)
        except BrokerUnreachableError as exc:
            last = str(exc)
        else:
            brokers = info["brokers"]
            assert isinstance(brokers, dict)
            if len(brokers) >= expected_brokers:
                return info
            last = f"{len(brokers)} of {expected_brokers} brokers registered"
        time.sleep(0.2)
    raise BrokerStartError(f"broker at {bootstrap} not ready after {timeout:g} s ({last})")


