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
      - action: latency       # network, through the client proxy (bench.faults.proxy, toxiproxy):
        latency: 50ms         #   latency (+ jitter) | bandwidth (rate: KB/s) | timeout (connections stall)
        jitter: 10ms          #   | reset_peer (connections reset); node: all (default) | ID | leader;
        at: 20s               #   duration absent: on until the end of load (a whole-run slow network)
      - action: partition     # nft cuts between nodes in namespaces (bench.faults.network): node ID|leader,
        node: leader          #   shape isolate|outbound|inbound, mode drop (time out)|reject (refuse),
        every: 20s            #   clients: true to cut the host too; healed after duration (or at stop)
        duration: 10s

:func:`validate` checks the section strictly (file, line and ``faults[i].key`` in every error).
:class:`FaultInjector` runs it: one thread per fault entry, every step bounded by a deadline, times
recorded relative to ``t0`` (CLOCK_MONOTONIC). An entry's occurrences never overlap: one whose time
passed while the previous was still in progress (a slow restart) is skipped and listed as such; nothing
fires after the end of load. Nodes left down or paused are restored when it stops,
so the next cell (and the final read of ``--verify``) starts with the whole cluster.
The injector is :mod:`bench.faults.inject`; :mod:`bench.run.extensions` runs it as a run extension.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from bench.errors import ScenarioError
from bench.scenario import source as _yaml
from bench.scenario.model import Scenario, to_plain

__all__ = ["ACTIONS", "FAULT_KEYS", "MODES", "NET_ACTIONS", "NODE_ACTIONS", "PROXY_ACTIONS", "SHAPES",
           "FaultAction", "FaultPlan", "parse_faults", "validate"]

NODE_ACTIONS = ("kill", "pause", "restart")                        # on a broker process
PROXY_ACTIONS = ("latency", "bandwidth", "timeout", "reset_peer")  # toxics on the client proxy
NET_ACTIONS = ("partition",)                                       # nft rules between nodes in namespaces
ACTIONS = (*NODE_ACTIONS, *PROXY_ACTIONS, *NET_ACTIONS)
PROXY_KEYS = {"latency": ("latency", "jitter"), "bandwidth": ("rate",), "timeout": (), "reset_peer": ()}
SHAPES = ("isolate", "outbound", "inbound")   # both ways | the node's packets to the others | theirs to it
MODES = ("drop", "reject")                    # connects time out | refused (TCP reset)
FAULT_KEYS = ("action", "node", "partition", "at", "every", "until", "duration", "latency", "jitter", "rate",
              "shape", "mode", "clients")
MAX_LATENCY_S = 60.0
MAX_RATE_KBS = 10_000_000
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
    node: int | str                # node id, "leader", or (proxy actions) "all"
    partition: int
    at_s: float
    every_s: float | None
    until_s: float | None
    duration_s: float | None
    key: str
    file: str
    line: int | None
    params: tuple[tuple[str, int], ...] = ()   # proxy actions: toxic attributes (latency/jitter ms, rate KB/s)
    cut: tuple[str, str, bool] | None = None   # partition: (shape, mode, clients cut too)

    @property
    def on_proxy(self) -> bool:
        return self.action in PROXY_ACTIONS

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
                "every_s": self.every_s, "until_s": self.until_s, "duration_s": self.duration_s, **dict(self.params),
                **({"shape": self.cut[0], "mode": self.cut[1], "clients": self.cut[2]} if self.cut else {})}


@dataclass(frozen=True)
class FaultPlan:
    actions: tuple[FaultAction, ...]

    def to_dict(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.actions]

    @property
    def needs_proxy(self) -> bool:
        """Some action is a toxic: the run puts the client proxy in front of the broker."""
        return any(a.on_proxy for a in self.actions)

    @property
    def needs_netns(self) -> bool:
        """Some action is a partition: the broker's nodes must be hosts in network namespaces."""
        return any(a.action in NET_ACTIONS for a in self.actions)

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
    d = ctx.mapping(item, path, FAULT_KEYS, what=f"a mapping {{action: {'|'.join(ACTIONS)}, node: leader|ID, "
                    "at: 10s, ...}", null_ok=False)
    action = ctx.choice(d.get("action"), (*path, "action"), ACTIONS)
    node = _node(ctx, d, path, action in PROXY_ACTIONS)
    params = _proxy_params(ctx, d, path, action)
    cut = _cut(ctx, d, path, action)
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
    if action not in NODE_ACTIONS and every is not None and duration is None:
        raise ctx.error((*path, "duration"), f"required for a repeated {action}: how long each stays on "
                                             "(without `every`, no duration means on until the end of load)")
    if every is not None and duration is not None and duration >= every:
        raise ctx.error((*path, "duration"), f"expected less than `every` ({every:g}s) so occurrences do not "
                                             f"overlap, got {duration:g}s")
    if at >= load_s:
        raise ctx.error((*path, "at"), f"{at:g}s is not before the end of load ({load_s:g}s = warm-up + "
                                       "duration), so the fault would never fire")
    origin = None
    for prefix in (path, ("faults",), ()):
        origin = ctx.origins.get(prefix)
        if origin is not None:
            break
    return FaultAction(i, action, node, partition, at, every, until, duration, key=_yaml.format_path(path),
                       file=origin.file if origin else ctx.filename, line=origin.line if origin else None,
                       params=params, cut=cut)


