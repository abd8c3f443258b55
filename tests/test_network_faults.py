"""Network faults (issue 16): the schema of the proxy actions, the toxiproxy client proxy (a measured latency
shift on a socket and on a real Kafka, removed afterwards), the injector driving it, and cleanup: no proxy
process after a normal end, after a Ctrl-C'd run and after a SIGKILLed owner."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.faults import netns
from bench.faults.inject import FaultInjector, partition_state, toxic_of
from bench.faults.network import TABLE, Cut, Network, bridge, isolate, one_way, split
from bench.faults.plan import validate
from bench.faults.proxy import PROXY_HOST, ClientProxy, ensure_toxiproxy, proxy_processes
from bench.scenario.model import load_scenario
from tests.fault_scenario import BASE, SHORT, fault_plan

REPO = Path(__file__).resolve().parent.parent
LAT_MS = 50
TOL_MS = 15          # a shared 2-core box: scheduling noise on top of the toxic


# ------------------------------------------------------------------------------------------- schema
def test_network_actions_parse_with_their_attributes() -> None:
    plan = fault_plan("  - {action: latency, latency: 50ms, jitter: 10ms, at: 20s, duration: 10s}\n"
                      "  - {action: bandwidth, rate: 100, node: 2, every: 10s, duration: 2s}\n"
                      "  - {action: timeout, node: leader, at: 30s, duration: 1s}\n"
                      "  - {action: reset_peer, at: 40s, duration: 500ms}\n"
                      "  - {action: latency, latency: 0.2, at: 0s}\n")
    lat, bw, to, rp, whole = plan.actions
    assert plan.needs_proxy and lat.on_proxy and lat.node == "all" and dict(lat.params) == {
        "latency_ms": 50, "jitter_ms": 10}
    assert toxic_of(lat) == ({"latency": 50, "jitter": 10}, ("downstream",))
    assert toxic_of(bw) == ({"rate": 100}, ("downstream", "upstream")) and bw.node == 2
    assert toxic_of(to)[0] == {"timeout": 0} and to.node == "leader" and rp.duration_s == 0.5
    assert whole.duration_s is None and dict(whole.params)["latency_ms"] == 200   # on until the end of load
    assert lat.to_dict()["latency_ms"] == 50
    assert not fault_plan("  - {action: kill, node: 1, at: 5s}\n").needs_proxy


def test_shipped_scenario_validates() -> None:
    plan = validate(load_scenario(REPO / "scenarios" / "faults-slow-network.yaml"))
    assert plan is not None and plan.needs_proxy
    (a,) = plan.actions
    assert dict(a.params) == {"latency_ms": 50, "jitter_ms": 10} and a.at_s == 25.0


# ------------------------------------------------------------------------------------ the proxy itself
@pytest.fixture
def echo() -> Iterator[tuple[socket.socket, int]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    yield srv, int(srv.getsockname()[1])
    srv.close()


def _rtts(client: socket.socket, server: socket.socket, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.monotonic()
        client.sendall(b"q")
        server.recv(1)
        server.sendall(b"a")
        client.recv(1)
        out.append((time.monotonic() - t) * 1e3)
    return out


def test_proxy_adds_latency_per_round_trip_and_removes_it(echo: tuple[socket.socket, int]) -> None:
    srv, port = echo
    ensure_toxiproxy()
    before = set(proxy_processes())
    with ClientProxy.start([(1, port)]) as proxy:
        assert proxy.bootstrap == f"{PROXY_HOST}:{port}" and proxy.process.pid in proxy_processes()
        client = socket.create_connection((PROXY_HOST, port), timeout=5)
        server, _ = srv.accept()
        base = statistics.median(_rtts(client, server, 10))
        assert proxy.add("lat", "latency", {"latency": LAT_MS, "jitter": 0}) == ["node1"]
        assert proxy.active() == {"node1": ["lat-downstream"]}
        slow = statistics.median(_rtts(client, server, 10))          # the open connection is slowed too
        proxy.remove("lat")
        assert proxy.active() == {"node1": []}
        after = statistics.median(_rtts(client, server, 10))
        client.close()
        server.close()
    assert abs(slow - base - LAT_MS) < TOL_MS, (base, slow)
    assert after < base + 5, (base, after)
    assert set(proxy_processes()) == before
    with pytest.raises(OSError):
        socket.create_connection((PROXY_HOST, port), timeout=1).close()


def test_timeout_toxic_stalls_and_reset_peer_refuses(echo: tuple[socket.socket, int]) -> None:
    srv, port = echo
    with ClientProxy.start([(1, port)]) as proxy:
        client = socket.create_connection((PROXY_HOST, port), timeout=5)
        server, _ = srv.accept()
        server.settimeout(1.0)
        proxy.add("stall", "timeout", {"timeout": 0}, streams=("upstream",))
        client.sendall(b"q")
        with pytest.raises(TimeoutError):
            server.recv(1)                                            # held by the proxy
        proxy.remove("stall")
        proxy.add("rst", "reset_peer", {"timeout": 0}, streams=("upstream",))
        fresh = socket.create_connection((PROXY_HOST, port), timeout=5)
        fresh.settimeout(3.0)
        fresh.sendall(b"q")
        with pytest.raises((ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            for _ in range(50):
                if not fresh.recv(1):
                    raise ConnectionResetError("closed")
        fresh.close()
        client.close()
        server.close()


@dataclass(frozen=True)
class _Node:
    node_id: int
    port: int = 0


class _Handle:
    """The injector's Nodes for a run that only uses the proxy (no node is killed)."""

    def __init__(self, ids: list[int]) -> None:
        self.nodes = [_Node(i) for i in ids]

    def node_index(self, node_id: int) -> int:
        return [n.node_id for n in self.nodes].index(node_id)


