"""bench/report/stats.py (scipy's Mann-Whitney plus the kept exact tied distribution) against the
hand-written implementation it replaced (tests/stats_reference.py, which calls the kept exact counting
rather than copying it), full enumeration (the kept counting's independent check), and scipy itself."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from bench.report.stats import EXACT_MAX_N, mann_whitney_u, min_p_value
from tests.stats_reference import old_mann_whitney

ALTERNATIVES = ("two-sided", "greater", "less")


def _brute_force(x: list[float], y: list[float], alternative: str) -> float:
    """Exact p by enumerating every split of the pooled average ranks (ties included)."""
    ranks = list(scipy_stats.rankdata(x + y))
    n1, n = len(x), len(x) + len(y)
    center, obs = n1 * (n + 1) / 2, sum(ranks[:n1])
    sums = [sum(ranks[i] for i in s) for s in itertools.combinations(range(n), n1)]
    if alternative == "greater":
        hits = sum(1 for s in sums if s >= obs - 1e-9)
    elif alternative == "less":
        hits = sum(1 for s in sums if s <= obs + 1e-9)
    else:
        hits = sum(1 for s in sums if abs(s - center) >= abs(obs - center) - 1e-9)
    return hits / len(sums)


# -- the grid: every size 1..8 x 1..8, with and without ties, every alternative and method ---------------
def _grid() -> list[tuple[list[float], list[float]]]:
    rng = np.random.default_rng(12)
    cases = []
    for n1, n2 in itertools.product(range(1, 9), repeat=2):
        cases.append((list(rng.normal(size=n1)), list(rng.normal(size=n2) + 0.5)))       # no ties
        cases.append((list(rng.integers(0, 4, n1).astype(float)), list(rng.integers(1, 5, n2).astype(float))))
    for n1, n2 in ((10, 10), (15, 12), (20, 25), (30, 30), (31, 30), (40, 45)):        # around EXACT_MAX_N
        cases.append((list(rng.normal(size=n1)), list(rng.normal(size=n2) + 0.3)))
        cases.append((list(np.round(rng.normal(size=n1) * 2)), list(np.round(rng.normal(size=n2) * 2 + 0.5))))
    cases += [([3.0, 3, 3], [3.0, 3, 3]), ([5.0], [5.0]), ([1.0, 2, 3, 4, 5], [6.0, 7, 8, 9, 10]),
              ([2000.0, 2000, 2000], [2000.0, 2000, 1990])]   # fixed-rate runs: the run-level values tie
    return cases


@pytest.mark.parametrize("method", ["auto", "exact", "asymptotic"])
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_same_u_p_and_method_as_the_hand_written_implementation(method: str, alternative: str) -> None:
    compared = 0
    for x, y in _grid():
        if method == "exact" and len(x) + len(y) > 2 * EXACT_MAX_N:
            continue
        u, p, used = old_mann_whitney(x, y, method, alternative)
        new = mann_whitney_u(x, y, method, alternative)
        assert (new.u, new.method) == (u, used), (x, y)
        assert new.p_value == pytest.approx(p, rel=1e-9, abs=1e-12), (x, y)
        assert (new.n1, new.n2) == (len(x), len(y))
        compared += 1
    assert compared >= 140


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_exact_matches_enumeration_on_the_grid(alternative: str) -> None:
    """Every grid case full enumeration can afford (up to 16 values), tied or not: the kept counting
    against an independent computation (the differential test above shares that counting)."""
    checked = 0
    for x, y in _grid():
        if len(x) + len(y) <= 16:
            got = mann_whitney_u(x, y, "exact", alternative).p_value
            assert got == pytest.approx(_brute_force(x, y, alternative), abs=1e-9), (x, y)
            checked += 1
    assert checked >= 130


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=6), st.lists(st.integers(0, 6), min_size=1, max_size=6),
       st.sampled_from(ALTERNATIVES))
def test_exact_matches_enumeration_with_ties(x: list[int], y: list[int], alternative: str) -> None:
    fx, fy = [float(v) for v in x], [float(v) for v in y]
    assert mann_whitney_u(fx, fy, alternative=alternative).p_value == pytest.approx(
        _brute_force(fx, fy, alternative), abs=1e-9)


def test_without_ties_it_is_scipy_exact_and_asymptotic() -> None:
    rng = np.random.default_rng(3)
    for n1, n2 in ((2, 3), (5, 4), (9, 9), (25, 30)):
        x, y = list(rng.normal(size=n1)), list(rng.normal(size=n2) + 0.4)
        for alt in ALTERNATIVES:
            for method in ("exact", "asymptotic"):
                ref = scipy_stats.mannwhitneyu(x, y, alternative=alt, method=method)
                got = mann_whitney_u(x, y, method, alt)
                assert (got.u, got.p_value) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue, rel=1e-12))


def test_why_the_tied_exact_distribution_is_kept() -> None:
    """scipy's exact method ignores ties; its permutation route agrees with the kept counting."""
    x, y = [1.0, 1, 2, 2, 3], [2.0, 3, 3, 4, 4]
    ours = mann_whitney_u(x, y, "exact", "less").p_value
    permutation = scipy_stats.mannwhitneyu(x, y, alternative="less",
                                           method=scipy_stats.PermutationMethod(n_resamples=np.inf)).pvalue
    assert ours == pytest.approx(permutation, rel=1e-12)
    assert scipy_stats.mannwhitneyu(x, y, alternative="less", method="exact").pvalue != pytest.approx(ours, rel=0.01)


