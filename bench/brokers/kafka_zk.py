"""Apache Kafka in ZooKeeper mode (2.8-3.9, default 3.9.2): 1 or 3 brokers on one ZooKeeper.

ZooKeeper is the ZooKeeper jar Kafka itself depends on (3.8.4 for Kafka 3.9.2), run from the same cached
classpath (``org.apache.zookeeper.server.ZooKeeperServerMain``); it is an *auxiliary* process of the
broker: started first and waited for (``ruok`` -> ``imok``), stopped last, not a fault target.
Client port of broker i is ``port + i - 1``; ZooKeeper listens on ``port + 1000``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from pathlib import Path

from bench.brokers.artifacts import check_kafka_version, kafka_lib_dir
from bench.brokers.base import BrokerState, NodeState, probe_cluster, tail
from bench.brokers.kafka import HOUSEKEEPING, checked_java, jvm_command, log_properties
from bench.brokers.process import ProcessBroker, ProcessKind, alive
from bench.brokers.service import FetchRequest, Prepared, StartRequest
from bench.errors import BrokerError, BrokerStartError, ConfigError

__all__ = ["DEFAULT_ZK_VERSION", "ZK_OFFSET", "KafkaZk", "zk_ok"]

DEFAULT_ZK_VERSION = "3.9.2"
ZK_OFFSET = 1000
# A killed broker's ephemeral registration lives until its ZooKeeper session expires; a short session
# lets a restarted broker register again within seconds (ZooKeeper allows 2-20 ticks of 500 ms).
ZK_TICK_MS = 500
ZK_SESSION_MS = 6000


def _zoo_cfg(data: Path, port: int) -> str:
    return "".join(f"{k}={v}\n" for k, v in {
        "tickTime": ZK_TICK_MS, "initLimit": 10, "syncLimit": 5, "dataDir": data,
        "clientPort": port, "clientPortAddress": "127.0.0.1", "maxClientCnxns": 0,
        "admin.enableServer": "false", "4lw.commands.whitelist": "ruok,srvr,stat",
    }.items())


def _server_properties(broker_id: int, nodes: int, port: int, zk_port: int, data: Path,
                       overrides: Mapping[str, str], bind: str, advertise: str) -> str:
    props: dict[str, str] = {
        "broker.id": str(broker_id),
        "zookeeper.connect": f"127.0.0.1:{zk_port}",
        "zookeeper.session.timeout.ms": str(ZK_SESSION_MS),
        "listeners": f"PLAINTEXT://{bind}:{port + broker_id - 1}",
        "advertised.listeners": f"PLAINTEXT://{advertise}:{port + broker_id - 1}",
        **log_properties(data, nodes),
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        **HOUSEKEEPING,
    }
    props.update(overrides)
    return "".join(f"{k}={v}\n" for k, v in props.items())


def zk_ok(port: int, timeout: float = 1.0) -> bool:
    """True when ZooKeeper on 127.0.0.1:``port`` answers the ``ruok`` four-letter word with ``imok``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"
    except OSError:
        return False


class KafkaZkBroker(ProcessBroker):
    """A ZooKeeper-mode cluster. A broker restarted right after a kill may find its old registration
    (``/brokers/ids/N``) still held by the dead session, and exit ("node already exists"); it is started
    again until it registers. Until then the other brokers' metadata may still list the dead registration,
    so readiness is asked of the restarted broker's own listener (:meth:`wait_node`), which serves only
    after registering."""

    def restart_node(self, index: int, timeout: float = 90.0) -> None:
        node = self.state.nodes[index]
        deadline = time.monotonic() + timeout
        if alive(node):
            self.stop_node(index)
        self._wait_deregistered(node, min(deadline, time.monotonic() + ZK_SESSION_MS / 1000 + 4))
        while True:
            self.spawn(index)
            try:
                self.wait_node(node, max(1.0, deadline - time.monotonic()))
                return
            except BrokerStartError as exc:
                taken = "NodeExists" in str(exc) or "already exists" in str(exc)
                if not taken or time.monotonic() > deadline - 2:
                    raise
                time.sleep(1.0)

    def _wait_deregistered(self, node: NodeState, until: float) -> None:
        """Until the live brokers' metadata stops listing ``node`` (its dead session expired), or ``until``."""
        others = [n for n in self.state.nodes if n is not node and alive(n)]
        if not others:
            return
        bootstrap = ",".join(f"127.0.0.1:{n.port}" for n in others)
        while time.monotonic() < until:
            try:
                brokers = probe_cluster(bootstrap, timeout=2.0)["brokers"]
            except BrokerError:
                brokers = {}
            if isinstance(brokers, dict) and brokers and str(node.node_id) not in brokers:
                return
            time.sleep(0.25)