def test_injector_toggles_toxics_on_schedule_and_clears_at_stop(echo: tuple[socket.socket, int]) -> None:
    _srv, port = echo
    plan = fault_plan("  - {action: latency, latency: 30ms, at: 0.2s, duration: 0.5s}\n"
                      "  - {action: bandwidth, rate: 10, node: 1, at: 0.3s}\n", base=SHORT)
    with ClientProxy.start([(1, port)]) as proxy:
        inj = FaultInjector(plan, _Handle([1]), "t", time.monotonic_ns(), 5.0,  # type: ignore[arg-type]
                            lambda _t, _s: {}, proxy=proxy).start()
        time.sleep(1.2)
        on = proxy.active()["node1"]
        result = inj.stop()
        assert proxy.active() == {"node1": []}
    assert sorted(on) == ["kbench-f1-o0-downstream", "kbench-f1-o0-upstream"], on
    lat, bw = result["actions"]
    assert lat["action"] == "latency" and 0.2 <= lat["on_s"] < lat["off_s"] and 0.6 < lat["off_s"] < 1.1, lat
    assert bw["until_end"] and bw["off_s"] >= 1.2 and bw["node"] == 1 and result["errors"] == 0, bw


# ------------------------------------------------------------------------------- real broker (Kafka)
def _produce_rtts(bootstrap: str, topic: str, n: int) -> list[float]:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 0, "log_level": 0})
    out: list[float] = []
    p.produce(topic, b"warm")
    p.flush(15)
    for _ in range(n):
        t = time.monotonic()
        p.produce(topic, b"x" * 100)
        assert p.flush(15) == 0
        out.append((time.monotonic() - t) * 1e3)
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_kafka_behind_the_proxy_gets_the_latency_and_nothing_is_left() -> None:
    from bench.brokers import probe_cluster
    from bench.run.target import open_target

    before = set(proxy_processes())
    with open_target(None, "kafka", nodes=1, proxy=True) as target:
        assert target.proxy is not None and target.bootstrap.startswith(PROXY_HOST)
        advertised = probe_cluster(target.bootstrap)["brokers"]
        assert all(str(a).startswith(PROXY_HOST) for a in advertised.values()), advertised  # type: ignore[union-attr]
        plan = fault_plan(f"  - {{action: latency, latency: {LAT_MS}ms, at: 0s}}\n",
                          base=BASE.replace("replication_factor: 3", "replication_factor: 1"))
        assert target.handle is not None
        base = statistics.median(_produce_rtts(target.bootstrap, "net", 20))
        inj = FaultInjector(plan, target.handle, "net", time.monotonic_ns(), 60.0,
                            partition_state(target.bootstrap), proxy=target.proxy).start()
        time.sleep(0.5)
        slow = statistics.median(_produce_rtts(target.bootstrap, "net", 20))
        log = inj.stop()
        after = statistics.median(_produce_rtts(target.bootstrap, "net", 20))
        assert target.proxy.active() == {"node1": []}
    print(f"sync produce median: {base:.2f} ms through the proxy, {slow:.2f} ms with +{LAT_MS} ms, "
          f"{after:.2f} ms after")
    assert abs(slow - base - LAT_MS) < TOL_MS, (base, slow, after)
    assert after < base + 10, (base, after)
    assert log["errors"] == 0 and log["actions"][0]["off_s"] > log["actions"][0]["on_s"]
    assert set(proxy_processes()) == before