def test_reference_values_and_limits() -> None:
    # scipy.stats.mannwhitneyu documentation example (males vs females): U = 17, p = 0.1111 exact,
    # 0.11134688653314041 asymptotic
    males, females = [19.0, 22, 16, 29, 24], [20.0, 11, 17, 12]
    exact = mann_whitney_u(males, females)
    assert exact.method == "exact" and exact.u == 17.0 and exact.p_value == pytest.approx(0.1111111111)
    assert mann_whitney_u(males, females, "asymptotic").p_value == pytest.approx(0.11134688653314041, rel=1e-9)
    assert mann_whitney_u([5.0, 6, 7, 8], [1.0, 2, 3, 4], alternative="greater").p_value == pytest.approx(1 / 70)
    assert mann_whitney_u([5.0, 6, 7, 8], [1.0, 2, 3, 4], alternative="less").p_value == pytest.approx(1.0)
    assert mann_whitney_u([1.0, 2, 3, 4, 5], [6.0, 7, 8, 9, 10]).p_value == pytest.approx(min_p_value(5, 5))
    assert mann_whitney_u([3.0, 3, 3], [3.0, 3, 3]).p_value == 1.0
    assert mann_whitney_u([3.0, 3, 3], [3.0, 3, 3], "asymptotic").p_value == 1.0
    big_x, big_y = [float(i) for i in range(40)], [float(i) + 0.5 for i in range(40)]
    auto = mann_whitney_u(big_x, big_y)
    assert auto.method == "asymptotic"
    assert auto.p_value == pytest.approx(mann_whitney_u(big_x, big_y, "exact").p_value, abs=0.01)
    for bad in ({"method": "bootstrap"}, {"alternative": "sideways"}):
        with pytest.raises(ValueError):
            mann_whitney_u([1.0], [2.0], **bad)
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


def test_min_p_value() -> None:
    assert min_p_value(3, 3, "greater") == pytest.approx(0.05)
    assert min_p_value(4, 4, "less") == pytest.approx(1 / 70)
    assert min_p_value(5, 5) == pytest.approx(2 / math.comb(10, 5))
    assert min_p_value(3, 3) > 0.05   # 3 vs 3 seconds can never be significant two-sided
    assert min_p_value(0, 4) == 1.0 and min_p_value(31, 30) == 0.0
