"""The Java load driver vs a bare Java produce loop vs kafka-producer-perf-test, side by side in one run.

100 B values, acks=1, max rate, one broker (embedded Apache Kafka unless ``--bootstrap``), the same
kafka-clients version and client configuration for all three, alternating rounds:

* **driver**: kbench's Java driver (``bench/drivers/java``) spoken to through the driver protocol;
* **bare**: ``kbench.bare.BareProduce``, one value sent as fast as ``send()`` accepts with one shared
  callback counting acks, nothing else;
* **perf-test**: ``org.apache.kafka.tools.ProducerPerformance`` from ``org.apache.kafka:kafka-tools``
  (``--throughput -1 --record-size 100 --command-property acks=1``), jars fetched with Maven into the
  kbench cache on first use.

Order: one uncounted bare run first warms the broker (its JIT, page cache); then round i runs the
contestants in the order ``ORDERS[i % 6]`` (each first in two of six rounds, the driver before the bare
loop in every other round). Both ratio forms are printed: the ratio of the medians and the median of the
rounds' own ratios (each pairs a driver run and a bare run seconds apart).

JVM warm-up: every contestant is a fresh JVM per round and measures only after a warm-up in the same
process: the driver's ``warmup_ns`` and the bare loop's first ``--warmup`` seconds are excluded, and
perf-test gets ``--warmup-records`` worth about as many seconds (its steady-state line is the one read).
Throughput of the driver and the bare loop is acks counted in the window / window; perf-test's is its own
steady-state records/s. CPU seconds (user + system, from ``wait4``) cover the whole process, start-up and
warm-up included, per million records it sent. Each round gets a fresh topic, deleted after the round.

Goals (issue 13): driver / bare >= 0.9 and driver / perf-test >= 1.0 (medians over rounds).

    flock /tmp/kbench-measure.lock python benchmarks/bench_java_client.py
    python benchmarks/bench_java_client.py --rounds 3 --seconds 5 --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._paths import cache_dir  # noqa: E402
from bench.drivers.javabuild import BARE_MAIN, JavaDriver, build_java_driver  # noqa: E402
from bench.metrics.hdr import decode_histogram, value_at_percentiles  # noqa: E402

KAFKA_VERSION = "4.3.1"
MIB = 1024 * 1024
_PERF_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                        r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th")
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>kbench</groupId><artifactId>kafka-tools-runtime</artifactId><version>1</version><packaging>pom</packaging>
<dependencies><dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
<version>{version}</version></dependency></dependencies></project>
"""


#: Round i runs ORDERS[i % 6]: each contestant first in two of six rounds, and the driver before the bare
#: loop in every other round (a drift over the run, or whoever runs after a topic deletion, then biases
#: neither the ratio of medians nor the median of the rounds' ratios)
ORDERS = (("driver", "bare", "perf-test"), ("bare", "perf-test", "driver"), ("perf-test", "driver", "bare"),
          ("bare", "driver", "perf-test"), ("driver", "perf-test", "bare"), ("perf-test", "bare", "driver"))


@dataclass
class Round:
    index: int
    who: str
    msgs_per_s: float
    mib_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_s_per_m: float


def kafka_tools_lib(version: str) -> Path:
    """kafka-tools ``version`` and its runtime dependencies in ``<cache>/kafka-tools/<version>/lib``."""
    target = cache_dir() / "kafka-tools" / version / "lib"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kbench-tools-") as work:
        (Path(work) / "pom.xml").write_text(_POM.format(version=version))
        out = Path(work) / "lib"
        print(f"fetching org.apache.kafka:kafka-tools:{version} with Maven (first use only)…", flush=True)
        subprocess.run(["mvn", "-B", "-q", "-f", str(Path(work) / "pom.xml"), "dependency:copy-dependencies",
                        f"-DoutputDirectory={out}", "-DincludeScope=runtime"], check=True, timeout=900)
        (out / ".complete").write_text(version + "\n")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(out), target)
    return target


