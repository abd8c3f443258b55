"""The containers of one broker started by the docker runtime (:mod:`bench.brokers.docker`): the
:class:`~bench.brokers.service.Service` of ``--runtime docker``.

Per node: ``kill`` = SIGKILL through the API, ``pause``/``resume`` = the cgroup freezer, ``stop`` =
``docker stop`` (SIGTERM, then SIGKILL), ``restart`` = ``docker start`` of the same container (data intact).
The container id, image and engine address of each node are in ``NodeState.extra``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.brokers.base import BrokerState, NodeState
from bench.brokers.docker_engine import docker_client
from bench.brokers.nodeset import NodeSetBroker
from bench.brokers.service import NodeLog
from bench.errors import BrokerError, BrokerStartError

if TYPE_CHECKING:
    from collections.abc import Callable

    from docker import DockerClient
    from docker.models.containers import Container

__all__ = ["LABEL", "DockerBroker", "wait_containers_gone"]

LABEL = "kbench.broker"


class DockerBroker(NodeSetBroker):
    """A broker made of containers: implements :class:`bench.brokers.service.Service` (what is not
    container-specific is in :class:`~bench.brokers.nodeset.NodeSetBroker`)."""

    def __init__(self, state: BrokerState) -> None:
        super().__init__(state)
        self._client: DockerClient | None = None

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

    def _spawn(self, node: NodeState) -> None:
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

    def _stop_process(self, node: NodeState, timeout: float) -> None:
        """``docker stop``: SIGTERM, then SIGKILL after ``timeout`` seconds (a paused container is thawed first)."""
        status = self._status(node)
        if status == "paused":
            self._api("unpause", node, lambda c: c.unpause())
        if status in ("running", "paused", "restarting"):
            self._api("stop", node, lambda c: c.stop(timeout=max(1, int(timeout))))

    def _runs(self, node: NodeState) -> bool:
        """The container runs (a paused one counts, like a SIGSTOPped process)."""
        return self._status(node) in ("running", "paused")

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

    def _log(self, node: NodeState, lines: int) -> NodeLog:
        where = f"docker:{(node.extra or {}).get('container', '?')[:12]}"
        return NodeLog(node.node_id, node.role, where, self._tail(node, lines))

    def _stop_all(self, timeout: float) -> None:
        """Stop every container (nodes, then auxiliaries), keep each one's log in its ``log_file`` and
        remove the containers."""
        from docker.errors import DockerException

        procs = [*self.state.nodes, *reversed(self.state.aux)]
        for node in procs:
            with contextlib.suppress(BrokerError):
                self._stop_process(node, timeout)
        for node in procs:
            c = self._container(node)
            if c is None:
                continue
            with contextlib.suppress(DockerException, OSError):
                Path(node.log_file).parent.mkdir(parents=True, exist_ok=True)
                Path(node.log_file).write_bytes(bytes(c.logs()))
            with contextlib.suppress(DockerException):
                c.remove(force=True)

    def node_address(self, node: NodeState) -> str:
        """Containers run on the host network, published on 127.0.0.1."""
        return f"127.0.0.1:{node.port}"

    # -- Service: node faults -------------------------------------------------------------------
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

    def restart_node(self, index: int, timeout: float = 90.0) -> None:
        """Start the node's container again (same container: data intact) and wait until it answers on its
        own listener with every broker registered. A container that exits meanwhile is started again
        until ``timeout`` (a Kafka broker restarted before ZooKeeper expired its old session exits with
        NodeExists)."""
        node = self.state.nodes[index]
        if self._runs(node):
            self._stop_process(node, 20.0)
        deadline = time.monotonic() + timeout
        while True:
            self._spawn(node)
            try:
                self.wait_node(node, max(1.0, deadline - time.monotonic()))
                break
            except BrokerStartError:
                if time.monotonic() + 2.0 > deadline:
                    raise
                time.sleep(1.0)
        self.wait_ready(max(1.0, deadline - time.monotonic()))


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
