"""Partitions (nftables) and bandwidth limits (tc tbf) on a :class:`~bench.faults.netns.Topology` (issue 16).

A partition is a set of one-way :class:`Cut` s (packets from ``src`` to ``dst`` stop). They are ``mode="drop"``
(connects and requests time out, as in a real partition): rules of one nft table, family ``bridge``, hook
``forward``, in the topology's switch namespace, which every packet between two nodes crosses.
``mode="reject"`` (TCP refused at once with a reset): this kernel has no reject in the bridge family, so it
is a table of family ``inet``, hook ``input``, in each destination node's namespace. Either way the tables
go away with the namespaces (a crash leaves nothing the namespace cleanup does not remove). The shapes:

* :func:`isolate` — a node away from all others (both ways);
* :func:`split` — groups that cannot reach each other (majority/minority: ``split([["n1"], ["n2", "n3"]])``;
  the leader away from the other replicas is ``isolate(leader, others)``);
* :func:`bridge` — two sides that only a bridge node reaches both of (not transitive);
* :func:`one_way` — ``src`` cannot reach ``dst`` but ``dst`` still reaches ``src`` (asymmetric).

>>> with Topology.create(["n1", "n2", "n3"], attach_host=True) as topo:
...     net = Network(topo)
...     net.partition(isolate("n1", ["n2", "n3"]))     # replaces any partition in force
...     net.heal()
...     net.limit("n2", rate_kbit=800)                  # tbf on n2's eth0 (its egress)
...     net.unlimit("n2")

Addresses are the nodes' (``"host"``: the root namespace's veth, with ``attach_host``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bench.errors import NetnsError
from bench.faults.netns import Topology
from bench.faults.netns_plan import NODE_IF, SWITCH

__all__ = ["MODES", "TABLE", "Cut", "Network", "NodeNetwork", "bridge", "isolate", "one_way", "reject_rulesets",
           "ruleset", "split"]

TABLE = "kbench_partition"
MODES = ("drop", "reject")


@dataclass(frozen=True, order=True)
class Cut:
    """Packets from ``src`` to ``dst`` are stopped (node names)."""

    src: str
    dst: str


def one_way(src: Iterable[str], dst: Iterable[str]) -> frozenset[Cut]:
    """Every node of ``src`` loses ``dst``; ``dst`` still sends to ``src`` (its packets arrive; TCP replies
    to them do not)."""
    return frozenset(Cut(s, d) for s in src for d in dst if s != d)


def split(groups: Sequence[Sequence[str]]) -> frozenset[Cut]:
    """No traffic between different groups, both ways (nodes of a group still reach each other)."""
    seen = [n for g in groups for n in g]
    if len(seen) != len(set(seen)):
        raise NetnsError(f"a node is in two groups of a split: {[list(g) for g in groups]}")
    return frozenset(c for a, b in itertools.permutations(groups, 2) for c in one_way(a, b))


def isolate(node: str, others: Iterable[str]) -> frozenset[Cut]:
    return split([[node], [o for o in others if o != node]])


def bridge(left: Sequence[str], right: Sequence[str], via: str) -> frozenset[Cut]:
    """``left`` and ``right`` cannot reach each other; ``via`` reaches both (Jepsen's non-transitive bridge)."""
    if via in left or via in right:
        raise NetnsError(f"the bridge node {via!r} must be in neither side")
    return split([left, right])


def _replace(family: str, table: str, chain: str, hook: str, rules: Sequence[str]) -> str:
    """An nft script replacing ``family table`` in one transaction (create-if-absent, delete, re-create)."""
    body = "".join(f"    {r}\n" for r in rules)
    return (f"table {family} {table} {{}}\ndelete table {family} {table}\n"
            f"table {family} {table} {{\n  chain {chain} {{\n    type filter hook {hook} priority 0; policy accept;\n"
            f"{body}  }}\n}}\n")


def ruleset(topo: Topology, cuts: Iterable[Cut]) -> str:
    """The switch's nft script (mode drop): every cut dropped on the bridge."""
    rules = [f"ip saddr {topo.address(c.src)} ip daddr {topo.address(c.dst)} drop" for c in sorted(set(cuts))]
    return _replace("bridge", TABLE, "forward", "forward", rules)


def reject_rulesets(topo: Topology, cuts: Iterable[Cut]) -> dict[str, str]:
    """Mode reject, per destination node: its own input hook answers a cut source's TCP with a reset (this
    kernel has no reject in the bridge family) and drops the rest."""
    by_dst: dict[str, list[str]] = {}
    for c in sorted(set(cuts)):
        if c.dst == "host":
            raise NetnsError("mode reject cannot cut traffic toward the host (the root namespace is not touched)")
        src = topo.address(c.src)
        by_dst.setdefault(c.dst, []).extend([f"ip saddr {src} meta l4proto tcp reject with tcp reset",
                                             f"ip saddr {src} drop"])
    # the resets themselves pass (both ways cut: the peer's table would drop the reset it is answered with)
    return {dst: _replace("inet", TABLE, "input", "input", ["tcp flags rst accept", *rules])
            for dst, rules in by_dst.items()}


class Network:
    """Partitions and rate limits on ``topo``; what is in force is in :attr:`cuts` and :attr:`limits`."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.cuts: frozenset[Cut] = frozenset()
        self.mode = "drop"
        self.limits: dict[str, int] = {}   # node -> kbit/s
        self._tables: set[str] = set()     # where a partition table is (SWITCH, or nodes in mode reject)

    def partition(self, cuts: Iterable[Cut], mode: str = "drop") -> None:
        """Put ``cuts`` in force (replacing the previous partition); ``mode`` drop (time out) or reject (refuse)."""
        if mode not in MODES:
            raise NetnsError(f"partition mode {mode!r}: expected one of {', '.join(MODES)}")
        cuts = frozenset(cuts)
        scripts = reject_rulesets(self.topo, cuts) if mode == "reject" else {SWITCH: ruleset(self.topo, cuts)}
        self.heal()
        try:
            for target, script in scripts.items():
                self.topo.run_in(target, ["nft", "-f", "-"], input=script)
                self._tables.add(target)
        except BaseException:
            self.heal()
            raise
        self.cuts, self.mode = cuts, mode

    def heal(self) -> None:
        """Remove every cut (deleting the tables; a no-op when there is none)."""
        for target in sorted(self._tables | {SWITCH}):
            family = "bridge" if target == SWITCH else "inet"
            self.topo.run_in(target, ["nft", "-f", "-"], input=f"table {family} {TABLE} {{}}\n"
                                                                f"delete table {family} {TABLE}\n")
        self._tables.clear()
        self.cuts = frozenset()

    def tables(self, target: str = SWITCH) -> list[str]:
        """The nft tables in ``target``'s namespace (what a test checks is gone after heal)."""
        out = self.topo.run_in(target, ["nft", "list", "tables"]).stdout
        return [line.split()[-1] for line in out.splitlines() if line.startswith("table")]

    def limit(self, node: str, rate_kbit: int, *, burst_kbit: int = 64, latency_ms: int = 200) -> None:
        """A tbf rate limit on ``node``'s egress (its ``eth0``); replaces a previous one."""
        if rate_kbit < 1:
            raise NetnsError(f"rate limit of {node}: expected at least 1 kbit/s, got {rate_kbit}")
        self.topo.run_in(node, ["tc", "qdisc", "replace", "dev", NODE_IF, "root", "tbf", "rate", f"{rate_kbit}kbit",
                                "burst", f"{burst_kbit}kbit", "latency", f"{latency_ms}ms"])
        self.limits[node] = rate_kbit

    def unlimit(self, node: str) -> None:
        self.topo.run_in(node, ["tc", "qdisc", "del", "dev", NODE_IF, "root"], check=False)
        self.limits.pop(node, None)

    def qdisc(self, node: str) -> str:
        return self.topo.run_in(node, ["tc", "qdisc", "show", "dev", NODE_IF]).stdout.strip()

    def restore(self) -> None:
        """Heal and lift every limit (the end of a run)."""
        if self.cuts or self._tables:
            self.heal()
        for node in list(self.limits):
            self.unlimit(node)


class NodeNetwork:
    """What the fault injector drives: broker node ids as the topology's node names (``names``)."""

    def __init__(self, network: Network, names: Mapping[int, str]) -> None:
        self.network, self.names = network, dict(names)

    def cut(self, node_id: int, shape: str, mode: str, clients: bool) -> list[str]:
        """Partition node ``node_id`` from the other nodes (and the host, with ``clients``): ``isolate`` both
        ways, ``outbound`` its packets only, ``inbound`` theirs only; returns the cuts as ``"a->b"``."""
        if node_id not in self.names:
            raise NetnsError(f"node {node_id} is not in the topology (nodes: {sorted(self.names)})")
        me = self.names[node_id]
        others = [n for i, n in sorted(self.names.items()) if i != node_id] + (["host"] if clients else [])
        if shape == "isolate":
            cuts = isolate(me, others)
        elif shape == "outbound":
            cuts = one_way([me], others)
        elif shape == "inbound":
            cuts = one_way(others, [me])
        else:
            raise NetnsError(f"partition shape {shape!r}: expected isolate, outbound or inbound")
        self.network.partition(cuts, mode)
        return [f"{c.src}->{c.dst}" for c in sorted(cuts)]

    def heal(self) -> None:
        self.network.heal()
