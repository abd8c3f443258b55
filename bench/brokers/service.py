"""The broker seam: what every running broker offers (:class:`Service`), what every kind of broker
offers before it runs (:class:`BrokerKind`), and how a runtime starts kinds (:class:`Runtime`).

::

    start_broker("kafka-zk", nodes=3)            registry -> Runtime ("process" or e.g. "docker")
        Runtime.start(kind, request)  -> Service   the runtime asks the BrokerKind to prepare nodes
    get_broker(name)                             state.json -> Runtime.attach(state) -> Service

A :class:`Service` is a set of *nodes* (the brokers clients see, ids 1..n; what ``faults:`` targets)
plus *auxiliary* processes a kind needs (ZooKeeper for ``kafka-zk``). Per node it can stop, kill
(SIGKILL, no clean shutdown), pause/resume (SIGSTOP/SIGCONT or a container pause) and restart with
its data intact. Its state is on disk, so another process (``kbench broker down``) finds it again.

Adding a kind is one class implementing :class:`BrokerKind` (see :mod:`bench.brokers.kafka_zk`) and
one entry in :data:`bench.brokers.registry.KINDS`; adding a runtime is one entry in ``RUNTIMES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bench.brokers.base import BrokerState, NodeState

__all__ = ["BrokerKind", "FetchRequest", "NodeHost", "NodeLog", "Prepared", "Runtime", "Service", "StartRequest"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class NodeHost:
    """Where one node runs with ``--netns``: its own network namespace and address (198.18.0.0/15)."""

    address: str      # the node listens on it (every listener) and advertises it
    namespace: str    # its command runs there (``ip netns exec``)


@dataclass(frozen=True)
class StartRequest:
    """Everything a caller may ask of a new broker; validated by the kind (a ConfigError names the option)."""

    kind: str
    name: str
    nodes: int = 1
    port: int = 0                      # client port of node 1; 0 = free ports picked at random
    version: str | None = None         # None = the kind's default
    configs: Mapping[str, str] = field(default_factory=dict)    # broker config overrides (KEY=VALUE)
    options: Mapping[str, str] = field(default_factory=dict)    # kind-specific (--option KEY=VALUE)
    binary: str | None = None          # an executable to use instead of the fetched/built one
    bind_host: str = "127.0.0.1"       # where the broker listens (0.0.0.0 inside a container)
    advertised_host: str | None = None  # what metadata advertises (default: bind host, or 127.0.0.1)
    timeout: float = 90.0              # seconds to wait until every node answers metadata
    progress: Progress | None = None
    netns: bool = False                # each node in its own network namespace (bench.brokers.netns_nodes)
    ephemeral: bool = False            # the broker lives as long as this process (a run), not beyond it
    node_hosts: tuple[NodeHost, ...] = ()   # with netns: filled by the runtime, one per node, for the kind

    @property
    def advertise(self) -> str:
        """The host clients are told to connect to."""
        if self.advertised_host:
            return self.advertised_host
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "::", "") else self.bind_host


@dataclass(frozen=True)
class FetchRequest:
    """``kbench broker fetch``: warm the cache for a kind (jars, a built binary) without starting it."""

    version: str | None = None
    binary: str | None = None
    progress: Progress | None = None


@dataclass
class Prepared:
    """What a kind hands its runtime: processes to spawn (configs written, storage formatted)."""

    version: str
    nodes: list[NodeState]
    aux: list[NodeState] = field(default_factory=list)   # started first, stopped last (ZooKeeper)
    brokers: int | None = None    # brokers metadata must list when ready (default: len(nodes))
    bootstrap: str | None = None  # default: 127.0.0.1:<port> of every node


@dataclass(frozen=True)
class NodeLog:
    """The tail of one process's log, for ``kbench broker logs`` and failure reports."""

    node_id: int
    role: str        # "broker", "zookeeper", ...
    path: str        # a file, or e.g. "docker:<container id>"
    text: str


class BrokerKind(Protocol):
    """One kind of broker (Apache Kafka KRaft, Kafka with ZooKeeper, Tansu, kfake, ...)."""

    @property
    def name(self) -> str: ...
    @property
    def default_port(self) -> int: ...
    @property
    def node_counts(self) -> tuple[int, ...]: ...
    @property
    def summary(self) -> str: ...

    def ports_needed(self, port: int, nodes: int) -> list[int]:
        """Every loopback port the kind binds for a cluster whose node 1 listens on ``port``."""
        ...

    def prepare(self, base: Path, request: StartRequest) -> Prepared:
        """Fetch/build what is needed, write configs under ``base``; spawn nothing."""
        ...

    def fetch(self, request: FetchRequest) -> str:
        """Warm the cache; return one line saying what is where."""
        ...


@runtime_checkable
class Service(Protocol):
    """A running (or remembered) broker. ``index`` is a position in :attr:`nodes` (0-based)."""

    state: BrokerState

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def bootstrap(self) -> str: ...
    @property
    def nodes(self) -> list[NodeState]: ...

    def start(self, timeout: float = 90.0) -> None:
        """Start every process (auxiliary ones first) and wait until all nodes answer metadata."""
        ...

    def stop(self, *, keep_data: bool = False, timeout: float = 20.0) -> None:
        """Stop everything (clean shutdown, then kill); delete the data unless ``keep_data``."""
        ...

    def logs(self, lines: int = 50) -> list[NodeLog]: ...
    def wait_ready(self, timeout: float = 90.0) -> dict[str, object]: ...
    def node_index(self, node_id: int) -> int: ...
    def alive_nodes(self) -> list[int]: ...
    def is_alive(self) -> bool: ...
    def dead_node_reason(self) -> str | None: ...
    def kill_node(self, index: int) -> None: ...
    def pause_node(self, index: int) -> None: ...
    def resume_node(self, index: int) -> None: ...
    def stop_node(self, index: int, timeout: float = 20.0) -> None: ...
    def restart_node(self, index: int, timeout: float = 90.0) -> None: ...


class Runtime(Protocol):
    """Where brokers run: ``process`` (local processes) or e.g. ``docker`` (containers)."""

    @property
    def name(self) -> str: ...

    def kinds(self) -> tuple[str, ...]:
        """Broker kinds this runtime can start."""
        ...

    def start(self, base: Path, request: StartRequest) -> Service:
        """Start a broker under ``base`` (an empty state directory) and return it ready, or raise a
        BrokerError leaving nothing running."""
        ...

    def attach(self, state: BrokerState) -> Service:
        """The service remembered in ``state`` (written by :meth:`start`, maybe by another process)."""
        ...

    def fetch(self, kind: str, request: FetchRequest) -> str: ...
