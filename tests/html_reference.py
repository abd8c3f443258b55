"""The reference for the HTML differential tests: the string-built renderers of bench/report/html.py and
bench/capacity/render.py before Jinja2, kept verbatim (renamed; the report's style sheet is read from the
template it was moved to). tests/test_report_html.py and tests/test_capacity.py check that the templates
give the same document (same elements, attributes and text)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from bench import __version__
from bench.report.tables import BEST, Table, metric_tables, overview_table, run_facts, threshold_misses


class _Events(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, *(f"{k}={v}" for k, v in sorted(attrs))))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text:
            self.events.append(("text", text))

    def handle_decl(self, decl: str) -> None:
        self.events.append(("decl", decl.lower()))


def dom_events(document: str) -> list[tuple[str, ...]]:
    """The document as parsed: tags with sorted attributes, text with entities resolved and whitespace
    collapsed (whitespace between tags dropped); equal for two documents a browser renders alike."""
    parser = _Events()
    parser.feed(document)
    parser.close()
    return parser.events


#: The style sheet: report.html kept the old one verbatim, so it is read from the template (a copy here
#: would test nothing); the differential tests compare everything else the renderers build.
_CSS = (Path(__file__).resolve().parent.parent / "bench" / "report" / "templates" / "report.html").read_text(
    encoding="utf-8").split("<style>", 1)[1].split("</style>", 1)[0]


def old_table_html(table: Table, *, caption: str | None = None) -> str:
    """An escaped HTML table; best rows get class ``best``, incomplete ones ``incomplete``."""
    parts = ['<div class="scroll"><table>']
    if caption:
        parts.append(f"<caption>{escape(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{escape(str(c))}</th>" for c in table.frame.columns)
                 + "</tr></thead><tbody>")
    for i, row in enumerate(table.frame.itertuples(index=False)):
        classes = [name for name, rows in (("best", table.best_rows), ("incomplete", table.incomplete_rows))
                   if i in rows]
        attr = f' class="{" ".join(classes)}"' if classes else ""
        parts.append(f"<tr{attr}>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _img(path: Path, title: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(title)}">'
            f"<figcaption>{escape(title)}</figcaption></figure>")


def old_report_html(doc: dict[str, Any], charts: Sequence[tuple[str, Path]] = ()) -> str:
    """The whole report as one HTML string; ``charts`` are (title, PNG path) pairs to embed."""
    scen = doc.get("scenario") or {}
    name = str(scen.get("name") or "run")
    body = [f"<h1>kbench report: {escape(name)}</h1>"]
    if scen.get("description"):
        body.append(f'<p class="desc">{escape(str(scen["description"]))}</p>')
    if doc.get("complete"):
        body.append('<div class="banner ok">Run complete.</div>')
    else:
        body.append('<div class="banner bad">⚠ INCOMPLETE RUN: '
                    f"{escape(str(doc.get('incomplete_reason') or 'reason unknown'))} — numbers cover only what "
                    "was measured.</div>")
    body.append('<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>"
                                               for k, v in run_facts(doc)) + "</dl>")
    cells = doc.get("cells") or []
    if not cells:
        body.append("<p>No cell was measured.</p>")
    else:
        body.append("<h2>Cells</h2>" + old_table_html(overview_table(doc)))
        notes = [f"⚠ {c.get('label')} incomplete: {c.get('incomplete_reason') or 'unknown'}"
                 for c in cells if not c.get("complete")]
        notes += [f"{c.get('label')}: {w}" for c in cells for w in c.get("warnings") or []]
        if notes:
            body.append('<ul class="misses">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
        thresholds = threshold_misses(doc)
        if thresholds is not None:
            total, misses = thresholds
            body.append("<h2>Thresholds</h2>")
            if misses:
                body.append('<ul class="misses">' + "".join(f"<li>✗ {escape(m)}</li>" for m in misses) + "</ul>")
            else:
                body.append(f"<p>✓ all {total} threshold(s) met in every cell</p>")
        if charts:
            body.append("<h2>Charts</h2>" + "".join(_img(path, title) for title, path in charts))
        body.append("<h2>Metrics</h2>"
                    f'<p class="note">One table per metric; {BEST} and green mark the best complete cell, red '
                    "marks incomplete cells. Per-second columns summarise the whole seconds of the measurement "
                    "window.</p>")
        for table in metric_tables(doc):
            note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
            body.append(f"<section><h3>{escape(table.title)}</h3>{old_table_html(table)}{note}</section>")
    source = doc.get("_path") or ""
    body.append(f"<footer><p>Generated by kbench {escape(__version__)} from {escape(str(source))}.</p></footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>kbench report: {escape(name)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def old_plan_html(sections: list[tuple[Any, ...]], title: str, png: bytes) -> str:
    e = html.escape
    body = [f"<h1>{e(title)}</h1>"]
    for s in sections:
        if s[0] == "h2":
            body.append(f"<h2>{e(s[1])}</h2>")
        elif s[0] == "p":
            text = s[1]
            bold = text.startswith("**")
            body.append(f"<p><strong>{e(text.strip('*'))}</strong></p>" if bold else f"<p>{e(text)}</p>")
        elif s[0] == "ul":
            body.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in s[1]) + "</ul>")
        elif s[0] == "chart":
            b64 = base64.b64encode(png).decode("ascii")
            body.append(f'<img alt="capacity chart" src="data:image/png;base64,{b64}">')
        else:
            head = "".join(f"<th>{e(h)}</th>" for h in s[1])
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in s[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
