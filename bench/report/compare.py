"""``kbench compare``: two results, cell by cell, metric by metric, with a statistical verdict.

Cells are matched by their matrix parameters. A cell holds one or more runs (``cells[].repeats``, see
:mod:`bench.run.repeats`); every metric of :data:`~bench.report.data.COMPARE_METRICS` is judged on its
**run-level values**, one per run, so the run-to-run variance is in the test. The change is the ratio of
the medians of the run values ("1.32x slower"); it is **significant** when a one-sided exact Mann-Whitney
U test of the run values gives p < alpha in the direction of the change; it is a **regression** when it is
significant, worse, and at least ``1 + threshold`` times worse (asv's rule: significant AND beyond a
factor). When the runs are too few for the test ever to reach alpha (1 vs 1, 2 vs 2, 3 vs 3 at 0.05), the
metric is **inconclusive**, and so is the comparison unless a regression was found elsewhere (exit 3).
The per-second test between two single runs is printed for information and never decides. Results of a
different scenario (name or file hash), broker kind, or workload/topic layout are *incomparable*.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from bench.errors import ConfigError
from bench.report.data import COMPARE_METRICS, Metric, cell_clients, cell_key, metric_samples, metric_value
from bench.report.stats import mann_whitney_u, min_p_value
from bench.report.tables import to_markdown
from bench.results.model import CellDocument, RunDocument
from bench.run.repeats import cell_runs
from bench.run.thresholds import cell_failed

__all__ = ["EXIT_INCONCLUSIVE", "EXIT_OK", "EXIT_REGRESSION", "EXIT_UNUSABLE", "RUN_TEST", "SECOND_TEST",
           "CellComparison", "Comparison", "Difference", "MetricComparison", "compare_results", "parse_threshold"]


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


#: names of the tests, as printed
RUN_TEST = "one-sided exact Mann-Whitney U on run-level values, Holm-adjusted over each cell's metrics"
SECOND_TEST = "two-sided Mann-Whitney U on per-second samples"

#: exit codes of ``kbench compare``
EXIT_OK, EXIT_REGRESSION, EXIT_UNUSABLE, EXIT_INCONCLUSIVE = 0, 1, 2, 3


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one matched cell, judged on **run-level values** (one value per repeated run).

    ``baseline`` / ``current`` are the medians of the run values (the run's own value when it ran once);
    ``factor`` ≥ 1 is how many times better or worse the current median is. ``p_value`` is the one-sided
    exact Mann-Whitney p in the direction of the change, Holm-adjusted over the cell's ``family`` of
    measured metrics (``p_raw`` before; None when the test cannot reach alpha: ``inconclusive``).
    ``min_p`` is the smallest adjusted p the run counts allow. ``per_second_p`` is the two-sided
    per-second test between single runs, shown for information only; it never decides a verdict."""

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
    runs_baseline: tuple[float, ...] = ()
    runs_current: tuple[float, ...] = ()
    min_p: float = 1.0
    alpha: float = 0.05
    per_second_p: float | None = None
    n_seconds: tuple[int, int] = (0, 0)
    p_raw: float | None = None          # before Holm's adjustment over the cell's metrics
    family: int = 1                     # metrics in the cell's family (Holm)

    @property
    def measured(self) -> bool:
        return self.baseline is not None and self.current is not None

    @property
    def inconclusive(self) -> bool:
        """Measured on both sides, but too few runs for the test ever to reach alpha."""
        return self.measured and self.min_p >= self.alpha

    @property
    def regression(self) -> bool:
        return self.significant and self.beyond_threshold and bool(self.worse)

    @property
    def verdict(self) -> str:
        if not self.measured:
            return f"not measured in the {'baseline' if self.baseline is None else 'current result'}"
        if self.inconclusive:
            return f"INCONCLUSIVE ({self.n_baseline} vs {self.n_current} runs: p ≥ {self.min_p:.3g})"
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
    runs: tuple[int, int] = (1, 1)
    warnings: list[str] = field(default_factory=list)
    failed: tuple[bool, bool] = (False, False)     # (baseline, current): the cell failed (status: failed)

    @property
    def inconclusive(self) -> bool:
        return any(m.inconclusive for m in self.metrics)


