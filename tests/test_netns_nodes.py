"""``--netns`` (issue 16): Kafka nodes as hosts in network namespaces.

Unit tests: the per-node server properties, the refusals (wrong kind, runtime, no root, no nft, an external
bootstrap, a partition without --netns, a proxy fault with it) before any side effect, the recorded state,
the node-id to topology mapping, the restart probe's host. As root: orphaned broker topologies are swept
(and nothing else), and a real 3-node Kafka with ``--netns`` notices an isolated node and heals, then
``kbench broker down`` leaves no namespace, veth, nft table or process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import psutil
import pytest

from bench.brokers import get_broker, netns_nodes, start_broker
from bench.brokers.base import BrokerState, NetnsState, NodeState, brokers_root
from bench.brokers.kafka import CONTROLLER_OFFSET, _server_properties
from bench.errors import ConfigError, NetnsError, ScenarioError
from bench.faults import netns
from bench.faults.inject import FaultInjector, partition_state
from bench.faults.plan import validate
from bench.run.prepare import PrepareRequest, prepare
from bench.scenario.model import load_scenario_text
from tests.conftest import REPO, run_kbench

_NO_NETNS = netns.unavailable_reason() or (None if shutil.which("nft") else "needs nft")
needs_netns = pytest.mark.skipif(_NO_NETNS is not None and os.environ.get("CI") != "true", reason=_NO_NETNS or "")


# ------------------------------------------------------------------------------------------ properties
def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_netns_nodes_listen_advertise_and_vote_on_their_own_addresses(tmp_path: Path) -> None:
    hosts = ["198.18.7.2", "198.18.7.3", "198.18.7.4"]
    p = _props(_server_properties(2, 3, 9092, tmp_path, {}, "127.0.0.1", "127.0.0.1", hosts))
    assert p["listeners"] == f"PLAINTEXT://198.18.7.3:9093,CONTROLLER://198.18.7.3:{9093 + CONTROLLER_OFFSET}"
    assert p["advertised.listeners"] == "PLAINTEXT://198.18.7.3:9093"
    assert p["controller.quorum.voters"] == "1@198.18.7.2:10092,2@198.18.7.3:10093,3@198.18.7.4:10094"
    plain = _props(_server_properties(2, 3, 9092, tmp_path, {}))            # without --netns: unchanged
    assert plain["listeners"] == "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:10093"
    assert plain["controller.quorum.voters"] == "1@127.0.0.1:10092,2@127.0.0.1:10093,3@127.0.0.1:10094"


def test_state_records_the_topology_and_reads_it_back(tmp_path: Path) -> None:
    topo = NetnsState(prefix="kbn00aa11", subnet="198.18.9.0/24", names=["n1", "n2", "n3"])
    node = NodeState(node_id=1, port=9092, cmd=["ip", "netns", "exec", "kbn00aa11-n1", "java"], data_dir="d",
                     log_file="l", host="198.18.9.2")
    state = BrokerState(name="b", kind="kafka", version="4.3.1", bootstrap="198.18.9.2:9092", base_dir=str(tmp_path),
                        nodes=[node], netns=topo)
    state.save()
    back = BrokerState.load(tmp_path / "state.json")
    assert back.netns == topo and back.nodes[0].host == "198.18.9.2"
    plan = netns_nodes.topology(topo).plan
    assert [str(n.address) for n in plan.nodes] == ["198.18.9.2", "198.18.9.3", "198.18.9.4"]
    assert [n.namespace for n in plan.nodes] == ["kbn00aa11-n1", "kbn00aa11-n2", "kbn00aa11-n3"]
    assert plan.host_link == "kbn00aa11-h"
    network = netns_nodes.node_network(topo, [1, 2, 3])
    assert network.names == {1: "n1", 2: "n2", 3: "n3"}
    with pytest.raises(NetnsError, match="no node n4"):
        netns_nodes.node_network(topo, [1, 4])


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(("kind", "runtime", "match"), [
    ("kfake", None, "kfake broker kind cannot run its nodes in network namespaces"),
    ("kafka-zk", None, "kafka-zk broker kind cannot"),
    ("kafka", "docker", "the docker runtime cannot"),
])
def test_kinds_that_cannot_are_refused_before_anything_starts(kind: str, runtime: str | None, match: str) -> None:
    before = set(brokers_root().glob("*")) if brokers_root().exists() else set()
    with pytest.raises(ConfigError, match=match):
        start_broker(kind, nodes=3, port=0, name=f"refused-{kind}", runtime=runtime, netns=True)
    assert (set(brokers_root().glob("*")) if brokers_root().exists() else set()) == before


def test_without_root_or_ip_the_error_is_clear_and_nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetnsError, match="--netns: network namespaces need root"):
        start_broker("kafka", nodes=3, port=0, name="no-root", netns=True)
    assert not (brokers_root() / "no-root").exists()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd: None if cmd == "ip" else real_which(cmd))
    with pytest.raises(NetnsError, match="iproute2"):
        start_broker("kafka", nodes=3, port=0, name="no-ip", netns=True)


_PARTITION = """\
name: p
broker: kafka
topic: {partitions: 3, replication_factor: 3}
workload: {rate: 100, warmup: 1s, duration: 20s}
faults:
  - {action: partition, node: leader, at: 5s, duration: 5s}
