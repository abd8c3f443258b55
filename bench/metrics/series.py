"""Per-interval (default 1 s) counts, bytes, errors and latency histograms of a run.

Time stamps are on the monotonic clock (``time.monotonic_ns()``); latencies are recorded with
:func:`bench.metrics.hdr.record_array`, so out-of-range values are counted, not recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from bench.metrics.hdr import (
    IntArray,
    decode_histogram,
    encode_histogram,
    merge_into,
    new_histogram,
    record_array,
    value_at_percentiles,
)

__all__ = ["IntervalSeries"]


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
