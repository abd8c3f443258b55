"""The broker × client × check matrix as one self-contained HTML page (no scripts, no external files).

Same rows and columns as :func:`conformance.report.matrix` (which it parses back from the markdown, so the
two never disagree); each cell coloured by its verdict.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from conformance.report import matrix

__all__ = ["matrix_html"]

_COLOURS = {"PASS": "#cfe8cf", "FAIL": "#f4b6b6", "ERROR": "#f7d59c", "N/A": "#e4e4e4", "RECORD": "#cfdcf4"}
_STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:13px}"
          "th,td{border:1px solid #bbb;padding:3px 6px;text-align:left}th{background:#f4f4f4;position:sticky;"
          "top:0}td.v{text-align:center;font-weight:600}")


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    parts, cur, esc = [], "", False
    for ch in inner:
        if ch == "|" and not esc:
            parts.append(cur.strip())
            cur = ""
            continue
        esc = ch == "\\" and not esc
        if not esc:
            cur += ch
    parts.append(cur.strip())
    return parts


def matrix_html(report_paths: Sequence[Path], title: str = "kbench conformance matrix") -> str:
    """The page: a header row (ID, semantic, one column per broker · client), then one row per check."""
    lines = matrix(report_paths).splitlines()
    head = _cells(lines[0])
    out = ["<!doctype html><html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
           f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>", "<table><thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for line in lines[2:]:
        cells = _cells(line)
        row = [f"<td>{html.escape(c.strip('*'))}</td>" for c in cells[:2]]
        for c in cells[2:]:
            colour = _COLOURS.get(c, "#fff")
            row.append(f"<td class='v' style='background:{colour}'>{html.escape(c)}</td>")
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</tbody></table></body></html>")
    return "\n".join(out) + "\n"
