"""The Go load drivers vs bare produce loops written with the same clients, side by side in one run.

For each Go client (franz-go, sarama, kafka-go, confluent-kafka-go) at 100 B, acks=1, max rate, against one
broker, rounds alternate (driver then bare, bare then driver, ...), each on a fresh 3-partition topic:

* **driver**: ``bench/drivers/go/cmd/<client>`` through protocol v1 (spec, start, result), 1 s warm-up;
* **bare**: ``bench/drivers/go/cmd/bare/<client>``: values sliced from a pool, produced as fast as the
  client accepts, acks counted, nothing else (kafka-go's: in flight bounded at 50,000 as in the driver,
  since its async Writer queues without limit). The values are shaped as the driver's, the 16-byte kbench
  header then random bytes (built once): franz-go compresses with snappy by default and sends a batch
  compressed only when that is shorter, so pure random values went uncompressed while the driver's
  (whose headers repeat about 10 of 16 bytes record to record) went compressed, and the broker and client
  work of compression was counted as the driver's overhead.

Printed per client: msg/s and MB/s (acks inside the measured window / window), publish p50/p99 (driver
only: the bare loops time nothing), CPU seconds per million acked messages (utime+stime from
/proc/<pid>/stat when the process reports, over all its acks) and the ratio driver/bare, both as the ratio
of the medians and as the median of the round ratios (a round: one driver and one bare run, adjacent).
``--cpuprofile DIR`` writes a pprof CPU profile of every counted run (``go tool pprof -top BINARY FILE``).
Goal (issue 13): driver msg/s >= 0.9 x bare for every client. Run under the shared measurement lock:

    flock /tmp/kbench-measure.lock python benchmarks/bench_go_clients.py        # embedded Apache Kafka
    flock /tmp/kbench-measure.lock python benchmarks/bench_go_clients.py --bootstrap 127.0.0.1:9092 \\
        --clients franz-go,sarama --seconds 5 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from go_driver_helper import DriverProc, spec  # noqa: E402
from side_by_side import RunTopics  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
GOAL = 0.9


@dataclass
class Run:
    msgs_per_s: float
    mb_per_s: float
    cpu_s_per_million: float
    p50_us: float | None = None
    p99_us: float | None = None


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK    # utime, stime (fields 14 and 15)


def run_driver(binary: Path, bootstrap: str, topic: str, size: int, acks: str, seconds: float,
               profile: Path | None = None) -> Run:
    from hdrh.histogram import HdrHistogram

    d = DriverProc([str(binary)], env={"KBENCH_DRIVER_CPUPROFILE": str(profile)} if profile else None)
    try:
        d.send(spec("producer", bootstrap, topic, warmup_ns=1_000_000_000, duration_ns=int(seconds * 1e9),
                    message_size={"distribution": "fixed", "value": size}, client_config={"acks": acks}))
        d.wait_for("ready", 60)
        d.send({"type": "start", "t0_ns": time.monotonic_ns() + 20_000_000})
        r = d.wait_for("result", seconds + 60)
        cpu = _cpu_s(d.proc.pid)
        d.finish(30)
    finally:
        d.kill()
    if "failed" in r or r["errors"]:
        raise RuntimeError(f"{binary.name}: {r.get('failed') or r['errors']}")
    h = HdrHistogram.decode(r["hdr"]["publish"])
    return Run(r["acked_measured"] / r["window_s"], r["bytes_measured"] / r["window_s"] / 1e6,
               cpu / r["acked_total"] * 1e6, h.get_value_at_percentile(50), h.get_value_at_percentile(99))


def run_bare(binary: Path, bootstrap: str, topic: str, size: int, acks: str, seconds: float,
             profile: Path | None = None) -> Run:
    argv = [str(binary), "-bootstrap", bootstrap, "-topic", topic, "-size", str(size), "-acks", acks,
            "-warmup", "1s", "-duration", f"{seconds}s"] + (["-cpuprofile", str(profile)] if profile else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        cpu = _cpu_s(proc.pid)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = json.loads(line)
    if r["errors"]:
        raise RuntimeError(f"bare {binary.name}: {r['errors']} errors")
    return Run(r["acked_measured"] / r["window_s"], r["bytes_measured"] / r["window_s"] / 1e6,
               cpu / r["acked_total"] * 1e6)


def _median(runs: list[Run], attr: str) -> float:
    values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
    return statistics.median(values) if values else float("nan")


def _row(label: str, runs: list[Run]) -> str:
    p50, p99 = _median(runs, "p50_us"), _median(runs, "p99_us")
    lat = f"{p50 / 1000:8.2f} {p99 / 1000:8.2f}" if p50 == p50 else f"{'-':>8} {'-':>8}"
    return (f"  {label:<7} {_median(runs, 'msgs_per_s'):>11,.0f} {_median(runs, 'mb_per_s'):>7.1f} {lat} "
            f"{_median(runs, 'cpu_s_per_million'):>8.2f}   per round: "
            + ", ".join(f"{r.msgs_per_s:,.0f}" for r in runs))


def one_client(client: str, bootstrap: str, topics: RunTopics, args: argparse.Namespace) -> float:
    from bench.drivers.gobuild import build_go_driver

    driver, bare = build_go_driver(client, progress=print), build_go_driver(client, progress=print, bare=True)
    run_driver(driver, bootstrap, topics.fresh(), args.size, args.acks, 2.0)   # prime (uncounted)
    drv: list[Run] = []
    bar: list[Run] = []
    for i in range(args.rounds):
        order = [(drv, run_driver, driver, "driver"), (bar, run_bare, bare, "bare")]
        for out, fn, binary, kind in order if i % 2 == 0 else order[::-1]:
            prof = args.cpuprofile / f"{client}-{kind}-{i + 1}.prof" if args.cpuprofile else None
            out.append(fn(binary, bootstrap, topics.fresh(), args.size, args.acks, args.seconds, prof))
    ratio = _median(drv, "msgs_per_s") / _median(bar, "msgs_per_s")
    round_ratios = [d.msgs_per_s / b.msgs_per_s for d, b in zip(drv, bar, strict=True)]
    cpu_ratio = _median(drv, "cpu_s_per_million") / _median(bar, "cpu_s_per_million")
    print(f"{client}  ({args.rounds} x {args.seconds:g} s, {args.size} B, acks={args.acks})")
    print(f"  {'':<7} {'msg/s':>11} {'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'cpu s/M':>8}")
    print(_row("driver", drv))
    print(_row("bare", bar))
    verdict = "met" if ratio >= GOAL else "MISSED"
    print(f"  driver/bare: msg/s x{ratio:.3f} (ratio of medians), x{statistics.median(round_ratios):.3f} "
          f"(median of the round ratios: {', '.join(f'{r:.3f}' for r in round_ratios)}), cpu/M x{cpu_ratio:.2f}"
          f"  goal >= {GOAL}: {verdict}", flush=True)
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap")
    ap.add_argument("--clients", default="franz-go,sarama,kafka-go,confluent-kafka-go")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run (after 1 s warm-up)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--acks", default="1")
    ap.add_argument("--cpuprofile", type=Path, metavar="DIR",
                    help="write a pprof CPU profile of every counted run: DIR/<client>-<driver|bare>-<round>.prof")
    args = ap.parse_args()
    if args.cpuprofile:
        args.cpuprofile.mkdir(parents=True, exist_ok=True)
    ratios: dict[str, float] = {}
    from bench.kafka.admin import TopicAdmin
    from bench.run.target import open_target

    # an embedded Kafka, started and stopped, unless --bootstrap
    with open_target(args.bootstrap, "kafka") as target, TopicAdmin(target.bootstrap) as admin:
        print(f"broker: {target.describe()}")
        topics = RunTopics(admin, "bench-go", 3)
        try:
            for client in args.clients.split(","):
                ratios[client] = one_client(client, target.bootstrap, topics, args)
        finally:
            topics.delete_all()
    print("bench_go_clients: driver/bare msg/s " + ", ".join(f"{c} x{r:.3f}" for c, r in ratios.items())
          + f"; goal >= {GOAL} " + ("met by every client" if min(ratios.values()) >= GOAL else "MISSED"))
    return 0 if min(ratios.values()) >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
