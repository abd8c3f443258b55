"""Embedded brokers: real Apache Kafka and Tansu on loopback, and the start-up error paths."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.brokers.kafka import DEFAULT_VERSION
from tests.conftest import run_kbench


def _bootstrap_line(stdout: str) -> str:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("bootstrap: ")]
    assert len(lines) == 1, stdout
    return lines[0].split(": ", 1)[1]


def _round_trip(bootstrap: str, n: int = 20) -> list[bytes]:
    topic = f"rt-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(n):
        p.produce(topic, f"m{i}".encode(), partition=0)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


def _no_traceback(proc: object) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout  # type: ignore[attr-defined]


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["kafka", "tansu"])
def test_cli_up_round_trip_down(kind: str) -> None:
    name = f"cli-{kind}"
    up = run_kbench("broker", "up", kind, "--name", name, "--port", "0")
    assert up.returncode == 0, up.stderr
    bootstrap = _bootstrap_line(up.stdout)
    try:
        status = run_kbench("broker", "status")
        assert name in status.stdout and "1/1" in status.stdout
        assert _round_trip(bootstrap) == [f"m{i}".encode() for i in range(20)]
        logs = run_kbench("broker", "logs", name, "-n", "5")
        assert logs.returncode == 0 and "node 1" in logs.stdout
    finally:
        down = run_kbench("broker", "down", name)
    assert down.returncode == 0, down.stderr
    # this broker is gone (the session's shared test broker may still be listed, depending on test order)
    status_after = run_kbench("broker", "status").stdout
    assert name not in status_after, status_after


@pytest.mark.integration
@pytest.mark.slow
def test_kafka_three_nodes_replication_factor_three() -> None:
    up = run_kbench("broker", "up", "kafka", "--nodes", "3", "--name", "cluster3", "--port", "0")
    assert up.returncode == 0, up.stderr
    bootstrap = _bootstrap_line(up.stdout)
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        md = admin.list_topics(timeout=10)
        assert sorted(md.brokers) == [1, 2, 3]
        admin.create_topics([NewTopic("rf3", 3, 3)])["rf3"].result(30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            parts = admin.list_topics("rf3", timeout=10).topics["rf3"].partitions
            if parts and all(len(p.isrs) == 3 for p in parts.values()):
                break
            time.sleep(0.2)
        assert all(sorted(p.replicas) == [1, 2, 3] for p in parts.values())
        assert all(len(p.isrs) == 3 for p in parts.values())
        assert _round_trip(bootstrap, 5) == [f"m{i}".encode() for i in range(5)]
    finally:
        assert run_kbench("broker", "down", "cluster3").returncode == 0


@pytest.mark.integration
def test_embedded_fixture_answers(kafka_bootstrap: str) -> None:
    assert _round_trip(kafka_bootstrap, 3) == [b"m0", b"m1", b"m2"]


# -- error paths ----------------------------------------------------------------------------------
def _path_with(tmp_path: Path, **tools: str) -> str:
    """A PATH holding only the named tools (name -> target or a script body)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, target in tools.items():
        dst = bindir / name
        if target.startswith("#!"):
            dst.write_text(target)
            dst.chmod(0o755)
        else:
            dst.symlink_to(target)
    return str(bindir)


def test_java_missing(tmp_path: Path) -> None:
    env = {"PATH": _path_with(tmp_path), "JAVA_HOME": "", "KBENCH_HOME": str(tmp_path / "home")}
    proc = run_kbench("broker", "up", "kafka", "--port", "0", env=env)
    assert proc.returncode == 2
    assert "Java not found" in proc.stderr
    _no_traceback(proc)


def test_java_too_old(tmp_path: Path) -> None:
    fake = '#!/bin/sh\necho \'openjdk version "11.0.21" 2023-10-17\' >&2\n'
    env = {"PATH": _path_with(tmp_path, java=fake), "JAVA_HOME": "", "KBENCH_HOME": str(tmp_path / "h")}
    proc = run_kbench("broker", "up", "kafka", "--port", "0", env=env)
    assert proc.returncode == 2
    assert "Java 11" in proc.stderr and "17" in proc.stderr
    _no_traceback(proc)


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_kbench("broker", "up", "tansu", "--port", str(port), env={"KBENCH_HOME": str(tmp_path)})
    assert proc.returncode == 2
    assert f"{port}" in proc.stderr and "already in use" in proc.stderr
    _no_traceback(proc)


