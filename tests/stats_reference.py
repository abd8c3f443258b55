"""The reference for the differential tests: bench/report/stats.py as it was before scipy (numpy and math
only), kept verbatim apart from returning a tuple and from its exact distribution. That counting is the one
stats.py kept by hand (``_exact_tied_p``), so it is called here rather than copied: a copy would test
nothing. tests/test_stats.py checks it against full enumeration instead. Used by tests/test_stats.py
(p-values) and tests/test_compare.py (verdicts on the fixtures)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np

from bench.report.stats import Alternative, MannWhitney, _exact_tied_p


def _old_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def old_mann_whitney(x: list[float], y: list[float], method: str = "auto",
                     alternative: str = "two-sided") -> tuple[float, float, str]:
    """(U of x, p, method) exactly as the hand-written implementation computed them."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n1, n2 = len(a), len(b)
    both = np.concatenate([a, b])
    ranks = _old_ranks(both)
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    if method == "exact" or (method == "auto" and n <= 60):
        doubled = np.rint(ranks * 2).astype(np.int64)
        return u1, _exact_tied_p(doubled, n1, int(doubled[:n1].sum()), cast(Alternative, alternative)), "exact"
    _, tie_counts = np.unique(both, return_counts=True)
    tie_term = float(((tie_counts.astype(np.float64) ** 3) - tie_counts).sum())
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return u1, 1.0, "asymptotic"
    mean = n1 * n2 / 2.0
    if alternative != "two-sided":
        shift = (u1 - mean) if alternative == "greater" else (mean - u1)
        z = (shift - 0.5) / math.sqrt(var)
        return u1, min(1.0, 0.5 * math.erfc(z / math.sqrt(2.0))), "asymptotic"
    z = (abs(u1 - mean) - 0.5) / math.sqrt(var)
    return u1, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0))), "asymptotic"


def old_as_result(x: Sequence[float], y: Sequence[float], method: str = "auto",
                  alternative: str = "two-sided") -> MannWhitney:
    """The reference in place of :func:`bench.report.stats.mann_whitney_u` (same signature and result)."""
    u, p, used = old_mann_whitney(list(x), list(y), method, alternative)
    return MannWhitney(u, p, used, len(x), len(y))
