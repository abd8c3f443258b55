"""Latency recording into HdrHistogram, vectorised; exact merging; encoding; summaries.

Latencies are integer **microseconds** in an ``hdrh`` histogram (:data:`LOWEST_US` 1 µs ..
:data:`HIGHEST_US` 1 h, :data:`SIGNIFICANT_FIGURES` 3). :func:`record_array` never calls
``record_value``: it computes HdrHistogram's counts indices with numpy (the integer arithmetic of
``HdrHistogram._counts_index_for``), ``np.bincount``-s them into the histogram's own counts array and
fixes ``total_count``/``min_value``/``max_value`` -- identical, counter for counter, to recording each
value with ``record_value``. Percentiles, mean and stddev are computed at read time, vectorised, with
hdrh's definitions (``get_value_at_percentile``, ``get_mean_value``, ``get_stddev``).

Out of range: exactly the values ``record_value`` refuses (negative, or past the last bucket, i.e.
above ``2**32 - 1`` µs; values between 1 h and that bound are kept, as hdrh keeps them) are **left
out and counted** in ``out_of_range``, to be reported as errors.

Per-interval series are in :mod:`bench.metrics.series`, ``.hgrm``/``.hlog`` files in
:mod:`bench.metrics.files`.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

__all__ = [
    "DEFAULT_FLUSH_EVERY",
    "HIGHEST_US",
    "LOWEST_US",
    "PERCENTILES",
    "SIGNIFICANT_FIGURES",
    "LatencyRecorder",
    "decode_histogram",
    "encode_histogram",
    "mean_stddev",
    "merge_encoded",
    "merge_into",
    "new_histogram",
    "record_array",
    "summarize",
    "value_at_percentiles",
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


def mean_stddev(h: HdrHistogram) -> tuple[float, float]:
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
    mean, stddev = mean_stddev(h)
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
