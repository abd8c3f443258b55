"""Is a measurement window the system's steady state? A trend test over its per-second series.

A cold broker (JIT, page cache, log segment creation, metadata) is slower at first: its first run can be
100× slower than the next one, yet its mean looks like any other figure. A window is *not steady* when a
series has a monotone trend that is both significant and material:

* **significant**: the Mann-Kendall test (Mann 1945, Kendall 1975; the usual test for a monotone trend in
  a short, non-normal series, with the tie correction of the variance), two-sided, at ``ALPHA`` per series;
  with five series per cell, the family-wise false-alarm rate stays under 5%;
* **material**: Sen's slope (the median of pairwise slopes, robust to outliers) times the window length is
  at least ``MIN_CHANGE`` of the series' median: a trend of a few percent over a window is noise to users.

A cold start also shows as an *initial transient* that a trend test cannot see, one slow first second and
then a flat series (measured on a fresh Kafka: publish p99 195 ms in the first second, 8–51 ms after).
That is the initialisation bias that MSER-style truncation rules look for in simulation output; here the
rule is deliberately conservative: the first interval lies outside the range of all the others *and* is
at least ``TRANSIENT_FACTOR`` times (or at most 1/``TRANSIENT_FACTOR`` of) their median, in at least two
series (a cold broker slows publish and e2e alike; one noisy series alone is not enough). On independent
log-normal noise with σ = 0.5–0.7, 8 intervals, the whole check flags 1–2% of windows
(``tests/test_steady.py``).

A window shorter than ``MIN_INTERVALS`` seconds cannot show a trend at that level: its verdict is None
(unknown), never "steady". Pure functions; ``cell.py`` applies :func:`check_steady_state` to each cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["ALPHA", "MIN_CHANGE", "MIN_INTERVALS", "SERIES", "SteadyState", "TrendTest", "check_steady_state",
           "mann_kendall"]

ALPHA = 0.01
MIN_CHANGE = 0.20
MIN_INTERVALS = 6
TRANSIENT_FACTOR = 4.0
#: (name, section of cells[].series, key) tested in each cell
SERIES = (("produce msg/s", "produce", "count"), ("consume msg/s", "consume", "count"),
          ("publish p50", "produce", "p50_us"), ("publish p99", "produce", "p99_us"),
          ("e2e p99", "consume", "p99_us"))
METHOD = (f"Mann-Kendall trend test per per-second series (two-sided, alpha {ALPHA}) and Sen's slope over the "
          f"window >= {MIN_CHANGE:.0%} of the series' median; initial transient: the first interval outside the "
          f"others' range and >= {TRANSIENT_FACTOR:g}x from their median")


@dataclass(frozen=True)
class TrendTest:
    series: str
    n: int
    s: int            # Mann-Kendall S: concordant minus discordant pairs
    z: float
    p: float          # two-sided p-value (normal approximation with continuity and tie corrections)
    sen_slope: float  # per interval, in the series' unit
    relative_change: float | None  # sen_slope × (n − 1) / median; None when the median is 0
    first_vs_rest: float | None    # the first interval / the median of the others; None when that median is 0
    trend: str        # "increasing" | "decreasing" | "initial transient" | "none"


@dataclass(frozen=True)
class SteadyState:
    steady: bool | None          # None: too short to tell
    warning: str | None
    method: str
    tests: tuple[TrendTest, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"steady": self.steady, "warning": self.warning, "method": self.method,
                "tests": [asdict(t) for t in self.tests]}


def _s_and_variance(x: np.ndarray) -> tuple[int, float]:
    n = x.size
    diff = np.sign(x[None, :] - x[:, None])
    s = int(np.triu(diff, 1).sum())
    _vals, counts = np.unique(x, return_counts=True)
    ties = counts[counts > 1].astype(np.float64)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    return s, var


def _sen_slope(x: np.ndarray) -> float:
    i, j = np.triu_indices(x.size, 1)
    return float(np.median((x[j] - x[i]) / (j - i)))


def mann_kendall(name: str, values: Sequence[float], *, alpha: float = ALPHA,
                 min_change: float = MIN_CHANGE) -> TrendTest:
    """The trend test of one series (at least 3 values)."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n < 3:
        raise ValueError(f"a trend test needs at least 3 values, got {n}")
    s, var = _s_and_variance(x)
    z = 0.0 if s == 0 or var <= 0 else (s - math.copysign(1, s)) / math.sqrt(var)
    p = math.erfc(abs(z) / math.sqrt(2))
    slope = _sen_slope(x)
    median = float(np.median(x))
    rel = slope * (n - 1) / abs(median) if median else None
    material = rel is not None and abs(rel) >= min_change
    first = _first_vs_rest(x)
    trend = "none"
    if p < alpha and material:
        trend = "increasing" if s > 0 else "decreasing"
    elif first is not None and _transient(x, first):
        trend = "initial transient"
    return TrendTest(name, n, s, round(z, 4), p, slope, None if rel is None else round(rel, 4),
                     None if first is None else round(first, 4), trend)


def _first_vs_rest(x: np.ndarray) -> float | None:
    rest = float(np.median(x[1:]))
    return float(x[0]) / rest if rest else None


def _transient(x: np.ndarray, ratio: float) -> bool:
    outside = x[0] > x[1:].max() or x[0] < x[1:].min()
    return bool(outside and (ratio >= TRANSIENT_FACTOR or ratio <= 1 / TRANSIENT_FACTOR))


def _values(series: Mapping[str, Any] | None, key: str, n: int) -> list[float] | None:
    if not series or key not in series:
        return None
    raw = list(series[key])[:n]
    if len(raw) < n or any(v is None for v in raw):  # an interval with no latency sample: not testable
        return None
    return [float(v) for v in raw]


def _describe(t: TrendTest) -> str:
    if t.trend == "initial transient":
        return f"{t.series}: initial transient (first second {t.first_vs_rest:.1f}x the others' median)"
    return f"{t.series} {t.trend} ({t.relative_change:+.0%} over the window, Mann-Kendall p={t.p:.2g})"


def check_steady_state(series: Mapping[str, Mapping[str, Any] | None], full_intervals: int, *,
                       skip: Sequence[str] = ()) -> SteadyState:
    """Test the first ``full_intervals`` (complete) per-second intervals of each series in :data:`SERIES`
    but those named in ``skip`` (e.g. the consumer's in a backlog cell, where their trend is the point)."""
    if full_intervals < MIN_INTERVALS:
        return SteadyState(None, f"window of {full_intervals} s is too short to check for a steady state "
                                 f"(needs >= {MIN_INTERVALS} s)", METHOD, ())
    tests = []
    for name, section, key in SERIES:
        if name in skip:
            continue
        values = _values(series.get(section), key, full_intervals)
        if values is not None:
            tests.append(mann_kendall(name, values))
    transients = [t for t in tests if t.trend == "initial transient"]
    trending = [t for t in tests if t.trend not in ("none", "initial transient")]
    if len(transients) >= min(2, len(tests)):
        trending += transients
    if not trending:
        return SteadyState(True, None, METHOD, tuple(tests))
    parts = [_describe(t) for t in trending]
    return SteadyState(False, "no steady state: " + "; ".join(parts)
                       + " — warm the broker first (a longer warm-up, or --broker's priming) and run again",
                       METHOD, tuple(tests))
