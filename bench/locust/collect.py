"""What a Locust run measured, as the pipeline's :class:`~bench.drivers.base.CellRun` (pure, Locust-free).

The master writes ``locust-results.json`` (:class:`~bench.locust.plan.Collected`): every worker's report
(its users' results, in the shape of kbench's own worker results) and its exact merge of their
histograms. :func:`cell_run` turns it into the workers' results, their errors and the driver's warnings,
plus the Locust-only parts of the cell's entry: ``check.locust_merge`` (the master's merge against the
results the cell is built from) and ``locust`` (end reason, missing workers, Locust's own totals).
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path
from typing import Any, TypedDict, cast

from bench.drivers.base import CellRun
from bench.drivers.results import ConsumerResult, ProducerResult, WorkerResults, empty_results
from bench.locust.plan import Collected, MergeDoc, Plan

__all__ = ["RequestStats", "cell_run", "load_collected", "locust_stats"]


class RequestStats(TypedDict):
    """Locust's own totals of one request type (``locust_stats.csv``: whole run, warm-up included)."""

    requests: int
    failures: int
    requests_per_s: float
    median_ms: float | None


def load_collected(path: Path) -> Collected | None:
    """``locust-results.json``, or None when the master wrote none (or not a whole one)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return cast(Collected, doc) if isinstance(doc, dict) else None


def locust_stats(run_dir: Path) -> dict[str, RequestStats] | None:
    """Locust's own totals per request type from ``locust_stats.csv`` (whole run, warm-up included)."""
    path = run_dir / "locust_stats.csv"
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    out: dict[str, RequestStats] = {}
    for row in rows:
        key = "aggregated" if row.get("Name") == "Aggregated" else row.get("Type") or row.get("Name") or "?"
        with contextlib.suppress(KeyError, ValueError):
            median = row["Median Response Time"]
            out[key] = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                        "requests_per_s": float(row["Requests/s"]),
                        "median_ms": float(median) if median != "N/A" else None}
    return out


def _results(collected: Collected) -> tuple[WorkerResults, list[str]]:
    """Every user's result, numbered per role in worker order, and the workers' errors."""
    results: WorkerResults = empty_results()
    errors: list[str] = []
    for client_id, report in sorted(collected.get("reports", {}).items()):
        errors += [f"locust worker {report.get('worker_index', client_id)}: {e}" for e in report.get("errors", [])]
        for user in report.get("users", []):
            if user["role"] == "producer":
                results["producer"][len(results["producer"])] = cast(ProducerResult, user["result"])
            else:
                results["consumer"][len(results["consumer"])] = cast(ConsumerResult, user["result"])
    return results, errors


def _merge_check(merge: MergeDoc | None, results: WorkerResults) -> dict[str, Any]:
    """The master's merge against the results the cell is built from: its merged histogram counts equal
    the sum of the workers' counts, and the messages it summed equal the producers' measured messages."""
    merged_counts = {m: int(v["count"]) for m, v in (merge["merged"] if merge else {}).items()}
    sums = merge["sum"] if merge else {}
    produced = sum(int(r.get("acked_measured", 0)) for r in results["producer"].values() if "failed" not in r)
    return {"workers": merge["workers"] if merge else None, "per_worker": merge["per_worker"] if merge else None,
            "merged_counts": merged_counts,
            "merged_equals_sum": all(sums.get(m) == n for m, n in merged_counts.items()),
            "messages_equal_sum": produced == sums.get("produced", 0)}


def cell_run(collected: Collected, plan: Plan, run_dir: Path, *, elapsed_s: float,
             notes: list[str] | None = None) -> CellRun:
    """The cell's :class:`CellRun` from what the master collected (``notes``: the driver's own warnings)."""
    results, errors = _results(collected)
    warnings = list(notes or [])
    missing = collected.get("missing_workers") or []
    if missing:
        errors.append(f"{len(missing)} Locust worker(s) sent no results: {', '.join(missing)}")
    groups = {r.get("group") for r in results["consumer"].values()}
    if plan.consumer_users and len(groups) < plan.consumer_groups:
        warnings.append(f"consumer users joined {len(groups)} of {plan.consumer_groups} groups "
                        "(Locust placed them unevenly over workers)")
    record = {"end_reason": collected.get("end_reason"), "missing_workers": missing,
              "target_users": collected.get("target_user_classes_count"), "user_rate": plan.user_rate,
              "stats": locust_stats(run_dir)}
    return CellRun(results=results, errors=errors, warnings=warnings, elapsed_s=elapsed_s,
                   checks={"locust_merge": _merge_check(collected.get("merge"), results)},
                   fields={"locust": record})
