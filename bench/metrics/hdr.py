"""Latency recording into HdrHistogram, vectorised; per-second series; exact merging; file output.

Latencies are integer **microseconds** in an ``hdrh`` histogram (:data:`LOWEST_US` 1 µs ..
:data:`HIGHEST_US` 1 h, :data:`SIGNIFICANT_FIGURES` 3). :func:`record_array` never calls
``record_value``: it computes HdrHistogram's counts indices with numpy (the integer arithmetic of
``HdrHistogram._counts_index_for``), ``np.bincount``-s them into the histogram's own counts array and
fixes ``total_count``/``min_value``/``max_value`` -- identical, counter for counter, to recording each
value with ``record_value``. Percentiles, mean and stddev are computed at read time, vectorised, with
hdrh's definitions (``get_value_at_percentile``, ``get_mean_value``, ``get_stddev``).

Out of range: exactly the values ``record_value`` refuses (negative, or past the last bucket, i.e.
above ``2**32 - 1`` µs; values between 1 h and that bound are kept, as hdrh keeps them) are **left
out and counted** in ``out_of_range`` / ``latency_out_of_range``, to be reported as errors.

``.hlog``: :func:`write_hlog` writes the format of the Java ``HistogramLogWriter`` (1.3) itself,
because ``hdrh.log.HistogramLogWriter`` 0.10.8 is broken: ``output_start_time`` raises, an interval
starting at 0.0 is replaced by the histogram's own time stamps, and the max column is floor-divided.
hdrh's ``HistogramLogReader`` reads the files (:func:`read_hlog`). ``.hgrm``: rows from hdrh's
percentile iterator as in ``output_percentile_distribution``; the footer in the Java layout, since
hdrh prints the standard deviation unscaled.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

__all__ = [
    "DEFAULT_FLUSH_EVERY",
    "HIGHEST_US",
    "LOWEST_US",
    "PERCENTILES",
    "SIGNIFICANT_FIGURES",
    "IntervalSeries",
    "LatencyRecorder",
    "decode_histogram",
    "encode_histogram",
    "merge_encoded",
    "merge_into",
    "new_histogram",
    "read_hlog",
    "record_array",
    "summarize",
    "value_at_percentiles",
    "write_hgrm",
    "write_hlog",
]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_FIGURES = 3
DEFAULT_FLUSH_EVERY = 65_536
#: (key stem, percentile) reported by :func:`summarize`: ``p99_9_us`` is the 99.9th percentile.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9), ("p99_99", 99.99),
)

IntArray = npt.NDArray[np.int64]


def new_histogram() -> HdrHistogram:
    """An empty histogram with kbench's layout (1 µs .. 1 h, 3 significant figures)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


@dataclass(frozen=True)
class _Layout:
    """The index arithmetic of one histogram layout, as numpy operations."""

    unit_magnitude: int
    half_magnitude: int
    sub_bucket_mask: int
    counts_len: int
    max_recordable: int  # largest value record_value accepts

    def indices(self, v: IntArray) -> IntArray:
        """Counts-array index of each value; all values must be in 0..max_recordable."""
        x = v | self.sub_bucket_mask
        # bit_length(x) from the float64 exponent: exact, since x < 2**53 here.
        bucket = x.astype(np.float64).view(np.int64)
        bucket >>= 52
        bucket -= 1022 + self.unit_magnitude + self.half_magnitude + 1
        np.add(bucket, self.unit_magnitude, out=x)
        np.right_shift(v, x, out=x)  # sub-bucket index
        bucket <<= self.half_magnitude
        bucket += x  # == ((bucket + 1) << half_mag) + sub - half_count
        return bucket

    def lowest_values(self, idx: IntArray) -> tuple[IntArray, IntArray]:
        """(lowest value, size of the equivalent range) of each counts index."""
        bucket = np.maximum((idx >> self.half_magnitude) - 1, 0)
        half = 1 << self.half_magnitude
        sub = np.where(idx < 2 * half, idx, (idx & (half - 1)) + half)
        shift = bucket + self.unit_magnitude
        return sub << shift, np.left_shift(1, shift)


_LAYOUTS: dict[tuple[int, int, int], _Layout] = {}


