"""The broker a run targets: an external bootstrap address (checked fast) or an embedded broker started
for the run and stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.brokers import BrokerHandle, probe_cluster, start_broker
from bench.errors import ConfigError

__all__ = ["Target", "open_target"]

PROBE_TIMEOUT_S = 8.0


@dataclass
class Target:
    bootstrap: str
    info: dict[str, Any]
    handle: BrokerHandle | None = None

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
                progress: Callable[[str], None] | None = None) -> Iterator[Target]:
    """Yield the run's target. External: fail within ~8 s if it does not answer. Embedded: start and stop."""
    if bootstrap:
        cluster = probe_cluster(bootstrap, timeout=PROBE_TIMEOUT_S, extra=client_config)
        info = {"kind": os.environ.get("KBENCH_BROKER_NAME", "external"), "version": None, "embedded": False,
                "bootstrap": bootstrap, **cluster, "api_versions": _api_versions(bootstrap, client_config)}
        yield Target(bootstrap, info)
        return
    if not broker:
        raise ConfigError("no broker to run against: pass --bootstrap HOST:PORT or --broker kafka|tansu "
                          "(or set `broker:` in the scenario)")
    if progress:
        progress(f"starting embedded {broker} ({nodes} node{'s' if nodes > 1 else ''})…")
    handle = start_broker(broker, nodes=nodes, port=0, name=f"run-{os.getpid()}", progress=progress)
    try:
        cluster = probe_cluster(handle.bootstrap)
        info = {"kind": handle.kind, "version": handle.version, "embedded": True, "bootstrap": handle.bootstrap,
                "nodes": len(handle.nodes), **cluster, "api_versions": _api_versions(handle.bootstrap)}
        yield Target(handle.bootstrap, info, handle)
    finally:
        handle.stop()
