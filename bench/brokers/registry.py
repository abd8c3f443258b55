"""Which broker kinds exist, which runtime runs them, and the entry points that dispatch to them.

To add a kind that runs as local processes: one class (a :class:`~bench.brokers.process.ProcessKind`)
and one entry in ``_PROCESS_KINDS``. To add a runtime (containers, ...): one entry in :data:`RUNTIMES`
(an object implementing :class:`~bench.brokers.service.Runtime`).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Mapping
from pathlib import Path

import bench.brokers.netns_nodes as netns_nodes
from bench.brokers.base import BrokerState, brokers_root, port_free
from bench.brokers.docker import DockerRuntime
from bench.brokers.kafka import KafkaKRaft
from bench.brokers.kafka_zk import KafkaZk
from bench.brokers.kfake import Kfake
from bench.brokers.process import ProcessKind, ProcessRuntime
from bench.brokers.service import FetchRequest, Progress, Runtime, Service, StartRequest
from bench.brokers.tansu import Tansu
from bench.errors import BrokerError, ConfigError

__all__ = ["DEFAULT_PORTS", "KINDS", "RUNTIMES", "check_netns", "fetch_broker", "get_broker", "kind_names",
           "list_brokers", "start_broker"]

_PROCESS_KINDS: tuple[ProcessKind, ...] = (KafkaKRaft(), KafkaZk(), Tansu(), Kfake())
KINDS: dict[str, ProcessKind] = {k.name: k for k in _PROCESS_KINDS}
DEFAULT_PORTS: dict[str, int] = {k.name: k.default_port for k in _PROCESS_KINDS}

RUNTIMES: dict[str, Runtime] = {
    "process": ProcessRuntime(KINDS),
    "docker": DockerRuntime(KINDS),    # containers: bench/brokers/docker.py (image kinds + the kinds above)
}


def kind_names() -> tuple[str, ...]:
    """Every kind some runtime can start, process kinds first."""
    names = list(KINDS)
    for rt in RUNTIMES.values():
        names += [k for k in rt.kinds() if k not in names]
    return tuple(names)


def _runtime(kind: str, runtime: str | None) -> Runtime:
    if runtime is not None:
        rt = RUNTIMES.get(runtime)
        if rt is None:
            raise ConfigError(f"unknown runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
        if kind not in rt.kinds():
            raise ConfigError(f"the {runtime} runtime cannot start {kind!r} (it runs: {', '.join(rt.kinds())})")
        return rt
    for rt in RUNTIMES.values():
        if kind in rt.kinds():
            return rt
    raise ConfigError(f"unknown broker {kind!r}: expected one of {', '.join(kind_names())}")


def check_runtime(kind: str, runtime: str) -> None:
    """ConfigError unless ``runtime`` exists and can start ``kind`` (no side effect)."""
    _runtime(kind, runtime)


def _ephemeral_low(default: int = 32768) -> int:
    """The first port of the kernel's ephemeral range (outgoing connections take their local ports there)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def auto_port(kind: ProcessKind, nodes: int) -> int:
    """A client port for node 1 such that every port ``kind`` needs is free on loopback, and below the
    ephemeral range where it can be: a node restarted later (faults, O8) binds its ports again, and an
    outgoing connection's local port there could have taken one meanwhile."""
    rng = random.Random()
    low = _ephemeral_low()
    below = [p for p in range(20000, 40000, 97) if max(kind.ports_needed(p, nodes)) < low]
    for attempt in range(200):
        port = rng.randrange(20000, max(below) + 1) if below and attempt < 150 else rng.randrange(20000, 40000)
        if below and attempt < 150 and max(kind.ports_needed(port, nodes)) >= low:
            continue
        if all(port_free(p) for p in kind.ports_needed(port, nodes)):
            return port
    raise BrokerError("could not find free loopback ports for an embedded broker")


def get_broker(name: str) -> Service | None:
    """The broker remembered under ``name`` (running or not), or None."""
    path = brokers_root() / name / "state.json"
    if not path.exists():
        return None
    return _attach(BrokerState.load(path))


