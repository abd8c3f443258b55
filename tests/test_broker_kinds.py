"""The broker kinds behind the Service protocol: kafka-zk, kafka at other versions, kfake.

Integration tests start real brokers through the real CLI (``kbench broker up``), run a consumer-group
round trip, stop them with ``kbench broker down`` and check that no process is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.brokers import KINDS, RUNTIMES, Service, get_broker, kind_names, start_broker
from bench.brokers.service import NodeLog
from tests.conftest import run_kbench


def _bootstrap_line(stdout: str) -> str:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("bootstrap: ")]
    assert len(lines) == 1, stdout
    return lines[0].split(": ", 1)[1]


def group_round_trip(bootstrap: str, n: int = 50, partitions: int = 3) -> None:
    """Produce ``n`` records, read them back through a subscribed consumer group, commit, and check the
    group's committed offsets cover every record."""
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(n):
        p.produce(topic, f"m{i}".encode(), key=str(i).encode())
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 10000})
    try:
        c.subscribe([topic])
        got: set[bytes] = set()
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.add(m.value())
        assert got == {f"m{i}".encode() for i in range(n)}
        c.commit(asynchronous=False)
        committed = c.committed(c.assignment(), timeout=10)
        assert sum(tp.offset for tp in committed) == n, committed
    finally:
        c.close()


def _pids(name: str) -> list[int]:
    h = get_broker(name)
    assert h is not None
    return [n.pid for n in [*h.state.aux, *h.nodes] if n.pid]


def _up_round_trip_down(name: str, *args: str, timeout: float = 300) -> str:
    """``broker up`` -> group round trip -> ``broker down``; returns the up output (with the ready time)."""
    up = run_kbench("broker", "up", *args, "--name", name, "--port", "0", timeout=timeout)
    assert up.returncode == 0, up.stdout + up.stderr
    pids: list[int] = []
    try:
        pids = _pids(name)
        group_round_trip(_bootstrap_line(up.stdout))
    finally:
        down = run_kbench("broker", "down", name)
    assert down.returncode == 0, down.stderr
    time.sleep(0.2)
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left behind: {left}"
    assert get_broker(name) is None
    return up.stdout


# -- registry and error paths (no broker) -----------------------------------------------------------
def test_registry_has_every_kind_and_each_satisfies_the_protocol() -> None:
    assert {"kafka", "kafka-zk", "tansu", "kfake"} <= set(kind_names())
    assert "process" in RUNTIMES
    for kind in KINDS.values():
        assert kind.name and kind.default_port and kind.summary
        ports = kind.ports_needed(20000, 3)
        assert len(set(ports)) == len(ports) and ports[0] == 20000


