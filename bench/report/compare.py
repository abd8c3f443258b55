"""``kbench compare``: two results, cell by cell, metric by metric, with a statistical verdict.

Cells are matched by their matrix parameters. For each metric of :data:`~bench.report.data.COMPARE_METRICS`
the change is the ratio of the whole-run values ("1.32x slower", "1.10x faster"); it is **significant**
when a two-sided Mann-Whitney U test of the per-second samples of the two runs gives p < alpha and the
per-second medians move the same way; it is a **regression** when it is significant, worse, and at least
``1 + threshold`` times worse (asv's rule: significant AND beyond a factor). Results of a different
scenario (name or file hash), broker kind, or workload/topic layout are *incomparable*.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.errors import ConfigError
from bench.report.data import COMPARE_METRICS, Metric, cell_key, metric_samples, metric_value
from bench.report.stats import mann_whitney_u, min_p_value
from bench.report.tables import to_markdown

__all__ = ["CellComparison", "Comparison", "Difference", "MetricComparison", "compare_results",
           "parse_threshold"]


def parse_threshold(text: str) -> float:
    """``"10%"`` → 0.10, ``"1.1x"`` → 0.10, ``"0.1"`` → 0.10. Raises ConfigError otherwise."""
    raw = text.strip().lower()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1]) / 100.0
        elif raw.endswith("x"):
            value = float(raw[:-1]) - 1.0
        else:
            value = float(raw)
            if value >= 1.0:
                raise ConfigError(f"--threshold {text!r}: ambiguous; write a percentage (10%) or a factor (1.1x)")
    except ValueError as exc:
        raise ConfigError(f"--threshold {text!r}: expected a percentage like 10%, a factor like 1.1x, "
                          "or a fraction like 0.1") from exc
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--threshold {text!r}: must be a non-negative change")
    return value


@dataclass(frozen=True)
class Difference:
    """A field whose value differs between the two results."""

    field: str
    baseline: Any
    current: Any

    def __str__(self) -> str:
        return f"{self.field}: {self.baseline!r} in the baseline, {self.current!r} in the current result"


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one matched cell. ``factor`` ≥ 1 is how many times better or worse the current value is."""

    metric: Metric
    baseline: float | None
    current: float | None
    n_baseline: int
    n_current: int
    p_value: float | None
    factor: float | None
    worse: bool | None
    significant: bool
    beyond_threshold: bool

    @property
    def regression(self) -> bool:
        return self.significant and self.beyond_threshold and bool(self.worse)

    @property
    def verdict(self) -> str:
        if self.baseline is None or self.current is None:
            return f"not measured in the {'baseline' if self.baseline is None else 'current result'}"
        if not self.significant or self.factor is None:
            return "not significant"
        text = f"{self.factor:.2f}x {'slower' if self.worse else 'faster'}"
        if self.regression:
            return text + " — REGRESSION"
        return text if self.beyond_threshold else text + " (within threshold)"

    @property
    def change(self) -> str:
        if self.baseline is None or self.current is None:
            return "–"
        if self.baseline == 0:
            return "0" if self.current == 0 else "new"
        return f"{(self.current / self.baseline - 1.0) * 100:+.1f}%"


@dataclass
class CellComparison:
    key: str
    label: str
    baseline_complete: bool
    current_complete: bool
    metrics: list[MetricComparison]


@dataclass
class Comparison:
    """The whole comparison; :meth:`markdown` renders it for terminals and CI job summaries."""

    baseline: dict[str, Any]
    current: dict[str, Any]
    threshold: float
    alpha: float
    cells: list[CellComparison] = field(default_factory=list)
    only_baseline: list[str] = field(default_factory=list)
    only_current: list[str] = field(default_factory=list)
    incomparable: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forced: bool = False

    @property
    def regressions(self) -> list[tuple[str, MetricComparison]]:
        return [(c.label, m) for c in self.cells for m in c.metrics if m.regression]

    @property
    def comparable(self) -> bool:
        return not self.incomparable

    def exit_code(self) -> int:
        """1 when a significant regression beyond the threshold was found, else 0; 2 when incomparable
        (and not forced) or when no cell could be matched at all."""
        if (self.incomparable and not self.forced) or not self.cells:
            return 2
        return 1 if self.regressions else 0

    def markdown(self) -> str:
        return _markdown(self)


