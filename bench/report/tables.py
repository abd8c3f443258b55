"""Tables of a result (pandas): the per-cell table (CSV/Parquet), one comparison table per metric with the
best cell marked, and the markdown summary that holds them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pandas as pd

from bench.report.data import (
    REPORT_METRICS,
    Metric,
    best_rows,
    cell_name,
    metric_samples,
    metric_value,
    spread,
)
from bench.report.verification import verification_line
from bench.results.model import CellDocument, RunDocument
from bench.run.thresholds import cell_failed, evaluate

__all__ = ["Table", "cell_frame", "cell_notes", "markdown_summary", "metric_tables", "overview_table", "run_facts",
           "threshold_misses", "to_markdown"]

BEST = "★"


@dataclass
class Table:
    """A display table: string cells, the rows of the best cell(s) (if marked), rows of incomplete cells."""

    title: str
    frame: pd.DataFrame
    best_rows: list[int] = field(default_factory=list)
    incomplete_rows: list[int] = field(default_factory=list)
    note: str | None = None


def cell_frame(doc: RunDocument) -> pd.DataFrame:
    """One row per cell, numeric: parameters (``param:<key>``, as strings), every report metric, the
    per-second spread of throughput, checks. Written as ``cells.csv`` / ``cells.parquet``."""
    rows: list[dict[str, Any]] = []
    for cell in doc["cells"]:
        row: dict[str, Any] = {"index": cell.get("index"), "label": cell.get("label"),
                               "complete": bool(cell.get("complete")), "status": _status(cell).lower(),
                               "incomplete_reason": cell.get("incomplete_reason")}
        for key, value in (cell.get("params") or {}).items():
            row[f"param:{key}"] = str(value)
        for metric in REPORT_METRICS:
            row[metric.key] = metric_value(cell, metric)
            if metric.kind == "rate":
                s = spread(metric_samples(cell, metric))
                for stat in ("mean", "stdev", "min", "max", "n"):
                    row[f"{metric.key}.per_second.{stat}"] = s[stat]
        check = cell.get("check") or {}
        row["check.offsets_agree"] = check.get("offsets_agree")
        row["check.consumed_all"] = check.get("consumed_all")
        rows.append(row)
    return pd.DataFrame(rows)


def _vs_best(value: float | None, best: float | None) -> str:
    if value is None or best is None:
        return "–"
    if best == 0:
        return "–" if value == 0 else "n/a"
    return f"{(value / best - 1.0) * 100:+.0f}%"


def metric_tables(doc: RunDocument, metrics: Sequence[Metric] = REPORT_METRICS) -> list[Table]:
    """One table per metric that any cell has: cells side by side, best cell marked with ★."""
    cells = doc["cells"]
    complete = [bool(c.get("complete")) for c in cells]
    tables: list[Table] = []
    for metric in metrics:
        values = [metric_value(c, metric) for c in cells]
        if all(v is None for v in values):
            continue
        best = best_rows(values, complete, metric.higher_is_better)
        best_value = values[best[0]] if best else None
        spreads = [spread(metric_samples(c, metric)) for c in cells]
        rows = []
        for i, (cell, value, s) in enumerate(zip(cells, values, spreads, strict=True)):
            row = {"cell": cell_name(cell) + (f" {BEST}" if i in best else ""), metric.unit: metric.fmt(value)}
            if best:
                row["vs best"] = "best" if i in best else _vs_best(value, best_value)
            if any(sp["n"] for sp in spreads):
                row["per-second mean ± stdev"] = (f"{metric.fmt(s['mean'])} ± {metric.fmt(s['stdev'])}"
                                                  if s["n"] else "–")
                row["per-second min – max"] = f"{metric.fmt(s['min'])} – {metric.fmt(s['max'])}" if s["n"] else "–"
                row["seconds"] = str(s["n"])
            rows.append(row)
        note = None
        if metric.key.endswith(("p99_9_ms", "max_ms")) and any(sp["n"] for sp in spreads):
            note = "per-second columns: the per-second maximum"
        direction = "higher is better" if metric.higher_is_better else "lower is better"
        tables.append(Table(f"{metric.label} — {direction}", pd.DataFrame(rows), best,
                            [i for i, ok in enumerate(complete) if not ok], note))
    return tables


def _fmt_ms(value: float | None) -> str:
    return "–" if value is None else (f"{value:.3g}" if value < 10 else f"{value:,.1f}")


def _status(cell: CellDocument) -> str:
    return "FAILED" if cell_failed(cell) else "ok" if cell.get("complete") else "INCOMPLETE"


def cell_notes(doc: RunDocument, *, bold: bool = False) -> list[str]:
    """One line per failed or incomplete cell, with its reason (a failed driver's stderr tail on one line);
    ``bold``: the label in markdown bold."""
    notes: list[str] = []
    for cell in doc["cells"]:
        reason = " ".join(str(cell.get("incomplete_reason") or "unknown").split())
        label = f"**{_md_escape(str(cell.get('label')))}**" if bold else str(cell.get("label"))
        if cell_failed(cell):
            failure = cell.get("failure")
            phase = failure.get("phase") if failure else None
            notes.append(f"✗ {label} FAILED{f' ({phase})' if phase else ''}: {reason}")
        elif not cell.get("complete"):
            notes.append(f"⚠ {label} incomplete: {reason}")
    return notes


def overview_table(doc: RunDocument) -> Table:
    """One row per cell with the headline numbers (like the end-of-run summary)."""
    by_key = {m.key: m for m in REPORT_METRICS}
    cols = [("produce msg/s", "produce.msgs_per_s"), ("produce MB/s", "produce.mb_per_s"),
            ("consume msg/s", "consume.msgs_per_s"), ("publish p50 ms", "latency.publish.p50_ms"),
            ("publish p99 ms", "latency.publish.p99_ms"), ("publish p99.9 ms", "latency.publish.p99_9_ms"),
            ("e2e p99 ms", "latency.e2e.p99_ms"), ("errors", "errors.total")]
    rows = []
    for cell in doc["cells"]:
        row = {"cell": cell_name(cell), "status": _status(cell)}
        for title, key in cols:
            row[title] = by_key[key].fmt(metric_value(cell, by_key[key]))
        agree = (cell.get("check") or {}).get("offsets_agree")
        row["offsets"] = "–" if agree is None else ("ok" if agree else "MISMATCH")
        rows.append(row)
    incomplete = [i for i, c in enumerate(doc["cells"]) if not c.get("complete")]
    return Table("Cells", pd.DataFrame(rows), [], incomplete)


def threshold_misses(doc: RunDocument) -> tuple[int, list[str]] | None:
    """(number of thresholds, misses) of the scenario's ``thresholds:``; ``None`` when it has none."""
    raw = (doc.get("scenario") or {}).get("document") or {}
    items = raw.get("thresholds") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        return None
    specs = [SimpleNamespace(metric=t["metric"], max=t.get("max"), min=t.get("min"))
             for t in items if isinstance(t, dict) and isinstance(t.get("metric"), str)]
    return len(specs), [str(m) for m in evaluate(doc["cells"], specs)]


def run_facts(doc: RunDocument) -> list[tuple[str, str]]:
    """(name, value) lines describing the run: scenario, broker, host, versions, times, completeness."""
    scen = doc.get("scenario") or {}
    env = doc.get("environment") or {}
    broker = env.get("broker") or {}
    host = env.get("host") or {}
    load = host.get("load_avg_1m")
    load_text = f"load {load:.2f}" if isinstance(load, int | float) else "load ?"
    status = "complete" if doc.get("complete") else f"INCOMPLETE — {doc.get('incomplete_reason') or 'unknown'}"
    kind = broker.get("kind") or "?"
    version = broker.get("version") or "unknown version"
    where = "embedded" if broker.get("embedded") else broker.get("bootstrap") or "external"
    facts = [
        ("scenario", f"{scen.get('name')} ({(scen.get('sha256') or '')[:12]})"),
        ("status", status),
        ("broker", f"{kind} {version}, {where}" + (f", {broker['nodes']} node(s)" if broker.get("nodes") else "")),
        ("run", f"{doc.get('run_id')}: {doc.get('started_at')} → {doc.get('ended_at')}"),
        ("host", f"{host.get('cpu_model', '?')}, {host.get('cpu_count', '?')} cores, {load_text}"
                 + (" (CI)" if host.get("ci") else "")),
        ("clients", f"kbench {env.get('kbench')}, confluent-kafka {env.get('confluent_kafka')}, "
                    f"librdkafka {env.get('librdkafka')}, Python {env.get('python')}"),
    ]
    if env.get("clock"):
        facts.append(("clock", str(env["clock"])))
    return facts


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(frame: pd.DataFrame, left: Sequence[str] = ()) -> str:
    """A GitHub-flavoured pipe table: the first column and those named in ``left`` left-aligned, the rest
    (numbers) right-aligned."""
    cols = [str(c) for c in frame.columns]
    align = [":--" if i == 0 or c in left else "--:" for i, c in enumerate(cols)]
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "|".join(align) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_escape(str(v)) for v in row) + " |")
    return "\n".join(lines)


