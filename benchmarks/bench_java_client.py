"""The Java load driver vs a bare Java produce loop vs kafka-producer-perf-test, side by side in one run.

100 B values, acks=1, max rate, one broker (embedded Apache Kafka unless ``--bootstrap``), the same
kafka-clients version and client configuration for all three, alternating rounds:

* **driver**: kbench's Java driver (``bench/drivers/java``) spoken to through the driver protocol;
* **bare**: ``kbench.bare.BareProduce``, one value sent as fast as ``send()`` accepts with one shared
  callback counting acks, nothing else;
* **perf-test**: ``org.apache.kafka.tools.ProducerPerformance`` from ``org.apache.kafka:kafka-tools``
  (``--throughput -1 --record-size 100 --command-property acks=1``), jars fetched with Maven into the
  kbench cache on first use.

Order: uncounted bare runs first warm the embedded broker until its JIT compilers are quiet (below 0.05
cores over a run, at most ``--prime-max`` s); then round i runs the
contestants in the order ``ORDERS[i % 6]`` (each first in two of six rounds, the driver before the bare
loop in every other round). Both ratio forms are printed: the ratio of the medians and the median of the
rounds' own ratios (each pairs a driver run and a bare run seconds apart).

JVM warm-up: every contestant is a fresh JVM per round and measures only after a warm-up in the same
process: the driver's ``warmup_ns`` and the bare loop's first ``--warmup`` seconds are excluded, and
perf-test gets ``--warmup-records`` worth about as many seconds (its steady-state line is the one read).
The warm-up is 10 s by default: at 3 s the client's JIT compilers still used 0.25-0.45 cores inside the
window. Each driver and bare run prints its client's and the broker's JIT cores inside its window.
Throughput of the driver and the bare loop is acks counted in the window / window; perf-test's is its own
steady-state records/s. CPU seconds (user + system, from ``wait4``) cover the whole process, start-up and
warm-up included, per million records it sent. Each run gets a fresh topic; all are deleted after the last
round, and the page cache is written back before each run (side_by_side.RunTopics says why).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from side_by_side import JitWatch, RunTopics, add_prime_arg, prime_broker  # noqa: E402

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
    jit_client: float | None = None   # JIT compiler cores inside the measured window
    jit_broker: float | None = None


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


@dataclass
class Measured:
    lines: list[str]
    cpu_s: float          # user + system, from wait4
    jit: JitWatch         # the process's ("client") and the broker's ("broker") JIT threads


def run_measured(cmd: list[str], *, broker_pid: int | None, stdin_text: str | None = None, timeout: float = 120,
                 on_line: Any = None) -> Measured:
    """Run ``cmd`` to its end. ``on_line`` sees each stdout line as it comes and may return text to write to the
    process's stdin."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None
    jit = JitWatch({"client": proc.pid, **({"broker": broker_pid} if broker_pid else {})})
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
        jit.stop()
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[-1]} exited {proc.returncode}: {lines[-3:]}")
    return Measured(lines, usage.ru_utime + usage.ru_stime, jit)


def _with_jit(r: Round, m: Measured, start_ns: int, end_ns: int) -> Round:
    cores = m.jit.cores(start_ns, end_ns)
    r.jit_client, r.jit_broker = cores.get("client"), cores.get("broker")
    return r


def run_driver(driver: JavaDriver, bootstrap: str, topic: str, size: int, warmup: float, seconds: int,
               config: dict[str, str], broker_pid: int | None) -> Round:
    spec = {"type": "spec", "protocol": 1, "role": "producer", "index": 0, "producers": 1, "bootstrap": bootstrap,
            "topic": topic, "client_config": config, "warmup_ns": int(warmup * 1e9),
            "duration_ns": seconds * 1_000_000_000, "rate": None,
            "message_size": {"distribution": "fixed", "value": size, "min": size, "max": size},
            "payload": {"kind": "random", "compressibility": 0.0}, "keys": {"kind": "none"}, "group": None,
            "wait_for_consume": False, "seed": 1, "verify": False, "flush_timeout_s": 30}

    t0 = [0]

    def on_line(line: str) -> str | None:
        if json.loads(line)["type"] == "ready":
            t0[0] = time.monotonic_ns() + 100_000_000
            return json.dumps({"type": "start", "t0_ns": t0[0]}) + "\n"
        return None

    m = run_measured(driver.command(), broker_pid=broker_pid, stdin_text=json.dumps(spec) + "\n", on_line=on_line,
                     timeout=warmup + seconds + 90)
    result = json.loads(m.lines[-1])
    if result.get("type") != "result" or "failed" in result:
        raise RuntimeError(f"driver: {result}")
    series = result["series"]
    count, nbytes = sum(series["count"][:seconds]), sum(series["bytes"][:seconds])
    p50, p99 = value_at_percentiles(decode_histogram(result["hdr"]["publish"]), (50.0, 99.0))
    r = Round(0, "driver", count / seconds, nbytes / MIB / seconds, p50 / 1000, p99 / 1000,
              m.cpu_s / result["sent_total"] * 1e6)
    return _with_jit(r, m, t0[0] + int(warmup * 1e9), result["window_end_ns"])