@dataclass
class Comparison:
    """The whole comparison; :meth:`markdown` renders it for terminals and CI job summaries."""

    baseline: RunDocument
    current: RunDocument
    threshold: float
    alpha: float
    cells: list[CellComparison] = field(default_factory=list)
    only_baseline: list[str] = field(default_factory=list)
    only_current: list[str] = field(default_factory=list)
    incomparable: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forced: bool = False
    allow_inconclusive: bool = False

    @property
    def regressions(self) -> list[tuple[str, MetricComparison]]:
        return [(c.label, m) for c in self.cells for m in c.metrics if m.regression]

    @property
    def inconclusive(self) -> list[tuple[str, MetricComparison]]:
        return [(c.label, m) for c in self.cells for m in c.metrics if m.inconclusive]

    @property
    def failed_current(self) -> list[str]:
        """Cells that failed in the current result: each fails the gate (exit 1), whatever the metrics say."""
        return [c.label for c in self.cells if c.failed[1]]

    @property
    def comparable(self) -> bool:
        return not self.incomparable

    def exit_code(self) -> int:
        """1 when a significant regression beyond the threshold was found or a cell failed in the current
        result; 3 when none was found but some measured metric could not be tested (too few runs; 0 with
        ``allow_inconclusive``); 0 otherwise; 2 when incomparable (a cell that failed in the baseline
        included; not forced) or when no cell could be matched at all."""
        if (self.incomparable and not self.forced) or not self.cells:
            return EXIT_UNUSABLE
        if self.regressions or self.failed_current:
            return EXIT_REGRESSION
        if self.inconclusive and not self.allow_inconclusive:
            return EXIT_INCONCLUSIVE
        return EXIT_OK

    def markdown(self) -> str:
        return _markdown(self)


def _run_values(cell: CellDocument, metric: Metric) -> list[float]:
    return [v for v in (metric_value(r, metric) for r in cell_runs(cell)) if v is not None]


def _compare_metric(base: CellDocument, cur: CellDocument, metric: Metric, threshold: float,
                    alpha: float) -> MetricComparison:
    bv, cv = _run_values(base, metric), _run_values(cur, metric)
    b = statistics.median(bv) if bv else None
    c = statistics.median(cv) if cv else None
    factor: float | None = None
    worse: bool | None = None
    if b is not None and c is not None:
        if b == c:
            factor = 1.0
        else:
            worse = (c < b) if metric.higher_is_better else (c > b)
            hi, lo = max(b, c), min(b, c)
            factor = math.inf if lo <= 0 else hi / lo
    min_p = min_p_value(len(bv), len(cv), "greater")
    p: float | None = None
    significant = False
    if bv and cv and min_p < alpha:
        # H1 "current worse": current larger for latency, smaller for throughput; "better" the other way
        worse_alt = "less" if metric.higher_is_better else "greater"
        alt = worse_alt if worse is not False else ("greater" if worse_alt == "less" else "less")
        p = mann_whitney_u(cv, bv, alternative=alt).p_value
        significant = worse is not None and p < alpha
    per_second: float | None = None
    bs, cs = metric_samples(base, metric), metric_samples(cur, metric)
    if len(bv) == 1 and len(cv) == 1 and len(bs) >= 2 and len(cs) >= 2:
        per_second = mann_whitney_u(bs, cs).p_value
    beyond = factor is not None and factor >= 1.0 + threshold - 1e-12
    return MetricComparison(metric, b, c, len(bv), len(cv), p, factor, worse, significant, beyond,
                            tuple(bv), tuple(cv), min_p, alpha, per_second, (len(bs), len(cs)), p)


def _holm(results: list[MetricComparison], alpha: float) -> list[MetricComparison]:
    """Holm's step-down adjustment over the measured metrics of one cell: the gate's false-alarm rate is
    then at most alpha per cell (not per metric), whatever the metrics' correlation. The smallest
    achievable adjusted p is ``family × 1 / C(n + m, n)``, which decides *inconclusive*.

    Kept by hand (no library among the dependencies has it: scipy's ``false_discovery_control`` is BH/BY
    only; statsmodels' ``multipletests(method="holm")`` would add a 12 MB wheel for the six lines of the
    running maximum below, and the achievable-p bookkeeping stays here either way). Checked against
    statsmodels' values in tests/test_compare.py."""
    measured = [i for i, r in enumerate(results) if r.measured]
    m = len(measured)
    out = list(results)
    for i in measured:
        out[i] = dataclasses.replace(results[i], family=m, min_p=min(1.0, m * results[i].min_p), p_value=None,
                                     significant=False)
    if not m or out[measured[0]].min_p >= alpha:
        return out
    tested = sorted((i for i in measured if results[i].p_raw is not None), key=lambda i: results[i].p_raw or 0.0)
    running = 0.0
    for rank, i in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * (results[i].p_raw or 0.0)))
        r = out[i]
        out[i] = dataclasses.replace(r, p_value=running, significant=r.worse is not None and running < alpha)
    return out