"""


def _prepare(tmp_path: Path, text: str, **kw: object) -> object:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return prepare(PrepareRequest(command="run", scenario_path=str(path), reports_dir=str(tmp_path), **kw))  # type: ignore[arg-type]


def test_prepare_refuses_netns_misuse_before_any_side_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ScenarioError, match=r"p\.yaml:6: faults\[0\]\.action: partition needs .* --netns"):
        _prepare(tmp_path, _PARTITION)
    latency = _PARTITION.replace("{action: partition, node: leader,", "{action: latency, latency: 5ms,")
    with pytest.raises(ScenarioError, match="client proxy, which cannot be combined with --netns"):
        _prepare(tmp_path, latency, netns=True)
    with pytest.raises(ConfigError, match="external --bootstrap"):
        _prepare(tmp_path, _PARTITION.replace("faults:\n  - {action: partition, node: leader, at: 5s, duration: 5s}\n",
                                              ""), netns=True, bootstrap="127.0.0.1:1")
    with pytest.raises(ConfigError, match="kfake broker kind cannot"):
        _prepare(tmp_path, _PARTITION, netns=True, broker="kfake")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetnsError, match="need root"):
        _prepare(tmp_path, _PARTITION, netns=True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd: None if cmd == "nft" else real_which(cmd))
    if real_which("ip"):
        with pytest.raises(NetnsError, match="partition faults need nftables"):
            _prepare(tmp_path, _PARTITION, netns=True)
    assert [p.name for p in tmp_path.iterdir()] == ["p.yaml"]   # no run directory


def test_cli_exits_2_on_netns_misuse(tmp_path: Path) -> None:
    up = run_kbench("broker", "up", "kafka", "--netns", "--bind-host", "0.0.0.0", "--name", "nope")
    assert up.returncode == 2 and "--netns binds and advertises each node's own address" in up.stderr
    run = run_kbench("run", str(REPO / "scenarios" / "faults-partition-leader.yaml"), "--broker", "kafka",
                     "--nodes", "3", "--out", str(tmp_path / "r"))
    assert run.returncode == 2 and "--netns" in run.stderr and not (tmp_path / "r").exists()


def test_shipped_partition_scenarios_validate() -> None:
    for name, occurrences in (("faults-partition-leader", 5), ("faults-partition-unsafe", 1)):
        plan = validate(load_scenario_text((REPO / "scenarios" / f"{name}.yaml").read_text(),
                                           filename=f"{name}.yaml"))
        assert plan is not None and plan.needs_netns and not plan.needs_proxy
        (a,) = plan.actions
        assert a.cut == ("isolate", "drop", False) and a.node == "leader" and len(a.times(120.0)) == occurrences


# ------------------------------------------------------------------------------------------ the probe
@dataclass
class _N:
    node_id: int
    port: int
    host: str | None = None


class _Cluster:
    def __init__(self) -> None:
        self.nodes = [_N(1, 9092, "198.18.5.2"), _N(2, 9093, "198.18.5.3")]

    def node_index(self, node_id: int) -> int:
        return node_id - 1

    def alive_nodes(self) -> list[int]:
        return [1, 2]

    def kill_node(self, index: int) -> None: ...
    def pause_node(self, index: int) -> None: ...
    def resume_node(self, index: int) -> None: ...
    def stop_node(self, index: int, timeout: float = 20.0) -> None: ...
    def restart_node(self, index: int, timeout: float = 90.0) -> None: ...


def test_restart_probe_asks_the_nodes_own_host() -> None:
    plan = validate(load_scenario_text("workload: {rate: 10, warmup: 0s, duration: 3s}\n"
                                       "faults:\n  - {action: kill, node: 2, at: 0.1s, duration: 0.1s}\n"))
    assert plan is not None
    asked: list[tuple[str, int]] = []

    def answers(host: str, port: int, timeout: float) -> bool:
        asked.append((host, port))
        return True

    inj = FaultInjector(plan, _Cluster(), "t", time.monotonic_ns(), 3.0, lambda _t, _s: {}, node_answers=answers)
    inj.start()
    time.sleep(0.6)
    log = inj.stop()
    assert asked and set(asked) == {("198.18.5.3", 9093)} and log["actions"][0]["up_s"] is not None


# ------------------------------------------------------------------------------------------ orphans (root)
_OWNER = textwrap.dedent("""
    import sys, time
    from bench.faults import netns
    topo = netns.Topology.create(["a"], holder=sys.argv[1] or None, purpose=sys.argv[2])
    print(topo.prefix, flush=True)
    time.sleep(120)