def _compare_metric(base: dict[str, Any], cur: dict[str, Any], metric: Metric, threshold: float,
                    alpha: float) -> MetricComparison:
    b, c = metric_value(base, metric), metric_value(cur, metric)
    bs, cs = metric_samples(base, metric), metric_samples(cur, metric)
    factor: float | None = None
    worse: bool | None = None
    if b is not None and c is not None:
        if b == c:
            factor = 1.0
        else:
            worse = (c < b) if metric.higher_is_better else (c > b)
            hi, lo = max(b, c), min(b, c)
            factor = math.inf if lo <= 0 else hi / lo
    p: float | None = None
    significant = False
    if len(bs) >= 2 and len(cs) >= 2 and worse is not None:
        p = mann_whitney_u(bs, cs).p_value
        med_b, med_c = statistics.median(bs), statistics.median(cs)
        med_worse = (med_c < med_b) if metric.higher_is_better else (med_c > med_b)
        significant = p < alpha and med_b != med_c and med_worse == worse
    elif len(bs) >= 2 and len(cs) >= 2:
        p = mann_whitney_u(bs, cs).p_value
    beyond = factor is not None and factor >= 1.0 + threshold - 1e-12
    return MetricComparison(metric, b, c, len(bs), len(cs), p, factor, worse, significant, beyond)


def _flatten(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node}


def _diff(base: Any, cur: Any, prefix: str) -> list[Difference]:
    fb, fc = _flatten(base, prefix), _flatten(cur, prefix)
    return [Difference(k, fb.get(k), fc.get(k)) for k in sorted(set(fb) | set(fc)) if fb.get(k) != fc.get(k)]


def _get(doc: dict[str, Any], *path: str) -> Any:
    node: Any = doc
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _top_level_checks(base: dict[str, Any], cur: dict[str, Any]) -> tuple[list[Difference], list[str]]:
    blocking = [Difference(".".join(path), _get(base, *path), _get(cur, *path))
                for path in (("scenario", "name"), ("scenario", "sha256"), ("environment", "broker", "kind"))
                if _get(base, *path) != _get(cur, *path)]
    # the scenario's workload as run (after --set overrides; matrix values live in the cells)
    blocking += _diff(_get(base, "scenario", "document", "workload"), _get(cur, "scenario", "document", "workload"),
                      "scenario.document.workload")
    notes = [f"differs: {Difference('.'.join(path), _get(base, *path), _get(cur, *path))}"
             for path in (("environment", "broker", "version"), ("environment", "kbench"),
                          ("environment", "librdkafka"), ("environment", "host", "cpu_model"),
                          ("environment", "host", "cpu_count"))
             if _get(base, *path) != _get(cur, *path)]
    for name, doc in (("baseline", base), ("current", cur)):
        if not doc.get("complete"):
            notes.append(f"the {name} run is INCOMPLETE: {doc.get('incomplete_reason') or 'unknown reason'}")
    return blocking, notes


