"""Timed operations of a conformance run, recorded into HDR histograms (microseconds).

Names used by the checks: ``e2e`` (produce → consume), ``commit`` (commit round trip),
``join`` (group join / rebalance duration), ``txn_commit`` (transaction commit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ["Timings"]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


class Timings:
    """Named HDR histograms; thread-safe ``record``/``time``; written as ``<name>.hgrm``."""

    def __init__(self) -> None:
        self._hists: dict[str, HdrHistogram] = {}
        self._lock = threading.Lock()

    def _hist(self, name: str) -> HdrHistogram:
        hist = self._hists.get(name)
        if hist is None:
            hist = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
            self._hists[name] = hist
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

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per name: count, min, p50, p90, p99, max (µs)."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for name, h in sorted(self._hists.items()):
                count = h.get_total_count()
                if not count:
                    continue
                out[name] = {"count": count, "min_us": h.get_min_value(),
                             "p50_us": h.get_value_at_percentile(50),
                             "p90_us": h.get_value_at_percentile(90),
                             "p99_us": h.get_value_at_percentile(99), "max_us": h.get_max_value()}
                encoded = h.encode()
                out[name]["hdr"] = encoded.decode() if isinstance(encoded, bytes) else str(encoded)
        return out

    def write_hgrm(self, directory: Path) -> list[Path]:
        """One ``<name>.hgrm`` percentile distribution (values in µs) per non-empty histogram."""
        written = []
        with self._lock:
            for name, h in sorted(self._hists.items()):
                if not h.get_total_count():
                    continue
                path = directory / f"{name}.hgrm"
                with path.open("wb") as fh:
                    h.output_percentile_distribution(fh, 1)
                written.append(path)
        return written
