"""The steady-state check: Mann-Kendall + Sen's slope over per-second series (pure logic)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.metrics.steady import MIN_INTERVALS, check_steady_state, mann_kendall
from bench.run.priming import settled


def _brute_s(x: list[float]) -> int:
    return sum((x[j] > x[i]) - (x[j] < x[i]) for i, j in itertools.combinations(range(len(x)), 2))


def test_s_matches_the_definition_with_ties() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = rng.integers(0, 5, size=9).astype(float).tolist()
        assert mann_kendall("x", x).s == _brute_s(x)


def test_variance_is_the_exact_permutation_variance() -> None:
    # under no trend every ordering is equally likely: S's variance over all 7! orderings is the formula's
    n = 7
    all_s = np.array([_brute_s(list(p)) for p in itertools.permutations(range(n))], dtype=float)
    assert all_s.var() == pytest.approx(n * (n - 1) * (2 * n + 5) / 18)
    exact_p = float(np.mean(np.abs(all_s) >= 21))  # two-sided, S >= 21 of a maximum 21
    assert exact_p == pytest.approx(2 / 5040)
    assert exact_p < mann_kendall("x", list(range(n))).p < 0.005  # the normal approximation is conservative


def _cell_series(p99: list[float], counts: list[float] | None = None) -> dict[str, dict[str, list[float]]]:
    n = len(p99)
    prod = {"count": counts or [2000.0] * n, "p50_us": [v / 3 for v in p99], "p99_us": p99}
    return {"produce": prod, "consume": {"count": [2000.0] * n, "p99_us": p99}}


def test_cold_start_trend_is_flagged() -> None:
    cold = [1_166_000, 420_000, 90_000, 30_000, 15_000, 13_000, 12_500, 12_000]
    st = check_steady_state(_cell_series(cold), len(cold))
    assert st.steady is False
    assert st.warning is not None and "publish p99 decreasing" in st.warning
    assert {t.series for t in st.tests if t.trend == "decreasing"} >= {"publish p99", "e2e p99"}


def test_rising_latency_is_flagged_as_increasing() -> None:
    rising = [10_000.0 * (1 + 0.3 * i) for i in range(10)]
    st = check_steady_state(_cell_series(rising), 10)
    assert st.steady is False and "increasing" in (st.warning or "")


@pytest.mark.parametrize("sigma", [0.5, 0.7])
def test_flat_noisy_windows_rarely_cry_wolf(sigma: float) -> None:
    # warm smoke runs' per-second p99 has a log-spread of about 0.55: independent series, 8 intervals
    rng = np.random.default_rng(3)

    def window() -> dict[str, dict[str, list[float]]]:
        lat = {k: rng.lognormal(9, sigma, size=8).tolist() for k in ("p50", "p99", "e2e")}
        return {"produce": {"count": rng.normal(2000, 30, size=8).tolist(), "p50_us": lat["p50"],
                            "p99_us": lat["p99"]},
                "consume": {"count": rng.normal(2000, 30, size=8).tolist(), "p99_us": lat["e2e"]}}

    flagged = sum(check_steady_state(window(), 8).steady is False for _ in range(1000))
    assert flagged / 1000 <= 0.03


def test_small_but_significant_drift_is_not_material() -> None:
    drift = [10_000.0 + 50 * i for i in range(10)]  # +4.5% over the window: significant, not material
    st = check_steady_state(_cell_series(drift), 10)
    assert st.steady is True
    assert any(t.p < 0.01 and t.trend == "none" for t in st.tests)


def test_a_constant_rate_is_steady() -> None:
    st = check_steady_state(_cell_series([5000.0] * 8), 8)
    assert st.steady is True and st.warning is None


def test_short_windows_are_unknown_not_steady() -> None:
    st = check_steady_state(_cell_series([1.0, 2.0, 3.0]), MIN_INTERVALS - 1)
    assert st.steady is None and "too short" in (st.warning or "")


def test_intervals_without_latency_skip_that_series_and_backlog_skips_consumers() -> None:
    p99: list[float | None] = [None, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    series = {"produce": {"count": [1.0] * 8, "p50_us": p99, "p99_us": p99}, "consume": {"count": list(range(8))}}
    st = check_steady_state(series, 8, skip=("consume msg/s",))  # type: ignore[arg-type]
    assert [t.series for t in st.tests] == ["produce msg/s"]
    assert st.steady is True


def test_a_slow_first_second_is_an_initial_transient() -> None:
    # publish p99 per second of a real first smoke run on a fresh Kafka (µs)
    cold = [194_943, 24_895, 18_463, 33_599, 37_183, 41_855, 51_103, 14_247, 8_479]
    st = check_steady_state(_cell_series(cold), len(cold))
    assert st.steady is False and "publish p99: initial transient" in (st.warning or "")
    t = next(t for t in st.tests if t.series == "publish p99")
    assert t.trend == "initial transient" and t.first_vs_rest is not None and t.first_vs_rest > 4


def test_a_first_second_inside_the_others_range_is_not_a_transient() -> None:
    spiky = [40_000.0, 9_000, 10_000, 200_000, 11_000, 9_500, 10_500, 9_800]  # a later spike is larger
    assert check_steady_state(_cell_series(spiky), 8).steady is True


def test_one_series_with_a_slow_first_second_is_not_enough() -> None:
    flat = [10_000.0, 9_000, 11_000, 10_500, 9_500, 10_200, 9_800, 10_100]
    series = _cell_series(flat)
    series["produce"]["p99_us"] = [90_000.0, *flat[1:]]
    st = check_steady_state(series, 8)
    assert st.steady is True
    assert [t.series for t in st.tests if t.trend == "initial transient"] == ["publish p99"]


# -- priming: the broker has settled when its publish p99 stops falling -------------------------------
@pytest.mark.parametrize(("p99s", "expected"), [
    ([], False), ([900.0], False),                       # one round cannot show a trend
    ([2408.0, 415.0], False), ([415.0, 31.0], False),    # still falling by more than 20%
    ([31.0, 26.0], True), ([26.0, 40.0], True),          # within 20%, or worse: no more warming to wait for
    ([30.0, 24.1], True), ([30.0, 23.9], False),         # the boundary: p99 / 1.25
    ([None, 12.0], False), ([12.0, None], False),        # a round without latency data decides nothing
])
def test_priming_settles_when_publish_p99_stops_falling(p99s: list[float | None], expected: bool) -> None:
    assert settled(p99s) is expected
