"""Apache Kafka (KRaft) from Maven Central jars, any release 3.3-4.x: 1 node, or a 3-node cluster on loopback.

Every node is combined broker+controller (``process.roles=broker,controller``) with a static quorum
(``controller.quorum.voters``), storage formatted with ``kafka.tools.StorageTool`` before the first start.
Client port of node i is ``port + i``; its controller port is ``port + 1000 + i``. With ``--netns``
(``request.node_hosts``) node i runs in its own network namespace: both listeners bind its own address,
which it advertises, and ``controller.quorum.voters`` lists those addresses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench.brokers.artifacts import check_kafka_version, kafka_lib_dir
from bench.brokers.base import NodeState
from bench.brokers.process import ProcessKind
from bench.brokers.service import FetchRequest, NodeHost, Prepared, StartRequest
from bench.errors import BrokerStartError, ConfigError, JavaError
from bench.faults.netns_plan import exec_argv

__all__ = ["DEFAULT_VERSION", "MIN_JAVA", "KafkaKRaft", "find_java", "java_major", "prepare_kafka"]

DEFAULT_VERSION = "4.3.1"
MIN_JAVA = 17
CONTROLLER_OFFSET = 1000

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def find_java() -> str:
    """Path of the ``java`` to use: ``$JAVA_HOME/bin/java`` if set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise JavaError(f"Java not found: Apache Kafka needs Java {MIN_JAVA}+ ('java' is not on PATH "
                        "and JAVA_HOME is not set). Install a JDK/JRE 17 or newer.")
    return java


def java_major(java: str) -> int:
    """Major version of ``java`` (8 for 1.8.x), parsed from ``java -version``."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaError(f"could not run '{java} -version': {exc}") from exc
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        raise JavaError(f"could not read the Java version from '{java} -version': {out.stderr.strip()[:200]}")
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def log_properties(data: Path, nodes: int) -> dict[str, str]:
    """The broker properties both Kafka modes (KRaft here, ZooKeeper in kafka_zk.py) share: the log
    directory under ``data``, single-partition unreplicated topics by default, and the internal topics
    (offsets, transaction state) replicated over up to 3 of ``nodes``."""
    rf = min(3, nodes)
    return {
        "log.dirs": str(data / "log"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "offsets.topic.replication.factor": str(rf),
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(min(2, rf)),
        "transaction.state.log.num.partitions": "10",
    }


#: housekeeping every second instead of every 5 min / 15 s: retention and compaction become observable
#: within a test's time budget (the conformance suite's R1/R3); negligible cost for benchmarks
HOUSEKEEPING = {"log.retention.check.interval.ms": "1000", "log.cleaner.backoff.ms": "1000"}


def _server_properties(node_id: int, nodes: int, port: int, data: Path, overrides: Mapping[str, str],
                       bind: str = "127.0.0.1", advertise: str = "127.0.0.1",
                       hosts: Sequence[str] = ()) -> str:
    """``server.properties`` of node ``node_id``; ``hosts``: every node's own address (--netns), which then
    replaces ``bind``/``advertise`` and the controllers' 127.0.0.1."""
    controllers = list(hosts) or ["127.0.0.1"] * nodes
    if hosts:
        bind = advertise = hosts[node_id - 1]
    voters = ",".join(f"{i + 1}@{controllers[i]}:{port + CONTROLLER_OFFSET + i}" for i in range(nodes))
    rf = min(3, nodes)
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{bind}:{port + node_id - 1},"
                     f"CONTROLLER://{controllers[node_id - 1]}:{port + CONTROLLER_OFFSET + node_id - 1}",
        "advertised.listeners": f"PLAINTEXT://{advertise}:{port + node_id - 1}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        **log_properties(data, nodes),
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(min(2, rf)),
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        **HOUSEKEEPING,
    }
    props.update(overrides)
    return "".join(f"{k}={v}\n" for k, v in props.items())


def checked_java(what: str) -> str:
    """The ``java`` to run ``what`` with, or a JavaError naming what to install."""
    java = find_java()
    major = java_major(java)
    if major < MIN_JAVA:
        raise JavaError(f"Java {major} found at {java}; {what} needs Java {MIN_JAVA} or newer")
    return java


def jvm_command(java: str, lib: Path, ndir: Path, nodes: int, heap: str | None = None) -> list[str]:
    """``java`` with heap, GC and log4j2 settings and the classpath of ``lib`` (log4j2.properties written)."""
    heap = heap or ("1g" if nodes == 1 else "512m")
    (ndir / "log4j2.properties").write_text(_LOG4J2)
    return [java, f"-Xms{'256m' if nodes == 1 else '192m'}", f"-Xmx{heap}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={ndir / 'log4j2.properties'}", "-cp", str(lib / "*")]