def run_measured(cmd: list[str], *, stdin_text: str | None = None, timeout: float = 120,
                 on_line: Any = None) -> tuple[list[str], float]:
    """Run ``cmd`` to its end; (stdout lines, CPU seconds user + system from wait4). ``on_line`` sees each
    stdout line as it comes and may return text to write to the process's stdin."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    lines: list[str] = []
    try:
        if stdin_text is not None:
            proc.stdin.write(stdin_text)
            proc.stdin.flush()
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            reply = on_line(line) if on_line else None
            if reply:
                proc.stdin.write(reply)
                proc.stdin.flush()
        proc.stdin.close()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[-1]} exited {proc.returncode}: {lines[-3:]}")
    return lines, usage.ru_utime + usage.ru_stime


def run_driver(driver: JavaDriver, bootstrap: str, topic: str, size: int, warmup: float, seconds: int,
               config: dict[str, str]) -> Round:
    spec = {"type": "spec", "protocol": 1, "role": "producer", "index": 0, "producers": 1, "bootstrap": bootstrap,
            "topic": topic, "client_config": config, "warmup_ns": int(warmup * 1e9),
            "duration_ns": seconds * 1_000_000_000, "rate": None,
            "message_size": {"distribution": "fixed", "value": size, "min": size, "max": size},
            "payload": {"kind": "random", "compressibility": 0.0}, "keys": {"kind": "none"}, "group": None,
            "wait_for_consume": False, "seed": 1, "verify": False, "flush_timeout_s": 30}

    def on_line(line: str) -> str | None:
        if json.loads(line)["type"] == "ready":
            return json.dumps({"type": "start", "t0_ns": time.monotonic_ns() + 100_000_000}) + "\n"
        return None

    lines, cpu = run_measured(driver.command(), stdin_text=json.dumps(spec) + "\n", on_line=on_line,
                              timeout=warmup + seconds + 90)
    result = json.loads(lines[-1])
    if result.get("type") != "result" or "failed" in result:
        raise RuntimeError(f"driver: {result}")
    series = result["series"]
    count, nbytes = sum(series["count"][:seconds]), sum(series["bytes"][:seconds])
    p50, p99 = value_at_percentiles(decode_histogram(result["hdr"]["publish"]), (50.0, 99.0))
    return Round(0, "driver", count / seconds, nbytes / MIB / seconds, p50 / 1000, p99 / 1000,
                 cpu / result["sent_total"] * 1e6)


def run_bare(driver: JavaDriver, bootstrap: str, topic: str, size: int, warmup: float, seconds: int,
             config: dict[str, str]) -> Round:
    cmd = [*driver.command(BARE_MAIN), bootstrap, topic, str(size), str(warmup), str(seconds),
           *(f"{k}={v}" for k, v in config.items())]
    lines, cpu = run_measured(cmd, timeout=warmup + seconds + 90)
    doc = json.loads(lines[-1])
    rate = doc["acked_measured"] / doc["window_s"]
    return Round(0, "bare", rate, rate * size / MIB, None, None, cpu / doc["sent"] * 1e6)


def run_perf_test(tools: Path, bootstrap: str, topic: str, size: int, records: int, warmup_records: int,
                  config: dict[str, str]) -> Round:
    cmd = [shutil.which("java") or "java", "-cp", str(tools / "*"), "org.apache.kafka.tools.ProducerPerformance",
           "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
           "--record-size", str(size), "--throughput", "-1", "--warmup-records", str(warmup_records),
           "--command-property", *(f"{k}={v}" for k, v in config.items())]
    lines, cpu = run_measured(cmd, timeout=300)
    summaries = [m for line in lines if (m := _PERF_LINE.search(line))]
    if not summaries:
        raise RuntimeError(f"perf-test printed no summary: {lines[-5:]}")
    m = summaries[-1]  # with --warmup-records: the steady-state summary is printed last
    return Round(0, "perf-test", float(m.group(2)), float(m.group(3)), float(m.group(6)), float(m.group(8)),
                 cpu / records * 1e6)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5, help="measured seconds per round (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per process")
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=3)
    args = ap.parse_args()
    config = {"acks": "1"}
    from bench.kafka.admin import TopicAdmin
    from bench.run.target import open_target

    driver = build_java_driver(KAFKA_VERSION, progress=print)
    tools = kafka_tools_lib(KAFKA_VERSION)
    rounds: list[Round] = []
    with open_target(args.bootstrap, "kafka") as target, TopicAdmin(target.bootstrap) as admin:
        print(f"{target.describe()}; kafka-clients {driver.client_version}; {args.size} B, acks=1, max rate, "
              f"{args.partitions} partitions, {args.rounds} rounds of {args.warmup:g} s warm-up + {args.seconds} s")
        prime = f"bench-java-prime-{uuid.uuid4().hex[:6]}"   # uncounted: warms the broker's JIT and caches
        admin.create_topic(prime, args.partitions)
        run_bare(driver, target.bootstrap, prime, args.size, args.warmup, 2, config)
        admin.delete_topic(prime, wait=False, missing_ok=True)
        rate_guess = 300_000.0
        for i in range(args.rounds):
            for who in ORDERS[i % len(ORDERS)]:
                topic = f"bench-java-{who}-{uuid.uuid4().hex[:6]}"
                admin.create_topic(topic, args.partitions)
                try:
                    if who == "driver":
                        r = run_driver(driver, target.bootstrap, topic, args.size, args.warmup, args.seconds, config)
                        rate_guess = r.msgs_per_s
                    elif who == "bare":
                        r = run_bare(driver, target.bootstrap, topic, args.size, args.warmup, args.seconds, config)
                    else:
                        warm = int(rate_guess * args.warmup)
                        r = run_perf_test(tools, target.bootstrap, topic, args.size,
                                          warm + int(rate_guess * args.seconds), warm, config)
                finally:
                    admin.delete_topic(topic, wait=False, missing_ok=True)
                r.index = i
                rounds.append(r)
                print(f"  round {i + 1} {who:>9}: {r.msgs_per_s:>10,.0f} msg/s", flush=True)
    print_table(rounds)
    return 0


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(rounds: list[Round]) -> None:
    print(f"\n{'':>10} {'msg/s':>10} {'MiB/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU s/M':>8}   (medians)")
    med: dict[str, float] = {}
    for who in ("driver", "bare", "perf-test"):
        rs = [r for r in rounds if r.who == who]
        med[who] = statistics.median(r.msgs_per_s for r in rs)
        p50s = [r.p50_ms for r in rs if r.p50_ms is not None]
        p99s = [r.p99_ms for r in rs if r.p99_ms is not None]
        print(f"{who:>10} {med[who]:>10,.0f} {statistics.median(r.mib_per_s for r in rs):>7.1f} "
              f"{_fmt(statistics.median(p50s) if p50s else None, '7.1f')} "
              f"{_fmt(statistics.median(p99s) if p99s else None, '7.1f')} "
              f"{statistics.median(r.cpu_s_per_m for r in rs):>8.2f}")
    by = {(r.index, r.who): r for r in rounds}
    n = len(rounds) // 3
    cpu = {who: statistics.median(r.cpu_s_per_m for r in rounds if r.who == who) for who in med}
    for other, goal in (("bare", 0.9), ("perf-test", 1.0)):
        per = [by[i, "driver"].msgs_per_s / by[i, other].msgs_per_s for i in range(n)]
        print(f"\ndriver / {other:<9} = {med['driver'] / med[other]:.3f} (medians; per round: "
              f"{', '.join(f'{x:.3f}' for x in per)}; median of rounds {statistics.median(per):.3f})  goal >= {goal}")
        print(f"  CPU per message, {other} / driver = {cpu[other] / cpu['driver']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
