"""Does kbench notice a cold broker, and does priming cure it? Smoke runs back to back on fresh brokers.

1. A fresh embedded Kafka, no priming: ``--runs`` smoke runs back to back. The first is typically far
   slower (JIT, page cache, segment creation); its ``steady_state`` should say so.
2. Another fresh embedded Kafka, primed as ``kbench run --broker`` does (``bench.run.priming``), then the
   same runs.

Prints publish p99, e2e p99 and the steady-state verdict of every run.

    python benchmarks/bench_cold_start.py --runs 4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _runs(primed: bool, runs: int) -> None:
    from bench.run.execute import RunOptions, execute
    from bench.run.priming import DEFAULT_PRIME_S, prime_broker
    from bench.run.target import open_target
    from bench.scenario.model import load_scenario

    with open_target(None, "kafka") as target:  # a fresh embedded Kafka each time
        scenario = load_scenario(ROOT / "scenarios" / "smoke.yaml")
        opts = RunOptions(bootstrap=target.bootstrap, broker={"kind": "kafka"},
                          reports_root=Path("/tmp/kbench-bench-cold"))
        if primed:
            p = prime_broker(scenario, opts, DEFAULT_PRIME_S)
            print(f"  priming {p['seconds']:g} s: publish p99 {p['publish_p99_ms']:.1f} ms (not counted)")
        for i in range(runs):
            cell = execute(scenario, opts).document["cells"][0]
            st = cell["steady_state"]
            trending = [f"{t['series']} {t['trend']}" for t in st["tests"] if t["trend"] != "none"]
            print(f"  run {i + 1}: publish p99 {cell['latency']['publish']['p99_ms']:8.1f} ms, e2e p99 "
                  f"{cell['latency']['e2e']['p99_ms']:8.1f} ms, steady {st['steady']}"
                  + (f" ({', '.join(trending)})" if trending else ""), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    print("fresh broker, not primed:")
    _runs(False, args.runs)
    print("fresh broker, primed:")
    _runs(True, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
