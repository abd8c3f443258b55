"""Scenario ``thresholds:`` (SLOs) checked against every cell of a result: misses make ``kbench run`` exit 1.
A failed cell (``status: failed``) misses every threshold: its partial numbers never pass a gate.

Metric names are dotted paths into a cell of the result document (``produce.msgs_per_s``,
``latency.publish.p99_ms``, ``consume.mb_per_s``, ``errors.total``…), with short aliases:
``publish_latency.<stat>`` → ``latency.publish.<stat>``, likewise ``e2e_latency``, ``service_time``,
``send_delay``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import ScenarioError

__all__ = ["KNOWN_METRICS", "Miss", "cell_failed", "evaluate", "resolve", "validate_metric", "verdicts"]

_ALIASES = {"publish_latency": "latency.publish", "e2e_latency": "latency.e2e", "service_time": "latency.service",
            "send_delay": "latency.send_delay"}
_LAT_STATS = ("min", "max", "mean", "stddev", "p50", "p90", "p95", "p99", "p99_9", "p99_99")
KNOWN_METRICS: tuple[str, ...] = (
    *(f"{side}.{m}" for side in ("produce", "consume") for m in ("msgs_per_s", "mb_per_s", "messages", "error_total")),
    "produce.unacked_at_end", "errors.total",
    *(f"latency.{h}.{s}_{u}" for h in ("publish", "service", "send_delay", "e2e") for s in _LAT_STATS
      for u in ("ms", "us")),
)


@dataclass(frozen=True)
class Miss:
    cell: str
    metric: str
    observed: float | None
    bound: str
    failed: bool = False        # the cell failed: its partial numbers are not judged, every threshold misses

    def __str__(self) -> str:
        obs = "cell FAILED" if self.failed else "missing" if self.observed is None else f"{self.observed:,.4g}"
        return f"[{self.cell}] {self.metric} = {obs}, expected {self.bound}"


def cell_failed(cell: Mapping[str, Any]) -> bool:
    """The driver could not finish the cell (``status: failed``): no threshold passes on its partial numbers."""
    return cell.get("status") == "failed"


def _judged(cell: Mapping[str, Any], metric: str) -> float | None:
    return None if cell_failed(cell) else resolve(cell, metric)


def canonical(metric: str) -> str:
    head, _, rest = metric.partition(".")
    return f"{_ALIASES[head]}.{rest}" if head in _ALIASES and rest else metric


def validate_metric(metric: str) -> None:
    if canonical(metric) not in KNOWN_METRICS:
        raise ScenarioError(f"unknown metric {metric!r}; expected one of: produce.msgs_per_s, produce.mb_per_s, "
                            "consume.msgs_per_s, errors.total, publish_latency.p99_ms, e2e_latency.p99_ms, … "
                            "(see the README's thresholds section)", key="thresholds")


def resolve(cell: Mapping[str, Any], metric: str) -> float | None:
    node: Any = cell
    for part in canonical(metric).split("."):
        if not isinstance(node, Mapping) or node.get(part) is None:
            return None
        node = node[part]
    return float(node) if isinstance(node, int | float) else None


def evaluate(cells: Iterable[Mapping[str, Any]], thresholds: Iterable[Any]) -> list[Miss]:
    """Every (cell, threshold) pair whose observed value is missing or out of bounds."""
    misses: list[Miss] = []
    bounds = list(thresholds)
    for cell in cells:
        failed = cell_failed(cell)
        for t in bounds:
            value = _judged(cell, t.metric)
            if t.max is not None and (value is None or value > t.max):
                misses.append(Miss(cell["label"], t.metric, value, f"<= {t.max:g}", failed))
            if t.min is not None and (value is None or value < t.min):
                misses.append(Miss(cell["label"], t.metric, value, f">= {t.min:g}", failed))
    return misses


def verdicts(cells: Iterable[Mapping[str, Any]], thresholds: Iterable[Any]) -> list[dict[str, Any]]:
    """Every (cell, threshold, bound) check as a JSON-ready record, kept in the result's ``thresholds``:
    ``{"metric", "max" | "min", "cell", "value", "passed"}`` (``value`` None when the cell lacks the metric,
    which fails). A threshold with both bounds gives two records, max first, as :func:`evaluate` does. In a
    failed cell every record fails, with ``value`` None and ``cell_failed: true``."""
    out: list[dict[str, Any]] = []
    bounds = list(thresholds)
    for cell in cells:
        failed = {"cell_failed": True} if cell_failed(cell) else {}
        for t in bounds:
            value = _judged(cell, t.metric)
            if t.max is not None:
                out.append({"metric": t.metric, "max": t.max, "cell": cell["label"], "value": value,
                            "passed": value is not None and value <= t.max, **failed})
            if t.min is not None:
                out.append({"metric": t.metric, "min": t.min, "cell": cell["label"], "value": value,
                            "passed": value is not None and value >= t.min, **failed})
    return out
