"""Multi-host `kbench locust` (issue 12): master, two workers and the broker each on its own "host" — a network
namespace of bench.faults.netns, with an address from 198.18.0.0/15, joined by a bridge.

* broker: an embedded Kafka started inside its namespace, listening there and advertising its namespace
  address (``advertised.listeners=PLAINTEXT://<broker address>:9092``);
* master: ``kbench locust --bootstrap <broker>:9092 --master-host <master address> --expect-workers 2`` run
  inside its namespace (so kbench's own admin calls also cross the bridge);
* workers: Locust's worker command line (``bench.locust.launcher.worker_argv``) inside their namespaces,
  dialling the master's address;
* the test itself reaches the broker from the root namespace over the topology's host veth, to read the
  topic's offsets independently of kbench.

Checked: the result merges both workers' results (per-worker counts sum to the document's, and to the topic's
offsets); the broker saw connections from both workers' addresses, the master from both workers'; afterwards
no namespace, veth, bridge or process is left. Skips without root; fails in CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from bench.brokers import get_broker
from bench.errors import ConfigError
from bench.faults.netns import Topology, list_leftovers
from bench.locust.launcher import LOCUSTFILE, LaunchSpec, LocustProcesses, worker_argv
from bench.results.store import load_result
from tests.conftest import REPO
from tests.test_netns import require_netns

BROKER_PORT = 9092
MASTER_PORT = 5557
SCENARIO = """\
name: netns
topic: {partitions: 2}
workload:
  message_size: 200
  producers: 2
  consumer_groups: 1
  consumers_per_group: 2
  rate: 1000
  warmup: 1s
  duration: 3s
producer: {acks: all, linger.ms: 2}
"""

# start_broker inside the broker's namespace: it binds 0.0.0.0 there (the namespace's eth0 and its own lo,
# where start_broker's readiness probe looks) and advertises the namespace address to clients
_START_BROKER = """\
import sys
from bench.brokers import start_broker
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
handle = start_broker("kafka", port=port, name=name, timeout=60, configs={
    "listeners": f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://127.0.0.1:{port + 1000}",
    "advertised.listeners": f"PLAINTEXT://{host}:{port}"})
print(handle.nodes[0].pid, flush=True)
"""


def _peers(topo: Topology, node: str, port: int) -> set[str]:
    """Remote IPv4 addresses of the established TCP connections to ``port`` in ``node``'s namespace (a Java
    listener is dual-stack: its peers show as ``[::ffff:198.18.x.y]``)."""
    out = topo.run_in(node, ["ss", "-Htn", "state", "established", f"( sport = :{port} )"], check=False).stdout
    peers = (line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip())
    return {p.strip("[]").removeprefix("::ffff:") for p in peers}


def _offsets(bootstrap: str, topic: str) -> tuple[int, dict[str, str]]:
    """Messages in ``topic`` (sum of high - low watermarks) and the broker addresses the metadata advertises."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex[:6]}"})
    try:
        md = c.list_topics(topic, timeout=10)
        total = sum(hi - lo for lo, hi in (c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                                           for p in md.topics[topic].partitions))
        return total, {str(b.id): f"{b.host}:{b.port}" for b in md.brokers.values()}
    finally:
        c.close()


