"""How often does the ``kbench compare`` gate cry wolf, and how often does it catch a real regression?

One embedded broker is started once and primed (``--prime`` pairs of unrecorded runs: a fresh embedded
Kafka is not warm for minutes — end-to-end p99 stays near 100 ms for its first ~10 pairs of smoke runs).
Then single runs of the smoke scenario alternate between
the base configuration **A** and a candidate **B** with a real regression (``producer.linger.ms`` 5 → 30,
which raises publish p50 by about 25 ms at 2,000 msg/s), in ABBA order (A B B A A B B A …, so a slow
drift of the machine hits both arms alike), every run on a fresh topic — what ``kbench run --repeat``
does for one arm. The runs are then grouped, in the order they ran, into results of N repeats each
(merged exactly as ``kbench run --repeat N`` merges them, :func:`bench.run.repeats.merge_repeats`) and judged
by :func:`bench.report.compare.compare_results`, the code behind ``kbench compare``:

- **false alarms**: A/A comparisons (A group vs the next A group, B group vs the next B group), in both
  directions; a false alarm is an exit code 1;
- **detection**: A group i vs B group i (run side by side); detected = exit 1 with publish p50 among the
  regressions.

Adjacent groups give few comparisons, each independent of the others. The script also prints the rates
over **all pairs** of disjoint groups (groups far apart in time too, so a drift of the machine counts;
the comparisons share groups, so they are not independent) and **resampled** rates (random disjoint
groups of the pooled runs of one arm, ``--resamples`` times), which assume the runs of an arm are
exchangeable.

    python benchmarks/bench_gate.py                                  # 24 A + 24 B runs of 5 s, N = 2..6
    python benchmarks/bench_gate.py --runs 48 --duration 5s --repeats 3,4,5 --json /tmp/gate.json
    python benchmarks/bench_gate.py --bootstrap 127.0.0.1:9092       # a broker you started
    python benchmarks/bench_gate.py --load /tmp/gate.json --repeats 4  # re-judge saved runs, no broker
    python benchmarks/bench_gate.py --load /tmp/gate.json --skip 10    # ... leaving out the first 10 of each arm

Run it under the measurement lock when others share the machine: ``flock /tmp/kbench-measure.lock python …``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report.compare import compare_results  # noqa: E402
from bench.run.repeats import merge_repeats  # noqa: E402

P50 = "latency.publish.p50_ms"


def _doc(runs: list[dict[str, Any]], template: dict[str, Any]) -> dict[str, Any]:
    """A result document whose only cell holds ``runs`` (as `kbench run --repeat len(runs)` writes it)."""
    doc = {k: v for k, v in template.items() if k != "cells"}
    doc["cells"] = [merge_repeats(runs)]
    doc["complete"] = all(r.get("complete") for r in runs)
    return doc


def _judge(base: list[dict[str, Any]], cur: list[dict[str, Any]], template: dict[str, Any],
           threshold: float, alpha: float) -> tuple[int, list[str]]:
    comp = compare_results(_doc(base, template), _doc(cur, template), threshold=threshold, alpha=alpha,
                           force=True)
    return comp.exit_code(), [m.metric.key for _label, m in comp.regressions]


def _groups(runs: list[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
    return [runs[i:i + n] for i in range(0, len(runs) - n + 1, n)]


def evaluate(a: list[dict[str, Any]], b: list[dict[str, Any]], template: dict[str, Any], n: int, *,
             threshold: float, alpha: float, resamples: int, seed: int = 1) -> dict[str, Any]:
    """False-alarm and detection counts for groups of ``n`` runs."""
    out: dict[str, Any] = {"repeat": n}
    aa = [(x, y) for runs in (a, b) for g in [_groups(runs, n)] for x, y in zip(g[0::2], g[1::2], strict=False)]
    fa = codes = 0
    reasons: dict[str, int] = {}
    for x, y in aa:
        for base, cur in ((x, y), (y, x)):
            code, regs = _judge(base, cur, template, threshold, alpha)
            codes += 1
            fa += code == 1
            for key in regs:
                reasons[key] = reasons.get(key, 0) + 1
    out["aa"] = {"comparisons": codes, "false_alarms": fa, "by_metric": reasons}
    det = pairs = 0
    for x, y in zip(_groups(a, n), _groups(b, n), strict=False):
        code, regs = _judge(x, y, template, threshold, alpha)
        pairs += 1
        det += code == 1 and P50 in regs
    out["ab"] = {"comparisons": pairs, "detected": det}
    # every pair of disjoint groups (far apart in time too: drift included); not independent comparisons
    fa_all = n_all = det_all = n_ab_all = 0
    for runs in (a, b):
        g = _groups(runs, n)
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                for base, cur in ((g[i], g[j]), (g[j], g[i])):
                    n_all += 1
                    fa_all += _judge(base, cur, template, threshold, alpha)[0] == 1
    for x in _groups(a, n):
        for y in _groups(b, n):
            code, regs = _judge(x, y, template, threshold, alpha)
            n_ab_all += 1
            det_all += code == 1 and P50 in regs
    out["all_pairs"] = {"aa_comparisons": n_all, "false_alarms": fa_all, "ab_comparisons": n_ab_all,
                        "detected": det_all}
    rng = random.Random(seed)
    if resamples and len(a) >= 2 * n and len(b) >= 2 * n:
        fa_r = det_r = 0
        for _ in range(resamples):
            pool = rng.choice((a, b))
            pick = rng.sample(pool, 2 * n)
            code, _regs = _judge(pick[:n], pick[n:], template, threshold, alpha)
            fa_r += code == 1
            code, regs = _judge(rng.sample(a, n), rng.sample(b, n), template, threshold, alpha)
            det_r += code == 1 and P50 in regs
        out["resampled"] = {"comparisons": resamples, "false_alarms": fa_r, "detected": det_r}
    return out


def collect(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    from bench.run.execute import RunOptions, execute
    from bench.run.target import open_target
    from bench.scenario.model import load_scenario

    base_set = [f"workload.duration={args.duration}", f"workload.warmup={args.warmup}"]
    arms = {"A": load_scenario(args.scenario, base_set),
            "B": load_scenario(args.scenario, [*base_set, f"producer.linger.ms={args.linger_b}"])}
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    template: dict[str, Any] = {}
    order = [("A", "B", "B", "A")[i % 4] for i in range(2 * args.runs)]
    with tempfile.TemporaryDirectory(prefix="kbench-gate-") as tmp, \
            open_target(args.bootstrap, None if args.bootstrap else "kafka",
                        progress=lambda m: print(m, file=sys.stderr)) as target:
        opts = RunOptions(bootstrap=target.bootstrap, broker=target.info, reports_root=Path(tmp),
                          broker_alive=target.alive)
        t0 = time.monotonic()
        for i, arm in enumerate(["A", "B"] * args.prime + order):
            primed = i >= 2 * args.prime
            outcome = execute(arms[arm], opts)
            cell = outcome.document["cells"][0]
            if primed:
                runs[arm].append(cell)
                template = template or outcome.document
            p50 = (cell.get("latency") or {}).get("publish") or {}
            print(f"[{time.monotonic() - t0:6.0f} s] {'run' if primed else 'prime'} {arm}: "
                  f"publish p50 {p50.get('p50_ms', float('nan')):.2f} ms, p99 {p50.get('p99_ms', float('nan')):.1f} "
                  f"ms, {cell['produce']['msgs_per_s']:.0f} msg/s, complete {cell.get('complete')}",
                  file=sys.stderr, flush=True)
    # the documents are compared as results of the same scenario: one template, the arm in the cell
    template = {**template, "scenario": {**template["scenario"], "document": {
        **template["scenario"]["document"], "producer": {}}}}
    return runs["A"], runs["B"], template


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default=str(ROOT / "scenarios" / "smoke.yaml"))
    p.add_argument("--bootstrap", default=None, help="a broker you started (default: embedded Kafka, started once)")
    p.add_argument("--runs", type=int, default=24, help="runs per arm (A and B each; default 24)")
    p.add_argument("--prime", type=int, default=10,
                   help="unrecorded A,B pairs first (default 10: on a fresh embedded Kafka, end-to-end p99 stays "
                        "near 100 ms for about the first 10 pairs of runs, then drops to 10-30 ms)")
    p.add_argument("--duration", default="5s", help="measurement window of each run (default 5s)")
    p.add_argument("--warmup", default="2s", help="warm-up of each run (default 2s, as smoke.yaml)")
    p.add_argument("--linger-b", default="30", help="producer.linger.ms of the regressed arm B (A: the scenario's)")
    p.add_argument("--repeats", default="2,3,4,5,6", help="group sizes N to evaluate (comma-separated)")
    p.add_argument("--threshold", type=float, default=0.10)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--resamples", type=int, default=400, help="random disjoint groupings per N (0: none)")
    p.add_argument("--json", help="save the runs and the figures here")
    p.add_argument("--load", help="judge the runs saved by an earlier --json instead of running")
    p.add_argument("--skip", type=int, default=0,
                   help="leave out the first SKIP runs of each arm (priming decided after the fact; say so)")
    args = p.parse_args()
    if args.load:
        saved = json.loads(Path(args.load).read_text())
        a, b, template, meta = saved["A"], saved["B"], saved["template"], saved.get("meta", {})
    else:
        t0 = time.monotonic()
        a, b, template = collect(args)
        meta = {"duration": args.duration, "warmup": args.warmup, "linger_b": args.linger_b, "runs": args.runs,
                "prime": args.prime, "wall_s": round(time.monotonic() - t0, 1)}
    if args.json and not args.load:
        with contextlib.suppress(OSError):
            Path(args.json).write_text(json.dumps({"A": a, "B": b, "template": template, "meta": meta}))
    a, b = a[args.skip:], b[args.skip:]
    figures = []
    print(f"\n{len(a)} A + {len(b)} B runs, duration {meta.get('duration')}, warm-up {meta.get('warmup')}, "
          f"B: linger.ms {meta.get('linger_b')}; first {args.skip} runs of each arm left out; "
          f"threshold {args.threshold:g}, alpha {args.alpha:g}"
          + (f"; collected in {meta['wall_s']:.0f} s" if meta.get("wall_s") else ""))
    print("| N runs/side | A/A false alarms (adjacent groups, both directions) | A/B detected (side by side) "
          "| A/A false alarms (all pairs of groups) | A/B detected (all pairs) "
          "| resampled false alarms | resampled detection | adjacent false alarms by metric |")
    print("|--:|--:|--:|--:|--:|--:|--:|:--|")
    for n in (int(x) for x in args.repeats.split(",")):
        if len(a) < 2 * n:
            continue
        f = evaluate(a, b, template, n, threshold=args.threshold, alpha=args.alpha, resamples=args.resamples)
        figures.append(f)
        aa, ab, rs = f["aa"], f["ab"], f.get("resampled")

        def pct(k: int, m: int) -> str:
            return f"{k}/{m} ({100 * k / m:.0f}%)" if m else "–"

        al = f["all_pairs"]
        print(f"| {n} | {pct(aa['false_alarms'], aa['comparisons'])} | {pct(ab['detected'], ab['comparisons'])} | "
              f"{pct(al['false_alarms'], al['aa_comparisons'])} | {pct(al['detected'], al['ab_comparisons'])} | "
              + (f"{pct(rs['false_alarms'], rs['comparisons'])} | {pct(rs['detected'], rs['comparisons'])} | "
                 if rs else "– | – | ")
              + (", ".join(f"{k}: {v}" for k, v in sorted(aa["by_metric"].items())) or "–") + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
