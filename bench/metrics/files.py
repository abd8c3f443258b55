"""Histogram files: ``.hgrm`` percentile distributions and ``.hlog`` interval logs.

``.hlog``: :func:`write_hlog` writes the format of the Java ``HistogramLogWriter`` (1.3) itself,
because ``hdrh.log.HistogramLogWriter`` 0.10.8 is broken: ``output_start_time`` raises, an interval
starting at 0.0 is replaced by the histogram's own time stamps, and the max column is floor-divided.
hdrh's ``HistogramLogReader`` reads the files (:func:`read_hlog`).

``.hgrm``: rows from hdrh's percentile iterator as in ``output_percentile_distribution``; the footer
in the Java layout, since hdrh's ``output_percentile_distribution`` prints the standard deviation
unscaled (in raw units while every other column is divided by the scaling ratio).

Both are written atomically (:func:`bench.results.store.write_text_atomic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from bench.metrics.hdr import encode_histogram, mean_stddev, new_histogram
from bench.results.store import write_text_atomic

__all__ = ["read_hlog", "write_hgrm", "write_hlog"]


def write_hgrm(hist: HdrHistogram, path: str | Path, scale_to_ms: bool = True) -> None:
    """Percentile distribution text (``.hgrm``), values in ms (or µs), HdrHistogram's layout."""
    ratio = 1000.0 if scale_to_ms else 1.0
    sf = hist.significant_figures
    row = f"%12.{sf}f %2.12f %10d %14.2f\n"
    last = f"%12.{sf}f %2.12f %10d\n"
    lines = [f"{'Value':>12} {'Percentile':>14} {'TotalCount':>10} {'1/(1-Percentile)':>14}\n\n"]
    if hist.total_count:
        for it in hist.get_percentile_iterator(5):
            level = it.percentile_level_iterated_to
            value = it.value_iterated_to / ratio
            if level != 100:
                lines.append(row % (value, level / 100, it.total_count_to_this_value, 1 / (1 - level / 100)))
            else:
                lines.append(last % (value, level / 100, it.total_count_to_this_value))
    mean, stddev = mean_stddev(hist) if hist.total_count else (0.0, 0.0)
    lines.append(f"#[Mean    = {mean / ratio:12.{sf}f}, StdDeviation   = {stddev / ratio:12.{sf}f}]\n")
    lines.append(f"#[Max     = {hist.get_max_value() / ratio:12.{sf}f}, "
                 f"Total count    = {hist.total_count:12d}]\n")
    lines.append(f"#[Buckets = {hist.bucket_count:12d}, SubBuckets     = {hist.sub_bucket_count:12d}]\n")
    write_text_atomic(Path(path), "".join(lines))


def write_hlog(intervals: Sequence[tuple[float, float, HdrHistogram]], path: str | Path, *,
               start_time_s: float | None = None, max_value_unit_ratio: float = 1000.0,
               comment: str | None = None) -> None:
    """Interval histogram log (``.hlog``, Java ``HistogramLogWriter`` format 1.3).

    ``intervals`` holds (start_s, end_s, histogram) relative to the run's start; ``start_time_s``
    (wall clock, seconds since the epoch, of that start) is written as ``#[StartTime: ...]``.
    The max column is the interval max divided by ``max_value_unit_ratio`` (µs → ms by default).
    """
    lines = []
    if comment:
        lines.append(f"#{comment}\n")
    lines.append("#[Histogram log format version 1.3]\n")
    if start_time_s is not None:
        stamp = datetime.fromtimestamp(start_time_s, tz=UTC).isoformat(" ")
        lines.append(f"#[StartTime: {start_time_s:.3f} (seconds since epoch), {stamp}]\n")
    lines.append('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
    for start, end, h in intervals:
        lines.append(f"{start:.3f},{end - start:.3f},{h.get_max_value() / max_value_unit_ratio:.3f},"
                     f"{encode_histogram(h)}\n")
    write_text_atomic(Path(path), "".join(lines))


def read_hlog(path: str | Path) -> list[tuple[float, float, HdrHistogram]]:
    """Read an ``.hlog`` with hdrh's ``HistogramLogReader``: (start_s, end_s, histogram) per line.

    Times are as the reader gives them: absolute (epoch seconds) when the log has a StartTime.
    """
    reader = HistogramLogReader(str(path), new_histogram())
    out = []
    try:
        while (h := reader.get_next_interval_histogram()) is not None:
            out.append((h.get_start_time_stamp() / 1000.0, h.get_end_time_stamp() / 1000.0, h))
    finally:
        reader.close()
    return out
