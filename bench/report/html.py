"""One self-contained HTML file: run facts, tables, and the charts embedded as base64 ``data:`` URIs
(no external CSS, fonts, scripts or images, so it can be mailed, archived or opened offline).

The markup is in Jinja2 templates (``bench/report/templates/``: ``report.html``, and the table macro in
``macros.html``), rendered with autoescaping on: every value from a result document is escaped. This
module only turns a result document into the typed views the templates read.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from bench import __version__
from bench.report.tables import BEST, Table, cell_notes, metric_tables, overview_table, run_facts, threshold_misses
from bench.report.verification import verification_line
from bench.results.model import RunDocument

__all__ = ["render_html", "table_html"]


@dataclass(frozen=True)
class RowView:
    classes: str          # "", "best", "incomplete" or "best incomplete"
    cells: tuple[str, ...]


@dataclass(frozen=True)
class TableView:
    columns: tuple[str, ...]
    rows: tuple[RowView, ...]
    caption: str | None = None


@dataclass(frozen=True)
class MetricView:
    title: str
    table: TableView
    note: str | None


@dataclass(frozen=True)
class ChartView:
    title: str
    png_base64: str


@dataclass(frozen=True)
class ThresholdView:
    total: int
    misses: tuple[str, ...]


@dataclass(frozen=True)
class ReportView:
    """Everything ``report.html`` shows, as strings; ``overview`` is None when no cell was measured."""

    name: str
    description: str | None
    complete: bool
    incomplete_reason: str
    facts: tuple[tuple[str, str], ...]
    overview: TableView | None
    cell_notes: tuple[str, ...]
    thresholds: ThresholdView | None
    charts: tuple[ChartView, ...]
    metrics: tuple[MetricView, ...]
    best: str
    version: str
    source: str


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("bench.report", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _table_view(table: Table, caption: str | None = None) -> TableView:
    rows = []
    for i, row in enumerate(table.frame.itertuples(index=False)):
        classes = [name for name, marked in (("best", table.best_rows), ("incomplete", table.incomplete_rows))
                   if i in marked]
        rows.append(RowView(" ".join(classes), tuple(str(v) for v in row)))
    return TableView(tuple(str(c) for c in table.frame.columns), tuple(rows), caption or None)


def table_html(table: Table, *, caption: str | None = None) -> str:
    """An escaped HTML table; best rows get class ``best``, incomplete ones ``incomplete``."""
    macro = _env().get_template("macros.html").module.table  # type: ignore[attr-defined]
    return str(macro(_table_view(table, caption)))


def _report_view(doc: RunDocument, charts: Sequence[tuple[str, Path]]) -> ReportView:
    scen = doc.get("scenario") or {}
    cells = doc.get("cells") or []
    notes = cell_notes(doc) if cells else []
    notes += [f"{c.get('label')}: {w}" for c in cells for w in c.get("warnings") or []]
    notes += [f"{c.get('label')}: {line}" for c in cells if (line := verification_line(c))]
    thresholds = threshold_misses(doc) if cells else None
    return ReportView(
        name=str(scen.get("name") or "run"),
        description=str(scen["description"]) if scen.get("description") else None,
        complete=bool(doc.get("complete")),
        incomplete_reason=str(doc.get("incomplete_reason") or "reason unknown"),
        facts=tuple(run_facts(doc)),
        overview=_table_view(overview_table(doc)) if cells else None,
        cell_notes=tuple(notes),
        thresholds=None if thresholds is None else ThresholdView(thresholds[0], tuple(thresholds[1])),
        charts=tuple(ChartView(title, base64.b64encode(path.read_bytes()).decode("ascii"))
                     for title, path in charts) if cells else (),
        metrics=tuple(MetricView(t.title, _table_view(t), t.note) for t in metric_tables(doc)) if cells else (),
        best=BEST,
        version=__version__,
        source=str(doc.get("_path") or ""),
    )


def render_html(doc: RunDocument, charts: Sequence[tuple[str, Path]] = ()) -> str:
    """The whole report as one HTML string; ``charts`` are (title, PNG path) pairs to embed."""
    return _env().get_template("report.html").render(r=_report_view(doc, charts))
