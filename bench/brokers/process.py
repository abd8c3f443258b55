"""The ``process`` runtime: every node (and auxiliary process, e.g. ZooKeeper) is a local process in its
own session, so it outlives ``kbench broker up``; its pid and start time are in ``state.json``.

Per node: stop = SIGTERM then SIGKILL, kill = SIGKILL, pause/resume = SIGSTOP/SIGCONT, restart =
spawn the same command again on the same data directory. With ``--netns`` (a kind with
``supports_netns``) every node runs in its own network namespace (:mod:`bench.brokers.netns_nodes`),
built before the kind prepares its nodes and torn down when the broker stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

import bench.brokers.netns_nodes as netns_nodes
from bench.brokers.base import BrokerState, NetnsState, NodeState, check_ports, tail, wait_ready
from bench.brokers.service import FetchRequest, NodeLog, Prepared, StartRequest
from bench.errors import BrokerStartError, ConfigError

if TYPE_CHECKING:
    from bench.faults.netns import Topology

__all__ = ["ProcessBroker", "ProcessKind", "ProcessRuntime", "alive"]


def alive(node: NodeState) -> bool:
    """True when the process recorded for ``node`` still runs (same pid *and* start time, not a zombie)."""
    if node.pid is None:
        return False
    try:
        proc = psutil.Process(node.pid)
        if node.create_time is not None and abs(proc.create_time() - node.create_time) > 1.0:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ProcessBroker:
    """A broker made of local processes: implements :class:`bench.brokers.service.Service`."""

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- identity -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.state.name

    @property
    def kind(self) -> str:
        return self.state.kind

    @property
    def version(self) -> str:
        return self.state.version

    @property
    def bootstrap(self) -> str:
        return self.state.bootstrap

    @property
    def nodes(self) -> list[NodeState]:
        return self.state.nodes

    def node_index(self, node_id: int) -> int:
        for i, n in enumerate(self.state.nodes):
            if n.node_id == node_id:
                return i
        raise ConfigError(f"broker {self.name!r} has no node with id {node_id} "
                          f"(nodes: {', '.join(str(n.node_id) for n in self.state.nodes)})")

    # -- processes ------------------------------------------------------------------------------
    @staticmethod
    def _key(node: NodeState) -> str:
        return f"{node.role}-{node.node_id}"

    def _spawn(self, node: NodeState) -> None:
        Path(node.log_file).parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(node.env or {})
        with open(node.log_file, "ab") as log:
            proc = subprocess.Popen(node.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=node.data_dir, env=env, start_new_session=True)
        self._procs[self._key(node)] = proc
        node.pid = proc.pid
        try:
            node.create_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            node.create_time = None
        self.state.save()

    def spawn(self, index: int) -> None:
        """Start node ``index`` (its command, env and log file are in the state)."""
        self._spawn(self.state.nodes[index])

    def _signal(self, node: NodeState, sig: int) -> None:
        if node.pid is not None and alive(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, sig)

    def _reap(self, node: NodeState, timeout: float) -> bool:
        proc = self._procs.pop(self._key(node), None)
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._procs[self._key(node)] = proc
                return False
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(node):
                return True
            time.sleep(0.1)
        return not alive(node)

    def _stop_process(self, node: NodeState, timeout: float) -> None:
        if not alive(node):
            self._procs.pop(self._key(node), None)
            return
        self._signal(node, signal.SIGCONT)
        self._signal(node, signal.SIGTERM)
        if not self._reap(node, timeout):
            self._signal(node, signal.SIGKILL)
            self._reap(node, 10.0)

    def _died(self, node: NodeState) -> str | None:
        proc = self._procs.get(self._key(node))
        code = proc.poll() if proc is not None else None
        if code is None and alive(node):
            return None
        return (f"{self.kind} {node.role} {node.node_id} exited during start-up"
                f"{f' (exit code {code})' if code is not None else ''}; last log lines "
                f"({node.log_file}):\n{tail(node.log_file, 25)}")

    # -- Service --------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0, wait_aux: Callable[[NodeState, float], None] | None = None) -> None:
        """Spawn auxiliary processes (waiting for each with ``wait_aux``), then the nodes; wait ready."""
        deadline = time.monotonic() + timeout
        for node in self.state.aux:
            self._spawn(node)
            if wait_aux is not None:
                wait_aux(node, max(1.0, deadline - time.monotonic()))
        for node in self.state.nodes:
            self._spawn(node)
        self.wait_ready(max(1.0, deadline - time.monotonic()))

    def dead_node_reason(self) -> str | None:
        for node in [*self.state.aux, *self.state.nodes]:
            reason = self._died(node)
            if reason:
                return reason
        return None

    def wait_ready(self, timeout: float = 90.0) -> dict[str, object]:
        expected = self.state.brokers or len(self.state.nodes)
        return wait_ready(self.bootstrap, expected, timeout, self.dead_node_reason, self.probe_config())

    def probe_config(self) -> dict[str, str] | None:
        """Client properties a probe needs (a broker started with ``--security``), else None."""
        from bench.brokers.security import probe_config

        return probe_config(self.state.base_dir, self.state.options)

    def alive_nodes(self) -> list[int]:
        return [n.node_id for n in self.state.nodes if alive(n)]

    def is_alive(self) -> bool:
        procs = [*self.state.aux, *self.state.nodes]
        return bool(self.state.nodes) and all(alive(n) for n in procs)

    def signal_node(self, index: int, sig: int) -> None:
        self._signal(self.state.nodes[index], sig)

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash, no clean shutdown) and reap it."""
        node = self.state.nodes[index]
        self._signal(node, signal.SIGKILL)
        self._reap(node, 10.0)

    def pause_node(self, index: int) -> None:
        self.signal_node(index, signal.SIGSTOP)

    def resume_node(self, index: int) -> None:
        self.signal_node(index, signal.SIGCONT)

    def stop_node(self, index: int, timeout: float = 20.0) -> None:
        """SIGTERM (clean shutdown), then SIGKILL after ``timeout`` seconds."""
        self._stop_process(self.state.nodes[index], timeout)

    def restart_node(self, index: int, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again with its data intact, and wait until it is registered.

        Readiness is asked of the node's own listener: the other nodes' metadata may still list the dead
        process (a KRaft broker stays registered until its session times out)."""
        node = self.state.nodes[index]
        if alive(node):
            self._stop_process(node, 20.0)
        self._spawn(node)
        self.wait_node(node, timeout)

    def wait_node(self, node: NodeState, timeout: float) -> dict[str, object]:
        """Wait until ``node``'s own listener answers metadata listing every broker (or it dies)."""
        host = node.host or self.bootstrap.split(",")[0].rsplit(":", 1)[0]
        return wait_ready(f"{host}:{node.port}", self.state.brokers or len(self.state.nodes), timeout,
                          lambda: self._died(node), self.probe_config())

    def logs(self, lines: int = 50) -> list[NodeLog]:
        return [NodeLog(n.node_id, n.role, n.log_file, tail(n.log_file, lines))
                for n in [*self.state.aux, *self.state.nodes]]

    def stop(self, *, keep_data: bool = False, timeout: float = 20.0) -> None:
        """Stop every node, then the auxiliary processes, then remove the nodes' network namespaces (if
        any; the state is kept when that fails, so ``down`` can retry); remove the directory unless
        ``keep_data``."""
        for node in self.state.nodes:
            self._stop_process(node, timeout)
        for node in reversed(self.state.aux):
            self._stop_process(node, timeout)
        if self.state.netns is not None:
            netns_nodes.teardown(self.state.netns)
        base = Path(self.state.base_dir)
        if keep_data:
            with contextlib.suppress(FileNotFoundError):
                (base / "state.json").unlink()
        else:
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> ProcessBroker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class ProcessKind:
    """Defaults for a :class:`~bench.brokers.service.BrokerKind` run by the process runtime.

    Subclasses set ``name``, ``default_port``, ``summary`` and implement ``prepare`` and ``fetch``;
    they may override ``ports_needed``, ``wait_aux`` (block until an auxiliary process serves) and
    ``service`` (a :class:`ProcessBroker` subclass with kind-specific node control)."""

    name = ""
    default_port = 0
    node_counts: tuple[int, ...] = (1, 3)
    summary = ""
    supports_netns = False     # prepare() honours request.node_hosts (--netns)

    def ports_needed(self, port: int, nodes: int) -> list[int]:
        return [port + i for i in range(nodes)]

    def prepare(self, base: Path, request: StartRequest) -> Prepared:
        raise NotImplementedError

    def fetch(self, request: FetchRequest) -> str:
        raise NotImplementedError

    def wait_aux(self, node: NodeState, timeout: float) -> None:
        return None

    def service(self, state: BrokerState) -> ProcessBroker:
        return ProcessBroker(state)


class ProcessRuntime:
    """Runs the kinds in ``kinds`` as local processes (see :class:`ProcessBroker`)."""

    name = "process"

    def __init__(self, kinds: Mapping[str, ProcessKind]) -> None:
        self._kinds = kinds

    def kinds(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def kind(self, name: str) -> ProcessKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise ConfigError(f"unknown broker {name!r}: expected one of {', '.join(self._kinds)}") from None

    def start(self, base: Path, request: StartRequest) -> ProcessBroker:
        kind = self.kind(request.kind)
        check_ports(kind.ports_needed(request.port, request.nodes))
        topo: Topology | None = None
        netns: NetnsState | None = None
        try:
            if request.netns:
                netns_nodes.check_kind(kind.name, kind.supports_netns)
                topo, netns = netns_nodes.create(request.nodes, None if request.ephemeral else base / "state.json")
                request = dataclasses.replace(request, node_hosts=netns_nodes.node_hosts(topo))
            prepared = kind.prepare(base, request)
            state = self._state(base, request, prepared)
        except BaseException:
            if topo is not None:
                topo.teardown()
            shutil.rmtree(base, ignore_errors=True)
            raise
        state.netns = netns
        broker = self.attach(state)
        state.save()
        try:
            broker.start(request.timeout, wait_aux=kind.wait_aux)
        except BaseException:
            broker.stop(keep_data=True)
            raise
        return broker

    @staticmethod
    def _state(base: Path, request: StartRequest, prepared: Prepared) -> BrokerState:
        if not prepared.nodes:
            raise BrokerStartError(f"{request.kind}: nothing to start")
        host = request.advertise
        return BrokerState(
            name=request.name, kind=request.kind, version=prepared.version, base_dir=str(base),
            nodes=prepared.nodes, aux=prepared.aux, brokers=prepared.brokers, runtime="process",
            bootstrap=prepared.bootstrap or ",".join(f"{n.host or host}:{n.port}" for n in prepared.nodes),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"), configs=dict(request.configs),
            options=dict(request.options))

    def attach(self, state: BrokerState) -> ProcessBroker:
        kind = self._kinds.get(state.kind)
        return kind.service(state) if kind is not None else ProcessBroker(state)

    def fetch(self, kind: str, request: FetchRequest) -> str:
        return self.kind(kind).fetch(request)