def _layout(h: HdrHistogram) -> _Layout:
    key = (h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures)
    lay = _LAYOUTS.get(key)
    if lay is None:
        top = h.get_highest_equivalent_value(h.get_value_from_index(h.counts_len - 1))
        lay = _Layout(h.unit_magnitude, h.sub_bucket_half_count_magnitude, h.sub_bucket_mask,
                      h.counts_len, int(top))
        _LAYOUTS[key] = lay
    return lay


def _counts(h: HdrHistogram) -> npt.NDArray[np.uint64]:
    """A numpy view (no copy) of the histogram's counts array."""
    view = np.ctypeslib.as_array(h.counts)
    if view.dtype != np.uint64:
        raise ValueError(f"only 8-byte histogram counters are supported, got {view.dtype}")
    return view


def record_array(h: HdrHistogram, values: npt.ArrayLike) -> int:
    """Record integer ``values`` into ``h``, exactly as ``record_value`` would, and vectorised.

    Returns how many values were refused (negative or above the histogram's range); those are
    left out, as ``record_value`` leaves them out.
    """
    v = np.asarray(values)
    if v.size == 0:
        return 0
    if v.dtype.kind not in "iu":
        raise TypeError(f"latencies must be integers (µs), got dtype {v.dtype}")
    v = np.ascontiguousarray(v.ravel(), dtype=np.int64)
    lay = _layout(h)
    lo, hi = int(v.min()), int(v.max())
    rejected = 0
    if lo < 0 or hi > lay.max_recordable:
        n_in = v.size
        v = v[(v >= 0) & (v <= lay.max_recordable)]
        rejected = int(n_in - v.size)
        if v.size == 0:
            return rejected
        lo, hi = int(v.min()), int(v.max())
    binned = np.bincount(lay.indices(v))
    view = _counts(h)[: binned.size]
    np.add(view, binned.view(np.uint64), out=view)
    h.total_count += int(v.size)
    h.min_value = min(h.min_value, lo)
    h.max_value = max(h.max_value, hi)
    return rejected


def merge_into(dst: HdrHistogram, src: HdrHistogram) -> None:
    """Add ``src`` into ``dst`` exactly (counts, total, raw min/max); layouts must match."""
    if _layout(dst) != _layout(src):
        raise ValueError(f"cannot merge histograms of different layouts: {_layout(dst)} vs {_layout(src)}")
    if not src.total_count:
        return
    d = _counts(dst)
    np.add(d, _counts(src), out=d)
    dst.total_count += src.total_count
    dst.min_value = min(dst.min_value, src.min_value)
    dst.max_value = max(dst.max_value, src.max_value)


def encode_histogram(h: HdrHistogram) -> str:
    """HdrHistogram V2 compressed, base64 (``HdrHistogram.decode`` reads it)."""
    encoded: bytes = h.encode()
    return encoded.decode("ascii")


def decode_histogram(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded)


def merge_encoded(encoded: Iterable[str]) -> HdrHistogram:
    """Decode and add up encoded histograms (e.g. one per worker process); exact."""
    total = new_histogram()
    for text in encoded:
        merge_into(total, decode_histogram(text))
    return total


def value_at_percentiles(h: HdrHistogram, percentiles: Sequence[float]) -> list[int]:
    """``h.get_value_at_percentile(p)`` for each ``p``, from one cumulative sum."""
    if not h.total_count:
        return [0 for _ in percentiles]
    total = h.total_count
    targets = [max(int(min(p, 100.0) * total / 100 + 0.5), 1) for p in percentiles]
    cum = np.cumsum(_counts(h))
    idx = np.searchsorted(cum, np.asarray(targets, dtype=np.uint64), side="left").astype(np.int64)
    low, size = _layout(h).lowest_values(idx)
    return [int(lv + sz - 1) if p else int(lv) for p, lv, sz in zip(percentiles, low, size, strict=True)]


def _mean_stddev(h: HdrHistogram) -> tuple[float, float]:
    """hdrh's ``get_mean_value`` / ``get_stddev`` (median of each bucket's range), vectorised."""
    counts = _counts(h)
    idx = np.flatnonzero(counts).astype(np.int64)
    low, size = _layout(h).lowest_values(idx)
    mid = (low + (size >> 1)).astype(np.float64)
    weights = counts[idx].astype(np.float64)
    mean = float(np.dot(weights, mid)) / h.total_count
    var = float(np.dot(weights, (mid - mean) ** 2)) / h.total_count
    return mean, math.sqrt(var)


