"""bench.faults.netns: the pure plan (addresses, names, commands) and, as root, real topologies: reachability,
no route out, processes ended at teardown, clean-up after a failed build and after a crashed owner.

Without root the system tests skip; in CI (``CI=true``) they fail instead: a missing capability must show."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

import psutil
import pytest

from bench.faults import netns, netns_plan
from bench.faults.netns import (
    NET_RANGE,
    SWITCH,
    Leftovers,
    NetnsError,
    Topology,
    cleanup_leftovers,
    exec_argv,
    list_leftovers,
    new_prefix,
    pick_subnet,
    plan_topology,
)
from tests.conftest import REPO


def require_netns() -> None:
    """Skip without root / iproute2; fail in CI, where the capability is expected."""
    reason = netns.unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


# -- the pure plan ------------------------------------------------------------------------------------
def test_plan_names_and_addresses() -> None:
    plan = plan_topology(["broker", "master", "w-1"], prefix="kbn00ab12", subnet="198.19.4.0/24", attach_host=True)
    assert [n.namespace for n in plan.nodes] == ["kbn00ab12-broker", "kbn00ab12-master", "kbn00ab12-w-1"]
    assert [str(n.address) for n in plan.nodes] == ["198.19.4.2", "198.19.4.3", "198.19.4.4"]
    assert [n.port for n in plan.nodes] == ["p0", "p1", "p2"] and {n.ifname for n in plan.nodes} == {"eth0"}
    assert plan.switch_ns == "kbn00ab12-switch" and plan.namespaces[-1] == plan.switch_ns
    assert plan.host_link == "kbn00ab12-h" and plan.host_address == IPv4Address("198.19.4.1")
    assert plan.namespace_of(SWITCH) == plan.switch_ns and plan.namespace_of("w-1") == "kbn00ab12-w-1"
    assert plan_topology(["a"], prefix="kbn1").host_link is None
    with pytest.raises(NetnsError, match="no node 'nope'"):
        plan.node("nope")


@pytest.mark.parametrize(("names", "kwargs", "match"), [
    (["a"], {"prefix": "xyz123"}, "prefix 'xyz123'"),
    (["a"], {"prefix": "kbn-1"}, "prefix"),
    (["a"], {"prefix": "kbn123456789"}, "prefix"),
    ([], {}, "1..253 nodes"),
    ([f"n{i}" for i in range(254)], {}, "1..253 nodes"),
    (["Broker"], {}, "node name 'Broker'"),
    (["switch"], {}, "node name 'switch'"),
    (["a" * 33], {}, "node name"),
    (["a", "a"], {}, "unique"),
    (["a"], {"subnet": "198.18.0.0/23"}, "expected a /24"),
    (["a"], {"subnet": "10.0.0.0/24"}, "expected a /24 inside 198.18.0.0/15"),
])
def test_plan_rejects(names: list[str], kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(NetnsError, match=match):
        plan_topology(names, **kwargs)  # type: ignore[arg-type]


def test_pick_subnet_avoids_what_is_in_use() -> None:
    rng = random.Random(7)
    used = [IPv4Network("198.18.0.0/16"), IPv4Network("198.19.0.0/17"), IPv4Network("198.19.200.7/32"),
            IPv4Network("10.0.0.0/8")]
    picks = {pick_subnet(used, rng) for _ in range(300)}
    assert all(p.prefixlen == 24 and p.subnet_of(NET_RANGE) for p in picks)
    assert not any(p.overlaps(u) for p in picks for u in used)
    assert IPv4Network("198.19.200.0/24") not in picks and len(picks) > 50   # random, not always the first
    free = [IPv4Network("198.19.255.0/24")]
    everything_else = [s for s in NET_RANGE.subnets(new_prefix=24) if s not in free]
    assert pick_subnet(everything_else) == free[0]
    with pytest.raises(NetnsError, match="no free /24"):
        pick_subnet([NET_RANGE])
    with pytest.raises(NetnsError, match="no free /24"):
        pick_subnet([IPv4Network("0.0.0.0/0")])


def test_prefixes_are_unique_and_valid() -> None:
    prefixes = {new_prefix() for _ in range(200)}
    assert len(prefixes) == 200
    assert all(netns_plan.PREFIX_RE.fullmatch(p) for p in prefixes)
    assert plan_topology(["a"]).prefix != plan_topology(["a"]).prefix


def test_setup_commands_stay_inside_the_topology() -> None:
    plan = plan_topology(["a", "b"], prefix="kbnfeed", subnet="198.18.9.0/24", attach_host=True)
    cmds = plan.setup_commands()
    assert cmds[:3] == [["ip", "netns", "add", ns] for ns in ("kbnfeed-a", "kbnfeed-b", "kbnfeed-switch")]
    flat = [" ".join(c) for c in cmds]
    assert not any("route" in c or "default" in c or "forward" in c for c in flat), "nothing may route out"
    # every command targets one of the topology's namespaces, or the host veth in the root namespace
    for c in cmds:
        in_ns = c[:2] == ["ip", "-n"] or c[:3] == ["ip", "netns", "exec"] or c[:3] == ["ip", "netns", "add"]
        assert (in_ns and c[3 if c[1] == "netns" else 2].startswith("kbnfeed-")) or "kbnfeed-h" in " ".join(c), c
    assert "ip -n kbnfeed-a addr add 198.18.9.2/24 dev eth0" in flat
    assert "ip -n kbnfeed-b addr add 198.18.9.3/24 dev eth0" in flat
    assert "ip addr add 198.18.9.1/24 dev kbnfeed-h" in flat
    assert "ip -n kbnfeed-switch link add p1 type veth peer name eth0 netns kbnfeed-b" in flat
    assert "ip -n kbnfeed-switch link set p1 master br0 up" in flat
    # a namespace exists before anything is created in it; IPv6 goes off before eth0 comes up
    assert flat.index("ip -n kbnfeed-switch link add br0 type bridge") > flat.index("ip netns add kbnfeed-switch")
    ipv6 = next(i for i, c in enumerate(flat) if "kbnfeed-a sh -c" in c and "disable_ipv6" in c)
    assert ipv6 < flat.index("ip -n kbnfeed-a link set eth0 up")
    assert all(len(name) <= 15 for name in ("kbnfeed-h", "p252", "eth0", "br0", netns_plan.HOST_PORT))
    assert not any("kbnfeed-h" in c for c in (" ".join(x) for x in plan_topology(
        ["a"], prefix="kbnfeed").setup_commands()))
    assert plan.teardown_commands() == [["ip", "link", "del", "kbnfeed-h"], ["ip", "netns", "del", "kbnfeed-a"],
                                        ["ip", "netns", "del", "kbnfeed-b"], ["ip", "netns", "del", "kbnfeed-switch"]]


def test_exec_argv_and_leftovers_value() -> None:
    assert exec_argv("kbn1-a", ["sleep", "1"]) == ["ip", "netns", "exec", "kbn1-a", "sleep", "1"]
    with pytest.raises(NetnsError, match="empty command"):
        exec_argv("kbn1-a", [])
    assert Leftovers().empty and str(Leftovers()) == "nothing"
    left = Leftovers(namespaces=("kbn1-a",), pids=(12,))
    assert not left.empty and str(left) == "namespaces: kbn1-a; pids: 12"
    with pytest.raises(NetnsError, match="start with 'kbn'"):
        list_leftovers("docker")


# -- real topologies (root) ----------------------------------------------------------------------------
@pytest.fixture
def netns_ok() -> None:
    require_netns()


def _listen_once(topo: Topology, node: str, port: int) -> subprocess.Popen[str]:
    code = (f"import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('{topo.address(node)}', {port})); s.listen(); print('ready', flush=True); "
            f"c, a = s.accept(); print(a[0], flush=True)")
    proc = topo.popen_in(node, [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _connect(topo: Topology | None, node: str | None, address: str, port: int, timeout: float = 3.0) -> str:
    code = (f"import socket\ntry:\n    socket.create_connection(('{address}', {port}), {timeout}); print('ok')\n"
            f"except OSError as e:\n    print(type(e).__name__, e.errno)")
    argv = [sys.executable, "-c", code]
    if topo is None or node is None:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    return topo.run_in(node, argv, timeout=30).stdout.strip()


@pytest.mark.timeout(60)
def test_topology_reachability_isolation_and_teardown(netns_ok: None) -> None:
    with Topology.create(["a", "b", "c"], attach_host=True) as topo:
        prefix = topo.prefix
        assert (netns.STATE_DIR / f"{prefix}.json").exists()
        assert set(topo.plan.namespaces) <= set(netns._netns_names())
        # node -> node over the bridge, and host -> node over the host veth; the peer address is the sender's
        server = _listen_once(topo, "b", 7001)
        assert _connect(topo, "a", topo.address("b"), 7001) == "ok"
        assert server.communicate(timeout=10)[0].strip() == topo.address("a")
        server = _listen_once(topo, "c", 7002)
        assert _connect(None, None, topo.address("c"), 7002) == "ok"
        assert server.communicate(timeout=10)[0].strip() == topo.address("host")
        for node in ("a", "b", "c"):
            routes = topo.run_in(node, ["ip", "-4", "route", "show"]).stdout.strip().splitlines()
            assert routes == [f"{topo.plan.subnet} dev eth0 proto kernel scope link src {topo.address(node)}"]
            # a routing decision, no packet: anything outside the /24 is unreachable
            out = topo.run_in(node, ["ip", "route", "get", "192.0.2.1"], check=False)
            assert out.returncode != 0 and "unreachable" in out.stderr.lower()
            assert "inet6" not in topo.run_in(node, ["ip", "-6", "addr", "show", "dev", "eth0"]).stdout
            assert topo.run_in(node, ["ip", "-br", "link", "show", "lo"]).stdout.split()[1] == "UNKNOWN"  # lo up
        # processes: one we track, one detached in its own session that only `ip netns pids` knows of
        tracked = topo.popen_in("a", ["sleep", "300"])
        detached = int(topo.run_in("b", ["sh", "-c", "setsid sleep 301 >/dev/null 2>&1 & echo $!"]).stdout)
        assert detached in topo.pids("b") and tracked.pid in topo.pids("a")
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 15
    assert tracked.returncode is not None and not psutil.pid_exists(detached)
    assert list_leftovers(prefix).empty
    assert not (netns.STATE_DIR / f"{prefix}.json").exists()
    with pytest.raises(NetnsError, match="not up"):
        topo.run_in("a", ["true"])
    topo.teardown()  # idempotent


@pytest.mark.timeout(60)
def test_failed_build_leaves_nothing(netns_ok: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = netns.TopologyPlan.setup_commands

    def broken(self: netns.TopologyPlan) -> list[list[str]]:
        return [*real(self), ["ip", "-n", self.switch_ns, "link", "set", "kbn-no-such-link", "up"]]

    prefix = new_prefix()
    monkeypatch.setattr(netns.TopologyPlan, "setup_commands", broken)
    with pytest.raises(NetnsError, match="kbn-no-such-link"):
        Topology.create(["a", "b"], attach_host=True, prefix=prefix)
    assert list_leftovers(prefix).empty
    # an existing namespace of the same name is refused before anything is built
    monkeypatch.undo()
    with Topology.create(["a"], prefix=prefix) as topo, pytest.raises(NetnsError, match="already exist"):
        Topology.create(["a"], prefix=topo.prefix)
    assert list_leftovers(prefix).empty


_CRASHER = """\
import sys, time
from bench.faults.netns import Topology
topo = Topology.create(["a", "b"], attach_host=True, prefix=sys.argv[1])
print(topo.run_in("a", ["sh", "-c", "setsid sleep 302 >/dev/null 2>&1 & echo $!"]).stdout.strip(), flush=True)
time.sleep(300)
"""


@pytest.mark.timeout(60)
def test_cleanup_after_a_crashed_owner(netns_ok: None) -> None:
    prefix = new_prefix()
    owner = subprocess.Popen([sys.executable, "-c", _CRASHER, prefix], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert owner.stdout is not None
        sleeper = int(owner.stdout.readline())
        left = list_leftovers(prefix)
        assert set(left.namespaces) == {f"{prefix}-a", f"{prefix}-b", f"{prefix}-switch"}
        assert left.links == (f"{prefix}-h",) and sleeper in left.pids
        assert list_leftovers(prefix, orphans_only=True).empty       # its owner still runs
        owner.send_signal(signal.SIGKILL)                              # a crash: no teardown ran
        owner.wait(timeout=10)
        assert list_leftovers(prefix, orphans_only=True).namespaces == left.namespaces
        removed = cleanup_leftovers(prefix, orphans_only=True)
        assert set(removed.namespaces) == set(left.namespaces) and sleeper in removed.pids
        assert list_leftovers(prefix).empty and not psutil.pid_exists(sleeper)
        assert not (netns.STATE_DIR / f"{prefix}.json").exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        cleanup_leftovers(prefix)


def test_cleanup_removes_a_dead_owners_state_file(netns_ok: None) -> None:
    """A build that crashed after recording its owner and before its first namespace leaves only that file."""
    prefix = new_prefix()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    netns.STATE_DIR.mkdir(parents=True, exist_ok=True)
    state = netns.STATE_DIR / f"{prefix}.json"
    state.write_text(f'{{"pid": {int(dead.stdout)}, "create_time": 0}}')
    live = netns.STATE_DIR / f"{prefix}0.json"   # same prefix family, owner alive (this process)
    me = psutil.Process()
    live.write_text(f'{{"pid": {me.pid}, "create_time": {me.create_time()}}}')
    try:
        assert cleanup_leftovers(prefix, orphans_only=True).empty
        assert not state.exists() and live.exists()
    finally:
        state.unlink(missing_ok=True)
        live.unlink(missing_ok=True)


@pytest.fixture
def topo_ab(netns_ok: None) -> Iterator[Topology]:
    with Topology.create(["a", "b"]) as topo:
        yield topo


@pytest.mark.timeout(60)
def test_fault_hooks_tbf_and_nft_partition(topo_ab: Topology) -> None:
    """The hooks issue 16 builds on: tc tbf on a node's eth0 / its bridge port, an nft drop in the switch."""
    topo = topo_ab
    a = topo.node("a")
    topo.run_in("a", ["tc", "qdisc", "add", "dev", a.ifname, "root", "tbf", "rate", "1mbit", "burst", "32kbit",
                      "latency", "50ms"])
    topo.run_in(SWITCH, ["tc", "qdisc", "add", "dev", a.port, "root", "tbf", "rate", "1mbit", "burst", "32kbit",
                         "latency", "50ms"])
    assert "tbf" in topo.run_in(SWITCH, ["tc", "qdisc", "show", "dev", a.port]).stdout
    if netns.shutil.which("nft") is None:
        pytest.skip("nft not installed: the partition half of this check needs nftables (apt install nftables)")
    server = _listen_once(topo, "b", 7003)
    topo.run_in(SWITCH, ["nft", "-f", "-"], input=(
        "table bridge kbench {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n"
        f"  ip saddr {topo.address('a')} ip daddr {topo.address('b')} drop\n }}\n}}\n"))
    assert _connect(topo, "a", topo.address("b"), 7003, timeout=1.5) == "TimeoutError None"   # a real partition
    topo.run_in(SWITCH, ["nft", "delete", "table", "bridge", "kbench"])                          # heal
    assert _connect(topo, "a", topo.address("b"), 7003) == "ok"
    server.communicate(timeout=10)