def run_bare(driver: JavaDriver, bootstrap: str, topic: str, size: int, warmup: float, seconds: float,
             config: dict[str, str], broker_pid: int | None) -> Round:
    cmd = [*driver.command(BARE_MAIN), bootstrap, topic, str(size), str(warmup), str(seconds),
           *(f"{k}={v}" for k, v in config.items())]
    m = run_measured(cmd, broker_pid=broker_pid, timeout=warmup + seconds + 90)
    doc = json.loads(m.lines[-1])
    rate = doc["acked_measured"] / doc["window_s"]
    r = Round(0, "bare", rate, rate * size / MIB, None, None, m.cpu_s / doc["sent"] * 1e6)
    return _with_jit(r, m, doc["start_ns"], doc["end_ns"])


def run_perf_test(tools: Path, bootstrap: str, topic: str, size: int, records: int, warmup_records: int,
                  config: dict[str, str], broker_pid: int | None) -> Round:
    cmd = [shutil.which("java") or "java", "-cp", str(tools / "*"), "org.apache.kafka.tools.ProducerPerformance",
           "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
           "--record-size", str(size), "--throughput", "-1", "--warmup-records", str(warmup_records),
           "--command-property", *(f"{k}={v}" for k, v in config.items())]
    run = run_measured(cmd, broker_pid=broker_pid, timeout=300)
    summaries = [m for line in run.lines if (m := _PERF_LINE.search(line))]
    if not summaries:
        raise RuntimeError(f"perf-test printed no summary: {run.lines[-5:]}")
    m = summaries[-1]  # with --warmup-records: the steady-state summary is printed last
    return Round(0, "perf-test", float(m.group(2)), float(m.group(3)), float(m.group(6)), float(m.group(8)),
                 run.cpu_s / records * 1e6)   # its window is not printed: no JIT figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=5, help="measured seconds per run (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=10.0, help="warm-up seconds per process (default 10: at 3 s "
                    "the client's JIT compilers still took 0.25-0.45 cores inside the window)")
    add_prime_arg(ap)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=3)
    args = ap.parse_args()
    config = {"acks": "1"}
    from bench.kafka.admin import TopicAdmin
    from bench.run.target import open_target

    driver = build_java_driver(KAFKA_VERSION, progress=print)
    tools = kafka_tools_lib(KAFKA_VERSION)
    with open_target(args.bootstrap, "kafka") as target, TopicAdmin(target.bootstrap) as admin:
        broker_pid = target.handle.nodes[0].pid if target.handle is not None else None
        print(f"{target.describe()}; kafka-clients {driver.client_version}; {args.size} B, acks=1, max rate, "
              f"{args.partitions} partitions, {args.rounds} rounds of {args.warmup:g} s warm-up + {args.seconds} s")
        topics = RunTopics(admin, "bench-java", args.partitions)
        try:
            prime_broker(lambda: run_bare(driver, target.bootstrap, topics.fresh(), args.size, 2.0, 5.0, config,
                                          broker_pid).msgs_per_s, broker_pid, args.prime_max)
            rounds = run_rounds(args, driver, tools, target.bootstrap, topics, config, broker_pid)
        finally:
            topics.delete_all()
    print_table(rounds)
    return 0


def run_rounds(args: argparse.Namespace, driver: JavaDriver, tools: Path, bootstrap: str, topics: RunTopics,
               config: dict[str, str], broker_pid: int | None) -> list[Round]:
    rounds: list[Round] = []
    rate_guess = 300_000.0
    for i in range(args.rounds):
        for who in ORDERS[i % len(ORDERS)]:
            topic = topics.fresh()
            if who == "driver":
                r = run_driver(driver, bootstrap, topic, args.size, args.warmup, args.seconds, config, broker_pid)
                rate_guess = r.msgs_per_s
            elif who == "bare":
                r = run_bare(driver, bootstrap, topic, args.size, args.warmup, args.seconds, config, broker_pid)
            else:
                warm = int(rate_guess * args.warmup)
                r = run_perf_test(tools, bootstrap, topic, args.size, warm + int(rate_guess * args.seconds), warm,
                                  config, broker_pid)
            r.index = i
            rounds.append(r)
            print(f"  round {i + 1} {who:>9}: {r.msgs_per_s:>10,.0f} msg/s   JIT in window: client "
                  f"{_fmt(r.jit_client, '.2f')}, broker {_fmt(r.jit_broker, '.2f')} cores", flush=True)
    return rounds


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _median_of(rs: list[Round], attr: str) -> float | None:
    xs = [x for r in rs if (x := getattr(r, attr)) is not None]
    return statistics.median(xs) if xs else None


def print_table(rounds: list[Round]) -> None:
    print(f"\n{'':>10} {'msg/s':>10} {'MiB/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU s/M':>8} {'JIT cl':>7} "
          f"{'JIT br':>7}   (medians; JIT: compiler cores in the window)")
    med: dict[str, float] = {}
    for who in ("driver", "bare", "perf-test"):
        rs = [r for r in rounds if r.who == who]
        med[who] = statistics.median(r.msgs_per_s for r in rs)
        p50s = [r.p50_ms for r in rs if r.p50_ms is not None]
        p99s = [r.p99_ms for r in rs if r.p99_ms is not None]
        print(f"{who:>10} {med[who]:>10,.0f} {statistics.median(r.mib_per_s for r in rs):>7.1f} "
              f"{_fmt(statistics.median(p50s) if p50s else None, '7.1f')} "
              f"{_fmt(statistics.median(p99s) if p99s else None, '7.1f')} "
              f"{statistics.median(r.cpu_s_per_m for r in rs):>8.2f} {_fmt(_median_of(rs, 'jit_client'), '7.2f')} "
              f"{_fmt(_median_of(rs, 'jit_broker'), '7.2f')}")
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