def _steady_warnings(cell: CellDocument, side: str) -> list[str]:
    """Warnings from a cell's ``steady_state`` (bench/metrics/steady.py: trend and initial-transient tests of the
    per-second series), when present."""
    out: list[str] = []
    states = [("", cell.get("steady_state"))]
    if not isinstance(cell.get("steady_state"), dict) and isinstance(cell.get("repeats"), list):
        states = [(f"run {i + 1}: ", r.get("steady_state")) for i, r in enumerate(cell["repeats"])
                  if isinstance(r, dict)]
    for prefix, state in states:
        if isinstance(state, dict) and state.get("steady") is False:
            out.append(f"not steady in the {side}: {prefix}{state.get('warning') or 'trend in the per-second series'}")
    return out


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


def _get(doc: RunDocument, *path: str) -> Any:
    node: Any = doc
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _top_level_checks(base: RunDocument, cur: RunDocument) -> tuple[list[Difference], list[str]]:
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


def compare_results(baseline: RunDocument, current: RunDocument, *, threshold: float = 0.10,
                    alpha: float = 0.05, force: bool = False, allow_inconclusive: bool = False,
                    metrics: Sequence[Metric] = COMPARE_METRICS) -> Comparison:
    """Compare two loaded result documents (see :func:`bench.results.store.load_result`)."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"--alpha {alpha}: must be between 0 and 1")
    blocking, notes = _top_level_checks(baseline, current)
    comp = Comparison(baseline, current, threshold, alpha, incomparable=blocking, notes=notes, forced=force,
                      allow_inconclusive=allow_inconclusive)
    base_cells = {cell_key(c): c for c in baseline.get("cells") or []}
    cur_cells = {cell_key(c): c for c in current.get("cells") or []}
    comp.only_baseline = [str(c.get("label")) for k, c in base_cells.items() if k not in cur_cells]
    comp.only_current = [str(c.get("label")) for k, c in cur_cells.items() if k not in base_cells]
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
            bv, cv = cast(Mapping[str, Any], bc).get(head), cast(Mapping[str, Any], cc).get(head)
            if sub:
                bv, cv = (bv or {}).get(sub), (cv or {}).get(sub)
            comp.incomparable += [Difference(f"cell {label}: {d.field}", d.baseline, d.current)
                                  for d in _diff(bv, cv, section)]
        for section in ("producer_config", "consumer_config"):
            notes += [f"cell {label}: differs: {d}" for d in _diff(bc.get(section), cc.get(section), section)]
        if cell_clients(bc) != cell_clients(cc):
            notes.append(f"cell {label}: clients differ: {cell_clients(bc)} (baseline) vs {cell_clients(cc)} (current)")
        _cell_status_notes(comp, label, bc, cc)
        results = _holm([_compare_metric(bc, cc, m, threshold, alpha) for m in metrics], alpha)
        runs = (len(cell_runs(bc)), len(cell_runs(cc)))
        warnings = _steady_warnings(bc, "baseline") + _steady_warnings(cc, "current result")
        comp.cells.append(CellComparison(key, label, bool(bc.get("complete")), bool(cc.get("complete")), results,
                                         runs, warnings, (cell_failed(bc), cell_failed(cc))))
    if not comp.cells:
        comp.incomparable.append(Difference("cells (matrix parameters)", sorted(comp.only_baseline),
                                            sorted(comp.only_current)))
    for nb, nc, fam in sorted({(c.runs[0], c.runs[1], max(m.family for m in c.metrics))
                               for c in comp.cells if c.inconclusive}):
        notes.append(f"{nb} vs {nc} run(s) can never reach p < {alpha:g} with the run-level test over {fam} "
                     f"metrics (smallest possible Holm-adjusted p = {fam} × {min_p_value(nb, nc, 'greater'):.3g}): "
                     "the comparison is INCONCLUSIVE. Repeat the runs (`repeat: N` or `kbench run --repeat N`; "
                     f"{_runs_needed(alpha, fam)} per side reach it), or accept it with --allow-inconclusive")
    if any(m.per_second_p is not None for c in comp.cells for m in c.metrics):
        notes.append(f"per-second p: {SECOND_TEST} between the two single runs, for information only: samples of "
                     "one run do not carry the run-to-run variance, so it never decides a verdict")
    return comp


def _cell_status_notes(comp: Comparison, label: str, base: CellDocument, cur: CellDocument) -> None:
    """Incomplete cells are notes; a cell that failed in the baseline has nothing to compare with (incomparable:
    refresh the baseline); one that failed in the current result fails the gate (:meth:`Comparison.exit_code`)."""
    for name, cell in (("baseline", base), ("current", cur)):
        reason = " ".join(str(cell.get("incomplete_reason")).split())
        if cell_failed(cell):
            comp.notes.append(f"cell {label} FAILED in the {name}: {reason}")
        elif not cell.get("complete"):
            comp.notes.append(f"cell {label} is incomplete in the {name}: {reason}")
    if cell_failed(base):
        comp.incomparable.append(Difference(f"cell {label}: status", "failed", cur.get("status") or "ok"))


def _runs_needed(alpha: float, family: int) -> int:
    n = 1
    while family * min_p_value(n, n, "greater") >= alpha and n < 50:
        n += 1
    return n


def _fmt_p(m: MetricComparison) -> str:
    if m.p_value is None:
        return f"– ({m.n_baseline}/{m.n_current} runs)"
    return f"{m.p_value:.3g} ({m.n_baseline}/{m.n_current} runs)"


def _fmt_value(m: MetricComparison, runs: tuple[float, ...], value: float | None) -> str:
    if value is None or len(runs) < 2:
        return m.metric.fmt(value)
    return f"{m.metric.fmt(value)} [{m.metric.fmt(min(runs))}–{m.metric.fmt(max(runs))}]"


def _run_line(doc: RunDocument) -> str:
    broker = _get(doc, "environment", "broker") or {}
    status = "" if doc.get("complete") else " — **INCOMPLETE**"
    return (f"`{doc.get('_path', '?')}` (run {doc.get('run_id')}, {doc.get('started_at')}, "
            f"{broker.get('kind')} {broker.get('version') or ''}".rstrip() + f"){status}")


def _headline(comp: Comparison, how: str) -> str:
    regs, unsure = comp.regressions, comp.inconclusive
    failed = f"❌ **{len(comp.failed_current)} cell(s) FAILED in the current result**" if comp.failed_current else ""
    if regs:
        return (f"{failed}; " if failed else "") + f"❌ **{len(regs)} significant regression(s)** ({how})"
    if failed:
        return failed + f": {', '.join(comp.failed_current)} ({how})"
    if unsure:
        cells = len({label for label, _m in unsure})
        text = (f"⚠ **INCONCLUSIVE**: {cells} cell(s) have too few runs for the test to reach α; no regression "
                f"can be ruled out ({how})")
        if comp.allow_inconclusive:
            text += " — accepted with --allow-inconclusive (exit 0)"
        return text
    return f"✅ **no significant regression** ({how})"


def _markdown(comp: Comparison) -> str:
    name = _get(comp.current, "scenario", "name")
    out = [f"## kbench compare: {name}", ""]
    how = f"test: {RUN_TEST}, α = {comp.alpha:g}, threshold {comp.threshold * 100:g}%"
    if comp.incomparable:
        head = "⚠ **INCOMPARABLE results**" + (" (compared anyway: --force)" if comp.forced else "")
        out += [head + ":", ""] + [f"- {d}" for d in comp.incomparable] + [""]
    if not comp.incomparable or comp.forced:
        out += [_headline(comp, how), ""]
    out += [f"- **baseline:** {_run_line(comp.baseline)}", f"- **current:** {_run_line(comp.current)}", ""]
    for cell in comp.cells:
        flag = " (FAILED)" if any(cell.failed) else "" if cell.baseline_complete and cell.current_complete \
            else " (incomplete)"
        single = any(m.per_second_p is not None for m in cell.metrics)
        rows = []
        for m in cell.metrics:
            row = {"metric": m.metric.label, "baseline": _fmt_value(m, m.runs_baseline, m.baseline),
                   "current": _fmt_value(m, m.runs_current, m.current), "change": m.change,
                   "p, Holm (runs)": _fmt_p(m)}
            if single:
                row["per-second p (info)"] = ("–" if m.per_second_p is None else
                                              f"{m.per_second_p:.3g} (n={m.n_seconds[0]}/{m.n_seconds[1]})")
            row["verdict"] = f"**{m.verdict}**" if m.regression or m.inconclusive else m.verdict
            rows.append(row)
        runs = f"{cell.runs[0]} vs {cell.runs[1]} run(s)"
        median = "; values: median of the runs [min–max]" if max(cell.runs) > 1 else ""
        out += [f"### {cell.label}{flag}", "", f"{runs}{median}", "",
                to_markdown(pd.DataFrame(rows), left=("verdict",)), ""]
        out += [f"- ⚠ {w}" for w in cell.warnings]
        if cell.warnings:
            out.append("")
    if comp.only_baseline:
        out.append(f"- cells only in the baseline: {', '.join(comp.only_baseline)}")
    if comp.only_current:
        out.append(f"- cells only in the current result: {', '.join(comp.only_current)}")
    out += [f"- {n}" for n in comp.notes]
    return "\n".join(out).rstrip() + "\n"
