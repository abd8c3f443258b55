"""``kbench plan``: how much hardware a target load needs, from a measured result (pure arithmetic).

The arithmetic, stated once (the report repeats it with the numbers filled in)::

    needed      = target / (1 - headroom)          headroom 30 % -> run at <= 70 % of capacity
    per_broker  = T / B                            T: sustainable MB/s of the chosen point, B: brokers measured
    per_part    = T / P                            P: partitions of that point
    brokers     = max(ceil(needed / per_broker), replication factor)
    partitions  = smallest count whose measured/interpolated MB/s >= needed   (if it fits on B brokers)
                = ceil(brokers x P / B)                                        (otherwise: same density)
    range       = the brokers figure with T +/- its measured spread (1 sd of the per-second samples)

Everything beyond the measured brokers or partitions is extrapolation and is flagged as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.capacity.model import Group, Point, build_groups
from bench.errors import ConfigError, ResultError
from bench.results.model import RunDocument

__all__ = ["Plan", "compute_plan", "parse_headroom"]

_EPS = 1e-9


@dataclass
class Plan:
    """The answer and everything it stands on."""

    target_mb_per_s: float
    headroom: float
    needed_mb_per_s: float
    p99_ms: float
    metric: str
    group: Group
    groups: list[Group]
    point: Point
    measured_brokers: int
    per_broker_mb_per_s: float
    per_partition_mb_per_s: float
    brokers: int
    brokers_range: tuple[int, int | None]
    partitions: int
    extrapolation: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def assumptions(self) -> dict[str, Any]:
        return self.group.config

    def headline(self) -> str:
        lo, hi = self.brokers_range
        rng = "" if (lo, hi) == (self.brokers, self.brokers) else \
            f" ({lo}–{hi if hi is not None else '?'} within the measured noise)"
        ext = " [extrapolated]" if self.extrapolation else ""
        return (f"{self.target_mb_per_s:g} MB/s at {self.metric} p99 <= {self.p99_ms:g} ms with "
                f"{self.headroom * 100:g}% headroom (plan for {self.needed_mb_per_s:.1f} MB/s): "
                f"{self.brokers} broker(s){rng}, {self.partitions} partitions{ext} — measured "
                f"{self.per_broker_mb_per_s:.1f} MB/s per broker, {self.per_partition_mb_per_s:.2f} MB/s per partition "
                f"({self.point.kind}, {self.group.key})")


def parse_headroom(text: str) -> float:
    """``30%``, ``30`` or ``0.3`` -> 0.3; ConfigError outside [0, 95 %]."""
    raw = text.strip()
    try:
        value = float(raw.rstrip("%"))
    except ValueError:
        raise ConfigError(f"--headroom {text!r}: expected a percentage like 30% (or a fraction like 0.3)") from None
    if raw.endswith("%") or value > 1:
        value /= 100
    if not 0 <= value <= 0.95 or math.isnan(value):
        raise ConfigError(f"--headroom {text!r}: expected 0% to 95%")
    return value


def _ceil(x: float) -> int:
    return max(1, math.ceil(x - _EPS))


def _choose(groups: list[Group], cell: int | None) -> Group:
    if cell is not None:
        for g in groups:
            if any(cell in p.cells for p in g.points):
                return g
        raise ConfigError(f"--cell {cell}: no such cell in the result")
    usable = [g for g in groups if g.best() is not None]
    if not usable:
        reasons = "; ".join(f"{p.label}: {p.why}" for g in groups for p in g.points if p.why)[:600]
        raise ResultError(f"no measured configuration sustained its load within the SLO ({reasons})")
    return max(usable, key=_best_mb)


def _best_mb(group: Group) -> float:
    best = group.best()
    return best.mb_per_s if best is not None else 0.0


def _limits(cfg: dict[str, Any], doc: RunDocument) -> list[str]:
    cpus = cfg.get("host_cpus")
    out = [f"Measured on one host ({cpus} CPU(s), {cfg.get('host_cpu_model')}): load generators, consumers and "
           "broker shared the CPUs, so the figure is a floor set by the whole box, not by the broker alone.",
           "Loopback network: no NIC limit, no network latency, no cross-host replication traffic.",
           "Brokers are assumed to add capacity linearly (same per-broker throughput); real clusters lose some "
           "of it to replication fetches, controller work and uneven partition leadership."]
    broker = (doc.get("environment") or {}).get("broker") or {}
    if not broker.get("embedded", True) and broker.get("kind") == "external":
        out.append("External broker: its hardware and configuration are not recorded by kbench.")
    return out


def _bottleneck(steps: list[dict[str, Any]]) -> str | None:
    """A hint from the first failing search step: was the producer late (send delay) or the broker slow?"""
    bad = [s for s in steps if not s.get("good")]
    if not bad:
        return None
    first = min(bad, key=lambda s: s["rate"])
    p = first.get("p99_ms") or {}
    send, service = p.get("send_delay"), p.get("service")
    if send is None or service is None:
        return None
    if send > service:
        return (f"At the first failing rate ({first['rate']:,.0f} msg/s) send delay p99 {send:,.1f} ms exceeded "
                f"service time p99 {service:,.1f} ms: the load generator fell behind its schedule, so the knee may be "
                "the client's (Python producer on a shared CPU), not the broker's.")
    return (f"At the first failing rate ({first['rate']:,.0f} msg/s) service time p99 {service:,.1f} ms dominated "
            f"send delay p99 {send:,.1f} ms: the broker (or its acks) set the limit.")


def compute_plan(doc: RunDocument, target_mb_per_s: float, p99_ms: float, headroom: float = 0.3,
                 cell: int | None = None) -> Plan:
    """Brokers and partitions needed to carry ``target_mb_per_s`` within ``p99_ms`` (see module docstring)."""
    if not math.isfinite(target_mb_per_s) or target_mb_per_s <= 0:
        raise ConfigError(f"--target-mbps must be > 0, got {target_mb_per_s:g}")
    if not 0 <= headroom <= 0.95:
        raise ConfigError(f"headroom must be within 0..0.95, got {headroom:g}")
    groups = build_groups(doc, p99_ms)
    group = _choose(groups, cell)
    point = group.best()
    if point is None:
        reasons = "; ".join(p.why for p in group.points if p.why)
        raise ResultError(f"configuration {group.key}: nothing sustained within p99 <= {p99_ms:g} ms ({reasons})")
    metric = ((doc.get("search") or {}).get("spec") or {}).get("metric", "publish")
    cfg = group.config
    b_meas = int(cfg.get("brokers") or 1)
    needed = target_mb_per_s / (1 - headroom)
    t, spread = point.mb_per_s, point.spread_mb_per_s
    per_broker, per_part = t / b_meas, t / point.partitions
    rf = int(cfg.get("replication_factor") or 1)
    brokers = max(_ceil(needed / per_broker), rf)
    fast = max(_ceil(needed / ((t + spread) / b_meas)), rf)
    slow = max(_ceil(needed / ((t - spread) / b_meas)), rf) if t > spread else None
    extrapolation: list[str] = []
    fit = group.min_partitions_for(needed) if brokers <= b_meas else None
    if fit is not None:
        partitions, below = fit
        if below:
            extrapolation.append(f"{partitions} partitions is below the smallest measured count "
                                 f"({group.usable[0].partitions}); throughput assumed linear in partitions there")
    else:
        partitions = _ceil(brokers * point.partitions / b_meas)
        extrapolation.append(f"{brokers} broker(s) > {b_meas} measured: per-broker throughput assumed constant, "
                             f"partitions keep the measured density ({point.partitions / b_meas:g} per broker)")
    if brokers < b_meas:
        extrapolation.append(f"fewer brokers ({brokers}) than measured ({b_meas}): assumed linear")
    if point.kind.endswith("(lower bound)") or point.kind == "lower bound":
        extrapolation.append("the capacity figure is a lower bound (no saturation measured): the plan is conservative")
    notes = list(group.notes)
    hint = _bottleneck(group.steps)
    if hint:
        notes.append(hint)
    if rf > 1 and brokers == rf:
        notes.append(f"the broker count is set by the replication factor ({rf})")
    return Plan(target_mb_per_s, headroom, needed, p99_ms, metric, group, groups, point, b_meas, per_broker,
                per_part, brokers, (fast, slow), partitions, extrapolation, _limits(cfg, doc), notes)
