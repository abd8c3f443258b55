"""What report/ and compare read from a result document: metric values, per-second samples, percentiles.

Every number shown by ``kbench report`` or judged by ``kbench compare`` comes from here, so both agree. A
failed cell (``status: failed``) has no value and no samples: its partial numbers are never shown as a result.
A *metric* has a whole-run value (throughput over the measurement window; a latency percentile computed
now from the cell's HDR histogram) and, where the run recorded one, a list of **per-second samples**
(whole seconds of the measurement window only; the last, partial interval is left out):

========================  ==========================================  ============================
metric                    whole-run value                             per-second samples
========================  ==========================================  ============================
produce/consume msgs/s    ``produce|consume.msgs_per_s``              ``series.<side>.count``
produce/consume MB/s      ``produce|consume.mb_per_s``                ``series.<side>.bytes`` / 1e6
publish pXX               percentile of ``latency.publish.hdr``       ``series.produce.pXX_us``
e2e pXX                   percentile of ``latency.e2e.hdr``           ``series.consume.pXX_us``
========================  ==========================================  ============================

The series keep p50, p99 and max per second; p99.9 and max are paired with the per-second **max** (the
only per-second statistic above p99), documented in docs/reports.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from bench.metrics.hdr import decode_histogram, value_at_percentiles
from bench.results.model import CellDocument
from bench.run.thresholds import cell_failed

__all__ = [
    "COMPARE_METRICS",
    "REPORT_METRICS",
    "Metric",
    "best_rows",
    "cell_key",
    "cell_name",
    "full_seconds",
    "latency_spectrum",
    "metric_samples",
    "metric_value",
    "spread",
]

_MB = 1e6
#: latency histogram -> the series that holds its per-second percentiles
_SERIES_OF = {"publish": "produce", "e2e": "consume"}
#: latency statistic -> (percentile, per-second series statistic)
_PCT: dict[str, tuple[float, str | None]] = {
    "p50": (50.0, "p50_us"), "p90": (90.0, None), "p95": (95.0, None), "p99": (99.0, "p99_us"),
    "p99_9": (99.9, "max_us"), "p99_99": (99.99, "max_us"), "max": (100.0, "max_us"),
}


@dataclass(frozen=True)
class Metric:
    """One comparable number of a cell. ``key`` is the dotted path used by thresholds (``produce.msgs_per_s``,
    ``latency.publish.p99_ms``)."""

    key: str
    title: str
    unit: str
    higher_is_better: bool
    kind: Literal["rate", "latency", "count"]

    @property
    def label(self) -> str:
        return f"{self.title} ({self.unit})"

    def fmt(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if self.unit == "msg/s" or self.kind == "count":
            return f"{value:,.0f}"
        if self.unit == "MB/s":
            return f"{value:,.2f}"
        return f"{value:,.3g}" if value < 10 else f"{value:,.1f}"


def _rate(side: str, what: str, title: str) -> Metric:
    unit = "msg/s" if what == "msgs_per_s" else "MB/s"
    return Metric(f"{side}.{what}", title, unit, True, "rate")


def _lat(hist: str, stat: str, title: str) -> Metric:
    return Metric(f"latency.{hist}.{stat}_ms", title, "ms", False, "latency")


PRODUCE_MSGS = _rate("produce", "msgs_per_s", "produce throughput")
PRODUCE_MB = _rate("produce", "mb_per_s", "produce throughput")
CONSUME_MSGS = _rate("consume", "msgs_per_s", "consume throughput")
CONSUME_MB = _rate("consume", "mb_per_s", "consume throughput")

#: the metrics ``kbench compare`` judges, in the order it prints them
COMPARE_METRICS: tuple[Metric, ...] = (
    PRODUCE_MSGS, PRODUCE_MB,
    _lat("publish", "p50", "publish latency p50"), _lat("publish", "p99", "publish latency p99"),
    _lat("publish", "p99_9", "publish latency p99.9"),
    _lat("e2e", "p99", "end-to-end latency p99"),
    CONSUME_MSGS,
)
#: the metrics ``kbench report`` tabulates (one table each)
REPORT_METRICS: tuple[Metric, ...] = (
    PRODUCE_MSGS, PRODUCE_MB, CONSUME_MSGS, CONSUME_MB,
    _lat("publish", "p50", "publish latency p50"), _lat("publish", "p99", "publish latency p99"),
    _lat("publish", "p99_9", "publish latency p99.9"), _lat("publish", "max", "publish latency max"),
    _lat("service", "p99", "service time p99"),
    _lat("e2e", "p50", "end-to-end latency p50"), _lat("e2e", "p99", "end-to-end latency p99"),
    _lat("e2e", "p99_9", "end-to-end latency p99.9"),
    Metric("errors.total", "errors", "count", False, "count"),
)


def cell_key(cell: CellDocument) -> str:
    """Canonical identity of a cell across runs: its matrix parameters (JSON, sorted keys)."""
    return json.dumps(cell.get("params") or {}, sort_keys=True, default=str)


def cell_clients(cell: CellDocument) -> str:
    """``java`` or ``franz-go→librdkafka`` (producer→consumer client); ``librdkafka`` for older results."""
    clients = cell.get("clients") or {}
    names = [str((clients.get(role) or {}).get("name") or "librdkafka") for role in ("producer", "consumer")]
    return names[0] if names[0] == names[1] else "→".join(names)


def cell_name(cell: CellDocument) -> str:
    """The cell's label (with its client unless it is librdkafka or a matrix parameter already), marked
    when the cell failed or did not complete."""
    label = str(cell.get("label") or f"cell {cell.get('index')}")
    clients = cell_clients(cell)
    params = cell.get("params") or {}
    if clients != "librdkafka" and "client" not in params and "consumer_client" not in params:
        label = f"{label} [{clients}]"
    if cell_failed(cell):
        return f"{label} (FAILED)"
    return label if cell.get("complete", False) else f"{label} (incomplete)"


def full_seconds(cell: CellDocument) -> int:
    """Whole intervals of the measurement window (per-second samples come from these only)."""
    window = float((cell.get("timing") or {}).get("window_s") or 0.0)
    return int(window + 1e-6)


@lru_cache(maxsize=256)
def _percentiles(encoded: str, pcts: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(value_at_percentiles(decode_histogram(encoded), list(pcts)))


def _split(metric: Metric) -> tuple[str, str]:
    _, hist, stat_ms = metric.key.split(".")
    return hist, stat_ms.removesuffix("_ms")


def _get(doc: Any, dotted: str) -> Any:
    node = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return node


def metric_value(cell: CellDocument, metric: Metric) -> float | None:
    """Whole-run value; latency percentiles are computed from the HDR histogram (summary as fallback).
    None for a failed cell: its partial numbers are kept in the result, never shown or judged as a value."""
    if cell_failed(cell):
        return None
    if metric.kind != "latency":
        value = _get(cell, metric.key)
        return float(value) if isinstance(value, int | float) else None
    hist, stat = _split(metric)
    lat = (cell.get("latency") or {}).get(hist)
    if not lat or not lat.get("count"):
        return None
    if lat.get("hdr") and stat in _PCT:
        pct = _PCT[stat][0]
        (us,) = _percentiles(lat["hdr"], (pct,))
        return us / 1000.0
    value = lat.get(f"{stat}_ms")
    return float(value) if isinstance(value, int | float) else None


def series_of(cell: CellDocument, side: str) -> dict[str, Any] | None:
    """The per-interval columns of ``produce`` or ``consume`` (None when not recorded)."""
    series = cell.get("series") or {}
    if side == "produce":
        return series.get("produce")
    return series.get("consume") if side == "consume" else None


def metric_samples(cell: CellDocument, metric: Metric) -> list[float]:
    """Per-second samples of the metric over whole seconds of the window (empty when not recorded or failed)."""
    if cell_failed(cell):
        return []
    n = full_seconds(cell)
    if metric.kind == "rate":
        side, what = metric.key.split(".")
        series = series_of(cell, side)
        if not series:
            return []
        dt = float(series.get("interval_s") or 1.0)
        if what == "msgs_per_s":
            return [float(c) / dt for c in series.get("count", [])[:n]]
        return [float(b) / dt / _MB for b in series.get("bytes", [])[:n]]
    if metric.kind != "latency":
        return []
    hist, stat = _split(metric)
    series = series_of(cell, _SERIES_OF.get(hist, ""))
    field = _PCT.get(stat, (0.0, None))[1]
    if not series or field is None or field not in series:
        return []
    counts = series.get("count") or []
    values = series[field][:n]
    return [float(v) / 1000.0 for i, v in enumerate(values)
            if v is not None and (i >= len(counts) or counts[i] > 0)]


def latency_spectrum(cell: CellDocument, hist: str, max_nines: float = 5.0,
                     points: int = 160) -> tuple[list[float], list[float]] | None:
    """(nines, ms) for a percentile-spectrum plot: x = log10(1 / (1 - p)), p from 0 to the highest
    percentile the sample count supports (at most ``max_nines`` nines); ``None`` without a histogram."""
    lat = (cell.get("latency") or {}).get(hist)
    if not lat or not lat.get("hdr") or not lat.get("count"):
        return None
    top = min(max_nines, math.log10(max(float(lat["count"]), 10.0)))
    xs = [top * i / (points - 1) for i in range(points)]
    pcts = tuple(100.0 * (1.0 - 10.0 ** (-x)) for x in xs)
    values = _percentiles(lat["hdr"], pcts)
    return xs, [v / 1000.0 for v in values]


def best_rows(values: Sequence[float | None], complete: Sequence[bool], higher_is_better: bool) -> list[int]:
    """Indices of the best value among complete cells; none when fewer than two complete cells differ."""
    scored = [(i, v) for i, v in enumerate(values) if v is not None and complete[i]]
    if len(scored) < 2 or len({v for _, v in scored}) < 2:
        return []
    target = (max if higher_is_better else min)(v for _, v in scored)
    return [i for i, v in scored if v == target]


def spread(samples: Sequence[float]) -> dict[str, float | int | None]:
    """mean, stdev (sample), min, max and n of per-second samples."""
    n = len(samples)
    if not n:
        return {"n": 0, "mean": None, "stdev": None, "min": None, "max": None}
    mean = math.fsum(samples) / n
    var = math.fsum((s - mean) ** 2 for s in samples) / (n - 1) if n > 1 else 0.0
    return {"n": n, "mean": mean, "stdev": math.sqrt(var), "min": min(samples), "max": max(samples)}