def compare_results(baseline: dict[str, Any], current: dict[str, Any], *, threshold: float = 0.10,
                    alpha: float = 0.05, force: bool = False,
                    metrics: Sequence[Metric] = COMPARE_METRICS) -> Comparison:
    """Compare two loaded result documents (see :func:`bench.results.load_result`)."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"--alpha {alpha}: must be between 0 and 1")
    blocking, notes = _top_level_checks(baseline, current)
    comp = Comparison(baseline, current, threshold, alpha, incomparable=blocking, notes=notes, forced=force)
    base_cells = {cell_key(c): c for c in baseline.get("cells") or []}
    cur_cells = {cell_key(c): c for c in current.get("cells") or []}
    comp.only_baseline = [str(c.get("label")) for k, c in base_cells.items() if k not in cur_cells]
    comp.only_current = [str(c.get("label")) for k, c in cur_cells.items() if k not in base_cells]
    unreachable: set[tuple[int, int]] = set()
    cell_workloads = not any(d.field.startswith("scenario.document.workload") for d in blocking)
    for key, bc in base_cells.items():
        cc = cur_cells.get(key)
        if cc is None:
            continue
        label = str(cc.get("label"))
        # per-cell workload differences only when the scenario's own workload did not already differ
        sections = ("topic.partitions", "topic.replication_factor") + (("workload",) if cell_workloads else ())
        for section in sections:
            head, _, sub = section.partition(".")
            bv, cv = bc.get(head), cc.get(head)
            if sub:
                bv, cv = (bv or {}).get(sub), (cv or {}).get(sub)
            comp.incomparable += [Difference(f"cell {label}: {d.field}", d.baseline, d.current)
                                  for d in _diff(bv, cv, section)]
        for section in ("producer_config", "consumer_config"):
            notes += [f"cell {label}: differs: {d}" for d in _diff(bc.get(section), cc.get(section), section)]
        for name, cell in (("baseline", bc), ("current", cc)):
            if not cell.get("complete"):
                notes.append(f"cell {label} is incomplete in the {name}: {cell.get('incomplete_reason')}")
        results = [_compare_metric(bc, cc, m, threshold, alpha) for m in metrics]
        for r in results:
            if r.n_baseline and r.n_current and min_p_value(r.n_baseline, r.n_current) >= alpha:
                unreachable.add((r.n_baseline, r.n_current))
        comp.cells.append(CellComparison(key, label, bool(bc.get("complete")), bool(cc.get("complete")), results))
    if not comp.cells:
        comp.incomparable.append(Difference("cells (matrix parameters)", sorted(comp.only_baseline),
                                            sorted(comp.only_current)))
    for nb, nc in sorted(unreachable):
        notes.append(f"{nb} vs {nc} per-second samples can never reach p < {alpha:g} (smallest possible p = "
                     f"{min_p_value(nb, nc):.3f}): such metrics always read 'not significant'; run longer")
    return comp


def _fmt_p(m: MetricComparison) -> str:
    if m.p_value is None:
        return f"– (n={m.n_baseline}/{m.n_current})"
    return f"{m.p_value:.3g} (n={m.n_baseline}/{m.n_current})"


def _run_line(doc: dict[str, Any]) -> str:
    broker = _get(doc, "environment", "broker") or {}
    status = "" if doc.get("complete") else " — **INCOMPLETE**"
    return (f"`{doc.get('_path', '?')}` (run {doc.get('run_id')}, {doc.get('started_at')}, "
            f"{broker.get('kind')} {broker.get('version') or ''}".rstrip() + f"){status}")


def _markdown(comp: Comparison) -> str:
    name = _get(comp.current, "scenario", "name")
    out = [f"## kbench compare: {name}", ""]
    how = (f"threshold {comp.threshold * 100:g}%, two-sided Mann-Whitney U on per-second samples, "
           f"α = {comp.alpha:g}")
    if comp.incomparable:
        head = "⚠ **INCOMPARABLE results**" + (" (compared anyway: --force)" if comp.forced else "")
        out += [head + ":", ""] + [f"- {d}" for d in comp.incomparable] + [""]
    if not comp.incomparable or comp.forced:
        regs = comp.regressions
        out.append(f"❌ **{len(regs)} significant regression(s)** ({how})" if regs
                   else f"✅ **no significant regression** ({how})")
        out.append("")
    out += [f"- **baseline:** {_run_line(comp.baseline)}", f"- **current:** {_run_line(comp.current)}", ""]
    for cell in comp.cells:
        flag = "" if cell.baseline_complete and cell.current_complete else " (incomplete)"
        rows = [{"metric": m.metric.label, "baseline": m.metric.fmt(m.baseline), "current": m.metric.fmt(m.current),
                 "change": m.change, "p (n)": _fmt_p(m),
                 "verdict": f"**{m.verdict}**" if m.regression else m.verdict} for m in cell.metrics]
        out += [f"### {cell.label}{flag}", "", to_markdown(pd.DataFrame(rows), left=("verdict",)), ""]
    if comp.only_baseline:
        out.append(f"- cells only in the baseline: {', '.join(comp.only_baseline)}")
    if comp.only_current:
        out.append(f"- cells only in the current result: {', '.join(comp.only_current)}")
    out += [f"- {n}" for n in comp.notes]
    return "\n".join(out).rstrip() + "\n"