def summarize(h: HdrHistogram) -> dict[str, Any]:
    """count, min, max, mean, stddev and :data:`PERCENTILES`, as ``*_us`` and ``*_ms`` keys.

    Min/max are HdrHistogram's lowest/highest equivalent values. An empty histogram gives
    ``count`` 0 and ``None`` for every statistic.
    """
    out: dict[str, Any] = {"count": int(h.total_count)}
    names = ["min", "max", "mean", "stddev", *(stem for stem, _ in PERCENTILES)]
    if not h.total_count:
        for name in names:
            out[f"{name}_us"] = out[f"{name}_ms"] = None
        return out
    mean, stddev = _mean_stddev(h)
    values: list[float] = [int(h.get_min_value()), int(h.get_max_value()), mean, stddev]
    values += value_at_percentiles(h, [p for _, p in PERCENTILES])
    for name, value in zip(names, values, strict=True):
        out[f"{name}_us"] = value
        out[f"{name}_ms"] = value / 1000.0
    return out


class LatencyRecorder:
    """One latency metric of one process: cheap appends, batched vectorised recording.

    ``record`` appends to an int64 buffer that is recorded every ``flush_every`` values and
    whenever the histogram is read. Not thread-safe: one recorder per thread or process.
    """

    def __init__(self, flush_every: int = DEFAULT_FLUSH_EVERY,
                 histogram: HdrHistogram | None = None) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self._flush_every = flush_every
        self._buf = array("q")
        self._hist = histogram if histogram is not None else new_histogram()
        _counts(self._hist)  # refuse unsupported counter sizes early
        #: values refused because negative or beyond the histogram's range
        self.out_of_range = 0

    def record(self, value_us: int) -> None:
        buf = self._buf
        try:
            buf.append(value_us)
        except OverflowError:  # beyond int64: out of any histogram's range
            self.out_of_range += 1
            return
        if len(buf) >= self._flush_every:
            self.flush()

    def record_many(self, values: npt.ArrayLike) -> None:
        """Record an integer array (µs) in one vectorised step."""
        self.out_of_range += record_array(self._hist, values)

    def flush(self) -> None:
        if self._buf:
            buf, self._buf = self._buf, array("q")
            self.out_of_range += record_array(self._hist, np.frombuffer(buf, dtype=np.int64))

    @property
    def histogram(self) -> HdrHistogram:
        """The live histogram, buffer flushed first (not a copy)."""
        self.flush()
        return self._hist

    @property
    def count(self) -> int:
        """Values recorded (flushed or not), out-of-range ones excluded once flushed."""
        return int(self._hist.total_count) + len(self._buf)

    def reset(self) -> None:
        """Forget everything recorded so far (e.g. at the end of warm-up)."""
        self._buf = array("q")
        _counts(self._hist)[:] = 0
        self._hist.total_count = 0
        self._hist.min_value = sys.maxsize
        self._hist.max_value = 0
        self.out_of_range = 0

    def encode(self) -> str:
        return encode_histogram(self.histogram)

    @classmethod
    def decode(cls, encoded: str) -> LatencyRecorder:
        return cls(histogram=decode_histogram(encoded))

    def merge(self, other: LatencyRecorder | HdrHistogram) -> None:
        """Add another recorder's (or a histogram's) values into this one, exactly."""
        if isinstance(other, LatencyRecorder):
            merge_into(self.histogram, other.histogram)
            self.out_of_range += other.out_of_range
        else:
            merge_into(self.histogram, other)

    def summary(self) -> dict[str, Any]:
        """:func:`summarize` of the histogram, plus ``out_of_range``."""
        out = summarize(self.histogram)
        out["out_of_range"] = self.out_of_range
        return out