class KafkaZk(ProcessKind):
    """``kafka-zk``: Apache Kafka 2.8-3.9 in ZooKeeper mode."""

    name = "kafka-zk"
    default_port = 9292
    summary = "Apache Kafka, ZooKeeper mode (2.8-3.9, default 3.9.2) with the ZooKeeper it depends on"

    def ports_needed(self, port: int, nodes: int) -> list[int]:
        return [port + i for i in range(nodes)] + [port + ZK_OFFSET]

    def prepare(self, base: Path, request: StartRequest) -> Prepared:
        if request.options:
            raise ConfigError(f"kafka-zk takes no --option (got {', '.join(request.options)}); use --config")
        if request.binary:
            raise ConfigError("--binary applies to tansu and kfake; Apache Kafka runs from its jars")
        version = check_kafka_version(request.version or DEFAULT_ZK_VERSION, kraft=False)
        java = checked_java(f"Apache Kafka {version}")
        lib = kafka_lib_dir(version, progress=request.progress)
        if not any(lib.glob("zookeeper-[0-9]*.jar")):
            raise BrokerStartError(f"the jars of Apache Kafka {version} in {lib} hold no ZooKeeper jar")
        zk_port = request.port + ZK_OFFSET
        zdir = base / "zookeeper"
        zdir.mkdir(parents=True)
        (zdir / "zoo.cfg").write_text(_zoo_cfg(zdir / "data", zk_port))
        zk_cmd = [*jvm_command(java, lib, zdir, request.nodes, heap="256m"),
                  "org.apache.zookeeper.server.ZooKeeperServerMain", str(zdir / "zoo.cfg")]
        zk = NodeState(node_id=0, port=zk_port, cmd=zk_cmd, data_dir=str(zdir), log_file=str(zdir / "zookeeper.log"),
                       role="zookeeper")
        nodes: list[NodeState] = []
        for i in range(request.nodes):
            ndir = base / f"node-{i + 1}"
            ndir.mkdir(parents=True)
            (ndir / "server.properties").write_text(_server_properties(
                i + 1, request.nodes, request.port, zk_port, ndir, request.configs, request.bind_host,
                request.advertise))
            nodes.append(NodeState(
                node_id=i + 1, port=request.port + i, data_dir=str(ndir), log_file=str(ndir / "server.log"),
                cmd=[*jvm_command(java, lib, ndir, request.nodes), "kafka.Kafka", str(ndir / "server.properties")]))
        return Prepared(version=version, nodes=nodes, aux=[zk])

    def wait_aux(self, node: NodeState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if zk_ok(node.port):
                return
            if not alive(node):
                raise BrokerStartError(f"ZooKeeper exited during start-up; last log lines ({node.log_file}):\n"
                                       f"{tail(node.log_file, 25)}")
            time.sleep(0.1)
        raise BrokerStartError(f"ZooKeeper on 127.0.0.1:{node.port} did not answer 'ruok' within {timeout:.0f} s")

    def service(self, state: BrokerState) -> ProcessBroker:
        return KafkaZkBroker(state)

    def fetch(self, request: FetchRequest) -> str:
        version = check_kafka_version(request.version or DEFAULT_ZK_VERSION, kraft=False)
        lib = kafka_lib_dir(version, progress=request.progress)
        zk = sorted(p.name for p in lib.glob("zookeeper-[0-9]*.jar"))
        return f"Apache Kafka {version} jars ({', '.join(zk) or 'no ZooKeeper jar!'}) in {lib}"
