"""benchmarks/bench_clients.py without a broker: the interleaved round order and the table's medians and
ratios (both forms), from made-up samples."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_clients as bc


def test_each_round_runs_every_contestant_rotated_and_alternated() -> None:
    clients = ["a", "b", "c"]
    orders = [bc.round_order(clients, i) for i in range(4)]
    for order in orders:
        assert sorted(order) == sorted((c, w) for c in clients for w in ("driver", "bare"))
    assert [o[0] for o in orders] == [("a", "driver"), ("b", "bare"), ("c", "driver"), ("a", "bare")]
    for order in orders:   # a client's driver and bare run back to back: one stretch of noise for the pair
        for k in range(0, len(order), 2):
            assert order[k][0] == order[k + 1][0]


def sample(who: str, rnd: int, rate: float, ratio_rate: float | None = None, p99: float | None = 2.0) -> bc.Sample:
    return bc.Sample("x", who, rnd, rate, rate * 100 / 1e6, 1.0 if p99 else None, p99, 0.5,
                     rate if ratio_rate is None else ratio_rate)


def test_summary_gives_both_ratio_forms() -> None:
    samples = [sample("driver", 0, 90.0), sample("bare", 0, 100.0),
               sample("driver", 1, 80.0), sample("bare", 1, 100.0),
               sample("driver", 2, 99.0), sample("bare", 2, 90.0, p99=None)]
    (row,) = bc.summarize(samples, ["x"])
    assert row["msgs_per_s"] == 90.0 and row["bare_msgs_per_s"] == 100.0 and row["rounds"] == 3
    assert row["ratio_of_medians"] == 0.9
    assert row["round_ratios"] == [0.9, 0.8, 1.1] and row["median_of_ratios"] == 0.9
    assert row["p99_ms"] == 2.0   # the driver's, never the bare loop's (it times nothing)


def test_the_ratio_compares_ratio_rate() -> None:
    """librdkafka's ratio compares whole-run rates, its msg/s column stays the window rate."""
    samples = [sample("driver", 0, 200.0, ratio_rate=150.0), sample("bare", 0, 100.0, ratio_rate=100.0)]
    (row,) = bc.summarize(samples, ["x"])
    assert row["msgs_per_s"] == 200.0 and row["ratio_of_medians"] == 1.5 and row["median_of_ratios"] == 1.5


def test_jit_cores_are_taken_inside_the_window_only() -> None:
    import side_by_side as sbs

    watch = sbs.JitWatch({})
    watch.stop()
    watch._pids = {"broker": 1, "client": 2}
    # (t ns, JIT CPU seconds so far): the broker compiles hard before the window, 0.1 cores inside it
    watch._samples = [(0, {"broker": 0.0, "client": None}), (1_000_000_000, {"broker": 0.9, "client": None}),
                      (2_000_000_000, {"broker": 1.0, "client": 5.0}), (4_000_000_000, {"broker": 1.2, "client": 5.0}),
                      (5_000_000_000, {"broker": 3.0, "client": 9.0})]
    cores = watch.cores(1_500_000_000, 4_500_000_000)
    assert abs(cores["broker"] - 0.1) < 1e-9   # type: ignore[operator]
    assert cores["client"] == 0.0
    assert watch.cores(0, 100) == {"broker": None, "client": None}   # fewer than two samples: unknown


def test_jit_cpu_of_a_process_that_is_not_a_jvm_is_none() -> None:
    import os

    import side_by_side as sbs

    assert sbs.jit_cpu_s(os.getpid()) is None
    assert sbs.jit_cpu_s(2 ** 22 + 12345) is None   # no such pid
