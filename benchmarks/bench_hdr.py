"""How much cheaper is kbench's vectorised HDR recording than hdrh's ``record_value``?

Run: ``python benchmarks/bench_hdr.py`` (about 10-30 s). Times, in ns per value, side by side:

* hdrh ``record_value`` in a Python loop (the baseline);
* ``LatencyRecorder.record_many`` on 1e6-value int64 arrays (the way workers record batches);
* ``LatencyRecorder.record`` called once per value (Python call into the buffer, periodic flush).

Each figure is the best of several repeats (least disturbed by other work on the machine). It
also checks that all three paths produce the same histogram, and ends with one quotable line.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from bench.metrics.hdr import LatencyRecorder, new_histogram


def best_ns_per_value(run: Callable[[], None], n_values: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        run()
        best = min(best, (time.perf_counter_ns() - t0) / n_values)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--array-size", type=int, default=1_000_000)
    parser.add_argument("--loop-values", type=int, default=200_000,
                        help="values per repeat for the per-value Python loops")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(42)
    # latency-like data: log-normal around 1 ms, with a tail into seconds
    array = np.maximum(rng.lognormal(7.0, 1.5, args.array_size), 1).astype(np.int64)
    loop_values = array[: args.loop_values].tolist()

    def hdrh_loop() -> None:
        h = new_histogram()
        rec = h.record_value
        for v in loop_values:
            rec(v)

    def vectorised() -> None:
        LatencyRecorder().record_many(array)

    def per_call() -> None:
        r = LatencyRecorder()
        rec = r.record
        for v in loop_values:
            rec(v)
        r.flush()

    vectorised()  # first touch of numpy buffers and page faults, not measured
    t_hdrh = best_ns_per_value(hdrh_loop, len(loop_values), max(2, args.repeats // 2))
    t_many = best_ns_per_value(vectorised, array.size, args.repeats * 2)
    t_call = best_ns_per_value(per_call, len(loop_values), args.repeats)

    # the three paths must agree (same values as the loops: the first loop_values of the array)
    ref = new_histogram()
    for v in loop_values:
        ref.record_value(v)
    many, call = LatencyRecorder(), LatencyRecorder()
    many.record_many(array[: len(loop_values)])
    for v in loop_values:
        call.record(v)
    same = all(
        np.array_equal(np.ctypeslib.as_array(ref.counts), np.ctypeslib.as_array(r.histogram.counts))
        and (ref.total_count, ref.min_value, ref.max_value)
        == (r.histogram.total_count, r.histogram.min_value, r.histogram.max_value)
        for r in (many, call)
    )

    print(f"{'path':<44} {'ns/value':>10} {'vs record_value':>16}")
    rows = [
        ("hdrh HdrHistogram.record_value (loop)", t_hdrh),
        (f"LatencyRecorder.record_many ({array.size:.0e} array)", t_many),
        ("LatencyRecorder.record (per call + flush)", t_call),
    ]
    for name, t in rows:
        print(f"{name:<44} {t:>10.1f} {t_hdrh / t:>15.1f}x")
    print(f"identical histograms: {'yes' if same else 'NO'}")
    print(f"bench_hdr: record_value {t_hdrh:.0f} ns/value; record_many {t_many:.1f} ns/value "
          f"({t_hdrh / t_many:.0f}x faster); record() {t_call:.0f} ns/value "
          f"({t_hdrh / t_call:.1f}x faster); identical={same}")


if __name__ == "__main__":
    main()