def _attach(state: BrokerState) -> Service:
    rt = RUNTIMES.get(state.runtime)
    if rt is None:
        raise BrokerError(f"broker {state.name!r} was started by the {state.runtime!r} runtime, which this "
                          f"kbench does not have (runtimes: {', '.join(RUNTIMES)})")
    return rt.attach(state)


def list_brokers() -> list[Service]:
    root = brokers_root()
    if not root.exists():
        return []
    return [_attach(BrokerState.load(p)) for p in sorted(root.glob("*/state.json"))]


def _check_name(name: str) -> None:
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"broker name {name!r}: use letters, digits, '-' and '_'")
    existing = get_broker(name)
    if existing is not None:
        if existing.alive_nodes():
            raise ConfigError(f"a broker named {name!r} is already running at {existing.bootstrap} "
                              f"(stop it with `kbench broker down {name}`, or pass --name)")
        existing.stop()


def start_broker(kind: str, *, nodes: int = 1, port: int | None = None, version: str | None = None,
                 name: str | None = None, configs: Mapping[str, str] | None = None,
                 options: Mapping[str, str] | None = None, binary: str | None = None,
                 bind_host: str = "127.0.0.1", advertised_host: str | None = None,
                 runtime: str | None = None, timeout: float = 90.0,
                 progress: Progress | None = None, netns: bool = False, ephemeral: bool = False) -> Service:
    """Start a broker and return once it answers metadata requests with all its nodes.

    ``netns``: every node in its own network namespace on its own 198.18.x address
    (:mod:`bench.brokers.netns_nodes`; kafka only, as root); ``ephemeral``: the broker belongs to this
    process (a run), so a crash of it leaves an orphan topology that the next ``--netns`` start removes.

    ``port=None`` means the kind's default port when ``name`` is the default name, else free ports
    picked at random (``port=0`` always picks free ports). ``runtime=None``: the first runtime that
    has ``kind`` (``process`` for the built-in kinds). Raises a :class:`~bench.errors.BrokerError`
    subclass with a message (and the log tail, if it died) on failure, leaving nothing running.
    """
    rt = _runtime(kind, runtime)
    pkind = KINDS.get(kind) if rt.name == "process" else None
    if pkind is not None and nodes not in pkind.node_counts:
        raise ConfigError(f"{kind}: --nodes must be {' or '.join(map(str, pkind.node_counts))}, got {nodes}")
    if nodes < 1:
        raise ConfigError(f"--nodes must be at least 1, got {nodes}")
    if netns:  # before any side effect
        check_netns(kind, rt.name)
    name = name or kind
    _check_name(name)
    if port is None:
        port = DEFAULT_PORTS.get(kind, 0) if name == kind else 0
    if port == 0 and pkind is not None:
        port = auto_port(pkind, nodes)
    if pkind is not None and not all(1 <= p <= 65535 for p in pkind.ports_needed(port, nodes)):
        raise ConfigError(f"--port {port} out of range for {nodes} {kind} node(s)")
    base = brokers_root() / name
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    request = StartRequest(kind=kind, name=name, nodes=nodes, port=port, version=version,
                           configs=dict(configs or {}), options=dict(options or {}), binary=binary,
                           bind_host=bind_host, advertised_host=advertised_host, timeout=timeout,
                           progress=progress, netns=netns, ephemeral=ephemeral)
    return rt.start(base, request)   # on failure the runtime leaves nothing running and no state.json


def check_netns(kind: str | None, runtime: str | None = None, *, partitions: bool = False) -> None:
    """ConfigError / NetnsError (exit 2) unless ``kind`` can start with ``--netns`` here: a process kind
    that supports it, and root with iproute2 (and nft, with ``partitions``)."""
    rt = _runtime(kind, runtime) if kind else None
    pkind = KINDS.get(kind) if kind and rt is not None and rt.name == "process" else None
    netns_nodes.check_kind(kind, pkind is not None and pkind.supports_netns, rt.name if rt else "process")
    netns_nodes.check_available(partitions=partitions)


def fetch_broker(kind: str, *, version: str | None = None, binary: str | None = None,
                 runtime: str | None = None, progress: Progress | None = None) -> str:
    """Warm the cache for ``kind`` (jars, a build) without starting it; one line saying what is where."""
    return _runtime(kind, runtime).fetch(kind, FetchRequest(version=version, binary=binary, progress=progress))
