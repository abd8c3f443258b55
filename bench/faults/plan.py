"""Fault injection: a scenario's ``faults:`` schedule, run against an embedded cluster while load runs.

A fault is one action on one node at given times (seconds from load start, ``t0``)::

    faults:
      - action: kill          # kill (SIGKILL) | pause (SIGSTOP, SIGCONT after duration) | restart (clean stop+start)
        node: leader          # a node id (1..N) or "leader": the leader of `partition` of the cell's topic,
        partition: 0          #   looked up in metadata when the action fires (default partition 0)
        at: 10s               # first time (default: `every`, else required)
        every: 10s            # optional: repeat every 10 s ...
        until: 55s            # ... while the time is below `until` (default: the end of load)
        duration: 3s          # kill: restart after it (absent: stays down until the cell ends);
                              # pause: required; restart: downtime between stop and start (default 0)

:func:`validate` checks the section strictly (file, line and ``faults[i].key`` in every error).
:class:`FaultInjector` runs it: one thread per fault entry, every step bounded by a deadline, times
recorded relative to ``t0`` (CLOCK_MONOTONIC). An entry's occurrences never overlap: one whose time
passed while the previous was still in progress (a slow restart) is skipped and listed as such; nothing
fires after the end of load. Nodes left down or paused are restored when it stops,
so the next cell (and the final read of ``--verify``) starts with the whole cluster.
:func:`make_hooks` composes injection and verification into the runner's ``RunOptions`` hooks.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bench.errors import BrokerError, ConfigError, ScenarioError
from bench.scenario import source as _yaml
from bench.scenario.model import Cell, Scenario, to_plain

__all__ = ["ACTIONS", "FaultAction", "FaultInjector", "FaultPlan", "RunHooks", "make_hooks", "parse_faults",
           "partition_state", "validate"]

ACTIONS = ("kill", "pause", "restart")
FAULT_KEYS = ("action", "node", "partition", "at", "every", "until", "duration")
MAX_NODE_ID = 64
MAX_OCCURRENCES = 1000
MIN_EVERY_S = 1.0
MAX_FAULT_S = 86_400.0
RESTART_TIMEOUT_S = 60.0     # a node's restart (spawn + registered + answering on its own port)
STOP_TIMEOUT_S = 20.0        # clean shutdown before SIGKILL
LOOKUP_TIMEOUT_S = 5.0       # metadata lookup of the leader
IN_SYNC_MAX_S = 30.0         # how long to watch a restored node rejoin the ISR
LATE_S = 0.5                 # an occurrence more than this late (the previous one overran) is skipped


# ------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class FaultAction:
    """One entry of ``faults:``; ``key``/``line`` locate it for later errors (node ids vs the broker)."""

    index: int
    action: str
    node: int | str                # node id, or "leader"
    partition: int
    at_s: float
    every_s: float | None
    until_s: float | None
    duration_s: float | None
    key: str
    file: str
    line: int | None

    def times(self, load_s: float) -> list[float]:
        """Occurrence times (s from t0) before the end of load (and before ``until``)."""
        end = min(load_s, self.until_s) if self.until_s is not None else load_s
        if self.every_s is None:
            return [self.at_s] if self.at_s < end else []
        out: list[float] = []
        t = self.at_s
        while t < end and len(out) < MAX_OCCURRENCES:
            out.append(round(t, 9))
            t = self.at_s + self.every_s * len(out)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "node": self.node, "partition": self.partition, "at_s": self.at_s,
                "every_s": self.every_s, "until_s": self.until_s, "duration_s": self.duration_s}


@dataclass(frozen=True)
class FaultPlan:
    actions: tuple[FaultAction, ...]

    def to_dict(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.actions]

    def check_nodes(self, node_ids: list[int]) -> None:
        """ScenarioError when a fault names a node the broker does not have."""
        for a in self.actions:
            if isinstance(a.node, int) and a.node not in node_ids:
                raise ScenarioError(f"no node {a.node}: the broker has node ids "
                                    f"{', '.join(map(str, node_ids))}", file=a.file, line=a.line,
                                    key=f"{a.key}.node")


def _origins_for(scenario: Scenario, filename: str) -> _yaml.Origins:
    """Line numbers of the faults section, when the file on disk still holds what was loaded."""
    if scenario.path is None:
        return {}
    try:
        text = _yaml.decode(scenario.path.read_bytes(), filename)
        data, origins = _yaml.compose(text, filename)
    except (OSError, ScenarioError):
        return {}
    if not isinstance(data, dict) or to_plain(data.get("faults")) != to_plain(scenario.faults):
        return {}  # changed by --set: key paths only
    return origins


def _display_name(scenario: Scenario) -> str:
    if scenario.path is None:
        return "<scenario>"
    with contextlib.suppress(ValueError):
        rel = os.path.relpath(scenario.path)
        if not rel.startswith(".."):
            return rel
    return str(scenario.path)


def validate(scenario: Scenario, *, filename: str | None = None,
             origins: _yaml.Origins | None = None) -> FaultPlan | None:
    """The scenario's fault plan (None when it has no faults), or ScenarioError naming file, line, key."""
    if scenario.faults is None:
        return None
    name = filename or _display_name(scenario)
    if origins is None:
        origins = _origins_for(scenario, name)
    load_s = min((c.workload.warmup_s + c.workload.duration_s for c in scenario.cells), default=0.0)
    partitions = min((c.topic.partitions for c in scenario.cells), default=1)
    return parse_faults(scenario.faults, ctx=_yaml.Ctx(name, origins), load_s=load_s, partitions=partitions)


