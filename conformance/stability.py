"""Run-to-run verdict stability of repeated conformance runs. Pure: works on loaded report documents.

``kbench conformance --repeat N`` (:func:`conformance.runner.repeat`) runs the suite N times into
``<dir>/run-01`` … ``run-NN`` and, after every run, writes ``<dir>/stability.json`` and
``<dir>/stability.md`` from :func:`summarize`. A check is *stable* when it has the same verdict in
every run (and ran in every run). ``stability.json``::

    {"kind": "kbench-conformance-stability", "runs": n, "broker": {...first run's broker...},
     "run_dirs": [...], "wall_seconds": [suite s per run], "elapsed_seconds": [incl. broker start],
     "run_counts": [{"PASS": n, ...} per run], "totals": {"PASS": n, ...},
     "stable": n, "unstable": n, "all_clean_runs": n,
     "checks": [{"id", "case", "title", "verdicts": ["PASS", ...], "counts": {...}, "stable",
                 "problems": [{"run", "verdict", "detail"} for each FAIL/ERROR]}]}
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.report import VERDICTS, _cell, check_sort_key

__all__ = ["LETTERS", "render_markdown", "summarize"]

#: one letter per verdict in the per-run sequence ("-": the check has no verdict in that run)
LETTERS = {"PASS": "P", "FAIL": "F", "ERROR": "E", "N/A": "N", "RECORD": "R"}
MISSING = "—"


def summarize(docs: Sequence[Mapping[str, Any]], run_dirs: Sequence[str] = (),
              elapsed: Sequence[float | None] = ()) -> dict[str, Any]:
    """Per-check verdicts over the runs ``docs`` (report.json documents, in run order)."""
    titles: dict[tuple[str, str], str] = {}
    cells: dict[tuple[str, str], dict[int, str]] = {}
    problems: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i, doc in enumerate(docs):
        for c in doc.get("checks", []):
            client = str(c.get("client", "librdkafka"))   # a through-client verdict is its own row
            key = (str(c["id"]), str(c.get("case", "")) + ("" if client == "librdkafka" else f"@{client}"))
            titles.setdefault(key, str(c.get("title", "")))
            cells.setdefault(key, {})[i] = str(c["verdict"])
            if c["verdict"] in ("FAIL", "ERROR"):
                problems.setdefault(key, []).append(
                    {"run": i + 1, "verdict": c["verdict"], "detail": str(c.get("detail", ""))[:400]})
    checks = []
    for key in sorted(titles, key=lambda k: check_sort_key(*k)):
        verdicts = [cells[key].get(i, MISSING) for i in range(len(docs))]
        counts = {v: verdicts.count(v) for v in (*VERDICTS, MISSING) if verdicts.count(v)}
        checks.append({"id": key[0], "case": key[1], "title": titles[key], "verdicts": verdicts,
                       "counts": counts, "stable": len(set(verdicts)) == 1 and MISSING not in verdicts,
                       "problems": problems.get(key, [])})
    run_counts = [{v: int(doc.get("counts", {}).get(v, 0)) for v in VERDICTS} for doc in docs]
    totals = {v: sum(rc[v] for rc in run_counts) for v in VERDICTS}
    return {
        "kind": "kbench-conformance-stability", "runs": len(docs),
        "broker": dict(docs[0].get("broker", {})) if docs else {},
        "run_dirs": list(run_dirs),
        "wall_seconds": [round(float(doc.get("wall_seconds", 0.0)), 1) for doc in docs],
        "elapsed_seconds": [None if e is None else round(e, 1) for e in elapsed],
        "run_counts": run_counts, "totals": totals,
        "stable": sum(1 for c in checks if c["stable"]),
        "unstable": sum(1 for c in checks if not c["stable"]),
        "all_clean_runs": sum(1 for rc in run_counts if not rc["FAIL"] and not rc["ERROR"]),
        "checks": checks,
    }


def _spread(values: Sequence[float | None]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    return f"min {min(vals):.1f} s, median {statistics.median(vals):.1f} s, max {max(vals):.1f} s"


def render_markdown(summary: Mapping[str, Any]) -> str:
    """stability.md: the figures, then one row per check with its verdict in every run."""
    broker = summary.get("broker", {})
    n = int(summary.get("runs", 0))
    who = " ".join(x for x in (broker.get("implementation"), broker.get("version")) if x) or str(
        broker.get("bootstrap", "broker"))
    totals = summary.get("totals", {})
    lines = [
        f"# Conformance stability: {who}, {n} run{'s' if n != 1 else ''}",
        "",
        f"- checks: {summary.get('stable', 0)} stable (same verdict in every run), "
        f"{summary.get('unstable', 0)} unstable",
        f"- runs without FAIL or ERROR: {summary.get('all_clean_runs', 0)} of {n}",
        "- verdicts over all runs: " + ", ".join(f"{k} {totals.get(k, 0)}" for k in VERDICTS),
        f"- suite wall time per run: {_spread(summary.get('wall_seconds', []))} "
        f"({', '.join(f'{w:.0f}' for w in summary.get('wall_seconds', []))})",
        f"- elapsed per run incl. broker start/stop: {_spread(summary.get('elapsed_seconds', []))}",
        "",
        "Per run: " + " · ".join(
            f"#{i + 1} " + " ".join(f"{LETTERS.get(k, k)}{v}" for k, v in rc.items() if v)
            for i, rc in enumerate(summary.get("run_counts", []))),
        "",
        "Letters: " + ", ".join(f"{letter} {v}" for v, letter in LETTERS.items()) + ", — no verdict.",
        "",
        "| ID | semantic | runs | " + " | ".join(VERDICTS) + " | stable |",
        "|---|---|---|" + "---|" * len(VERDICTS) + "---|",
    ]
    for c in summary.get("checks", []):
        label = f"{c['id']} ({c['case']})" if c.get("case") else c["id"]
        seq = "".join(LETTERS.get(v, "-") for v in c["verdicts"])
        counts = c.get("counts", {})
        lines.append(f"| {label} | {_cell(c.get('title', ''), 60)} | `{seq}` | "
                     + " | ".join(str(counts.get(v, 0) or "") for v in VERDICTS)
                     + f" | {'yes' if c['stable'] else '**no**'} |")
    unstable = [c for c in summary.get("checks", []) if not c["stable"]]
    if unstable:
        lines += ["", "## Unstable checks", ""]
        for c in unstable:
            label = f"{c['id']} ({c['case']})" if c.get("case") else c["id"]
            lines.append(f"- {label}: " + ", ".join(f"{k} {v}" for k, v in c["counts"].items()))
    flagged = [c for c in summary.get("checks", []) if c.get("problems")]
    if flagged:
        lines += ["", "## FAIL and ERROR details", ""]
        for c in flagged:
            label = f"{c['id']} ({c['case']})" if c.get("case") else c["id"]
            for p in c["problems"]:
                lines.append(f"- {label} run {p['run']} {p['verdict']}: {_cell(p['detail'], 300)}")
    return "\n".join(lines) + "\n"
