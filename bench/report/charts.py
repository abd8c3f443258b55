"""PNG charts of a result (matplotlib, Agg; no pyplot global state): throughput by cell, the latency
percentile spectrum on a log "nines" axis, and per-second time series of rates, p99 and consumer lag."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bench.report.data import (
    CONSUME_MSGS,
    PRODUCE_MSGS,
    best_rows,
    cell_name,
    full_seconds,
    latency_spectrum,
    metric_samples,
    metric_value,
    series_of,
    spread,
)
from bench.results.model import CellDocument, RunDocument

__all__ = ["CHARTS", "latency_spectrum_chart", "throughput_chart", "timeseries_chart", "write_charts"]

#: (title, file name) of every chart, in report order
CHARTS: tuple[tuple[str, str], ...] = (
    ("Throughput by cell", "throughput.png"),
    ("Latency percentile spectrum", "latency-spectrum.png"),
    ("Per-second time series", "timeseries.png"),
)
_DPI = 100
_NINES = ((math.log10(2.0), "50%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"),
          (5.0, "99.999%"))


def _colors(n: int) -> list[Any]:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _short(value: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{value:.3g}"


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=_DPI, format="png", metadata={"Software": "kbench"})
    return path


def throughput_chart(doc: RunDocument, path: Path) -> Path:
    """Grouped bars: produce and consume msg/s per cell, error bars = per-second stdev; best cell ★,
    incomplete cells hatched."""
    cells = doc["cells"]
    n = len(cells)
    fig = Figure(figsize=(max(7.0, 1.3 * n + 2.5), 4.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.38
    produce = [metric_value(c, PRODUCE_MSGS) or 0.0 for c in cells]
    best = best_rows(produce, [bool(c.get("complete")) for c in cells], True)
    for offset, metric, color, name in ((-width / 2, PRODUCE_MSGS, "#1f77b4", "produce"),
                                        (width / 2, CONSUME_MSGS, "#ff7f0e", "consume")):
        values = [metric_value(c, metric) or 0.0 for c in cells]
        errs = [spread(metric_samples(c, metric))["stdev"] or 0.0 for c in cells]
        hatches = ["" if c.get("complete") else "//" for c in cells]
        bars = ax.bar([i + offset for i in range(n)], values, width, yerr=errs, capsize=3, color=color,
                      label=f"{name} msg/s", edgecolor="black", linewidth=0.4, error_kw={"elinewidth": 0.8})
        for bar, hatch, value in zip(bars, hatches, values, strict=True):
            bar.set_hatch(hatch)
            ax.annotate(_short(value), (bar.get_x() + bar.get_width() / 2, value), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)
    labels = [cell_name(c) + (" ★" if i in best else "") for i, c in enumerate(cells)]
    ax.set_xticks(range(n), labels, rotation=20 if n > 4 else 0, ha="right" if n > 4 else "center")
    for i in best:
        ax.get_xticklabels()[i].set_fontweight("bold")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v)))
    ax.set_ylabel("messages per second")
    ax.set_ylim(0, max([*produce, 1.0]) * 1.25)
    ax.set_title("Throughput by cell\nerror bars: per-second stdev · ★ best produce rate · hatched: incomplete",
                 fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _nearest(xs: list[float], x: float) -> int:
    return min(range(len(xs)), key=lambda i: abs(xs[i] - x))


def _spectrum(ax: Axes, doc: RunDocument, hist: str, title: str) -> bool:
    colors = _colors(len(doc["cells"]))
    top = 0.0
    drawn = False
    for color, cell in zip(colors, doc["cells"], strict=True):
        spec = latency_spectrum(cell, hist)
        if spec is None:
            continue
        xs, ys = spec
        ys = [max(y, 1e-3) for y in ys]
        style = "-" if cell.get("complete") else ":"
        ax.plot(xs, ys, style, color=color, label=cell_name(cell), linewidth=1.6)
        # dots at the nominal percentiles (nearest sampled point)
        pts = [_nearest(xs, x) for x, _ in _NINES if x <= xs[-1]]
        ax.plot([xs[i] for i in pts], [ys[i] for i in pts], "o", color=color, markersize=3.5)
        top = max(top, xs[-1])
        drawn = True
    ax.set_title(title, fontsize=10)
    if not drawn:
        ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        return False
    ticks = [(x, lbl) for x, lbl in _NINES if x <= top + 1e-9]
    ax.xaxis.set_major_locator(FixedLocator([x for x, _ in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([lbl for _, lbl in ticks], fontsize=8)
    ax.set_xlim(0, max(top, 1.0))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return True


def latency_spectrum_chart(doc: RunDocument, path: Path) -> Path:
    """Publish and end-to-end latency against percentile, x on a log "nines" axis (50%, 90%, 99%, …)."""
    fig = Figure(figsize=(11.0, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    _spectrum(left, doc, "publish", "Publish latency (ack − intended send) by percentile")
    _spectrum(right, doc, "e2e", "End-to-end latency by percentile")
    return _save(fig, path)


def _series(cell: CellDocument, side: str, field: str, scale: float) -> tuple[list[float], list[float]]:
    series = series_of(cell, side)
    if not series or field not in series:
        return [], []
    n = full_seconds(cell)
    counts = series.get("count") or []
    dt = float(series.get("interval_s") or 1.0)
    xs, ys = [], []
    for i, (t, v) in enumerate(zip(series.get("t", [])[:n], series[field][:n], strict=False)):
        if v is None or (field != "count" and i < len(counts) and not counts[i]):
            continue
        xs.append(float(t) + dt / 2)
        ys.append(float(v) * scale / (dt if field == "count" else 1.0))
    return xs, ys


def timeseries_chart(doc: RunDocument, path: Path) -> Path:
    """Per-second produce/consume rates, publish/e2e p99 and consumer lag over the measurement window."""
    cells = doc["cells"]
    has_lag = any((c.get("series") or {}).get("lag") for c in cells)
    fig = Figure(figsize=(11.0, 8.4 if has_lag else 6.0), layout="constrained")
    axes = fig.subplots(3 if has_lag else 2, 1, sharex=True)
    rate_ax, p99_ax = axes[0], axes[1]
    for color, cell in zip(_colors(len(cells)), cells, strict=True):
        name = cell_name(cell)
        for side, style in (("produce", "-"), ("consume", "--")):
            xs, ys = _series(cell, side, "count", 1.0)
            if xs:
                rate_ax.plot(xs, ys, style, color=color, marker=".", label=name if side == "produce" else None)
        for side, style in (("produce", "-"), ("consume", "--")):
            xs, ys = _series(cell, side, "p99_us", 1e-3)
            if xs:
                p99_ax.plot(xs, ys, style, color=color, marker=".", label=name if side == "produce" else None)
        if has_lag:
            lag = (cell.get("series") or {}).get("lag") or []
            warmup = float((cell.get("timing") or {}).get("warmup_s") or 0.0)
            if lag:  # lag time stamps count from the start of the warm-up
                axes[2].plot([float(t) - warmup for t, _ in lag], [float(v) for _, v in lag], "-", color=color,
                             marker=".", label=name)
    rate_ax.set_title("Messages per second — produce (solid), consume (dashed)", fontsize=10)
    rate_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v)))
    rate_ax.set_ylim(bottom=0)
    p99_ax.set_title("p99 latency per second (ms) — publish (solid), end-to-end (dashed)", fontsize=10)
    p99_ax.set_ylim(bottom=0)
    if has_lag:
        window = max(float((c.get("timing") or {}).get("window_s") or 0.0) for c in cells)
        lo, hi = axes[2].get_xlim()
        if lo < 0:
            axes[2].axvspan(lo, 0, color="gray", alpha=0.12, label="warm-up")
        if hi > window:
            axes[2].axvspan(window, hi, color="gray", alpha=0.06, label="after the window")
        axes[2].set_xlim(lo, hi)
        axes[2].set_title("Consumer lag (messages, summed over consumers; sampled about once a second)",
                          fontsize=10)
        axes[2].yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v)))
        axes[2].set_ylim(bottom=0)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("seconds into the measurement window (rates and p99: whole seconds, plotted mid-second)")
    return _save(fig, path)


def write_charts(doc: RunDocument, out_dir: Path) -> list[tuple[str, Path]]:
    """Write every chart of :data:`CHARTS` into ``out_dir``; (title, path) pairs. Nothing without cells."""
    if not doc.get("cells"):
        return []
    makers = (throughput_chart, latency_spectrum_chart, timeseries_chart)
    return [(title, make(doc, out_dir / name)) for (title, name), make in zip(CHARTS, makers, strict=True)]