class IntervalSeries:
    """Per-interval (default 1 s) counts, bytes, errors and latency histograms of a run.

    Interval ``i`` covers ``[origin_ns + i*interval, origin_ns + (i+1)*interval)`` on the
    monotonic clock ``origin_ns`` was read from (``time.monotonic_ns()``; on Linux
    ``perf_counter_ns`` is the same clock). Processes on one host given the same ``origin_ns``
    produce series that :meth:`merge` adds up interval by interval. Time stamps before the origin
    raise ``ValueError``. The last interval of a run may be partial.
    """

    def __init__(self, origin_ns: int, interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.origin_ns = int(origin_ns)
        self.interval_s = float(interval_s)
        self.interval_ns = round(interval_s * 1e9)
        self._n = 0
        self._count: IntArray = np.zeros(64, dtype=np.int64)
        self._bytes: IntArray = np.zeros(64, dtype=np.int64)
        self._errors: IntArray = np.zeros(64, dtype=np.int64)
        self._hists: dict[int, HdrHistogram] = {}
        #: latencies refused by the histograms (negative or beyond range)
        self.latency_out_of_range = 0

    def __len__(self) -> int:
        return self._n

    def _grow(self, n: int) -> None:
        if n > self._count.size:
            cap = max(n, 2 * self._count.size)
            for name in ("_count", "_bytes", "_errors"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=np.int64)
                new[: old.size] = old
                setattr(self, name, new)
        self._n = max(self._n, n)

    def _indices(self, t_ns: npt.ArrayLike) -> IntArray:
        idx = (np.asarray(t_ns, dtype=np.int64) - self.origin_ns) // self.interval_ns
        if idx.size and int(idx.min()) < 0:
            raise ValueError(f"time stamps before the series origin {self.origin_ns} ns")
        return idx

    def add(self, t_ns: int, count: int = 1, nbytes: int = 0, errors: int = 0) -> None:
        i = (int(t_ns) - self.origin_ns) // self.interval_ns
        if i < 0:
            raise ValueError(f"time stamp {t_ns} ns is before the series origin {self.origin_ns} ns")
        self._grow(i + 1)
        self._count[i] += count
        self._bytes[i] += nbytes
        self._errors[i] += errors

    def _add_binned(self, target: IntArray, idx: IntArray, weights: npt.ArrayLike | None) -> None:
        lo = int(idx.min())
        self._grow(int(idx.max()) + 1)
        if weights is None:
            binned = np.bincount(idx - lo)
        else:  # float64 sums of integers are exact below 2**53 bytes per interval
            binned = np.rint(np.bincount(idx - lo, weights=weights)).astype(np.int64)
        target[lo: lo + binned.size] += binned

    def add_many(self, t_ns: npt.ArrayLike, sizes: npt.ArrayLike) -> None:
        """One message per time stamp (ns), of ``sizes`` bytes (an array, or one size for all)."""
        idx = self._indices(t_ns)
        if idx.size:
            sizes_a = np.asarray(sizes, dtype=np.float64)
            if sizes_a.ndim:
                if sizes_a.shape != idx.shape:
                    raise ValueError("t_ns and sizes must have the same length")
            else:
                sizes_a = np.full(idx.shape, float(sizes_a))
            self._add_binned(self._count, idx, None)
            self._add_binned(self._bytes, idx, sizes_a)

    def add_errors(self, t_ns: npt.ArrayLike) -> None:
        """One error per time stamp (ns)."""
        idx = self._indices(t_ns)
        if idx.size:
            self._add_binned(self._errors, idx, None)

    def _hist(self, i: int) -> HdrHistogram:
        h = self._hists.get(i)
        if h is None:
            h = self._hists[i] = new_histogram()
        return h

    def add_latencies(self, t_ns: npt.ArrayLike, lat_us: npt.ArrayLike) -> None:
        """Record latencies (µs) into the histogram of the interval of their time stamps."""
        idx = self._indices(t_ns)
        lat = np.asarray(lat_us)
        if lat.shape != idx.shape:
            raise ValueError("t_ns and lat_us must have the same length")
        if not idx.size:
            return
        lo, hi = int(idx.min()), int(idx.max())
        self._grow(hi + 1)
        if lo == hi:
            self.latency_out_of_range += record_array(self._hist(lo), lat)
            return
        if bool(np.any(idx[1:] < idx[:-1])):  # usually already in time order
            order = np.argsort(idx, kind="stable")
            idx, lat = idx[order], lat[order]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(idx)) + 1, [idx.size]))
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            self.latency_out_of_range += record_array(self._hist(int(idx[a])), lat[a:b])

    def histogram_at(self, i: int) -> HdrHistogram | None:
        """The latency histogram of interval ``i`` (None if no latency fell in it)."""
        return self._hists.get(i)

    def merge(self, other: IntervalSeries) -> None:
        """Add another series of the same origin and interval, interval by interval."""
        if (other.origin_ns, other.interval_ns) != (self.origin_ns, self.interval_ns):
            raise ValueError("cannot merge interval series with different origins or intervals: "
                             f"({self.origin_ns}, {self.interval_ns}) vs "
                             f"({other.origin_ns}, {other.interval_ns})")
        self._grow(other._n)
        n = other._n
        self._count[:n] += other._count[:n]
        self._bytes[:n] += other._bytes[:n]
        self._errors[:n] += other._errors[:n]
        for i, h in other._hists.items():
            merge_into(self._hist(i), h)
        self.latency_out_of_range += other.latency_out_of_range

    def _length(self, until_ns: int | None) -> int:
        n = self._n
        if until_ns is not None:
            n = max(n, -(-(int(until_ns) - self.origin_ns) // self.interval_ns))
        return n

    def intervals(self, until_ns: int | None = None) -> list[tuple[float, float, HdrHistogram]]:
        """(start_s, end_s, histogram) per interval, empty histograms included, for :func:`write_hlog`."""
        return [(i * self.interval_s, (i + 1) * self.interval_s, self._hists.get(i) or new_histogram())
                for i in range(self._length(until_ns))]

    def _column(self, values: IntArray, n: int) -> list[int]:
        out = np.zeros(n, dtype=np.int64)
        out[: min(n, self._n)] = values[: min(n, self._n)]
        return [int(x) for x in out]

    def encode(self) -> dict[str, Any]:
        """A picklable/JSON-able form that :meth:`decode` turns back into an identical series
        (interval histograms as HdrHistogram V2 base64) — how workers ship series to the coordinator."""
        n = self._n
        return {"origin_ns": self.origin_ns, "interval_s": self.interval_s,
                "count": self._count[:n].tolist(), "bytes": self._bytes[:n].tolist(),
                "errors": self._errors[:n].tolist(), "out_of_range": self.latency_out_of_range,
                "hists": {str(i): encode_histogram(h) for i, h in self._hists.items() if h.total_count}}

    @classmethod
    def decode(cls, doc: dict[str, Any]) -> IntervalSeries:
        series = cls(int(doc["origin_ns"]), float(doc["interval_s"]))
        n = len(doc["count"])
        series._grow(n)
        for name, key in (("_count", "count"), ("_bytes", "bytes"), ("_errors", "errors")):
            getattr(series, name)[:n] = np.asarray(doc[key], dtype=np.int64)
        series._hists = {int(i): decode_histogram(h) for i, h in doc["hists"].items()}
        series.latency_out_of_range = int(doc.get("out_of_range", 0))
        return series

    def to_dict(self, until_ns: int | None = None) -> dict[str, Any]:
        """JSON-ready columns; ``until_ns`` pads idle intervals up to the run's end with zeros.

        ``p50_us`` / ``p99_us`` / ``max_us`` are ``None`` for intervals without latencies.
        """
        n = self._length(until_ns)
        p50: list[int | None] = [None] * n
        p99: list[int | None] = [None] * n
        mx: list[int | None] = [None] * n
        for i, h in self._hists.items():
            if i < n and h.total_count:
                p50[i], p99[i] = value_at_percentiles(h, (50.0, 99.0))
                mx[i] = int(h.get_max_value())
        return {
            "interval_s": self.interval_s,
            "t": [round(i * self.interval_s, 9) for i in range(n)],
            "count": self._column(self._count, n),
            "bytes": self._column(self._bytes, n),
            "errors": self._column(self._errors, n),
            "p50_us": p50,
            "p99_us": p99,
            "max_us": mx,
        }


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
    mean, stddev = _mean_stddev(hist) if hist.total_count else (0.0, 0.0)
    lines.append(f"#[Mean    = {mean / ratio:12.{sf}f}, StdDeviation   = {stddev / ratio:12.{sf}f}]\n")
    lines.append(f"#[Max     = {hist.get_max_value() / ratio:12.{sf}f}, "
                 f"Total count    = {hist.total_count:12d}]\n")
    lines.append(f"#[Buckets = {hist.bucket_count:12d}, SubBuckets     = {hist.sub_bucket_count:12d}]\n")
    Path(path).write_text("".join(lines), encoding="utf-8")


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
    Path(path).write_text("".join(lines), encoding="utf-8")


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
