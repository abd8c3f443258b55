"""Broker nodes as hosts (``--netns``): each node of an embedded cluster in its own network namespace.

A :class:`~bench.faults.netns.Topology` of ``n1..nN`` with ``attach_host=True`` (kbench and the tests
reach every node from the root namespace through the host veth). The kind gets one
:class:`~bench.brokers.service.NodeHost` per node (address and namespace) and binds, advertises and
wires its quorum on those addresses; the runtime spawns each node's command inside its namespace. Node
*i* and topology node ``n<i>`` are the same host, so :func:`node_network` hands the fault injector the
partitions of :mod:`bench.faults.network` keyed by node id.

Lifetime: the topology is recorded in the broker's ``state.json`` (:class:`~bench.brokers.base.NetnsState`)
and torn down by :meth:`ProcessBroker.stop` (``kbench broker down``, the end of a run, Ctrl-C, a failed
start). A ``kbench broker up`` topology names the broker's ``state.json`` as its holder, so it outlives the
command; a run's topology belongs to the run's process. If that process dies (a crash, SIGKILL), the
topology is an orphan, removed (with what runs in it) by :func:`sweep_orphans` at the next ``--netns``
start or ``kbench broker down --all``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.brokers.base import NetnsState
from bench.brokers.service import NodeHost
from bench.errors import ConfigError, NetnsError
from bench.faults import netns
from bench.faults.network import Network, NodeNetwork

__all__ = ["PURPOSE", "check_available", "check_kind", "create", "node_hosts", "node_names", "node_network",
           "sweep_orphans", "teardown", "topology"]

PURPOSE = "broker"          # the tag of broker topologies (netns.cleanup_orphans spares every other one)
NETNS_KINDS = ("kafka",)    # for error messages; the kinds say it themselves (ProcessKind.supports_netns)


def node_names(nodes: int) -> list[str]:
    """Topology names of a cluster's nodes: ``n1`` .. ``nN`` (node id i is ``n<i>``)."""
    return [f"n{i + 1}" for i in range(nodes)]


def check_available(*, partitions: bool = False) -> None:
    """NetnsError (exit 2) when namespaces cannot be built here (not root, no ``ip``); with
    ``partitions``, also when ``nft`` (the partition rules) is missing."""
    reason = netns.unavailable_reason()
    if reason is None and partitions and shutil.which("nft") is None:
        reason = "partition faults need nftables: the 'nft' command is not on PATH (apt-get install nftables)"
    if reason:
        raise NetnsError(f"--netns: {reason}")


def check_kind(kind: str | None, supports: bool, runtime: str = "process") -> None:
    """ConfigError unless ``kind`` (run by ``runtime``) can put its nodes in namespaces."""
    if runtime != "process":
        raise ConfigError(f"--netns runs broker nodes as local processes in network namespaces; the {runtime} "
                          "runtime cannot (drop --runtime)")
    if not supports:
        raise ConfigError(f"--netns: the {kind or '(no)'} broker kind cannot run its nodes in network namespaces "
                          f"(kinds that can: {', '.join(NETNS_KINDS)})")


def create(nodes: int, holder: Path | None) -> tuple[netns.Topology, NetnsState]:
    """Build the topology of ``nodes`` nodes (after removing orphaned broker topologies).

    ``holder``: the broker's ``state.json`` for a broker that outlives this process; None for a run's."""
    check_available()
    sweep_orphans()
    topo = netns.Topology.create(node_names(nodes), attach_host=True, holder=holder, purpose=PURPOSE)
    return topo, NetnsState(prefix=topo.prefix, subnet=str(topo.plan.subnet), names=[n.name for n in topo.nodes])


def node_hosts(topo: netns.Topology) -> tuple[NodeHost, ...]:
    return tuple(NodeHost(address=str(n.address), namespace=n.namespace) for n in topo.nodes)


def _plan(state: NetnsState) -> netns.TopologyPlan:
    return netns.plan_topology(state.names, prefix=state.prefix, subnet=state.subnet, attach_host=True)


def topology(state: NetnsState) -> netns.Topology:
    """The live topology recorded in ``state`` (built by this process or another one)."""
    return netns.Topology.attach(_plan(state))


def teardown(state: NetnsState) -> None:
    """End what still runs in the namespaces and remove them, the host veth and their nft tables; a no-op
    when already gone. NetnsError if something remains (or without root)."""
    netns.require_root()
    topology(state).teardown()


def node_network(state: NetnsState, node_ids: list[int]) -> NodeNetwork:
    """The injector's partitions on a broker's topology: node id i is topology node ``n<i>``."""
    names = {i: f"n{i}" for i in node_ids}
    missing = sorted(n for n in names.values() if n not in state.names)
    if missing:
        raise NetnsError(f"topology {state.prefix} has no node {', '.join(missing)} (nodes: {', '.join(state.names)})")
    return NodeNetwork(Network(topology(state)), names)


def sweep_orphans() -> list[str]:
    """Remove broker topologies whose owner is gone (a crashed run, a broker whose state was deleted)."""
    if netns.unavailable_reason() is not None:
        return []
    return netns.cleanup_orphans(PURPOSE)