def parse_faults(raw: object, *, ctx: _yaml.Ctx, load_s: float, partitions: int) -> FaultPlan | None:
    """Validate a raw ``faults:`` value (lists/dicts or their frozen forms) against the load length."""
    value = to_plain(raw)
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise ctx.error(("faults",), f"expected a list of fault actions ({{action: kill, node: leader, at: 10s}}"
                                     f", ...), got {_yaml.show(value)}")
    actions: list[FaultAction] = []
    occurrences = 0
    for i, item in enumerate(value):
        a = _parse_one(ctx, item, i, load_s, partitions)
        occurrences += len(a.times(load_s))
        if occurrences > MAX_OCCURRENCES:
            raise ctx.error(("faults", i), f"the faults fire more than {MAX_OCCURRENCES} times in the run; "
                                           "use a larger `every`")
        actions.append(a)
    return FaultPlan(tuple(actions))


def _parse_one(ctx: _yaml.Ctx, item: object, i: int, load_s: float, partitions: int) -> FaultAction:
    path: _yaml.KeyPath = ("faults", i)
    d = ctx.mapping(item, path, FAULT_KEYS, what="a mapping {action: kill|pause|restart, node: leader|ID, "
                    "at: 10s, ...}", null_ok=False)
    action = ctx.choice(d.get("action"), (*path, "action"), ACTIONS)
    if "node" not in d:
        raise ctx.error((*path, "node"), f"required: a node id (1..{MAX_NODE_ID}) or 'leader'")
    raw_node = d["node"]
    node: int | str
    if isinstance(raw_node, str) and raw_node == "leader":
        node = "leader"
    else:
        node = ctx.integer(raw_node, (*path, "node"), 1, MAX_NODE_ID,
                           what=f"a node id from 1 to {MAX_NODE_ID} or 'leader'")
    partition = 0
    if "partition" in d:
        if node != "leader":
            raise ctx.error((*path, "partition"), "only with node: leader (whose leader to pick)")
        partition = ctx.integer(d["partition"], (*path, "partition"), 0, max(0, partitions - 1),
                                what=f"a partition of the topic, 0 to {max(0, partitions - 1)}")

    def dur(key: str, positive: bool) -> float | None:
        if d.get(key) is None:
            if key in d:
                raise ctx.error((*path, key), f"{_yaml.duration_message(positive, MAX_FAULT_S)}, got null")
            return None
        return ctx.duration(d[key], (*path, key), positive=positive, maximum=MAX_FAULT_S)

    every = dur("every", True)
    if every is not None and every < MIN_EVERY_S:
        raise ctx.error((*path, "every"), f"expected at least {MIN_EVERY_S:g}s between occurrences, got {every:g}s")
    at = dur("at", False)
    if at is None:
        if every is None:
            raise ctx.error((*path, "at"), "required: when to act, in seconds from load start (or give `every`)")
        at = every
    until = dur("until", True)
    if until is not None:
        if every is None:
            raise ctx.error((*path, "until"), "only with `every`")
        if until <= at:
            raise ctx.error((*path, "until"), f"expected a time after `at` ({at:g}s), got {until:g}s")
    duration = dur("duration", action != "kill" and action != "restart")
    if action == "pause" and duration is None:
        raise ctx.error((*path, "duration"), "required for pause: how long the node stays stopped")
    if every is not None and duration is not None and duration >= every:
        raise ctx.error((*path, "duration"), f"expected less than `every` ({every:g}s) so occurrences do not "
                                             f"overlap, got {duration:g}s")
    if at >= load_s:
        raise ctx.error((*path, "at"), f"{at:g}s is not before the end of load ({load_s:g}s = warm-up + "
                                       "duration), so the fault would never fire")
    origin = None
    for cut in (path, ("faults",), ()):
        origin = ctx.origins.get(cut)
        if origin is not None:
            break
    return FaultAction(i, action, node, partition, at, every, until, duration, key=_yaml.format_path(path),
                       file=origin.file if origin else ctx.filename, line=origin.line if origin else None)