def markdown_summary(doc: RunDocument, charts: Sequence[tuple[str, str]] = ()) -> str:
    """The whole markdown report; ``charts`` are (title, relative file name) pairs to link as images."""
    scen = doc.get("scenario") or {}
    out = [f"# kbench report: {scen.get('name')}", ""]
    if scen.get("description"):
        out += [str(scen["description"]), ""]
    if not doc.get("complete"):
        out += [f"> **⚠ INCOMPLETE RUN:** {doc.get('incomplete_reason') or 'reason unknown'} — numbers below "
                "cover only what was measured.", ""]
    out += [f"- **{k}:** {_md_escape(v)}" for k, v in run_facts(doc)]
    out.append("")
    if not doc.get("cells"):
        out += ["No cell was measured.", ""]
        return "\n".join(out)
    overview = overview_table(doc)
    out += ["## Cells", "", to_markdown(overview.frame), ""]
    out += [f"- {note}" for note in cell_notes(doc, bold=True)]
    for cell in doc["cells"]:
        for warning in cell.get("warnings") or []:
            out.append(f"- {cell.get('label')}: {warning}")
        verified = verification_line(cell)
        if verified:
            out.append(f"- {cell.get('label')}: {verified}")
    thresholds = threshold_misses(doc)
    if thresholds is not None:
        total, misses = thresholds
        out += ["", "## Thresholds", ""]
        out += [f"- ✗ {m}" for m in misses] or [f"- ✓ all {total} threshold(s) met in every cell"]
    out.append("")
    if charts:
        out += ["## Charts", ""]
        out += [f"![{title}]({name})" for title, name in charts]
        out.append("")
    out += ["## Metrics", "",
            f"One table per metric; {BEST} marks the best complete cell. Per-second columns summarise the "
            "whole seconds of the measurement window.", ""]
    for table in metric_tables(doc):
        out += [f"### {table.title}", "", to_markdown(table.frame), ""]
        if table.note:
            out += [f"_{table.note}_", ""]
    return "\n".join(out)