class KafkaKRaft(ProcessKind):
    """``kafka``: Apache Kafka in KRaft mode (combined broker+controller nodes), any release 3.3-4.x."""

    name = "kafka"
    default_port = 9092
    summary = "Apache Kafka, KRaft mode (3.3-4.x, default 4.3.1), jars from Maven Central"
    supports_netns = True

    def ports_needed(self, port: int, nodes: int) -> list[int]:
        return [port + i for i in range(nodes)] + [port + CONTROLLER_OFFSET + i for i in range(nodes)]

    def prepare(self, base: Path, request: StartRequest) -> Prepared:
        unknown = sorted(set(request.options) - {"security"})
        if unknown:
            raise ConfigError(f"kafka takes only --option security=MODE (got {', '.join(unknown)}); use --config")
        if request.binary:
            raise ConfigError("--binary applies to tansu and kfake; Apache Kafka runs from its jars")
        version = check_kafka_version(request.version or DEFAULT_VERSION, kraft=True)
        configs: dict[str, str] = dict(request.configs)
        format_args: tuple[str, ...] = ()
        if request.node_hosts and request.options.get("security"):
            raise ConfigError("--security and --netns cannot be combined yet (the certificates name 127.0.0.1 "
                              "and the advertised host, not the nodes' own addresses)")
        if request.node_hosts and len(request.node_hosts) != request.nodes:
            raise ConfigError(f"--netns: {len(request.node_hosts)} node hosts for {request.nodes} nodes")
        if request.options.get("security"):  # SASL/TLS/ACLs: bench/brokers/security.py
            from bench.brokers.security import plan_security

            plan = plan_security(request.options["security"], base, [request.advertise])
            configs, format_args = {**plan.configs, **request.configs}, plan.format_args
        nodes = prepare_kafka(base, nodes=request.nodes, port=request.port, version=version,
                              configs=configs, progress=request.progress,
                              bind=request.bind_host, advertise=request.advertise, format_args=format_args,
                              hosts=request.node_hosts)
        return Prepared(version=version, nodes=nodes)

    def fetch(self, request: FetchRequest) -> str:
        version = check_kafka_version(request.version or DEFAULT_VERSION, kraft=True)
        lib = kafka_lib_dir(version, progress=request.progress)
        return f"Apache Kafka {version} jars in {lib}"


def prepare_kafka(base: Path, *, nodes: int, port: int, version: str, configs: Mapping[str, str],
                  heap: str | None = None, progress: Callable[[str], None] | None = None,
                  bind: str = "127.0.0.1", advertise: str = "127.0.0.1",
                  format_args: Sequence[str] = (), hosts: Sequence[NodeHost] = ()) -> list[NodeState]:
    """Fetch jars, write configs and format storage for each node; return the nodes ready to spawn.

    ``format_args``: more ``kafka-storage format`` arguments (``--add-scram`` users); ``hosts``: one per
    node with ``--netns`` (its command then runs in the host's namespace, on the host's address)."""
    java = checked_java(f"Apache Kafka {version}")
    lib = kafka_lib_dir(version, progress=progress)
    cluster_id = _cluster_id()
    result: list[NodeState] = []
    for i in range(nodes):
        node_id = i + 1
        ndir = base / f"node-{node_id}"
        ndir.mkdir(parents=True, exist_ok=True)
        props = _server_properties(node_id, nodes, port, ndir, configs, bind, advertise,
                                   [h.address for h in hosts])
        (ndir / "server.properties").write_text(props)
        jvm = jvm_command(java, lib, ndir, nodes, heap)
        fmt = [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(ndir / "server.properties"),
               *format_args]
        proc = subprocess.run(fmt, capture_output=True, text=True, timeout=120, check=False, cwd=ndir)
        if proc.returncode != 0:
            raise BrokerStartError(f"formatting storage of Kafka node {node_id} failed (exit {proc.returncode}):\n"
                                   + "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:]))
        cmd = [*jvm, "kafka.Kafka", str(ndir / "server.properties")]
        result.append(NodeState(
            node_id=node_id, port=port + i, controller_port=port + CONTROLLER_OFFSET + i,
            cmd=exec_argv(hosts[i].namespace, cmd) if hosts else cmd,
            data_dir=str(ndir), log_file=str(ndir / "server.log"), host=hosts[i].address if hosts else None,
        ))
    return result


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as StorageTool random-uuid).

    Like Kafka's ``Uuid.randomUuid`` it never starts with '-': StorageTool's argument parser would read such
    an id as an option ("argument --cluster-id/-t: expected one argument"), which failed 1 start in 64.
    """
    import base64

    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
