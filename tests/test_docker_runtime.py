"""The docker runtime against a real engine: a private dockerd started here, images built locally.

What runs: Debian's docker.io (installed with apt-get if dockerd is missing), a private ``dockerd`` under
/tmp (host networking, no bridge, no iptables), the ``kbench/kfake`` and ``kbench/host-jre`` images built
from this checkout, brokers started through the real ``kbench broker`` CLI, clients from confluent-kafka.
Faults go through the Service methods the ``faults:`` injector calls (kill_node, pause_node, ...).
Afterwards nothing may be left: no container, no dockerd/containerd process, no mount, no docker0.

Skipped only when not root (dockerd needs it). With ``CI=true`` a failure to install or start the engine
FAILS instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.brokers.docker_engine import PrivateEngine, install_docker_io
from bench.brokers.service import Service

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a private dockerd needs root")

IN_CI = os.environ.get("CI", "").lower() == "true"
Cli = Callable[..., tuple[int, str, str]]


def _say(msg: str) -> None:
    """A measurement line on the real stderr (the CLI tests capture stdout/stderr)."""
    print(msg, file=sys.__stderr__, flush=True)


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true: the Docker engine must work here: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def engine() -> Iterator[PrivateEngine]:
    """A private dockerd for this module; DOCKER_HOST points at it. Stopped and checked clean after."""
    from bench.errors import BrokerError

    try:
        import docker  # noqa: F401
    except ImportError:
        _unavailable("the docker SDK is not installed (pip install 'kbench[docker]')")
    if shutil.which("dockerd") is None:
        try:
            install_docker_io()
        except BrokerError as exc:
            _unavailable(str(exc))
    eng = PrivateEngine(Path(tempfile.mkdtemp(prefix="kbd-", dir="/tmp")))
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    try:
        seconds = eng.start()
    except BrokerError as exc:
        eng.stop()
        _unavailable(f"dockerd did not start: {exc}")
    _say(f"\nprivate dockerd answered in {seconds:.2f} s")
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = eng.host
    try:
        yield eng
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        eng.stop()
    assert eng.leftovers() == []
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward


@pytest.fixture()
def cli(engine: PrivateEngine, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """Run ``kbench`` in-process; returns (exit code, stdout, stderr)."""
    from bench.cli.main import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run


def _round_trip(bootstrap: str, n: int = 200, *, group: str | None = None) -> list[bytes]:
    """Produce ``n`` records (acks=all) to a fresh topic and read them back through a consumer group."""
    from confluent_kafka import Producer

    topic = f"docker-rt-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 20000})
    sent = [f"r{i}".encode() for i in range(n)]
    for v in sent:
        producer.produce(topic, v)
    assert producer.flush(20) == 0
    return _consume(bootstrap, topic, n, group or f"g-{topic}")


def _consume(bootstrap: str, topic: str, n: int, group: str, timeout: float = 30.0) -> list[bytes]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(bytes(msg.value() or b""))
    finally:
        consumer.close()
    return got


def _containers(name: str) -> list[str]:
    from bench.brokers.docker_engine import docker_client
    from bench.brokers.docker_service import wait_containers_gone

    return wait_containers_gone(docker_client(), name, timeout=0.1)


def _up(cli: Cli, kind: str, name: str, *flags: str, timed: str = "") -> Service:
    """``kbench broker up KIND --runtime docker --port 0 --name NAME FLAGS...`` exits 0; the broker it started.
    ``timed``: say how long the start took, under this label."""
    from bench.brokers import get_broker

    t0 = time.monotonic()
    code, _, err = cli("broker", "up", kind, "--runtime", "docker", "--port", "0", "--name", name, *flags)
    assert code == 0, err
    if timed:
        _say(f"{timed} up in {time.monotonic() - t0:.1f} s (image build included)")
    broker = get_broker(name)
    assert broker is not None and broker.state.runtime == "docker"
    return broker


def _faults(broker: object, bootstrap: str) -> None:
    """kill + restart and pause + resume through the Service methods the faults: injector calls."""
    from confluent_kafka import Producer

    from bench.brokers.docker import DockerBroker
    from bench.brokers.service import Service

    assert isinstance(broker, DockerBroker) and isinstance(broker, Service)
    node = broker.nodes[0]
    broker.kill_node(0)
    assert broker.alive_nodes() == [] and not broker.is_alive()
    assert broker._status(node) == "exited"
    t0 = time.monotonic()
    broker.restart_node(0, timeout=90)
    _say(f"{broker.kind} restarted in {time.monotonic() - t0:.1f} s")
    assert broker.alive_nodes() == [node.node_id]
    broker.pause_node(0)
    try:
        assert broker._status(node) == "paused" and broker.alive_nodes() == [node.node_id]
        frozen = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 1500, "acks": "all"})
        errors: list[object] = []
        frozen.produce(f"frozen-{uuid.uuid4().hex[:6]}", b"x", on_delivery=lambda e, _m: errors.append(e))
        frozen.flush(5)
        assert len(errors) == 1 and errors[0] is not None, "a paused broker acknowledged a record"
    finally:
        broker.resume_node(0)
    assert broker._status(node) == "running"


@pytest.mark.integration
@needs_root
def test_kfake_up_round_trip_faults_down(cli: Cli) -> None:
    from bench.brokers import get_broker

    run = cli
    name = f"dk-kfake-{os.getpid()}"
    broker = _up(cli, "kfake", name, "--nodes", "3", timed="kfake (3 brokers, one container)")
    assert len(broker.bootstrap.split(",")) == 3 and len(_containers(name)) == 1
    assert len(_round_trip(broker.bootstrap)) == 200
    _faults(broker, broker.bootstrap)
    assert len(_round_trip(broker.bootstrap)) == 200           # serves again after kill/restart and pause
    code, out, _ = run("broker", "status")
    assert code == 0 and name in out and "docker" in out
    code, out, _ = run("broker", "logs", name, "-n", "5")
    assert code == 0 and "ready" in out
    code, _, err = run("broker", "down", name)
    assert code == 0, err
    assert _containers(name) == [] and get_broker(name) is None


@pytest.mark.integration
@needs_root
def test_kafka_in_host_jre_keeps_data_across_kill(cli: Cli) -> None:
    name = f"dk-kafka-{os.getpid()}"
    broker = _up(cli, "kafka", name, timed="Apache Kafka in a container")
    assert len(_round_trip(broker.bootstrap, group="before")) == 200
    from confluent_kafka import Producer

    topic = f"durable-{uuid.uuid4().hex[:6]}"
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(100):
        p.produce(topic, f"d{i}".encode())
    assert p.flush(20) == 0
    _faults(broker, broker.bootstrap)
    assert len(_consume(broker.bootstrap, topic, 100, "after")) == 100    # the log survived the SIGKILL
    code, _, err = cli("broker", "down", name)
    assert code == 0, err
    assert _containers(name) == []


@pytest.mark.integration
@needs_root
def test_missing_image_is_exit_2_without_a_pull(cli: Cli, engine: PrivateEngine) -> None:
    run = cli
    code, _, err = run("broker", "up", "redpanda", "--runtime", "docker", "--port", "0", "--name", "dk-rp")
    assert code == 2 and "never pulls" in err and "Traceback" not in err
    code, _, err = run("broker", "up", "kfake", "--runtime", "docker", "--image", "kbench/absent:1",
                       "--port", "0", "--name", "dk-absent")
    assert code == 2 and "kbench/absent:1" in err
    code, _, err = run("broker", "up", "kfake", "--image", "kbench/absent:1", "--port", "0")
    assert code == 2 and "--runtime docker" in err
    assert _containers("dk-rp") == [] and _containers("dk-absent") == []
    from bench.brokers import get_broker

    assert get_broker("dk-rp") is None and get_broker("dk-absent") is None
    log = (engine.root / "dockerd.log").read_text()
    assert "registry-1.docker.io" not in log and "pull" not in log.lower()


def test_image_pins_match_docker_compose() -> None:
    """The image kinds run what docker-compose.yml pins (one place to bump: both, in one commit)."""
    import yaml

    from bench.brokers.docker import IMAGE_KINDS

    compose = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text())
    pinned = {svc["image"] for svc in compose["services"].values()}
    mine = {k.image for k in IMAGE_KINDS.values() if k.build is None}
    assert mine == pinned
    for kind in IMAGE_KINDS.values():
        if kind.build is None:
            assert kind.image.endswith(kind.version)


@pytest.mark.integration
@needs_root
def test_image_kind_and_image_flag_run_a_local_image(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The image-kind path (an image's own entrypoint, templated ports) and --image, on the kfake image."""
    from bench.brokers import docker as rt
    from bench.brokers.docker_engine import docker_client

    tag = rt.kfake_image(docker_client()).tag
    kind = rt.ImageKind("kfake-image", tag, "local", "kfake as an image kind",
                        ("-ports", "{ports}", "-bind", "0.0.0.0", "-advertise", "127.0.0.1"), node_counts=(1, 3))
    monkeypatch.setitem(rt.IMAGE_KINDS, kind.name, kind)
    broker = _up(cli, "kfake-image", "dk-image", "--nodes", "3")
    assert broker.state.brokers == 3
    assert len(_round_trip(broker.bootstrap, 50)) == 50
    broker.kill_node(0)
    broker.restart_node(0)
    assert len(_round_trip(broker.bootstrap, 50)) == 50
    assert cli("broker", "down", "dk-image")[0] == 0
    broker = _up(cli, "kfake", "dk-flag", "--image", tag)
    assert (broker.nodes[0].extra or {}).get("image") == tag
    assert len(_round_trip(broker.bootstrap, 50)) == 50
    assert cli("broker", "down", "dk-flag")[0] == 0
    assert _containers("dk-image") == [] and _containers("dk-flag") == []


