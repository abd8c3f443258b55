"""Timed operations of a conformance run, recorded into HDR histograms (microseconds).

Names used by the checks: ``e2e`` (produce → consume), ``commit`` (commit round trip),
``join`` (group join / rebalance duration), ``txn_commit`` (transaction commit).

The histograms have kbench's layout (:func:`bench.metrics.hdr.new_histogram`: 1 µs .. 1 h, 3
significant figures), and the ``.hgrm`` files are written by :func:`bench.metrics.files.write_hgrm`,
values in milliseconds, as for ``kbench run`` (hdrh's own ``output_percentile_distribution`` prints
the standard deviation unscaled).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict

from hdrh.histogram import HdrHistogram

from bench.metrics.files import write_hgrm
from bench.metrics.hdr import HIGHEST_US, LOWEST_US, encode_histogram, new_histogram, value_at_percentiles

__all__ = ["TimingSummary", "Timings"]


class TimingSummary(TypedDict):
    """One operation's entry in report.json ``timings`` (µs; ``hdr``: HdrHistogram V2 base64)."""

    count: int
    min_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    hdr: str


class Timings:
    """Named HDR histograms; thread-safe ``record``/``time``; written as ``<name>.hgrm``."""

    def __init__(self) -> None:
        self._hists: dict[str, HdrHistogram] = {}
        self._lock = threading.Lock()

    def _hist(self, name: str) -> HdrHistogram:
        hist = self._hists.get(name)
        if hist is None:
            hist = self._hists[name] = new_histogram()
        return hist

    def record(self, name: str, micros: float) -> None:
        """Record one duration in microseconds (clamped to the histogram's range)."""
        value = min(max(round(micros), LOWEST_US), HIGHEST_US)
        with self._lock:
            self._hist(name).record_value(value)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        """``with timings.time("commit"): ...`` records the block's duration (perf_counter_ns).

        Nothing is recorded when the block raises.
        """
        start = time.perf_counter_ns()
        yield
        self.record(name, (time.perf_counter_ns() - start) / 1000)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._hists)

    def histogram(self, name: str) -> HdrHistogram | None:
        """The live histogram of ``name`` (None if nothing was recorded under it)."""
        with self._lock:
            return self._hists.get(name)

    def summary(self) -> dict[str, TimingSummary]:
        """Per non-empty name: count, min, p50, p90, p99, max (µs) and the encoded histogram."""
        out: dict[str, TimingSummary] = {}
        with self._lock:
            for name, h in sorted(self._hists.items()):
                if not h.total_count:
                    continue
                p50, p90, p99 = value_at_percentiles(h, (50.0, 90.0, 99.0))
                out[name] = TimingSummary(count=int(h.total_count), min_us=int(h.get_min_value()),
                                          p50_us=p50, p90_us=p90, p99_us=p99,
                                          max_us=int(h.get_max_value()), hdr=encode_histogram(h))
        return out

    def write_hgrm(self, directory: Path) -> list[Path]:
        """One ``<name>.hgrm`` percentile distribution (values in ms) per non-empty histogram."""
        written = []
        with self._lock:
            for name, h in sorted(self._hists.items()):
                if not h.total_count:
                    continue
                path = directory / f"{name}.hgrm"
                write_hgrm(h, path)
                written.append(path)
        return written