def _cut(ctx: _yaml.Ctx, d: dict[str, object], path: _yaml.KeyPath, action: str) -> tuple[str, str, bool] | None:
    """partition: ``shape`` (default isolate), ``mode`` (default drop), ``clients`` (default false: only the
    traffic between broker nodes is cut, clients still reach the node)."""
    if action not in NET_ACTIONS:
        for key in ("shape", "mode", "clients"):
            if key in d:
                raise ctx.error((*path, key), "only with action: partition")
        return None
    shape = ctx.choice(d["shape"], (*path, "shape"), SHAPES) if "shape" in d else "isolate"
    mode = ctx.choice(d["mode"], (*path, "mode"), MODES) if "mode" in d else "drop"
    clients = d.get("clients", False)
    if not isinstance(clients, bool):
        raise ctx.error((*path, "clients"), f"expected true or false, got {_yaml.show(clients)}")
    return shape, mode, clients


def _node(ctx: _yaml.Ctx, d: dict[str, object], path: _yaml.KeyPath, on_proxy: bool) -> int | str:
    """``node``: an id or 'leader'; proxy actions also take 'all', their default."""
    names = ("leader", "all") if on_proxy else ("leader",)
    shown = " or ".join(repr(n) for n in names)
    if "node" not in d:
        if on_proxy:
            return "all"
        raise ctx.error((*path, "node"), f"required: a node id (1..{MAX_NODE_ID}) or 'leader'")
    raw = d["node"]
    if isinstance(raw, str) and raw in names:
        return raw
    return ctx.integer(raw, (*path, "node"), 1, MAX_NODE_ID, what=f"a node id from 1 to {MAX_NODE_ID} or {shown}")


def _proxy_params(ctx: _yaml.Ctx, d: dict[str, object], path: _yaml.KeyPath,
                  action: str) -> tuple[tuple[str, int], ...]:
    """The toxic's attributes: latency/jitter in ms, rate in KB/s; each key only with its action."""
    own = PROXY_KEYS.get(action, ())
    for key in ("latency", "jitter", "rate"):
        if key in d and key not in own:
            users = [a for a, keys in PROXY_KEYS.items() if key in keys]
            raise ctx.error((*path, key), f"only with action: {' or '.join(users)}")
    out: list[tuple[str, int]] = []
    if action == "latency":
        if d.get("latency") is None:
            raise ctx.error((*path, "latency"), "required for latency: the added delay, e.g. 50ms")
        lat = ctx.duration(d["latency"], (*path, "latency"), positive=True, maximum=MAX_LATENCY_S)
        jit = 0.0
        if "jitter" in d:
            jit = ctx.duration(d["jitter"], (*path, "jitter"), positive=False, maximum=MAX_LATENCY_S)
            if jit > lat:
                raise ctx.error((*path, "jitter"), f"expected at most `latency` ({lat * 1e3:g}ms), got {jit * 1e3:g}ms")
        if lat * 1e3 < 1:
            raise ctx.error((*path, "latency"), f"expected at least 1ms, got {lat * 1e3:g}ms")
        out = [("latency_ms", round(lat * 1e3)), ("jitter_ms", round(jit * 1e3))]
    elif action == "bandwidth":
        if "rate" not in d:
            raise ctx.error((*path, "rate"), "required for bandwidth: the limit in KB/s (an integer)")
        out = [("rate_kbs", ctx.integer(d["rate"], (*path, "rate"), 1, MAX_RATE_KBS,
                                        what=f"a rate in KB/s from 1 to {MAX_RATE_KBS}"))]
    return tuple(out)
