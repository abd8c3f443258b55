"""Embedded brokers: node processes, their remembered state, readiness, stop/kill/pause/restart.

A broker is a set of node processes started in their own session (so they outlive ``kbench broker up``)
whose state — pids, ports, data and log paths, command lines — is written to
``<state_dir>/brokers/<name>/state.json``, so ``status``/``logs``/``down`` work from another shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench._paths import state_dir
from bench.errors import BrokerStartError, BrokerUnreachableError, ConfigError, PortInUseError

__all__ = ["BrokerHandle", "BrokerState", "NodeState", "port_free", "probe_cluster", "wait_ready"]


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

    @classmethod
    def load(cls, path: Path) -> BrokerState:
        doc = json.loads(path.read_text())
        doc["nodes"] = [NodeState(**n) for n in doc["nodes"]]
        return cls(**doc)

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

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": int(timeout * 1000),
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


def _alive(node: NodeState) -> bool:
    if node.pid is None:
        return False
    try:
        proc = psutil.Process(node.pid)
        if node.create_time is not None and abs(proc.create_time() - node.create_time) > 1.0:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
               died: Callable[[], str | None] = lambda: None) -> dict[str, object]:
    """Poll metadata until ``expected_brokers`` are listed; ``died()`` returns a reason to give up early."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        reason = died()
        if reason:
            raise BrokerStartError(reason)
        try:
            info = probe_cluster(bootstrap, timeout=min(2.0, max(0.2, deadline - time.monotonic())))
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


class BrokerHandle:
    """A running embedded broker: stop it, or kill/pause/restart single nodes (fault injection)."""

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

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
        raise ConfigError(f"broker {self.name!r} has no node with id {node_id}")

    # -- lifecycle ------------------------------------------------------------------------------
    def spawn(self, index: int) -> None:
        """Start node ``index`` (its command, env and log file are in the state)."""
        node = self.state.nodes[index]
        Path(node.log_file).parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(node.env or {})
        with open(node.log_file, "ab") as log:
            proc = subprocess.Popen(node.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=node.data_dir, env=env, start_new_session=True)
        self._procs[index] = proc
        node.pid = proc.pid
        try:
            node.create_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            node.create_time = None
        self.state.save()

    def dead_node_reason(self) -> str | None:
        for i, node in enumerate(self.state.nodes):
            proc = self._procs.get(i)
            code = proc.poll() if proc is not None else None
            if code is not None or not _alive(node):
                return (f"{self.kind} node {node.node_id} exited during start-up"
                        f"{f' (exit code {code})' if code is not None else ''}; last log lines "
                        f"({node.log_file}):\n{tail(node.log_file, 25)}")
        return None

    def wait_ready(self, timeout: float = 90.0) -> dict[str, object]:
        return wait_ready(self.bootstrap, len(self.state.nodes), timeout, self.dead_node_reason)

    def alive_nodes(self) -> list[int]:
        return [n.node_id for n in self.state.nodes if _alive(n)]

    def is_alive(self) -> bool:
        return bool(self.state.nodes) and all(_alive(n) for n in self.state.nodes)

    def signal_node(self, index: int, sig: int) -> None:
        node = self.state.nodes[index]
        if node.pid is not None and _alive(node):
            os.kill(node.pid, sig)

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash, no clean shutdown) and reap it."""
        self.signal_node(index, signal.SIGKILL)
        self._reap(index, 10.0)

    def pause_node(self, index: int) -> None:
        self.signal_node(index, signal.SIGSTOP)

    def resume_node(self, index: int) -> None:
        self.signal_node(index, signal.SIGCONT)

    def stop_node(self, index: int, timeout: float = 20.0) -> None:
        """SIGTERM (clean shutdown), then SIGKILL after ``timeout`` seconds."""
        node = self.state.nodes[index]
        if not _alive(node):
            return
        self.signal_node(index, signal.SIGCONT)
        self.signal_node(index, signal.SIGTERM)
        if not self._reap(index, timeout):
            self.signal_node(index, signal.SIGKILL)
            self._reap(index, 10.0)

    def restart_node(self, index: int, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again with its data intact, and wait until it is registered."""
        if _alive(self.state.nodes[index]):
            self.stop_node(index)
        self.spawn(index)
        self.wait_ready(timeout)

    def _reap(self, index: int, timeout: float) -> bool:
        node = self.state.nodes[index]
        proc = self._procs.pop(index, None)
        deadline = time.monotonic() + timeout
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._procs[index] = proc
                return False
            return True
        while time.monotonic() < deadline:
            if not _alive(node):
                return True
            time.sleep(0.1)
        return False

    def stop(self, *, keep_data: bool = False, timeout: float = 20.0) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and remove the broker's directory unless ``keep_data``."""
        for i in range(len(self.state.nodes)):
            self.stop_node(i, timeout)
        base = Path(self.state.base_dir)
        if keep_data:
            with contextlib.suppress(FileNotFoundError):
                (base / "state.json").unlink()
        else:
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
