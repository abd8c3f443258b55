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
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

import bench.brokers.netns_nodes as netns_nodes
from bench.brokers.base import BrokerState, NetnsState, NodeState, check_ports, tail
from bench.brokers.nodeset import NodeSetBroker
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


class ProcessBroker(NodeSetBroker):
    """A broker made of local processes: implements :class:`bench.brokers.service.Service` (what is not
    process-specific is in :class:`~bench.brokers.nodeset.NodeSetBroker`)."""

    def __init__(self, state: BrokerState) -> None:
        super().__init__(state)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

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

    def _stop_all(self, timeout: float) -> None:
        """Stop the nodes, then the auxiliary processes, then remove the nodes' network namespaces (if any;
        when that fails the state directory is kept, so ``down`` can retry)."""
        for node in [*self.state.nodes, *reversed(self.state.aux)]:
            self._stop_process(node, timeout)
        if self.state.netns is not None:
            netns_nodes.teardown(self.state.netns)

    def _runs(self, node: NodeState) -> bool:
        return alive(node)

    def _died(self, node: NodeState) -> str | None:
        proc = self._procs.get(self._key(node))
        code = proc.poll() if proc is not None else None
        if code is None and alive(node):
            return None
        return (f"{self.kind} {node.role} {node.node_id} exited during start-up"
                f"{f' (exit code {code})' if code is not None else ''}; last log lines "
                f"({node.log_file}):\n{tail(node.log_file, 25)}")

    def _log(self, node: NodeState, lines: int) -> NodeLog:
        return NodeLog(node.node_id, node.role, node.log_file, tail(node.log_file, lines))

    # -- Service: node faults -------------------------------------------------------------------
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

    def restart_node(self, index: int, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again with its data intact, and wait until it is registered
        (asked of the node's own listener: :meth:`wait_node`)."""
        node = self.state.nodes[index]
        if alive(node):
            self._stop_process(node, 20.0)
        self._spawn(node)
        self.wait_node(node, timeout)


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