def _run_kbench_locust(topo: Topology, scenario: Path, out: Path, logs: Path) -> tuple[int, set[str], set[str]]:
    """kbench in the master's namespace, workers in theirs; returns kbench's exit code and who connected."""
    broker, master = topo.address("broker"), topo.address("master")
    with (logs / "kbench.log").open("wb") as log:
        kbench = topo.popen_in("master", [
            sys.executable, "-m", "bench.cli", "locust", str(scenario), "--bootstrap", f"{broker}:{BROKER_PORT}",
            "--master-host", master, "--master-port", str(MASTER_PORT), "--expect-workers", "2", "--headless",
            "--out", str(out), "--keep-topics", "--drain-timeout", "15"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    workers = []
    for name in ("worker1", "worker2"):
        with (logs / f"{name}.log").open("wb") as log:
            workers.append(topo.popen_in(name, worker_argv(master, MASTER_PORT), cwd=logs, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    broker_peers: set[str] = set()
    master_peers: set[str] = set()
    deadline = time.monotonic() + 55
    while kbench.poll() is None and time.monotonic() < deadline:
        broker_peers |= _peers(topo, "broker", BROKER_PORT)
        master_peers |= _peers(topo, "master", MASTER_PORT)
        time.sleep(0.3)
    code = kbench.poll()
    assert code is not None, "kbench locust did not finish within 55 s:\n" + (logs / "kbench.log").read_text()
    for w in workers:  # the master tells its workers to quit when it does
        w.wait(timeout=15)
    return code, broker_peers, master_peers


def _gone(pid: int) -> bool:
    """Exited (a zombie counts: the broker JVM was re-parented to PID 1, which reaps it when it gets to it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _processes_in(directory: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if Path(p.cwd()) in (directory, directory.parent):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            continue
    return found


def test_worker_command_dials_the_master_address(tmp_path: Path) -> None:
    assert worker_argv("198.18.3.3", 5557, python="py") == [
        "py", "-m", "locust", "-f", LOCUSTFILE, "--worker", "--master-host", "198.18.3.3", "--master-port", "5557",
        "--loglevel", "INFO"]
    for wildcard in ("0.0.0.0", "*", "::", ""):
        with pytest.raises(ConfigError, match="wildcard"):
            worker_argv(wildcard, 5557)
    with pytest.raises(ConfigError, match="master port 0"):
        worker_argv("198.18.3.3", 0)

    def local_worker(**kw: str) -> list[str]:
        spec = LaunchSpec(run_dir=tmp_path, plan_path=tmp_path / "plan.json", user_classes=["KafkaProducerUser"],
                          users=1, spawn_rate=1, workers=1, expect_workers=2, master_port=5557, **kw)  # type: ignore[arg-type]
        return LocustProcesses(spec).worker_command()

    def dials(argv: list[str]) -> str:
        return argv[argv.index("--master-host") + 1]

    assert dials(local_worker()) == "127.0.0.1"
    assert dials(local_worker(master_bind_host="198.18.3.3")) == "198.18.3.3"
    assert dials(local_worker(master_bind_host="0.0.0.0")) == "127.0.0.1"       # a wildcard bind: loopback
    assert dials(local_worker(master_bind_host="0.0.0.0", worker_master_host="198.18.3.3")) == "198.18.3.3"


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_locust_master_workers_and_broker_on_separate_hosts(tmp_path: Path) -> None:
    require_netns()
    started = time.monotonic()
    scenario = tmp_path / "netns.yaml"
    scenario.write_text(SCENARIO)
    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    broker_name = f"netns-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    broker_pid = None
    with Topology.create(["broker", "master", "worker1", "worker2"], attach_host=True) as topo:
        prefix, broker = topo.prefix, topo.address("broker")
        try:
            ready = topo.run_in("broker", [sys.executable, "-c", _START_BROKER, broker_name, broker,
                                           str(BROKER_PORT)], timeout=75)
            broker_pid = int(ready.stdout.split()[-1])
            assert broker_pid in topo.pids("broker")
            code, broker_peers, master_peers = _run_kbench_locust(topo, scenario, out, logs)
            assert code == 0, (logs / "kbench.log").read_text()
            doc = load_result(out)
            (cell,) = doc["cells"]
            offsets, advertised = _offsets(f"{broker}:{BROKER_PORT}", cell["topic"]["name"])  # from the root ns
        finally:
            handle = get_broker(broker_name)
            if handle is not None:
                handle.stop()
    # the broker advertised its namespace address, and every host talked to it there over the bridge
    assert advertised == {"1": f"{broker}:{BROKER_PORT}"}
    assert doc["environment"]["broker"]["brokers"] == advertised
    w1, w2, master = (str(topo.node(n).address) for n in ("worker1", "worker2", "master"))
    assert {w1, w2} <= broker_peers, broker_peers   # the workers' clients, sampled while they ran
    # kbench's own admin connections (topic, offsets) are too short-lived to sample; that it reached the broker
    # from the master's namespace (whose only route is the bridge) shows in what it recorded from it:
    assert doc["environment"]["broker"]["bootstrap"] == f"{broker}:{BROKER_PORT}"
    assert {w1, w2} <= master_peers, master_peers
    # the document merges both workers' results, and the counts agree with the topic's offsets
    assert doc["complete"] is True and doc["environment"]["locust"]["workers"] == 2
    assert doc["environment"]["locust"]["master_host"] == master
    collected = json.loads((out / "locust-results.json").read_text())
    assert len(collected["reports"]) == 2 and not collected["missing_workers"]
    assert all(report["users"] for report in collected["reports"].values()), "a worker ran no user"
    merge = cell["check"]["locust_merge"]
    assert merge["workers"] == 2 and merge["merged_equals_sum"] and merge["messages_equal_sum"]
    per_worker = list(merge["per_worker"].values())
    assert all(w["produced"] + w["received_total"] > 0 for w in per_worker), per_worker
    assert cell["produce"]["messages"] == sum(w["produced"] for w in per_worker) > 0
    assert sum(w["acked_total"] for w in per_worker) == offsets == cell["check"]["broker_offsets"]["total"] > 0
    assert sum(w["received_total"] for w in per_worker) == offsets and cell["check"]["consumed_all"] is True
    assert merge["merged_counts"]["publish"] == sum(w["publish"] for w in per_worker) > 0
    # nothing left: no namespace, veth or bridge (they live in the namespaces), no process
    assert list_leftovers(prefix).empty
    assert broker_pid is not None and _gone(broker_pid)
    assert not _processes_in(out), _processes_in(out)
    assert time.monotonic() - started < 90
