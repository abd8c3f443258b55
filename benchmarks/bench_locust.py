"""`kbench locust` (one Locust worker process) vs `kbench run` (one producer process), side by side in one run.

The same scenario for both: one producer at ``rate: max``, 100-byte messages, ``acks=1``, no consumers, one
partition, against one embedded Apache Kafka broker (or ``--bootstrap``). Rounds alternate which of the two
goes first (the machine is noisy: compare within the run, not across runs). Both are timed the same way:
``cells[0].produce.msgs_per_s`` of their result documents (messages acked inside the measurement window /
its length), so the ratio compares the load generators, not their start-up.

    python benchmarks/bench_locust.py                        # embedded Apache Kafka, 3 rounds
    python benchmarks/bench_locust.py --rounds 5 --duration 10
    python benchmarks/bench_locust.py --locust-workers 0     # one local Locust process (no master)

Prints every round, the median of the rounds' ratios and the ratio of the medians (goal: >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from side_by_side import broker, paired

ROOT = Path(__file__).resolve().parent.parent

SCENARIO = """\
name: bench-locust
topic: {{partitions: 1}}
workload:
  message_size: 100
  producers: 1
  consumer_groups: 0
  rate: max
  warmup: {warmup}s
  duration: {duration}s
producer: {{acks: "1", linger.ms: 5, queue.buffering.max.messages: 500000}}
"""


def _kbench(args: list[str], timeout_s: float) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    if proc.returncode not in (0, 1):   # 1: a threshold or check missed on a busy machine; still measured
        raise SystemExit(f"kbench {args[0]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _rate(run_dir: Path) -> tuple[float, int]:
    doc = json.loads((run_dir / "result.json").read_text())
    produce = doc["cells"][0]["produce"]
    return float(produce["msgs_per_s"]), int(produce.get("latency_sample", 1))


def _one(kind: str, scenario: Path, bootstrap: str, tmp: Path, workers: int, budget_s: float) -> tuple[float, int]:
    out = tmp / f"{kind}-{uuid.uuid4().hex[:6]}"
    if kind == "run":
        _kbench(["run", str(scenario), "--bootstrap", bootstrap, "--out", str(out), "--no-progress"], budget_s)
    else:
        _kbench(["locust", str(scenario), "--bootstrap", bootstrap, "--out", str(out), "--workers", str(workers),
                 "--headless"], budget_s)
    return _rate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="HOST:PORT of a running broker (default: start an embedded Kafka)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    ap.add_argument("--locust-workers", type=int, default=1,
                    help="local Locust worker processes behind a master (0: one local Locust process)")
    args = ap.parse_args()
    budget = args.warmup + args.duration + 120
    with broker(args.bootstrap, "bench-locust") as bootstrap, \
            tempfile.TemporaryDirectory(prefix="bench-locust-") as d:
        tmp = Path(d)
        scenario = tmp / "scenario.yaml"
        scenario.write_text(SCENARIO.format(warmup=args.warmup, duration=args.duration))
        runs: list[float] = []
        locusts: list[float] = []
        for r in range(args.rounds):
            order = ["run", "locust"] if r % 2 == 0 else ["locust", "run"]
            got = {k: _one(k, scenario, bootstrap, tmp, args.locust_workers, budget) for k in order}
            (k_rate, k_n), (l_rate, l_n) = got["run"], got["locust"]
            runs.append(k_rate)
            locusts.append(l_rate)
            print(f"round {r + 1} ({' then '.join(order)}): kbench run {k_rate:,.0f} msg/s (1 in {k_n} timed)   "
                  f"kbench locust {l_rate:,.0f} msg/s (1 in {l_n} timed)   ratio {l_rate / k_rate:.3f}", flush=True)
    p = paired(locusts, runs)
    print(f"bench_locust: 100 B, acks=1, 1 producer, max rate, {args.rounds} rounds x ({args.warmup:g} s warm-up + "
          f"{args.duration:g} s), Locust worker processes: {args.locust_workers or 'one local process'}: kbench run "
          f"median {p.median_base:,.0f} msg/s, kbench locust median {p.median_ours:,.0f} msg/s; locust/run: median of "
          f"the rounds' ratios {p.median_of_ratios:.3f}, ratio of medians {p.ratio_of_medians:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
