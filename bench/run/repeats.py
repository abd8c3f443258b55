"""Repeated cells: a cell run N times (``repeat: N`` / ``--repeat N``), each run on a fresh topic and consumer
group, merged into one cell entry that keeps every run (as pyperf and asv keep every run).

The merged cell has the fields of an ordinary cell, so report, summary and thresholds read it unchanged:

- ``latency.<name>``: the runs' HDR histograms merged exactly (counts added), summarised again;
- ``produce`` / ``consume``: messages and bytes summed, rates = total messages / total measurement window;
- ``series``: the runs' per-second series, each cut to its whole seconds, laid end to end
  (``timing.window_s`` = the number of those seconds, so per-second readers see whole seconds only);
- ``errors``, ``check``: summed / and-ed; ``complete`` only when every run completed; ``status`` failed when
  a run failed (``failure``: the first failed run's), else ok or incomplete;
- ``steady_state`` (when the runs have one): steady only when every run is (false when one is not, null
  when one was too short to tell), warnings prefixed by the run.

and ``repeats``: one entry per run, in the order they ran, each the run's own cell document without the
fields that are the same for every run (``index``, ``label``, ``params``, ``workload``, ``topic.config``,
client configs): ``repeat`` (0-based), ``topic``, ``complete``, ``timing``, ``produce``, ``consume``,
``errors``, ``latency`` (summaries + ``hdr``), ``series``, ``check``, ``warnings`` and whatever else the
cell builder recorded. ``kbench compare`` judges run-level values taken from these entries.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

from bench.metrics.hdr import encode_histogram, merge_encoded, summarize
from bench.results.model import CellDocument

__all__ = ["SHARED_FIELDS", "cell_runs", "merge_repeats"]

#: fields identical in every run of a cell, kept once in the merged cell
SHARED_FIELDS = ("index", "label", "params", "workload", "producer_config", "consumer_config")
_MB = 1e6


def _full(run: dict[str, Any]) -> int:
    return int(float((run.get("timing") or {}).get("window_s") or 0.0) + 1e-6)


def _concat_series(runs: Sequence[dict[str, Any]], side: str) -> dict[str, Any] | None:
    parts: list[tuple[dict[str, Any], int]] = []
    for r in runs:
        s = (r.get("series") or {}).get(side)
        if isinstance(s, dict) and s:
            parts.append((s, _full(r)))
    if not parts:
        return None
    dt = float(parts[0][0].get("interval_s") or 1.0)
    out: dict[str, Any] = {"interval_s": dt, "t": []}
    columns = [k for k, v in parts[0][0].items() if isinstance(v, list) and k != "t"]
    for k in columns:
        out[k] = []
    for s, n in parts:
        for k in columns:
            col = list(s.get(k) or [])[:n]
            out[k] += col + [None if k.endswith("_us") else 0] * (n - len(col))
    out["t"] = [round(i * dt, 9) for i in range(len(out[columns[0]]) if columns else 0)]
    out["run_starts"] = [sum(n for _s, n in parts[:i]) for i in range(len(parts))]
    return out


def _spread(series: dict[str, Any] | None) -> dict[str, Any] | None:
    if not series:
        return None
    samples = [float(c) for c in series.get("count") or []]
    if not samples:
        return {"samples": 0, "mean": None, "stdev": None, "min": None, "max": None}
    mean = sum(samples) / len(samples)
    var = sum((x - mean) ** 2 for x in samples) / (len(samples) - 1) if len(samples) > 1 else 0.0
    return {"samples": len(samples), "mean": mean, "stdev": var ** 0.5, "min": min(samples),
            "max": max(samples), "values": samples}


def _merge_latency(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    names: list[str] = []
    for r in runs:
        names += [k for k in (r.get("latency") or {}) if k not in names]
    out: dict[str, Any] = {}
    for name in names:
        blobs = [((r.get("latency") or {}).get(name) or {}).get("hdr") for r in runs]
        present = [b for b in blobs if b]
        if not present:
            out[name] = None
            continue
        hist = merge_encoded(present)
        out[name] = {**summarize(hist), "hdr": encode_histogram(hist)}
    return out


def _sum_side(runs: Sequence[dict[str, Any]], side: str, window: float) -> dict[str, Any] | None:
    docs: list[dict[str, Any]] = [r[side] for r in runs if isinstance(r.get(side), dict)]
    if not docs:
        return None
    merged: dict[str, Any] = copy.deepcopy(docs[0])
    for key, value in docs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool) and key not in ("latency_sample", "groups"):
            merged[key] = sum(d.get(key) or 0 for d in docs)
    errors: dict[str, int] = {}
    for d in docs:
        for k, v in (d.get("errors") or {}).items():
            errors[k] = errors.get(k, 0) + int(v)
    merged["errors"] = errors
    if "latency_sample" in docs[0]:
        merged["latency_sample"] = max(int(d.get("latency_sample") or 1) for d in docs)
    if "errors_estimated" in docs[0]:
        merged["errors_estimated"] = any(d.get("errors_estimated") for d in docs)
    if "join_s" in docs[0]:
        merged["join_s"] = [x for d in docs for x in (d.get("join_s") or [])]
    per = max(window, 1e-9)
    merged["msgs_per_s"] = float(merged.get("messages") or 0) / per
    merged["mb_per_s"] = float(merged.get("bytes") or 0) / per / _MB
    return merged


def _merge_check(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    checks = [r.get("check") or {} for r in runs]
    out: dict[str, Any] = {"acked_total": sum(int(c.get("acked_total") or 0) for c in checks),
                           "per_run": checks}
    for key in ("offsets_agree", "consumed_all"):
        values = [c.get(key) for c in checks if key in c]
        if values:
            out[key] = all(bool(v) for v in values)
    return out


def _merge_steady(runs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    states: list[tuple[int, dict[str, Any]]] = [(i, r["steady_state"]) for i, r in enumerate(runs)
                                                if isinstance(r.get("steady_state"), dict)]
    if not states:
        return None
    # per run (a trend test over runs laid end to end would see the steps between runs); None = too short
    warnings = [f"run {i + 1}: {s.get('warning') or 'not steady'}" for i, s in states if s.get("steady") is False]
    verdicts = [s.get("steady") for _i, s in states]
    steady = False if warnings else (None if any(v is None for v in verdicts) else True)
    return {"steady": steady, "warning": "; ".join(warnings) or None, "method": states[0][1].get("method"),
            "tests": [{"run": i, **t} if isinstance(t, dict) else {"run": i, "test": t}
                      for i, s in states for t in (s.get("tests") or [])]}


def _per_run(run: dict[str, Any], k: int) -> dict[str, Any]:
    entry = {key: v for key, v in run.items() if key not in SHARED_FIELDS}
    entry["repeat"] = k
    return entry


def merge_repeats(cell_docs: Sequence[CellDocument], *, incomplete_reason: str | None = None) -> CellDocument:
    """One cell entry for the runs of one cell (at least one run). With a single run and no
    ``incomplete_reason`` the run's own document is returned unchanged (no ``repeats`` field)."""
    if not cell_docs:
        raise ValueError("merge_repeats needs at least one run")
    if len(cell_docs) == 1 and incomplete_reason is None:
        return cell_docs[0]
    # the runs' sections are merged by name below: read them as the JSON they are
    runs = [cast(dict[str, Any], r) for r in cell_docs]
    first = runs[0]
    window = float(sum(_full(r) for r in runs))
    reasons = [f"run {i + 1}: {r.get('incomplete_reason')}" for i, r in enumerate(runs) if not r.get("complete")]
    if incomplete_reason:
        reasons.append(incomplete_reason)
    doc: dict[str, Any] = {key: first[key] for key in SHARED_FIELDS if key in first}
    doc["complete"] = not reasons
    doc["incomplete_reason"] = "; ".join(reasons) or None
    failures = [r["failure"] for r in runs if r.get("status") == "failed" and r.get("failure")]
    doc["status"] = "failed" if failures else "ok" if not reasons else "incomplete"
    doc["failure"] = failures[0] if failures else None
    doc["topic"] = {**(first.get("topic") or {}), "name": [(r.get("topic") or {}).get("name") for r in runs]}
    timing = dict(first.get("timing") or {})
    timing.update({"window_s": window, "elapsed_s": sum(float((r.get("timing") or {}).get("elapsed_s") or 0)
                                                        for r in runs),
                   "windows_s": [(r.get("timing") or {}).get("window_s") for r in runs], "runs": len(runs)})
    doc["timing"] = timing
    series: dict[str, Any] = {side: _concat_series(runs, side) for side in ("produce", "consume")}
    series["lag"] = []
    doc["produce"] = _sum_side(runs, "produce", window)
    doc["consume"] = _sum_side(runs, "consume", window)
    for side in ("produce", "consume"):
        if doc[side] is not None and "per_second" in doc[side]:
            doc[side]["per_second"] = _spread(series[side])
    doc["errors"] = {"total": sum(int((r.get("errors") or {}).get("total") or 0) for r in runs)}
    doc["latency"] = _merge_latency(runs)
    doc["series"] = series
    doc["check"] = _merge_check(runs)
    doc["backlog"] = first.get("backlog") if len(runs) == 1 else None
    doc["warnings"] = [f"run {i + 1}: {w}" for i, r in enumerate(runs) for w in (r.get("warnings") or [])]
    steady = _merge_steady(runs)
    if steady is not None:
        doc["steady_state"] = steady
    doc["repeats"] = [_per_run(r, k) for k, r in enumerate(runs)]
    return cast(CellDocument, doc)


def cell_runs(cell: CellDocument) -> list[CellDocument]:
    """The runs of a cell as cell-shaped documents: its ``repeats`` entries, or the cell itself when it was
    run once (results written before repeats existed included). A run has a cell's measurement fields
    (:class:`~bench.results.model.CellRunDocument`), so readers of cells read runs alike."""
    reps = cell.get("repeats")
    if isinstance(reps, list) and reps:
        return [cast(CellDocument, r) for r in reps if isinstance(r, dict)]
    return [cell]
