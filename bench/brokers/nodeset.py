"""What every runtime's broker does the same way: :class:`NodeSetBroker`, the shared half of a
:class:`~bench.brokers.service.Service`.

A broker is its :class:`~bench.brokers.base.BrokerState`: nodes (ids 1..n, the brokers clients see) and
auxiliary processes (ZooKeeper), started auxiliaries first and stopped nodes first. Identity, node lookup,
start-up order, readiness (through the broker's own security settings), liveness and the removal of the
state directory are written here once; a runtime supplies how one node is started, stopped, checked and
read (:mod:`bench.brokers.process`: a local process and signals; :mod:`bench.brokers.docker_service`: a
container and the engine's API), and its own kill/pause/resume/restart.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Self, TypeVar, cast, overload

from bench.brokers.base import BrokerState, NodeState, wait_ready
from bench.brokers.service import NodeLog
from bench.errors import ConfigError

__all__ = ["NodeSetBroker", "WaitAux"]

T = TypeVar("T")
WaitAux = Callable[[NodeState, float], None]   # blocks until an auxiliary process serves (a kind's wait_aux)


class _FromState(Generic[T]):
    """A read-only attribute that reads the field of the same name in the broker's state
    (``broker.name`` is ``broker.state.name``: always the state's current value)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._field = name

    @overload
    def __get__(self, broker: None, owner: type) -> Self: ...
    @overload
    def __get__(self, broker: NodeSetBroker, owner: type | None = None) -> T: ...

    def __get__(self, broker: NodeSetBroker | None, owner: type | None = None) -> T | Self:
        if broker is None:
            return self
        return cast(T, getattr(broker.state, self._field))


class NodeSetBroker(ABC):
    """The runtime-independent part of a :class:`~bench.brokers.service.Service` over ``state``."""

    name: _FromState[str] = _FromState()
    kind: _FromState[str] = _FromState()
    version: _FromState[str] = _FromState()
    bootstrap: _FromState[str] = _FromState()
    nodes: _FromState[list[NodeState]] = _FromState()

    def __init__(self, state: BrokerState) -> None:
        self.state = state

    # -- what a runtime supplies, per process ------------------------------------------------------
    @abstractmethod
    def _spawn(self, node: NodeState) -> None:
        """Start ``node``'s process (or container) and record where it runs in the state."""

    @abstractmethod
    def _stop_process(self, node: NodeState, timeout: float) -> None:
        """Clean shutdown of ``node``, forced after ``timeout`` seconds; a no-op when it does not run."""

    @abstractmethod
    def _runs(self, node: NodeState) -> bool:
        """True while ``node`` runs (a paused one counts)."""

    @abstractmethod
    def _died(self, node: NodeState) -> str | None:
        """Why ``node`` is not running (with its last log lines), or None while it runs."""

    @abstractmethod
    def _log(self, node: NodeState, lines: int) -> NodeLog:
        """The last ``lines`` lines of ``node``'s log."""

    @abstractmethod
    def _stop_all(self, timeout: float) -> None:
        """Stop every process, nodes first, auxiliaries last (in reverse start order)."""

    # -- identity -------------------------------------------------------------------------------
    def node_index(self, node_id: int) -> int:
        for i, n in enumerate(self.state.nodes):
            if n.node_id == node_id:
                return i
        raise ConfigError(f"broker {self.name!r} has no node with id {node_id} "
                          f"(nodes: {', '.join(str(n.node_id) for n in self.state.nodes)})")

    def _processes(self) -> list[NodeState]:
        """Auxiliary processes, then nodes: the start order."""
        return [*self.state.aux, *self.state.nodes]

    @property
    def _expected_brokers(self) -> int:
        """How many brokers metadata must list when the broker is ready."""
        return self.state.brokers or len(self.state.nodes)

    # -- Service --------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0, wait_aux: WaitAux | None = None) -> None:
        """Start auxiliary processes (waiting for each with ``wait_aux``), then the nodes; wait until every
        node answers metadata."""
        deadline = time.monotonic() + timeout
        for node in self.state.aux:
            self._spawn(node)
            if wait_aux is not None:
                wait_aux(node, max(1.0, deadline - time.monotonic()))
        for node in self.state.nodes:
            self._spawn(node)
        self.wait_ready(max(1.0, deadline - time.monotonic()))

    def dead_node_reason(self) -> str | None:
        for node in self._processes():
            reason = self._died(node)
            if reason:
                return reason
        return None

    def probe_config(self) -> dict[str, str] | None:
        """Client properties a probe needs (a broker started with ``--option security=MODE``), else None."""
        from bench.brokers.security import probe_config

        return probe_config(self.state.base_dir, self.state.options)

    def wait_ready(self, timeout: float = 90.0) -> dict[str, object]:
        return wait_ready(self.bootstrap, self._expected_brokers, timeout, self.dead_node_reason,
                          self.probe_config())

    def node_address(self, node: NodeState) -> str:
        """``host:port`` of ``node``'s own listener: its own host (``--netns``), else the bootstrap's."""
        return f"{node.host or self.bootstrap.split(',')[0].rsplit(':', 1)[0]}:{node.port}"

    def wait_node(self, node: NodeState, timeout: float) -> dict[str, object]:
        """Wait until ``node``'s own listener answers metadata listing every broker (or it dies).

        After a restart the other nodes' metadata may still list the dead process (a KRaft broker stays
        registered until its session times out), so readiness is asked of the node itself."""
        return wait_ready(self.node_address(node), self._expected_brokers, timeout, lambda: self._died(node),
                          self.probe_config())

    def alive_nodes(self) -> list[int]:
        return [n.node_id for n in self.state.nodes if self._runs(n)]

    def is_alive(self) -> bool:
        return bool(self.state.nodes) and all(self._runs(n) for n in self._processes())

    def stop_node(self, index: int, timeout: float = 20.0) -> None:
        """Clean shutdown (SIGTERM), then SIGKILL after ``timeout`` seconds."""
        self._stop_process(self.state.nodes[index], timeout)

    def logs(self, lines: int = 50) -> list[NodeLog]:
        return [self._log(n, lines) for n in self._processes()]

    def stop(self, *, keep_data: bool = False, timeout: float = 20.0) -> None:
        """Stop every node, then the auxiliary processes; remove the state directory unless ``keep_data``
        (then only ``state.json`` goes: the broker is no longer listed)."""
        self._stop_all(timeout)
        base = Path(self.state.base_dir)
        if keep_data:
            with contextlib.suppress(FileNotFoundError):
                (base / "state.json").unlink()
        else:
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