# ------------------------------------------------------------------------------------------- cleanup
_OWNER = textwrap.dedent("""
    import sys, time
    from bench.faults.proxy import ClientProxy
    with ClientProxy.start([(1, int(sys.argv[1]))]) as p:
        print(p.process.pid, flush=True)
        time.sleep(60)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "crash"])
def test_no_proxy_left_after_an_interrupted_or_killed_owner(echo: tuple[socket.socket, int],
                                                            sig: signal.Signals) -> None:
    _srv, port = echo
    ensure_toxiproxy()
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(port)], stdout=subprocess.PIPE, text=True,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
        assert pid in proxy_processes()
        owner.send_signal(sig)
        owner.wait(timeout=20)
        deadline = time.monotonic() + 10
        while pid in proxy_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid not in proxy_processes()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=10)


# ---------------------------------------------------------------------- partitions and tbf (netns + nft)
_NO_NETNS = netns.unavailable_reason() or (None if shutil.which("nft") and shutil.which("tc") else "needs nft and tc")
needs_netns = pytest.mark.skipif(_NO_NETNS is not None, reason=_NO_NETNS or "")
_SERVE = ("import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
          "s.bind(('0.0.0.0',7000))\ns.listen(64)\nwhile True:\n c,_=s.accept()\n c.sendall(b'x'*int(c.recv(16)))\n"
          " c.close()")


def _connect(topo: netns.Topology, src: str, dst: str, timeout: float = 1.0, nbytes: int = 1) -> str:
    """'ok <seconds>' or the exception's name, connecting from ``src`` to ``dst``:7000 (and reading nbytes)."""
    code = (f"import socket,time\nt=time.monotonic()\ntry:\n c=socket.create_connection(('{topo.address(dst)}',7000),"
            f"timeout={timeout})\n c.settimeout(30)\n c.sendall(b'{nbytes}')\n n=0\n"
            f" while n<{nbytes}:\n  b=c.recv(65536)\n  n+=len(b)\n  assert b\n"
            f" print('ok',time.monotonic()-t)\nexcept Exception as e: print(type(e).__name__)")
    return topo.run_in(src, [sys.executable, "-c", code], check=False, timeout=60).stdout.strip()


@pytest.fixture
def topo() -> Iterator[netns.Topology]:
    with netns.Topology.create(["n1", "n2", "n3"], attach_host=True) as t:
        for n in ("n1", "n2", "n3"):
            t.popen_in(n, [sys.executable, "-c", _SERVE])
        deadline = time.monotonic() + 10
        while not all(_connect(t, "n1", n).startswith("ok") for n in ("n2", "n3")) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield t
    assert netns.list_leftovers(t.prefix).empty


@needs_netns
def test_isolation_times_connects_out_and_heal_restores(topo: netns.Topology) -> None:
    net = Network(topo)
    net.partition(isolate("n2", ["n1", "n3", "host"]))
    t = time.monotonic()
    assert _connect(topo, "n1", "n2") == _connect(topo, "n3", "n2") == "TimeoutError"
    assert time.monotonic() - t > 1.8                           # timed out, not refused
    assert _connect(topo, "n1", "n3").startswith("ok")          # the others still see each other
    assert net.tables() == [TABLE]
    net.heal()
    assert net.tables() == [] and not net.cuts
    assert _connect(topo, "n1", "n2").startswith("ok") and _connect(topo, "n3", "n2").startswith("ok")


@needs_netns
def test_reject_refuses_split_and_one_way(topo: netns.Topology) -> None:
    net = Network(topo)
    net.partition(isolate("n2", ["n1", "n3"]), mode="reject")
    assert _connect(topo, "n1", "n2") == "ConnectionRefusedError" and net.tables("n2") == [TABLE]
    net.partition(split([["n1"], ["n2", "n3"]]))                 # minority n1 | majority n2, n3
    assert net.tables("n2") == [] and net.tables() == [TABLE]
    assert _connect(topo, "n1", "n3") == "TimeoutError" and _connect(topo, "n2", "n3").startswith("ok")
    net.partition(one_way(["n1"], ["n2"]))
    assert net.cuts == {Cut("n1", "n2")}
    assert _connect(topo, "n1", "n2") == "TimeoutError" and _connect(topo, "n3", "n2").startswith("ok")
    net.partition(bridge(["n1"], ["n3"], via="n2"))
    assert _connect(topo, "n1", "n3") == "TimeoutError"
    assert _connect(topo, "n1", "n2").startswith("ok") and _connect(topo, "n3", "n2").startswith("ok")
    net.restore()
    assert _connect(topo, "n1", "n3").startswith("ok") and net.tables() == []


@needs_netns
def test_tbf_limits_a_nodes_egress_and_is_removed(topo: netns.Topology) -> None:
    net = Network(topo)
    fast = float(_connect(topo, "n1", "n2", nbytes=200_000).split()[1])
    net.limit("n2", rate_kbit=800)                               # 100 KB/s: 200 KB take about 2 s
    assert "tbf" in net.qdisc("n2")
    slow = float(_connect(topo, "n1", "n2", nbytes=200_000).split()[1])
    net.restore()
    assert "tbf" not in net.qdisc("n2") and not net.limits
    assert fast < 0.5 and 1.2 < slow < 4.0, (fast, slow)


_CRASH = textwrap.dedent("""
    import time
    from bench.faults import netns
    from bench.faults.network import Network, isolate
    topo = netns.Topology.create(["a", "b"], attach_host=True)
    net = Network(topo)
    net.partition(isolate("a", ["b"]))
    net.limit("b", 800)
    print(topo.prefix, flush=True)
    time.sleep(60)
""")


@needs_netns
def test_crashed_owner_leaves_only_what_cleanup_removes() -> None:
    owner = subprocess.Popen([sys.executable, "-c", _CRASH], stdout=subprocess.PIPE, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert owner.stdout is not None
        prefix = owner.stdout.readline().strip()
        assert prefix.startswith(netns.PREFIX_ROOT)
        owner.kill()
        owner.wait(timeout=10)
        assert not netns.list_leftovers(prefix).empty               # namespaces (with table and qdisc) remain
        netns.cleanup_leftovers(prefix, orphans_only=True)
        assert netns.list_leftovers(prefix).empty
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=10)


@pytest.mark.integration
@pytest.mark.slow
def test_interrupted_run_leaves_no_proxy_and_no_broker(tmp_path: Path) -> None:
    """Ctrl-C during the load of a run with a network fault: the toxic, the proxy and the broker all go."""
    import psutil

    before = set(proxy_processes())
    kbench = Path(sys.executable).with_name("kbench")
    proc = subprocess.Popen([str(kbench), "run", str(REPO / "scenarios" / "faults-slow-network.yaml"), "--broker",
                             "kafka", "--prime", "0", "--no-progress", "--out", str(tmp_path / "run"),
                             "--set", "workload.warmup=2s", "--set", "workload.duration=60s",
                             "--set", "faults=[{action: latency, latency: 20ms, at: 1s}]"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not set(proxy_processes()) - before:
            time.sleep(0.5)
        assert set(proxy_processes()) - before, "no proxy started"
        time.sleep(25)                                 # broker up, load running, toxic on
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)
    assert set(proxy_processes()) == before
    name = f"run-{proc.pid}"
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if any(name in a for a in p.info.get("cmdline") or [])]
    assert left == [], left


def test_partition_action_parses_and_needs_namespaces() -> None:
    plan = fault_plan("  - {action: partition, node: leader, every: 20s, duration: 10s}\n"
                      "  - {action: partition, node: 2, shape: outbound, mode: reject, clients: true, at: 3s}\n")
    leader, out = plan.actions
    assert plan.needs_netns and not plan.needs_proxy
    assert leader.cut == ("isolate", "drop", False) and leader.times(60.0) == [20.0, 40.0]
    assert out.cut == ("outbound", "reject", True) and out.duration_s is None
    assert leader.to_dict()["shape"] == "isolate"
    from bench.run.extensions import run_events

    with pytest.raises(Exception, match="network namespaces"):
        run_events(plan, handle=_Handle([1, 2, 3]), bootstrap="127.0.0.1:1")  # type: ignore[arg-type]


@needs_netns
def test_injector_partitions_the_leader_and_heals(topo: netns.Topology) -> None:
    from bench.faults.network import NodeNetwork

    plan = fault_plan("  - {action: partition, node: leader, at: 0.2s, duration: 2.5s}\n"
                      "  - {action: partition, node: 3, at: 0.5s, duration: 1s}\n", base=SHORT)
    net = NodeNetwork(Network(topo), {1: "n1", 2: "n2", 3: "n3"})
    state = {0: (2, [1, 2, 3], [1, 2, 3])}
    inj = FaultInjector(plan, _Handle([1, 2, 3]), "t", time.monotonic_ns(), 5.0,  # type: ignore[arg-type]
                        lambda _t, _s: state, network=net).start()
    time.sleep(0.9)
    during = (_connect(topo, "n1", "n2"), _connect(topo, "n3", "n2"), _connect(topo, "n1", "n3")[:2])
    time.sleep(2.3)
    after = _connect(topo, "n1", "n2")
    result = inj.stop()
    assert during == ("TimeoutError", "TimeoutError", "ok"), during    # the others still see each other
    assert after.startswith("ok"), after
    first, second = result["actions"]
    assert first["node"] == 2 and first["leader"] == 2 and "n2->n1" in first["cuts"] and "n1->n2" in first["cuts"]
    assert 0.2 <= first["on_s"] < first["off_s"] and 2.6 < first["off_s"] < 3.5, first
    assert "another partition" in second["error"] and result["errors"] == 1
    assert Network(topo).tables() == []