def test_jar_download_failure_names_artifact(tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java, "these tests need Java"
    env = {"PATH": _path_with(tmp_path, java=java), "KBENCH_CACHE": str(tmp_path / "cache"),
           "KBENCH_MAVEN_REPO": f"file://{tmp_path}/no-such-repo", "KBENCH_HOME": str(tmp_path / "h")}
    proc = run_kbench("broker", "fetch", "kafka", env=env)
    assert proc.returncode == 2
    assert "could not download" in proc.stderr and ":" in proc.stderr
    assert "no-such-repo" in proc.stderr
    _no_traceback(proc)


def test_no_maven_no_repo_explains(tmp_path: Path) -> None:
    env = {"PATH": _path_with(tmp_path, java=shutil.which("java") or "/bin/false"),
           "KBENCH_CACHE": str(tmp_path / "cache"), "KBENCH_MAVEN_REPO": "", "KBENCH_HOME": str(tmp_path / "h")}
    proc = run_kbench("broker", "fetch", "kafka", env=env)
    assert proc.returncode == 2 and "KBENCH_MAVEN_REPO" in proc.stderr
    _no_traceback(proc)


@pytest.mark.integration
def test_direct_download_without_maven(tmp_path: Path, kafka_bootstrap: str) -> None:
    """The no-Maven path: jars fetched from a Maven-layout repository and checksummed (file:// here)."""
    from bench._paths import cache_dir
    from bench.brokers.artifacts import _LOCK_DIR

    lib = cache_dir() / "kafka" / DEFAULT_VERSION / "lib"
    assert (lib / ".complete").exists(), "the session broker should have cached the jars"
    repo = tmp_path / "repo"
    for line in (_LOCK_DIR / f"kafka-{DEFAULT_VERSION}.lock").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        group, artifact, ver = line.split()[0].split(":")
        dst = repo / group.replace(".", "/") / artifact / ver
        dst.mkdir(parents=True)
        shutil.copy(lib / f"{artifact}-{ver}.jar", dst)
    env = {"PATH": _path_with(tmp_path, java=shutil.which("java") or ""), "KBENCH_CACHE": str(tmp_path / "c"),
           "KBENCH_MAVEN_REPO": f"file://{repo}", "KBENCH_HOME": str(tmp_path / "h")}
    proc = run_kbench("broker", "fetch", "kafka", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "c" / "kafka" / DEFAULT_VERSION / "lib").glob("*.jar"))) >= 40
    # a corrupted jar is refused by its checksum
    victim = next(repo.rglob("kafka-clients-*.jar"))
    victim.write_bytes(b"not a jar")
    env["KBENCH_CACHE"] = str(tmp_path / "c2")
    bad = run_kbench("broker", "fetch", "kafka", env=env)
    assert bad.returncode == 2 and "checksum mismatch" in bad.stderr and "kafka-clients" in bad.stderr


def test_broker_exiting_during_startup_shows_log(tmp_path: Path) -> None:
    fake = ("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'tansu 9.9.9'; exit 0; fi\n"
            "echo 'fatal: storage engine exploded on purpose' ; exit 3\n")
    binary = tmp_path / "tansu"
    binary.write_text(fake)
    binary.chmod(0o755)
    proc = run_kbench("broker", "up", "tansu", "--port", "0", "--binary", str(binary),
                      env={"KBENCH_HOME": str(tmp_path / "h")})
    assert proc.returncode == 2
    assert "exited during start-up" in proc.stderr and "exploded on purpose" in proc.stderr
    _no_traceback(proc)
    assert not list((tmp_path / "h").rglob("state.json")), "a failed start must not be remembered as running"


def test_bad_kafka_config_fails_cleanly(tmp_path: Path) -> None:
    proc = run_kbench("broker", "up", "kafka", "--port", "0", "--config", "node.id=not-a-number",
                      env={"KBENCH_HOME": str(tmp_path / "h")})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "node 1" in proc.stderr or "node.id" in proc.stderr
    _no_traceback(proc)


def test_tansu_three_nodes_refused(tmp_path: Path) -> None:
    proc = run_kbench("broker", "up", "tansu", "--nodes", "3", env={"KBENCH_HOME": str(tmp_path)})
    assert proc.returncode == 2 and "single node" in proc.stderr


def test_down_unknown_name(tmp_path: Path) -> None:
    proc = run_kbench("broker", "down", "nope", env={"KBENCH_HOME": str(tmp_path)})
    assert proc.returncode == 2 and "no embedded broker named 'nope'" in proc.stderr


def test_state_survives_other_process(tmp_path: Path) -> None:
    """status/down from another process find a broker started by this one."""
    from bench.brokers import get_broker, start_broker

    os.environ["KBENCH_HOME"], old = str(tmp_path), os.environ["KBENCH_HOME"]
    try:
        h = start_broker("tansu", port=0, name="shared")
        proc = run_kbench("broker", "down", "shared", env={"KBENCH_HOME": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        assert get_broker("shared") is None
        assert h.alive_nodes() == []
    finally:
        os.environ["KBENCH_HOME"] = old


def test_cluster_id_never_starts_with_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """StorageTool reads a cluster id starting with '-' as an option; such ids must be redrawn (a CI failure)."""
    from bench.brokers import kafka

    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    cid = kafka._cluster_id()
    assert not cid.startswith("-") and len(cid) == 22
    assert cid == "AQEBAQEBAQEBAQEBAQEBAQ"


def test_tansu_logs_warnings_only_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At RUST_LOG=info Tansu writes every request's span enter/exit: 2.7 GB in two minutes of client checks
    (a CI run's disk filled up); kbench starts it at warn unless RUST_LOG says otherwise."""
    from bench.brokers.tansu import find_tansu, prepare_tansu

    monkeypatch.delenv("RUST_LOG", raising=False)
    nodes, _version = prepare_tansu(tmp_path, nodes=1, port=19092, binary=find_tansu())
    assert nodes[0].env == {"RUST_LOG": "warn"}
    monkeypatch.setenv("RUST_LOG", "debug")
    nodes, _version = prepare_tansu(tmp_path / "b", nodes=1, port=19092, binary=find_tansu())
    assert nodes[0].env == {"RUST_LOG": "debug"}