@pytest.mark.parametrize(("args", "text"), [
    (("kafka", "--version", "2.8.2"), "predates production KRaft"),
    (("kafka", "--version", "4.3"), "expected an Apache Kafka release number"),
    (("kafka-zk", "--version", "4.0.0"), "ZooKeeper mode was removed in 4.0"),
    (("kafka-zk", "--version", "2.7.0"), "kafka-zk runs Apache Kafka 2.8-3.9"),
    (("kafka-zk", "--nodes", "2"), "--nodes must be 1 or 3"),
    (("kfake", "--option", "bogus=1"), "unknown --option bogus"),
    (("kfake", "--version", "3.5.0"), "as-version"),
    (("kafka", "--option", "x=1"), "--option security=MODE (got x)"),
    (("tansu", "--config", "a=b"), "tansu takes no --config"),
])
def test_bad_options_exit_2_naming_them(tmp_path: Path, args: tuple[str, ...], text: str) -> None:
    proc = run_kbench("broker", "up", *args, "--port", "0", env={"KBENCH_HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert text in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("state.json"))


def test_kafka_version_that_does_not_exist(tmp_path: Path) -> None:
    """Maven is asked (Maven Central): 3.7.9 was never released."""
    env = {"KBENCH_HOME": str(tmp_path / "h"), "KBENCH_CACHE": str(tmp_path / "c")}
    proc = run_kbench("broker", "fetch", "kafka", "--version", "3.7.9", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Apache Kafka 3.7.9 does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "c" / "kafka" / "3.7.9" / "lib").exists()


def test_kfake_without_go_names_what_to_install(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "KBENCH_GO": "", "KBENCH_HOME": str(tmp_path / "h"),
           "KBENCH_CACHE": str(tmp_path / "c")}
    for cmd in (("broker", "up", "kfake", "--port", "0"), ("broker", "fetch", "kfake")):
        proc = run_kbench(*cmd, env=env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Go not found" in proc.stderr and "go.dev" in proc.stderr and "Traceback" not in proc.stderr


def test_kfake_build_is_reused_and_keyed_by_its_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.brokers import kfake

    first = kfake.build_kfake()
    t0 = time.monotonic()
    assert kfake.build_kfake() == first and time.monotonic() - t0 < 5.0   # reused, not rebuilt
    assert first.is_file() and os.access(first, os.X_OK)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("main.go", "go.mod", "go.sum"):
        shutil.copy(kfake._SOURCE / name, src / name)
    monkeypatch.setattr(kfake, "_SOURCE", src)
    same = kfake._inputs_hash("go1.26.8")
    (src / "main.go").write_text((src / "main.go").read_text() + "\n// changed\n")
    assert kfake._inputs_hash("go1.26.8") != same
    assert kfake._inputs_hash("go1.27.0") != kfake._inputs_hash("go1.26.8")


def test_kfake_bad_as_version_is_a_start_error(tmp_path: Path) -> None:
    proc = run_kbench("broker", "up", "kfake", "--port", "0", "--option", "as-version=9.9",
                      env={"KBENCH_HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unknown Kafka version" in proc.stderr and "Traceback" not in proc.stderr


# -- real brokers ------------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize(("name", "args", "expected"), [
    pytest.param("it-kfake", ("kfake", "--nodes", "3"), ("3 broker(s)",), id="kfake"),
    pytest.param("it-kafka-zk", ("kafka-zk",), ("kafka-zk 3.9.2 up", "zookeeper 0"), id="kafka-zk"),
    pytest.param("it-kafka-372", ("kafka", "--version", "3.7.2"), ("kafka 3.7.2 up",), id="kafka-3.7.2"),
    pytest.param("it-kafka-440", ("kafka", "--version", "4.4.0"), ("kafka 4.4.0 up",), id="kafka-4.4.0",
                 marks=pytest.mark.slow),
    # the oldest release: 2.8.2 (ZooKeeper 3.5.9) runs on Java 17 from the same code path
    pytest.param("it-kafka-zk-282", ("kafka-zk", "--version", "2.8.2"), ("kafka-zk 2.8.2 up",),
                 id="kafka-zk-2.8.2", marks=pytest.mark.slow),
])
def test_up_group_round_trip_down(name: str, args: tuple[str, ...], expected: tuple[str, ...]) -> None:
    out = _up_round_trip_down(name, *args)
    for text in expected:
        assert text in out


@pytest.mark.integration
def test_kfake_options_and_single_broker_control(tmp_path: Path) -> None:
    """Seed topics, the as-version cap (ApiVersions), and removing/re-adding one broker of three."""
    from bench.brokers.kfake import KfakeBroker
    from bench.kafka.protocol import api_versions

    h = start_broker("kfake", nodes=3, port=0, name="it-kfake-opts",
                     options={"seed-topics": "seeded:4", "as-version": "2.8"})
    try:
        assert isinstance(h, KfakeBroker) and isinstance(h, Service)
        admin = AdminClient({"bootstrap.servers": h.bootstrap})
        md = admin.list_topics(timeout=10)
        assert len(md.topics["seeded"].partitions) == 4 and sorted(md.brokers) == [0, 1, 2]
        av = api_versions(h.bootstrap.split(",")[0], timeout=5.0)
        assert not av.supports(68)          # ConsumerGroupHeartbeat (KIP-848) is not in Kafka 2.8
        assert av.supports(0) and av.apis[0].max_version == 9   # Produce v9 is 2.8's maximum
        h.remove_broker(2)
        assert sorted(admin.list_topics(timeout=10).brokers) == [0, 1]
        port = int(h.bootstrap.split(",")[2].rsplit(":", 1)[1])
        h.add_broker(2, port)
        assert sorted(admin.list_topics(timeout=10).brokers) == [0, 1, 2]
        logs = h.logs(5)
        assert logs and isinstance(logs[0], NodeLog)
    finally:
        h.stop()
    assert h.alive_nodes() == []


@pytest.mark.integration
def test_kfake_restart_when_its_control_port_was_taken_meanwhile() -> None:
    """Ports are checked free only at the first start: a listener that took the control port while the
    cluster was down (seen: another embedded broker's) must not make the restart fail (O8 on kfake)."""
    import socket

    from bench.brokers.kfake import KfakeBroker

    h = start_broker("kfake", nodes=1, port=0, name="it-kfake-ctl")
    squatter = socket.socket()
    try:
        assert isinstance(h, KfakeBroker)
        old = int(h.state.nodes[0].extra["control-port"])
        h.stop_node(0)
        squatter.bind(("127.0.0.1", old))
        squatter.listen()
        h.restart_node(0, timeout=30)
        new = int(h.state.nodes[0].extra["control-port"])
        assert new != old and h.alive_nodes() == [0]
        assert f"127.0.0.1:{new}" in h.state.nodes[0].cmd
        h.shuffle_leaders()                                  # the control API answers on its new port
        AdminClient({"bootstrap.servers": h.bootstrap}).list_topics(timeout=10)   # data port unchanged
    finally:
        squatter.close()
        h.stop()
    assert h.alive_nodes() == []


@pytest.mark.integration
@pytest.mark.slow
def test_kafka_zk_three_brokers_kill_and_restart_a_node() -> None:
    """Three brokers on one ZooKeeper; a killed broker comes back (its old ZooKeeper session may still
    hold /brokers/ids/N: the restart retries until it registers) and the cluster serves a group."""
    h = start_broker("kafka-zk", nodes=3, port=0, name="it-kzk3", timeout=180)
    try:
        assert [n.node_id for n in h.nodes] == [1, 2, 3] and [a.role for a in h.state.aux] == ["zookeeper"]
        state = json.loads((Path(h.state.base_dir) / "state.json").read_text())
        assert state["runtime"] == "process" and state["aux"][0]["role"] == "zookeeper"
        h.kill_node(1)
        assert h.alive_nodes() == [1, 3]
        h.restart_node(1, timeout=120)
        assert h.alive_nodes() == [1, 2, 3]
        group_round_trip(h.bootstrap, 30)
    finally:
        h.stop()
    assert h.alive_nodes() == [] and not h.is_alive()


@pytest.mark.integration
def test_kfake_data_dir_survives_a_kill_and_restart() -> None:
    """``--option data-dir=auto``: the whole-cluster process is SIGKILLed and restarted with its log."""
    h = start_broker("kfake", port=0, name="it-kfake-persist", options={"data-dir": "auto", "sync": "true"})
    try:
        topic = f"persist-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": h.bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
        p = Producer({"bootstrap.servers": h.bootstrap, "acks": "all"})
        for i in range(10):
            p.produce(topic, b"%d" % i)
        assert p.flush(10) == 0
        h.kill_node(0)
        assert h.alive_nodes() == []
        h.restart_node(0, timeout=30)
        assert h.alive_nodes() == [0]
        md = admin.list_topics(topic, timeout=10)
        assert topic in md.topics and not md.topics[topic].error
        c = Consumer({"bootstrap.servers": h.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        c.close()
        assert got == [b"%d" % i for i in range(10)]
    finally:
        h.stop()
    assert not Path(h.state.base_dir).exists()