# ------------------------------------------------------------------------------------------ injection
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


Lookup = Callable[[str, float], dict[int, tuple[int, list[int], list[int]]]]


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


def _node_answers(port: int, timeout: float) -> bool:
    from bench.brokers import probe_cluster
    from bench.errors import BrokerUnreachableError

    try:
        probe_cluster(f"127.0.0.1:{port}", timeout=timeout)
    except BrokerUnreachableError:
        return False
    return True


class FaultInjector:
    """Runs a plan against ``handle`` for one cell; ``stop()`` returns the fault log (times in s from t0)."""

    def __init__(self, plan: FaultPlan, handle: Nodes, topic: str, t0_ns: int, load_s: float, lookup: Lookup,
                 *, restart_timeout_s: float = RESTART_TIMEOUT_S,
                 node_answers: Callable[[int, float], bool] = _node_answers) -> None:
        self.plan, self.handle, self.topic, self.t0_ns, self.load_s = plan, handle, topic, t0_ns, load_s
        self.lookup, self.restart_timeout_s, self.node_answers = lookup, restart_timeout_s, node_answers
        self.log: list[dict[str, Any]] = []
        self.restored: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self._down: dict[int, str] = {}   # node index -> "killed" | "paused" | "stopped"
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
            except (BrokerError, ConfigError, OSError) as exc:
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
        else:
            node_id = int(a.node)
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

    def _start(self, idx: int, entry: dict[str, Any]) -> None:
        """Restart node ``idx`` and wait (bounded) until it answers on its own port."""
        t = time.monotonic_ns()
        entry["restart_begin_s"] = self.rel(t)
        deadline = time.monotonic() + self.restart_timeout_s
        self.handle.restart_node(idx, self.restart_timeout_s)
        port = int(self.handle.nodes[idx].port)
        while not self.node_answers(port, 2.0):
            if time.monotonic() >= deadline:
                raise BrokerError(f"node at 127.0.0.1:{port} did not answer within "
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


# ------------------------------------------------------------------------------------------ run hooks
@dataclass
class RunHooks:
    """What the CLI puts into ``RunOptions``: ``on_load_start``, ``on_cell_end`` and ``broker_alive``."""

    on_load_start: Callable[[Cell, str, int], Any] | None
    on_cell_end: Callable[[Cell, str, dict[str, dict[int, dict[str, Any]]]], dict[str, Any]] | None
    broker_alive: Callable[[], bool] | None
    current: FaultInjector | None = None

    def down_indexes(self) -> set[int]:
        return self.current.down_indexes() if self.current is not None else set()


def make_hooks(plan: FaultPlan | None, *, handle: Nodes | None, bootstrap: str,
               client_config: Mapping[str, str] | None = None, verify: bool = False,
               alive: Callable[[], bool] | None = None, lookup: Lookup | None = None,
               final_read_timeout_s: float = 60.0) -> RunHooks:
    """Hooks for :class:`bench.run.execute.RunOptions`.

    ``plan`` (from :func:`validate`) needs an embedded broker ``handle`` (ConfigError otherwise); with
    ``verify`` every cell gets a ``verification`` entry (:mod:`bench.verify.cell`). ``broker_alive`` wraps
    ``alive`` so nodes the injector took down on purpose do not count as a dead broker.
    """
    if plan is not None:
        if handle is None:
            raise ConfigError("the scenario has faults:, which need an embedded broker to kill and restart "
                              "(--broker kafka --nodes 3); an external --bootstrap cannot be faulted")
        plan.check_nodes([n.node_id for n in handle.nodes])
    conf = dict(client_config or {})
    look = lookup or partition_state(bootstrap, conf)
    hooks = RunHooks(None, None, alive)
    verifier = None
    if verify:
        from bench.verify.cell import make_cell_end

        verifier = make_cell_end(bootstrap, conf, final_read_timeout_s=final_read_timeout_s)
        hooks.on_cell_end = verifier

    def on_load_start(cell: Cell, topic: str, t0_ns: int) -> FaultInjector | None:
        load_s = cell.workload.warmup_s + cell.workload.duration_s
        injector = None
        if plan is not None and handle is not None:
            injector = FaultInjector(plan, handle, topic, t0_ns, load_s, look).start()
        hooks.current = injector
        if verifier is not None:
            verifier.load_started(cell, topic, t0_ns, injector)
        return injector

    if plan is not None or verifier is not None:
        hooks.on_load_start = on_load_start
    if plan is not None and handle is not None:
        h = handle

        def broker_alive() -> bool:
            down = hooks.down_indexes()
            up = set(h.alive_nodes())
            return all(n.node_id in up for i, n in enumerate(h.nodes) if i not in down)

        hooks.broker_alive = broker_alive
    return hooks
