"""A small, explained capacity model built from result documents only (no broker).

Input is either a knee search (``kbench search``: the steps and the ``search`` record) or a sweep (a
normal ``kbench run`` whose matrix varies partitions, producers, message size…). Every cell becomes a
:class:`Point`: the throughput it *sustained within the SLO*, with its measured spread:

* a search gives one point per configuration: the knee re-derived at the plan's SLO from the steps;
* a sweep cell at ``rate: max`` that met the SLO is a ``saturated`` point (its throughput is the
  ceiling of that configuration; its latency is closed-loop, i.e. service time, not CO-corrected);
* a rate-limited sweep cell that kept up within the SLO is a ``lower bound`` (capacity is at least it);
* cells over the SLO, with errors or falling behind are listed but not used.

Points are grouped by configuration (all cell parameters except ``topic.partitions`` and
``workload.rate``). Within a group, throughput is taken as piecewise linear in partitions between
measured partition counts, linear through the origin below the smallest (an assumption, flagged as
extrapolation), and flat above the largest (no growth assumed on the same brokers).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.capacity.host import contention_note
from bench.capacity.search import effective_steps, judge_step, summarize_search
from bench.capacity.spec import SearchSpec
from bench.errors import ResultError
from bench.results.model import CellDocument, RunDocument

__all__ = ["Group", "Point", "build_groups", "config_of", "spec_from_record"]

_GROUP_EXCLUDE = ("topic.partitions", "workload.rate")


@dataclass(frozen=True)
class Point:
    """One measured configuration at one partition count: sustainable throughput within the SLO."""

    label: str
    cells: tuple[int, ...]
    partitions: int
    msgs_per_s: float
    mb_per_s: float
    spread_mb_per_s: float          # 1 standard deviation of the per-second samples, in MB/s
    p99_ms: float | None
    kind: str                       # knee | saturated | lower bound | knee (lower bound)
    usable: bool
    why: str = ""


@dataclass
class Group:
    """Points of one configuration (differing only in partitions) and the assumptions behind them."""

    key: str
    config: dict[str, Any]
    points: list[Point] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)   # search steps, judged at the plan's SLO

    @property
    def usable(self) -> list[Point]:
        return sorted((p for p in self.points if p.usable), key=lambda p: p.partitions)

    def best(self) -> Point | None:
        """The usable point with the highest throughput (ties: fewer partitions)."""
        pts = self.usable
        return max(pts, key=lambda p: (p.mb_per_s, -p.partitions)) if pts else None

    def mb_at(self, partitions: float) -> tuple[float, bool]:
        """Sustainable MB/s at ``partitions`` on the measured brokers, and whether it is extrapolated
        (below the smallest measured count: linear through the origin; above the largest: flat)."""
        pts = self.usable
        if not pts:
            return 0.0, True
        xs = [0.0] + [float(p.partitions) for p in pts]
        ys = [0.0] + [p.mb_per_s for p in pts]
        if partitions >= xs[-1]:
            return ys[-1], partitions > xs[-1]
        i = next(k for k in range(1, len(xs)) if partitions <= xs[k])
        y = ys[i - 1] + (ys[i] - ys[i - 1]) * (partitions - xs[i - 1]) / (xs[i] - xs[i - 1])
        return y, partitions < xs[1]

    def min_partitions_for(self, mb_per_s: float) -> tuple[int, bool] | None:
        """Smallest partition count whose (interpolated) throughput reaches ``mb_per_s`` on the measured
        brokers, and whether that is extrapolated; None if no count up to the largest measured reaches it."""
        pts = self.usable
        if not pts:
            return None
        for n in range(1, pts[-1].partitions + 1):
            mb, extrapolated = self.mb_at(n)
            if mb >= mb_per_s:
                return n, extrapolated
        return None


def spec_from_record(spec: dict[str, Any], p99_ms: float | None = None) -> SearchSpec:
    """The :class:`SearchSpec` recorded in a result's ``search.spec`` (optionally with another SLO)."""
    try:
        step = spec["step"]
        return SearchSpec(
            metric=spec["metric"], p99_ms=float(p99_ms if p99_ms is not None else spec["p99_ms"]),
            start_rate=float(spec["start_rate"]), max_rate=float(spec["max_rate"]),
            min_rate=float(spec["min_rate"]), step_factor=step.get("factor"), step_add=step.get("add"),
            refine=int(spec["refine"]), confirm=int(spec["confirm"]), max_steps=int(spec["max_steps"]),
            achieved_ratio=float(spec["achieved_ratio"]), noise_check=bool(spec["noise_check"]),
            step_duration_s=float(spec["step_duration_s"]), warmup_s=float(spec["warmup_s"]),
            retry_transient=bool(spec.get("retry_transient", True)), cooldown_s=float(spec.get("cooldown_s", 5.0)),
            prime=bool(spec.get("prime", False)), max_other_cpu_pct=float(spec.get("max_other_cpu_pct", 25.0)),
            quiet_wait_s=float(spec.get("quiet_wait_s", 0.0)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultError(f"the result's search.spec is malformed ({exc!r})") from exc


def _brokers(doc: RunDocument) -> int:
    broker = (doc.get("environment") or {}).get("broker") or {}
    seen = broker.get("brokers")
    if isinstance(seen, dict) and seen:
        return len(seen)
    return int(broker.get("nodes") or 1)


def config_of(doc: RunDocument, cell: CellDocument) -> dict[str, Any]:
    """The assumptions a measurement stands on, read from the result (librdkafka defaults named)."""
    w, prod, topic = cell.get("workload") or {}, cell.get("producer_config") or {}, cell.get("topic") or {}
    env = doc.get("environment") or {}
    broker, host = env.get("broker") or {}, env.get("host") or {}
    size = w.get("message_size") or {}
    msgs, nbytes = (cell.get("produce") or {}).get("messages") or 0, (cell.get("produce") or {}).get("bytes") or 0
    return {
        "message_size": size.get("value") if size.get("distribution") == "fixed" else size.get("distribution"),
        "mean_message_bytes": round(nbytes / msgs, 1) if msgs else None,
        "payload_compressibility": (w.get("payload") or {}).get("compressibility"),
        "acks": prod.get("acks", prod.get("request.required.acks", "all (librdkafka default)")),
        "compression": prod.get("compression.type", prod.get("compression.codec", "none (default)")),
        "linger.ms": prod.get("linger.ms", "5 (librdkafka default)"),
        "batch.size": prod.get("batch.size", "1000000 (librdkafka default)"),
        "replication_factor": topic.get("replication_factor"),
        "producers": w.get("producers"), "consumer_groups": w.get("consumer_groups"),
        "brokers": _brokers(doc), "broker": f"{broker.get('kind')} {broker.get('version') or ''}".strip(),
        "host_cpus": host.get("cpu_count"), "host_cpu_model": host.get("cpu_model"),
        "clock": env.get("clock"),
    }


def _group_key(cell: CellDocument) -> str:
    params = {k: v for k, v in (cell.get("params") or {}).items() if k not in _GROUP_EXCLUDE}
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in params.items()) or "base"


def _spread_mb(cells: list[CellDocument]) -> float:
    out = 0.0
    for c in cells:
        prod = c.get("produce") or {}
        sd = (prod.get("per_second") or {}).get("stdev")
        msgs = prod.get("messages") or 0
        if sd is not None and msgs:
            out = max(out, sd * (prod.get("bytes") or 0) / msgs / 1e6)
    return out


def _search_points(doc: RunDocument, p99_ms: float) -> tuple[list[Point], list[str], list[dict[str, Any]]]:
    record = doc["search"]
    spec = spec_from_record(record.get("spec") or {}, p99_ms)
    cells = {c.get("index"): c for c in doc["cells"]}
    steps = [{"phase": s.get("phase"), "host": s.get("host"), "contended": s.get("contended", False),
              **judge_step(cells[s["index"]], spec)}
             for s in record.get("steps") or [] if s.get("index") in cells]
    summary = summarize_search(spec, steps)
    notes = [f"knee re-derived from the {len(steps)} search step(s) at p99 <= {p99_ms:g} ms ({spec.metric}); "
             f"search status: {summary['status']}", *summary["notes"]]
    contention = contention_note(steps)
    if contention:
        notes.append(contention)
    if p99_ms != float(record["spec"]["p99_ms"]):
        notes.append(f"the search itself used p99 <= {record['spec']['p99_ms']:g} ms")
    knee = summary["knee"]
    base = next(iter(cells.values()))
    parts = int((base.get("topic") or {}).get("partitions") or 1)
    if knee is None:
        return [Point("knee", (), parts, 0.0, 0.0, 0.0, None, "knee", False, "no sustainable rate")], notes, steps
    runs = [cells[i] for i in knee["runs"]]
    spread = max(_spread_mb(runs), statistics.pstdev([s["mb_per_s"] for s in effective_steps(steps)
                                                                 if s["rate"] == knee["rate"]]))
    kind = "knee" if knee["upper"] is not None else "knee (lower bound)"
    return [Point(f"knee at {knee['rate']:,.0f} msg/s offered", tuple(knee["runs"]), parts,
                  knee["achieved_msgs_per_s"], knee["mb_per_s"], spread, knee["p99_ms"], kind, True)], notes, steps


def _sweep_point(cell: CellDocument, p99_ms: float) -> Point:
    w, prod = cell.get("workload") or {}, cell.get("produce") or {}
    parts = int((cell.get("topic") or {}).get("partitions") or 1)
    label, index = str(cell.get("label")), (int(cell.get("index") or 0),)
    if w.get("rate") is not None:  # open loop: judged like a search step at this SLO
        spec = SearchSpec("publish", p99_ms, 1, 1, 1, 2.0, None, 0, 0, 1, 0.95, True, 1, 0)
        j = judge_step(cell, spec)
        return Point(label, index, parts, j["achieved_msgs_per_s"], j["mb_per_s"], _spread_mb([cell]),
                     j["p99_ms"]["publish"], "lower bound", j["good"], "; ".join(j["reasons"]))
    # rate: max (closed loop): the throughput is the ceiling; noise goes into the spread, not the verdict
    values = [float(v) for v in (prod.get("per_second") or {}).get("values") or []]
    msgs = statistics.fmean(values) if values else float(prod.get("msgs_per_s") or 0.0)
    size = (prod.get("bytes") or 0) / prod["messages"] if prod.get("messages") else 0.0
    p99 = ((cell.get("latency") or {}).get("publish") or {}).get("p99_ms")
    why = []
    if not cell.get("complete"):
        why.append(f"incomplete: {cell.get('incomplete_reason')}")
    if (cell.get("errors") or {}).get("total"):
        why.append(f"{cell['errors']['total']} error(s)")
    if p99 is None or p99 > p99_ms:
        why.append(f"publish p99 {p99:,.1f} ms > SLO {p99_ms:g} ms" if p99 is not None else "no publish latency")
    cons = cell.get("consume") or {}
    groups = int(cons.get("groups") or 0)
    if groups:   # the configuration includes consumers: sustainable means they keep up (as in a search)
        cvals = [float(v) / groups for v in (cons.get("per_second") or {}).get("values") or []]
        consumed = statistics.fmean(cvals) if cvals else float(cons.get("msgs_per_s") or 0.0) / groups
        if consumed < 0.95 * msgs:
            why.append(f"consumers fell behind: {consumed:,.0f} msg/s per group < 0.95 x {msgs:,.0f} produced")
    return Point(label, index, parts, msgs, msgs * size / 1e6, _spread_mb([cell]), p99, "saturated", not why,
                 "; ".join(why))


def build_groups(doc: RunDocument, p99_ms: float) -> list[Group]:
    """Capacity points of a result at the SLO ``p99_ms``, grouped by configuration."""
    cells = [c for c in doc.get("cells") or [] if isinstance(c, dict)]
    if not cells:
        raise ResultError(f"{doc.get('_path', 'result')}: no cells to plan from")
    if not math.isfinite(p99_ms) or p99_ms <= 0:
        raise ResultError(f"p99 SLO must be > 0 ms, got {p99_ms}")
    if isinstance(doc.get("search"), dict) and doc["search"].get("steps"):
        points, notes, steps = _search_points(doc, p99_ms)
        group = Group(doc["search"].get("cell", {}).get("label") or "base", config_of(doc, cells[0]), points, notes,
                      steps)
        return [group]
    groups: dict[str, Group] = {}
    for c in cells:
        key = _group_key(c)
        g = groups.setdefault(key, Group(key, config_of(doc, c)))
        g.points.append(_sweep_point(c, p99_ms))
    for g in groups.values():
        if any(p.kind == "saturated" and p.usable for p in g.points):
            g.notes.append("rate: max cells are closed loop: their p99 is service time, not CO-corrected; "
                           "a knee search (kbench search) gives the latency-honest figure")
        if g.usable and all(p.kind == "lower bound" for p in g.usable):
            g.notes.append("only rate-limited cells: capacity is at least these figures (no saturation measured)")
    return list(groups.values())
