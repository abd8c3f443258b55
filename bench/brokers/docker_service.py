"""The containers of one broker started by the docker runtime (:mod:`bench.brokers.docker`): the
:class:`~bench.brokers.service.Service` of ``--runtime docker``.

Per node: ``kill`` = SIGKILL through the API, ``pause``/``resume`` = the cgroup freezer, ``stop`` =
``docker stop`` (SIGTERM, then SIGKILL), ``restart`` = ``docker start`` of the same container (data intact).
The container id, image and engine address of each node are in ``NodeState.extra``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.brokers.base import BrokerState, NodeState, wait_ready
from bench.brokers.docker_engine import docker_client
from bench.brokers.service import NodeLog
from bench.errors import BrokerError, BrokerStartError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from docker import DockerClient
    from docker.models.containers import Container

__all__ = ["LABEL", "DockerBroker", "wait_containers_gone"]

LABEL = "kbench.broker"


class DockerBroker:
    """A broker made of containers: implements :class:`bench.brokers.service.Service`."""

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self._client: DockerClient | None = None

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

    # -- containers -----------------------------------------------------------------------------
    @property
    def client(self) -> DockerClient:
        if self._client is None:
            host = (self.state.nodes[0].extra or {}).get("docker_host") if self.state.nodes else None
            self._client = docker_client(host or None)
        return self._client

    def _container(self, node: NodeState) -> Container | None:
        from docker.errors import NotFound

        cid = (node.extra or {}).get("container")
        if not cid:
            return None
        try:
            return self.client.containers.get(cid)
        except NotFound:
            return None

    def _status(self, node: NodeState) -> str:
        """``running``, ``paused``, ``exited``, ... or ``missing``."""
        c = self._container(node)
        return str(c.status) if c is not None else "missing"

    def _api(self, what: str, node: NodeState, call: Callable[[Container], object]) -> None:
        from docker.errors import DockerException

        c = self._container(node)
        if c is None:
            raise BrokerError(f"{self.name}: the container of {node.role} {node.node_id} is gone")
        try:
            call(c)
        except DockerException as exc:
            raise BrokerError(f"{self.name}: {what} of {node.role} {node.node_id} failed: {exc}") from exc

    def _start(self, node: NodeState) -> None:
        """Start the container; record its init's host pid (so pid-based checks of a kind, e.g. kafka-zk's
        wait for ZooKeeper, and ``broker up``'s listing work as for processes)."""
        import psutil

        self._api("start", node, lambda c: c.start())
        c = self._container(node)
        pid = int(c.attrs.get("State", {}).get("Pid") or 0) if c is not None else 0
        node.pid, node.create_time = (pid or None), None
        if pid:
            with contextlib.suppress(psutil.Error):
                node.create_time = psutil.Process(pid).create_time()
        self.state.save()

    def _stop(self, node: NodeState, timeout: float) -> None:
        status = self._status(node)
        if status == "paused":
            self._api("unpause", node, lambda c: c.unpause())
        if status in ("running", "paused", "restarting"):
            self._api("stop", node, lambda c: c.stop(timeout=max(1, int(timeout))))

    def _died(self, node: NodeState) -> str | None:
        c = self._container(node)
        if c is not None and c.status in ("running", "paused", "created"):
            return None
        code = c.attrs.get("State", {}).get("ExitCode") if c is not None else None
        return (f"{self.kind} {node.role} {node.node_id} (container {(node.extra or {}).get('container', '?')[:12]})"
                f" exited during start-up{f' (exit code {code})' if code is not None else ''}; last log lines:\n"
                f"{self._tail(node, 25)}")

    def _tail(self, node: NodeState, lines: int) -> str:
        from docker.errors import DockerException

        c = self._container(node)
        if c is None:
            try:
                return "\n".join(Path(node.log_file).read_text(errors="replace").splitlines()[-lines:])
            except OSError:
                return "(container removed, no log kept)"
        try:
            return bytes(c.logs(tail=lines)).decode("utf-8", "replace").rstrip("\n")
        except DockerException as exc:
            return f"(logs unavailable: {exc})"

    # -- Service --------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0, wait_aux: Callable[[NodeState, float], None] | None = None) -> None:
        """Start every container, auxiliary ones first (waiting for each with ``wait_aux``), and wait until
        all nodes answer metadata."""
        deadline = time.monotonic() + timeout
        for node in self.state.aux:
            self._start(node)
            if wait_aux is not None:
                wait_aux(node, max(1.0, deadline - time.monotonic()))
        for node in self.state.nodes:
            self._start(node)
        self.wait_ready(max(1.0, deadline - time.monotonic()))

    def dead_node_reason(self) -> str | None:
        for node in [*self.state.aux, *self.state.nodes]:
            reason = self._died(node)
            if reason:
                return reason
        return None

    def wait_ready(self, timeout: float = 90.0) -> dict[str, object]:
        expected = self.state.brokers or len(self.state.nodes)
        return wait_ready(self.bootstrap, expected, timeout, self.dead_node_reason)

    def alive_nodes(self) -> list[int]:
        """Nodes whose container runs (a paused one counts, like a SIGSTOPped process)."""
        return [n.node_id for n in self.state.nodes if self._status(n) in ("running", "paused")]

    def is_alive(self) -> bool:
        procs = [*self.state.aux, *self.state.nodes]
        return bool(self.state.nodes) and all(self._status(n) in ("running", "paused") for n in procs)

    def kill_node(self, index: int) -> None:
        """SIGKILL the node's container (a crash, no clean shutdown) and wait until it has exited."""
        node = self.state.nodes[index]
        if self._status(node) == "paused":
            self._api("unpause", node, lambda c: c.unpause())
        if self._status(node) == "running":
            self._api("kill", node, lambda c: c.kill("SIGKILL"))
            self._api("wait", node, lambda c: c.wait(timeout=10))

    def pause_node(self, index: int) -> None:
        self._api("pause", self.state.nodes[index], lambda c: c.pause())

    def resume_node(self, index: int) -> None:
        node = self.state.nodes[index]
        if self._status(node) == "paused":
            self._api("unpause", node, lambda c: c.unpause())

    def stop_node(self, index: int, timeout: float = 20.0) -> None:
        """SIGTERM (clean shutdown), then SIGKILL after ``timeout`` seconds (``docker stop``)."""
        self._stop(self.state.nodes[index], timeout)

    def restart_node(self, index: int, timeout: float = 90.0) -> None:
        """Start the node's container again (same container: data intact) and wait until it answers on its
        own listener with every broker registered. A container that exits meanwhile is started again
        until ``timeout`` (a Kafka broker restarted before ZooKeeper expired its old session exits with
        NodeExists)."""
        node = self.state.nodes[index]
        if self._status(node) in ("running", "paused"):
            self._stop(node, 20.0)
        deadline = time.monotonic() + timeout
        expected = self.state.brokers or len(self.state.nodes)
        while True:
            self._start(node)
            try:
                wait_ready(f"127.0.0.1:{node.port}", expected, max(1.0, deadline - time.monotonic()),
                           lambda: self._died(node))
                break
            except BrokerStartError:
                if time.monotonic() + 2.0 > deadline:
                    raise
                time.sleep(1.0)
        self.wait_ready(max(1.0, deadline - time.monotonic()))

    def logs(self, lines: int = 50) -> list[NodeLog]:
        return [NodeLog(n.node_id, n.role, f"docker:{(n.extra or {}).get('container', '?')[:12]}",
                        self._tail(n, lines)) for n in [*self.state.aux, *self.state.nodes]]

    def stop(self, *, keep_data: bool = False, timeout: float = 20.0) -> None:
        """Stop every container (nodes, then auxiliaries), keep each one's log in its ``log_file``, remove
        the containers, and delete the state directory unless ``keep_data``."""
        from docker.errors import DockerException

        procs = [*self.state.nodes, *reversed(self.state.aux)]
        for node in procs:
            with contextlib.suppress(BrokerError):
                self._stop(node, timeout)
        for node in procs:
            c = self._container(node)
            if c is None:
                continue
            with contextlib.suppress(DockerException, OSError):
                Path(node.log_file).parent.mkdir(parents=True, exist_ok=True)
                Path(node.log_file).write_bytes(bytes(c.logs()))
            with contextlib.suppress(DockerException):
                c.remove(force=True)
        base = Path(self.state.base_dir)
        if keep_data:
            with contextlib.suppress(FileNotFoundError):
                (base / "state.json").unlink()
        else:
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> DockerBroker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def wait_containers_gone(client: DockerClient, name: str, timeout: float = 10.0) -> list[str]:
    """Names of containers still labelled as broker ``name`` after ``timeout`` seconds (for tests)."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while time.monotonic() < deadline:
        left = [str(c.name) for c in client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})]
        if not left:
            break
        time.sleep(0.2)
    return left
