"""The pure half of :mod:`bench.faults.netns`: a topology's names, addresses and ``ip`` commands, computed
without touching the system (unit-tested without root). :mod:`bench.faults.netns` runs them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from bench.errors import NetnsError

__all__ = ["BRIDGE", "HOST_PORT", "MAX_NODES", "NET_RANGE", "NODE_IF", "PREFIX_RE", "PREFIX_ROOT", "SWITCH", "Node",
           "TopologyPlan", "exec_argv", "new_prefix", "pick_subnet", "plan_topology"]

NET_RANGE = IPv4Network("198.18.0.0/15")   # RFC 2544 benchmarking range
PREFIX_ROOT = "kbn"                        # every topology's prefix starts with it
SWITCH = "switch"                          # the bridge's namespace, as a target of run_in / popen_in
BRIDGE = "br0"
NODE_IF = "eth0"
HOST_PORT = "host"                         # the host veth's bridge port, in the switch namespace
MAX_NODES = 253                            # .2 .. .254 of the /24
PREFIX_RE = re.compile(r"kbn[0-9a-z]{1,8}")
_NODE_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")




# ------------------------------------------------------------------------------------------ pure plan
@dataclass(frozen=True)
class Node:
    """One host of a topology."""

    name: str           # logical name ("broker", "worker1")
    namespace: str      # "<prefix>-<name>"
    address: IPv4Address
    ifname: str         # its interface inside its namespace
    port: str           # the veth peer: a port of the bridge, in the switch namespace


@dataclass(frozen=True)
class TopologyPlan:
    """Names, addresses and the ``ip`` commands of a topology, computed without touching the system."""

    prefix: str
    subnet: IPv4Network
    nodes: tuple[Node, ...]
    attach_host: bool = False

    @property
    def switch_ns(self) -> str:
        return f"{self.prefix}-{SWITCH}"

    @property
    def host_link(self) -> str | None:
        """The root namespace's veth into the bridge (None without ``attach_host``)."""
        return f"{self.prefix}-h" if self.attach_host else None

    @property
    def host_address(self) -> IPv4Address:
        return self.subnet.network_address + 1

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (*(n.namespace for n in self.nodes), self.switch_ns)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise NetnsError(f"topology {self.prefix} has no node {name!r} (nodes: "
                         f"{', '.join(n.name for n in self.nodes)})")

    def namespace_of(self, target: str) -> str:
        """The namespace of a node name, or of :data:`SWITCH`."""
        return self.switch_ns if target == SWITCH else self.node(target).namespace

    def setup_commands(self) -> list[list[str]]:
        """The ``ip`` commands that build the topology, in order (namespaces first, then links)."""
        sw, plen = self.switch_ns, self.subnet.prefixlen
        cmds = [["ip", "netns", "add", ns] for ns in self.namespaces]
        cmds += [["ip", "-n", ns, "link", "set", "lo", "up"] for ns in self.namespaces]
        cmds += [["ip", "-n", sw, "link", "add", BRIDGE, "type", "bridge"],
                 ["ip", "-n", sw, "link", "set", BRIDGE, "up"]]
        for n in self.nodes:
            cmds += [
                ["ip", "-n", sw, "link", "add", n.port, "type", "veth", "peer", "name", n.ifname, "netns", n.namespace],
                ["ip", "-n", sw, "link", "set", n.port, "master", BRIDGE, "up"],
                exec_argv(n.namespace, _ipv6_off(n.ifname)),
                ["ip", "-n", n.namespace, "addr", "add", f"{n.address}/{plen}", "dev", n.ifname],
                ["ip", "-n", n.namespace, "link", "set", n.ifname, "up"],
            ]
        if self.host_link is not None:
            cmds += [
                ["ip", "link", "add", self.host_link, "type", "veth", "peer", "name", HOST_PORT, "netns", sw],
                ["ip", "-n", sw, "link", "set", HOST_PORT, "master", BRIDGE, "up"],
                _ipv6_off(self.host_link),
                ["ip", "addr", "add", f"{self.host_address}/{plen}", "dev", self.host_link],
                ["ip", "link", "set", self.host_link, "up"],
            ]
        return cmds

    def teardown_commands(self) -> list[list[str]]:
        """Delete the host veth (its peer goes with it), then the node namespaces, then the switch."""
        cmds = [["ip", "link", "del", self.host_link]] if self.host_link is not None else []
        return cmds + [["ip", "netns", "del", ns] for ns in self.namespaces]


def _ipv6_off(ifname: str) -> list[str]:
    knob = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    return ["sh", "-c", f"test ! -e {knob} || echo 1 > {knob}"]


def exec_argv(namespace: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``namespace`` (``ip netns exec`` execs it: the pid is the program's own)."""
    if not argv:
        raise NetnsError("an empty command cannot run in a namespace")
    return ["ip", "netns", "exec", namespace, *argv]


def new_prefix(rng: random.Random | None = None) -> str:
    """A fresh topology prefix: ``kbn`` + 6 hex digits."""
    return f"{PREFIX_ROOT}{(rng or random.SystemRandom()).getrandbits(24):06x}"


def pick_subnet(in_use: Iterable[IPv4Network], rng: random.Random | None = None) -> IPv4Network:
    """A random /24 of :data:`NET_RANGE` that overlaps none of ``in_use``."""
    used = [n for n in in_use if n.overlaps(NET_RANGE)]
    free = [s for s in NET_RANGE.subnets(new_prefix=24) if not any(s.overlaps(u) for u in used)]
    if not free:
        raise NetnsError(f"no free /24 left in {NET_RANGE} (all overlap addresses or routes of this host)")
    return (rng or random.SystemRandom()).choice(free)


def plan_topology(names: Sequence[str], *, prefix: str | None = None, subnet: IPv4Network | str | None = None,
                  attach_host: bool = False, in_use: Iterable[IPv4Network] = (),
                  rng: random.Random | None = None) -> TopologyPlan:
    """Names and addresses of a topology of ``names`` (node i gets ``subnet`` .2+i); validated, pure."""
    prefix = prefix or new_prefix(rng)
    if not PREFIX_RE.fullmatch(prefix):
        raise NetnsError(f"topology prefix {prefix!r}: expected {PREFIX_ROOT!r} and 1-8 of [0-9a-z]")
    if not 1 <= len(names) <= MAX_NODES:
        raise NetnsError(f"a topology has 1..{MAX_NODES} nodes, got {len(names)}")
    for name in names:
        if not _NODE_RE.fullmatch(name) or name == SWITCH:
            raise NetnsError(f"node name {name!r}: expected [a-z][a-z0-9-]{{0,31}}, not {SWITCH!r}")
    if len(set(names)) != len(names):
        raise NetnsError(f"node names must be unique, got {list(names)}")
    net = pick_subnet(in_use, rng) if subnet is None else IPv4Network(subnet)
    if net.prefixlen != 24 or not net.subnet_of(NET_RANGE):
        raise NetnsError(f"subnet {net}: expected a /24 inside {NET_RANGE}")
    nodes = tuple(Node(name=name, namespace=f"{prefix}-{name}", address=net.network_address + 2 + i,
                       ifname=NODE_IF, port=f"p{i}") for i, name in enumerate(names))
    return TopologyPlan(prefix=prefix, subnet=net, nodes=nodes, attach_host=attach_host)
