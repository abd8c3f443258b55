"""Two-sample Mann-Whitney U test (two-sided or one-sided), numpy and math only (scipy is not a dependency).

``kbench compare`` applies it one-sided to run-level values (one value per repeated run) and, as a
descriptive figure only, two-sided to per-second samples within single runs.
Small samples get the **exact** permutation distribution of the rank sum, ties included (ranks are
averaged, so twice a rank is an integer and the distribution is counted by dynamic programming);
larger ones the normal approximation with tie and continuity corrections -- the same definitions as
``scipy.stats.mannwhitneyu(method="exact" | "asymptotic")`` where those apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["EXACT_MAX_N", "MannWhitney", "mann_whitney_u", "min_p_value"]

#: combined sample sizes up to this use the exact distribution
EXACT_MAX_N = 60


@dataclass(frozen=True)
class MannWhitney:
    """``u`` is U of the first sample (count of pairs x > y, ties counted ½); ``p_value`` two-sided."""

    u: float
    p_value: float
    method: str
    n1: int
    n2: int


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
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


def _exact_p(doubled_ranks: np.ndarray, n1: int, observed: int, alternative: str = "two-sided") -> float:
    """P(|R - E[R]| >= |r - E[R]|) for R the (doubled) rank sum of n1 items drawn without replacement;
    P(R >= r) for ``greater``, P(R <= r) for ``less``."""
    weights = [int(w) for w in doubled_ranks]
    total = sum(weights)
    dp = np.zeros((n1 + 1, total + 1), dtype=np.float64)
    dp[0, 0] = 1.0
    for i, w in enumerate(weights):
        for k in range(min(i + 1, n1), 0, -1):
            dp[k, w:] += dp[k - 1, : total + 1 - w]
    dist = dp[n1]
    dist = dist / dist.sum()
    sums = np.arange(total + 1, dtype=np.float64)
    if alternative == "greater":
        return min(1.0, float(dist[sums >= observed - 1e-9].sum()))
    if alternative == "less":
        return min(1.0, float(dist[sums <= observed + 1e-9].sum()))
    center = n1 * total / len(weights)
    dev = abs(observed - center)
    p = float(dist[np.abs(sums - center) >= dev - 1e-9].sum())
    return min(1.0, p)


def mann_whitney_u(x: Sequence[float], y: Sequence[float], method: str = "auto",
                   alternative: str = "two-sided") -> MannWhitney:
    """Mann-Whitney U test of ``x`` against ``y``. Needs at least one value in each sample.

    ``method``: ``"exact"``, ``"asymptotic"`` or ``"auto"`` (exact up to :data:`EXACT_MAX_N` values in all).
    ``alternative``: ``"two-sided"``, ``"greater"`` (x tends to be larger than y) or ``"less"`` -- as in
    ``scipy.stats.mannwhitneyu``.
    """
    if method not in ("auto", "exact", "asymptotic"):
        raise ValueError(f"method must be 'auto', 'exact' or 'asymptotic', got {method!r}")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_u needs at least one value in each sample")
    both = np.concatenate([a, b])
    ranks = _ranks(both)
    r1 = float(ranks[:n1].sum())
    u1 = r1 - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    if method == "exact" or (method == "auto" and n <= EXACT_MAX_N):
        doubled = np.rint(ranks * 2).astype(np.int64)
        p = _exact_p(doubled, n1, int(doubled[:n1].sum()), alternative)
        return MannWhitney(u1, p, "exact", n1, n2)
    _, tie_counts = np.unique(both, return_counts=True)
    tie_term = float(((tie_counts.astype(np.float64) ** 3) - tie_counts).sum())
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return MannWhitney(u1, 1.0, "asymptotic", n1, n2)
    mean = n1 * n2 / 2.0
    if alternative != "two-sided":
        shift = (u1 - mean) if alternative == "greater" else (mean - u1)
        z = (shift - 0.5) / math.sqrt(var)
        return MannWhitney(u1, min(1.0, 0.5 * math.erfc(z / math.sqrt(2.0))), "asymptotic", n1, n2)
    z = (abs(u1 - mean) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0.0) / math.sqrt(2.0))
    return MannWhitney(u1, min(1.0, p), "asymptotic", n1, n2)


def min_p_value(n1: int, n2: int, alternative: str = "two-sided") -> float:
    """The smallest p-value the exact test can give (complete separation, no ties).

    Two-sided, 3 samples against 3 give 0.1: such runs can never show a significant difference at 0.05.
    One-sided it is 1 / C(n1 + n2, n1): 0.5 for 1 vs 1, 0.05 for 3 vs 3, 0.029 for 3 vs 4, 0.014 for 4 vs 4.
    """
    if n1 == 0 or n2 == 0:
        return 1.0
    if n1 + n2 > EXACT_MAX_N:
        return 0.0
    return min(1.0, (1.0 if alternative != "two-sided" else 2.0) / math.comb(n1 + n2, n1))