@pytest.mark.integration
@needs_root
def test_faults_schedule_drives_containers(cli: Cli) -> None:
    """The faults: injector (kill with restart, pause, restart) on a docker broker, through the container API."""
    from bench.faults.inject import FaultInjector, partition_state
    from bench.faults.plan import FaultAction, FaultPlan

    broker = _up(cli, "kfake", "dk-faults")
    node = broker.nodes[0].node_id

    def action(i: int, what: str, at: float, duration: float) -> FaultAction:
        return FaultAction(i, what, node, 0, at, None, None, duration, key=f"faults[{i}]", file="test", line=None)

    plan = FaultPlan((action(0, "kill", 0.2, 1.0), action(1, "pause", 3.0, 1.0), action(2, "restart", 5.0, 0.5)))
    injector = FaultInjector(plan, broker, "t", time.monotonic_ns(), 7.0, partition_state(broker.bootstrap),
                             restart_timeout_s=30).start()
    statuses: set[str] = set()
    deadline = time.monotonic() + 7.0
    while time.monotonic() < deadline:
        statuses.add(broker._status(broker.nodes[0]))     # type: ignore[attr-defined]
        time.sleep(0.05)
    result = injector.stop()
    assert result["errors"] == 0, result
    assert [a["action"] for a in result["actions"]] == ["kill", "pause", "restart"]
    assert {"exited", "paused", "running"} <= statuses
    assert broker.is_alive() and len(_round_trip(broker.bootstrap, 20)) == 20
    assert cli("broker", "down", "dk-faults")[0] == 0


