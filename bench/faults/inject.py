"""Fault injection: :class:`FaultInjector` carries out a :class:`~bench.faults.plan.FaultPlan` against an
embedded cluster while load runs (one thread per fault entry, every step bounded by a deadline, times
relative to ``t0`` on CLOCK_MONOTONIC). Nodes left down or paused are restored when it stops, and toxics
left on the client proxy (network actions, :mod:`bench.faults.proxy`) are removed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from bench.errors import BrokerError, ConfigError, NetnsError
from bench.faults.plan import (
    IN_SYNC_MAX_S,
    LATE_S,
    LOOKUP_TIMEOUT_S,
    RESTART_TIMEOUT_S,
    STOP_TIMEOUT_S,
    FaultAction,
    FaultPlan,
)

__all__ = ["FaultInjector", "Lookup", "Nodes", "Partitions", "Toxics", "node_host", "partition_state", "toxic_of"]


class Nodes(Protocol):
    """What the injector needs of a broker (:class:`bench.brokers.BrokerHandle` has it)."""

    @property
    def nodes(self) -> list[Any]: ...
    def node_index(self, node_id: int) -> int: ...
    def alive_nodes(self) -> list[int]: ...
    def kill_node(self, index: int) -> None: ...
    def pause_node(self, index: int) -> None: ...
    def resume_node(self, index: int) -> None: ...
    def stop_node(self, index: int, timeout: float = ...) -> None: ...
    def restart_node(self, index: int, timeout: float = ...) -> None: ...


class Toxics(Protocol):
    """What the injector needs of the client proxy (:class:`bench.faults.proxy.ClientProxy` has it)."""

    def add(self, name: str, toxic: str, attributes: Mapping[str, int], *, nodes: Sequence[int] | None = None,
            streams: Sequence[str] = ...) -> list[str]: ...
    def remove(self, name: str) -> None: ...


class Partitions(Protocol):
    """What the injector needs to cut nodes apart (:class:`bench.faults.network.NodeNetwork` has it)."""

    def cut(self, node_id: int, shape: str, mode: str, clients: bool) -> list[str]: ...
    def heal(self) -> None: ...


Lookup = Callable[[str, float], dict[int, tuple[int, list[int], list[int]]]]


def toxic_of(a: FaultAction) -> tuple[dict[str, int], tuple[str, ...]]:
    """A network action's toxiproxy attributes and streams. Latency is added to the broker-to-client
    stream only, so a request/response round trip gains ``latency`` (± ``jitter``) once; a bandwidth
    limit applies both ways; timeout (hold every byte, no close) and reset_peer act on requests."""
    p = dict(a.params)
    if a.action == "latency":
        return {"latency": p["latency_ms"], "jitter": p.get("jitter_ms", 0)}, ("downstream",)
    if a.action == "bandwidth":
        return {"rate": p["rate_kbs"]}, ("downstream", "upstream")
    return {"timeout": 0}, ("upstream",)


def partition_state(bootstrap: str, client_config: Mapping[str, str] | None = None) -> Lookup:
    """A metadata lookup: ``lookup(topic, timeout) -> {partition: (leader id, replicas, isr)}``."""

    def lookup(topic: str, timeout: float) -> dict[int, tuple[int, list[int], list[int]]]:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **(client_config or {})})
        try:
            md = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as exc:
            raise BrokerError(f"metadata of {topic} not available within {timeout:g} s: {exc.args[0]}") from exc
        if md is None or md.error is not None:
            raise BrokerError(f"metadata of {topic}: {md.error if md is not None else 'no such topic'}")
        return {p: (pm.leader, list(pm.replicas), list(pm.isrs)) for p, pm in md.partitions.items()}

    return lookup


def node_host(node: Any) -> str:
    """Where a node listens: its own address (``--netns``), else loopback."""
    return getattr(node, "host", None) or "127.0.0.1"


def _node_answers(host: str, port: int, timeout: float) -> bool:
    from bench.brokers import probe_cluster
    from bench.errors import BrokerUnreachableError

    try:
        probe_cluster(f"{host}:{port}", timeout=timeout)
    except BrokerUnreachableError:
        return False
    return True


class FaultInjector:
    """Runs a plan against ``handle`` for one cell; ``stop()`` returns the fault log (times in s from t0)."""

    def __init__(self, plan: FaultPlan, handle: Nodes, topic: str, t0_ns: int, load_s: float, lookup: Lookup,
                 *, restart_timeout_s: float = RESTART_TIMEOUT_S,
                 node_answers: Callable[[str, int, float], bool] = _node_answers, proxy: Toxics | None = None,
                 network: Partitions | None = None) -> None:
        self.plan, self.handle, self.topic, self.t0_ns, self.load_s = plan, handle, topic, t0_ns, load_s
        self.lookup, self.restart_timeout_s, self.node_answers = lookup, restart_timeout_s, node_answers
        self.log: list[dict[str, Any]] = []
        self.restored: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self._down: dict[int, str] = {}   # node index -> "killed" | "paused" | "stopped"
        self.proxy, self.network = proxy, network
        self._cut: dict[str, Any] | None = None        # the log entry of the partition in force
        self._toxics: dict[str, dict[str, Any]] = {}   # toxic name -> its log entry, while on
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(a,), name=f"fault-{a.index}", daemon=True)
                         for a in plan.actions]
        self._result: dict[str, Any] | None = None

    def start(self) -> FaultInjector:
        for t in self._threads:
            t.start()
        return self

    def rel(self, ns: int | None = None) -> float:
        return round(((ns if ns is not None else time.monotonic_ns()) - self.t0_ns) / 1e9, 4)

    def down_indexes(self) -> set[int]:
        with self._lock:
            return set(self._down)

    def _wait_until(self, t_s: float) -> bool:
        """Sleep until t0 + t_s; False if stopping first."""
        remaining = (self.t0_ns + int(t_s * 1e9) - time.monotonic_ns()) / 1e9
        return not self._stopping.wait(remaining) if remaining > 0 else not self._stopping.is_set()

    def _run(self, a: FaultAction) -> None:
        times = a.times(self.load_s)
        for k, t in enumerate(times):
            if self._stopping.is_set():
                return
            if self.rel() > t + LATE_S:  # the previous occurrence (a slow restart) overran this one
                with self._lock:
                    self.skipped.append({"fault": a.index, "occurrence": k, "action": a.action,
                                         "scheduled_s": t, "reason": "the previous occurrence was still "
                                         "in progress (node not yet restarted)"})
                continue
            if not self._wait_until(t):
                return
            entry: dict[str, Any] = {"fault": a.index, "occurrence": k, "action": a.action, "target": a.node,
                                     "scheduled_s": t, "started_s": self.rel()}
            try:
                self._occurrence(a, entry, times)
            except (BrokerError, ConfigError, NetnsError, OSError) as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.log.append(entry)

    def _occurrence(self, a: FaultAction, entry: dict[str, Any], times: list[float]) -> None:
        state = None
        if a.node == "leader":
            entry["partition"] = a.partition
            t = time.monotonic_ns()
            state = self.lookup(self.topic, LOOKUP_TIMEOUT_S)
            entry["lookup_ms"] = round((time.monotonic_ns() - t) / 1e6, 1)
            leader, _replicas, isr = state.get(a.partition, (-1, [], []))
            entry["leader"], entry["isr_before"] = leader, isr
            if leader < 0:
                entry["error"] = f"partition {a.partition} has no leader; nothing done"
                return
            node_id = leader
        elif a.node == "all":
            self._toxic(a, entry, None)
            return
        else:
            node_id = int(a.node)
        if a.on_proxy:
            self._toxic(a, entry, node_id)
            return
        if a.cut is not None:
            self._partition(a, entry, node_id, times)
            return
        idx = self.handle.node_index(node_id)
        entry["node"] = node_id
        with self._lock:
            if idx in self._down:
                entry["error"] = f"node {node_id} is already {self._down[idx]} by another fault; nothing done"
                return
            self._down[idx] = {"kill": "killed", "pause": "paused", "restart": "stopped"}[a.action]
        if a.action == "pause":
            self.handle.pause_node(idx)
            entry["paused_s"] = self.rel()
            self._stopping.wait(a.duration_s or 0.0)
            self.handle.resume_node(idx)
            entry["resumed_s"] = self.rel()
        else:
            if a.action == "kill":
                self.handle.kill_node(idx)
                entry["killed_s"] = self.rel()
                if a.duration_s is None:
                    entry["restarted"] = False
                    return  # stays down; restored by stop()
            else:
                self.handle.stop_node(idx, STOP_TIMEOUT_S)
                entry["stopped_s"] = self.rel()
            self._stopping.wait(a.duration_s or 0.0)
            self._start(idx, entry)
        with self._lock:
            self._down.pop(idx, None)
        now = self.rel()  # watch until this entry's next occurrence that is not yet overrun
        self._watch_in_sync(node_id, entry, next((t for t in times if t + LATE_S >= now and t > entry["started_s"]),
                                                 float("inf")))

    def _toxic(self, a: FaultAction, entry: dict[str, Any], node_id: int | None) -> None:
        """Put a toxic on the proxies of ``node_id`` (None: all), take it off after the duration (no duration:
        at stop, the end of load)."""
        if self.proxy is None:
            raise ConfigError(f"{a.action} needs the client proxy in front of the broker, and this run has none")
        entry["node"] = "all" if node_id is None else node_id
        name = f"kbench-f{a.index}-o{entry['occurrence']}"
        attrs, streams = toxic_of(a)
        entry.update({"toxic": attrs, "streams": list(streams)})
        with self._lock:
            self._toxics[name] = entry
        entry["proxies"] = self.proxy.add(name, a.action, attrs, nodes=None if node_id is None else [node_id],
                                          streams=streams)
        entry["on_s"] = self.rel()
        if a.duration_s is None:
            entry["until_end"] = True
            return  # removed by stop()
        self._stopping.wait(a.duration_s)
        self._toxic_off(name)

    def _partition(self, a: FaultAction, entry: dict[str, Any], node_id: int, times: list[float]) -> None:
        """Cut ``node_id`` off (one partition at a time), heal after the duration (none: at stop), then watch
        it rejoin the ISRs (``in_sync_s``, as after a restart)."""
        if self.network is None or a.cut is None:
            raise ConfigError("partition needs the broker's nodes in network namespaces, and this run has none")
        entry["node"] = node_id
        shape, mode, clients = a.cut
        entry.update({"shape": shape, "mode": mode, "clients": clients})
        with self._lock:
            if self._cut is not None:
                entry["error"] = f"another partition (fault {self._cut['fault']}) is in force; nothing done"
                return
            self._cut = entry
        try:
            entry["cuts"] = self.network.cut(node_id, shape, mode, clients)
        except BaseException:
            self._heal()
            raise
        entry["on_s"] = self.rel()
        if a.duration_s is None:
            entry["until_end"] = True
            return  # healed by stop()
        self._stopping.wait(a.duration_s)
        self._heal()
        now = self.rel()
        self._watch_in_sync(node_id, entry, next((t for t in times if t + LATE_S >= now and t > entry["started_s"]),
                                                 float("inf")))

    def _heal(self) -> None:
        with self._lock:
            entry, self._cut = self._cut, None
        if entry is not None and self.network is not None:
            try:
                self.network.heal()
            finally:
                entry["off_s"] = self.rel()

    def _toxic_off(self, name: str) -> None:
        with self._lock:
            entry = self._toxics.pop(name, None)
        if entry is not None and self.proxy is not None:
            try:
                self.proxy.remove(name)
            finally:
                entry["off_s"] = self.rel()

    def _start(self, idx: int, entry: dict[str, Any]) -> None:
        """Restart node ``idx`` and wait (bounded) until it answers on its own port."""
        t = time.monotonic_ns()
        entry["restart_begin_s"] = self.rel(t)
        deadline = time.monotonic() + self.restart_timeout_s
        self.handle.restart_node(idx, self.restart_timeout_s)
        host, port = node_host(self.handle.nodes[idx]), int(self.handle.nodes[idx].port)
        while not self.node_answers(host, port, 2.0):
            if time.monotonic() >= deadline:
                raise BrokerError(f"node at {host}:{port} did not answer within "
                                  f"{self.restart_timeout_s:g} s of its restart")
            time.sleep(0.2)
        entry["up_s"] = self.rel()
        entry["restart_s"] = round((time.monotonic_ns() - t) / 1e9, 3)

    def _watch_in_sync(self, node_id: int, entry: dict[str, Any], next_s: float) -> None:
        """Record when the node is back in the ISR of every partition it replicates (None: not within
        IN_SYNC_MAX_S, or not before this fault's next occurrence)."""
        limit = min(self.rel() + IN_SYNC_MAX_S, next_s)
        while not self._stopping.is_set() and self.rel() < limit:
            try:
                state = self.lookup(self.topic, LOOKUP_TIMEOUT_S)
            except BrokerError:
                state = None
            if state is not None and all(node_id in isr for _l, replicas, isr in state.values()
                                         if node_id in replicas):
                entry["in_sync_s"] = self.rel()
                return
            self._stopping.wait(0.25)
        entry["in_sync_s"] = None

    def stop(self, timeout: float | None = None) -> dict[str, Any]:
        """Stop the schedule, restore nodes left down or paused, and return the fault log."""
        if self._result is not None:
            return self._result
        self._stopping.set()
        deadline = time.monotonic() + (timeout if timeout is not None
                                       else self.restart_timeout_s + STOP_TIMEOUT_S + 10)
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        hung = [t.name for t in self._threads if t.is_alive()]
        with self._lock:
            toxics = list(self._toxics)
        try:
            self._heal()   # a partition still in force
        except (BrokerError, NetnsError, OSError) as exc:
            self.restored.append({"partition": "heal", "error": f"{type(exc).__name__}: {exc}"})
        for name in toxics:   # network faults still on (whole-run ones, or cut short by the stop)
            try:
                self._toxic_off(name)
            except (BrokerError, OSError) as exc:
                self.restored.append({"toxic": name, "error": f"{type(exc).__name__}: {exc}"})
        for idx, how in [] if hung else self._down_items():  # a hung thread still owns its node
            item: dict[str, Any] = {"node": self.handle.nodes[idx].node_id, "was": how, "at_s": self.rel()}
            try:
                if how == "paused":
                    self.handle.resume_node(idx)
                else:
                    self._start(idx, item)
                with self._lock:
                    self._down.pop(idx, None)
            except (BrokerError, OSError) as exc:
                item["error"] = f"{type(exc).__name__}: {exc}"
            self.restored.append(item)
        with self._lock:
            log = sorted(self.log, key=lambda e: e["started_s"])
        errors = sum(1 for e in log if e.get("error")) + sum(1 for r in self.restored if r.get("error"))
        self._result = {"plan": self.plan.to_dict(), "load_s": self.load_s, "actions": log,
                        "skipped": sorted(self.skipped, key=lambda e: e["scheduled_s"]),
                        "restored": self.restored, "errors": errors, "hung_threads": hung}
        return self._result

    def _down_items(self) -> list[tuple[int, str]]:
        with self._lock:
            return list(self._down.items())