""")


def _orphan(holder: str, purpose: str) -> str:
    """A topology whose creator was SIGKILLed; its prefix."""
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, holder, purpose], stdout=subprocess.PIPE, text=True,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert owner.stdout is not None
        prefix = owner.stdout.readline().strip()
        assert prefix.startswith(netns.PREFIX_ROOT), prefix
    finally:
        owner.kill()
        owner.wait(timeout=10)
    return prefix


@needs_netns
@pytest.mark.timeout(90)
def test_sweep_removes_orphans_of_its_purpose_only_and_spares_a_held_one(tmp_path: Path) -> None:
    purpose = f"test-{os.getpid()}"
    holder = tmp_path / "state.json"
    holder.write_text("{}")
    held, dead, other = _orphan(str(holder), purpose), _orphan("", purpose), _orphan("", f"other-{os.getpid()}")
    try:
        assert netns.cleanup_orphans(purpose) == [dead]
        assert netns.list_leftovers(dead).empty
        assert not netns.list_leftovers(held).empty and not netns.list_leftovers(other).empty
        holder.unlink()                                       # the broker's state is gone: now an orphan
        assert netns.cleanup_orphans(purpose) == [held] and netns.list_leftovers(held).empty
        assert not netns.list_leftovers(other).empty
    finally:
        for prefix in (held, dead, other):
            netns.cleanup_leftovers(prefix)


# ------------------------------------------------------------------------------------------ a real cluster
def _states(bootstrap: str) -> dict[int, tuple[int, list[int], list[int]]]:
    from bench.errors import BrokerError

    try:
        return partition_state(bootstrap)("t", 5.0)
    except BrokerError:
        return {}


def _wait(what: str, ok: object, timeout_s: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if ok():  # type: ignore[operator]
            return time.monotonic() - t0
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


@needs_netns
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kafka_with_netns_notices_an_isolated_node_heals_and_leaves_nothing() -> None:
    from bench.kafka.admin import TopicAdmin

    name = f"netns-it-{os.getpid()}"
    up = run_kbench("broker", "up", "kafka", "--nodes", "3", "--netns", "--port", "0", "--name", name, timeout=150)
    handle = get_broker(name)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        assert handle is not None and handle.state.netns is not None
        topo, hosts = handle.state.netns, [n.host or "" for n in handle.nodes]
        assert len(set(hosts)) == 3 and all(IPv4Address(h) in netns.NET_RANGE for h in hosts)
        assert handle.bootstrap == ",".join(f"{n.host}:{n.port}" for n in handle.nodes)
        assert all(n.cmd[:4] == ["ip", "netns", "exec", f"{topo.prefix}-n{n.node_id}"] for n in handle.nodes)
        assert f"bootstrap: {handle.bootstrap}" in up.stdout
        with TopicAdmin(handle.bootstrap) as admin:
            admin.create_topic("t", 3, 3, {"min.insync.replicas": "2"}, timeout_s=60)
        _wait("full ISR", lambda: (s := _states(handle.bootstrap)) and all(len(i) == 3 for _l, _r, i in s.values()),
              60)
        others = ",".join(f"{n.host}:{n.port}" for n in handle.nodes if n.node_id != 2)
        net = netns_nodes.node_network(topo, [1, 2, 3])
        cuts = net.cut(2, "isolate", "drop", False)
        assert "n2->n1" in cuts and "n3->n2" in cuts and "host->n2" not in cuts
        shrunk = _wait("node 2 out of every ISR and leading nothing",
                       lambda: (s := _states(others)) and all(2 not in i and ld != 2 for ld, _r, i in s.values()), 60)
        net.heal()
        back = _wait("node 2 back in every ISR", lambda: (s := _states(others)) and all(
            2 in i for _l, _r, i in s.values()), 90)
        print(f"isolated node 2 left the ISRs after {shrunk:.1f} s, rejoined {back:.1f} s after the heal")
    finally:
        down = run_kbench("broker", "down", name, timeout=120)
    pids = [n.pid for n in handle.nodes if n.pid] if handle is not None else []
    assert down.returncode == 0, down.stderr[-2000:]
    assert netns.list_leftovers(topo.prefix).empty                # namespaces, host veth, root nft tables, pids
    assert not [ns for ns in netns._netns_names() if ns.startswith(topo.prefix)]
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not (netns.STATE_DIR / f"{topo.prefix}.json").exists() and not (brokers_root() / name).exists()


_LONG_RUN = ["--set", "workload.warmup=2s", "--set", "workload.duration=90s", "--set", "workload.rate=200",
             "--set", "faults=[{action: partition, node: leader, shape: isolate, at: 1s, duration: 2s}]"]


@needs_netns
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "crash"])
def test_an_interrupted_or_killed_netns_run_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C: the run removes its broker and namespaces itself. SIGKILL: they stay (the JVMs run on), and
    the orphan sweep of ``kbench broker down --all`` removes them, JVMs included, without the broker's state."""
    kbench = Path(sys.executable).with_name("kbench")
    proc = subprocess.Popen([str(kbench), "run", str(REPO / "scenarios" / "faults-partition-leader.yaml"), "--broker",
                             "kafka", "--nodes", "3", "--netns", "--prime", "0", "--no-progress",
                             "--out", str(tmp_path / "run"), *_LONG_RUN],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    prefix, pids, workers = "", [], []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:                          # the target is open once the run announces it
            if "cell(s) against embedded kafka" in line:
                break
        handle = get_broker(f"run-{proc.pid}")
        assert handle is not None and handle.state.netns is not None, "no --netns broker started"
        prefix, pids = handle.state.netns.prefix, [n.pid for n in handle.nodes if n.pid]
        time.sleep(4)                                     # load running, the partition on and healed
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        if sig == signal.SIGKILL:
            assert not netns.list_leftovers(prefix).empty and any(psutil.pid_exists(p) for p in pids)
            down = run_kbench("broker", "down", "--all", env={"KBENCH_HOME": str(tmp_path / "elsewhere")})
            assert down.returncode == 0 and f"orphaned network namespaces {prefix}" in down.stdout, down.stdout
            run_kbench("broker", "down", f"run-{proc.pid}")     # the stale state (its processes are gone)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)
        for w in workers:   # load workers orphaned by the SIGKILL (not --netns's to end; see docs/faults.md)
            with contextlib.suppress(psutil.Error):
                w.kill()
        if prefix and not netns.list_leftovers(prefix).empty:
            netns.cleanup_leftovers(prefix)
            pytest.fail(f"{prefix} left behind after {sig.name}")
    assert netns.list_leftovers(prefix).empty
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
