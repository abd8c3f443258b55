"""The broker a run targets: an external bootstrap address (checked fast) or an embedded broker started
for the run and stopped afterwards (with ``netns``, its nodes in network namespaces, which ``network``
partitions)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.brokers import BrokerHandle, probe_cluster, start_broker
from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.faults.network import NodeNetwork
    from bench.faults.proxy import ClientProxy

__all__ = ["Target", "open_target"]

PROBE_TIMEOUT_S = 8.0


@dataclass
class Target:
    bootstrap: str
    info: dict[str, Any]
    handle: BrokerHandle | None = None
    proxy: ClientProxy | None = None      # the client proxy in front of an embedded broker (network faults)
    network: NodeNetwork | None = None    # partitions between the nodes of a --netns broker

    def alive(self) -> bool:
        return self.handle.is_alive() if self.handle is not None else True

    def describe(self) -> str:
        if self.handle is None:
            return f"external broker {self.info.get('kind')} at {self.bootstrap} " \
                   f"({len(self.info.get('brokers') or {})} broker(s), cluster {self.info.get('cluster_id')})"
        return f"embedded {self.info['kind']} {self.info['version']} at {self.bootstrap}"


def _api_versions(bootstrap: str, client_config: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The advertised API ranges (recorded with results), through TLS/SASL when the client config has
    them; None when the probe fails (recorded as unknown, the clients decide whether the run works)."""
    from bench.errors import BrokerError
    from bench.kafka.protocol import api_versions

    try:
        return api_versions(bootstrap, timeout=5.0, security=client_config).as_json()
    except (OSError, ValueError, BrokerError):
        return None


@contextmanager
def open_target(bootstrap: str | None, broker: str | None, *, nodes: int = 1,
                client_config: dict[str, str] | None = None,
                progress: Callable[[str], None] | None = None, proxy: bool = False,
                netns: bool = False, runtime: str | None = None) -> Iterator[Target]:
    """Yield the run's target. External: fail within ~8 s if it does not answer. Embedded: start and stop.

    ``proxy``: an embedded broker behind the client proxy (:mod:`bench.faults.proxy`), advertising it.
    ``netns``: every node in its own network namespace (:mod:`bench.brokers.netns_nodes`), removed with it.
    ``runtime``: how the embedded broker runs (``process``, ``docker``; default: its kind's first runtime)."""
    if bootstrap:
        cluster = probe_cluster(bootstrap, timeout=PROBE_TIMEOUT_S, extra=client_config)
        info = {"kind": os.environ.get("KBENCH_BROKER_NAME", "external"), "version": None, "embedded": False,
                "bootstrap": bootstrap, **cluster, "api_versions": _api_versions(bootstrap, client_config)}
        yield Target(bootstrap, info)
        return
    if not broker:
        from bench.brokers import KINDS

        raise ConfigError("no broker to run against: pass --bootstrap HOST:PORT or --broker "
                          f"{'|'.join(KINDS)} (or set `broker:` in the scenario)")
    if progress:
        progress(f"starting embedded {broker} ({nodes} node{'s' if nodes > 1 else ''})…")
    if proxy:
        if netns:
            raise ConfigError("the client proxy (latency, bandwidth, timeout, reset_peer) and --netns cannot be "
                              "combined yet")
        yield from _proxied(broker, nodes, progress)
        return
    handle = start_broker(broker, nodes=nodes, port=0, name=f"run-{os.getpid()}", progress=progress, netns=netns,
                          ephemeral=True, runtime=runtime)
    try:
        cluster = probe_cluster(handle.bootstrap)
        info = {"kind": handle.kind, "version": handle.version, "embedded": True, "bootstrap": handle.bootstrap,
                "nodes": len(handle.nodes), **cluster, "api_versions": _api_versions(handle.bootstrap)}
        network = None
        if handle.state.netns is not None:
            from bench.brokers.netns_nodes import node_network

            info["netns"] = {"prefix": handle.state.netns.prefix, "subnet": handle.state.netns.subnet,
                             "nodes": {str(n.node_id): n.host for n in handle.nodes}}
            network = node_network(handle.state.netns, [n.node_id for n in handle.nodes])
        yield Target(handle.bootstrap, info, handle, network=network)
    finally:
        handle.stop()


def _proxied(broker: str, nodes: int, progress: Callable[[str], None] | None) -> Iterator[Target]:
    """An embedded broker whose nodes advertise the client proxy's address (every client connection,
    bootstrap included, goes through it); the proxy is ended after the broker."""
    from bench.brokers.registry import KINDS, auto_port
    from bench.faults.proxy import PROXY_HOST, ClientProxy

    if broker not in KINDS:
        raise ConfigError(f"network faults (the client proxy) need a process broker kind, not {broker!r}")
    port = auto_port(KINDS[broker], nodes)
    with ClientProxy.start([(i + 1, port + i) for i in range(nodes)]) as front:
        handle = start_broker(broker, nodes=nodes, port=port, name=f"run-{os.getpid()}", progress=progress,
                              advertised_host=PROXY_HOST)
        try:
            cluster = probe_cluster(front.bootstrap)
            info = {"kind": handle.kind, "version": handle.version, "embedded": True, "bootstrap": front.bootstrap,
                    "direct_bootstrap": handle.bootstrap, "proxy": {"toxiproxy": front.api, "listen": front.listen},
                    "nodes": len(handle.nodes), **cluster, "api_versions": _api_versions(front.bootstrap)}
            yield Target(front.bootstrap, info, handle, front)
        finally:
            handle.stop()