@pytest.mark.integration
@needs_root
def test_kbench_run_on_a_docker_broker_with_a_fault(cli: Cli, tmp_path: Path) -> None:
    """``kbench run --broker kfake --runtime docker``: the whole pipeline against a container, a pause fault
    through the container API, and no container left when the run ends."""
    scenario = tmp_path / "docker-run.yaml"
    scenario.write_text("name: docker-run\ntopic: {partitions: 2}\n"
                        "workload: {message_size: 100, rate: 500, warmup: 1s, duration: 5s, producers: 1, "
                        "consumer_groups: 1}\nproducer: {acks: all}\n"
                        "faults:\n  - {action: pause, node: leader, at: 2s, duration: 1s}\n")
    out = tmp_path / "run"
    code, stdout, stderr = cli("run", str(scenario), "--broker", "kfake", "--runtime", "docker", "--prime", "0",
                               "--out", str(out), "--no-progress")
    assert code == 0, stdout + stderr
    doc = json.loads((out / "result.json").read_text())
    (cell,) = doc["cells"]
    assert doc["complete"] and cell["complete"] and cell["produce"]["messages"] > 0
    (act,) = cell["faults"]["actions"]
    assert act["action"] == "pause" and act["paused_s"] is not None and act["resumed_s"] > act["paused_s"]
    assert _containers(f"run-{os.getpid()}") == []
