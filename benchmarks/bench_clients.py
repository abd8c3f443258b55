"""All six producer clients side by side against one broker in one run: each kbench driver and, where one
exists, a bare produce loop written with the same client.

100 B values, acks=1, max rate, one producer, a fresh 3-partition topic per run, the same measured seconds
for every client. Rounds are interleaved: each round runs every contestant once, the clients' order
rotated and driver/bare swapped from one round to the next, so a noisy stretch of the shared machine hits
every client alike; each figure is the median over the rounds. Uncounted priming runs warm the embedded
broker until its JIT compilers are quiet; the topics are deleted only after the last run, and the page
cache is written back before each run (``side_by_side.RunTopics``). The contestants come from the other
benchmark scripts (imported, not copied):

* **librdkafka**: kbench's own generator (``bench_generator.kbench_loop``: 2 s warm-up, 1 in N timed)
  vs ``bench_generator.bare_loop``;
* **java**: ``bench/drivers/java`` (``bench_java_client.run_driver``) vs ``kbench.bare.BareProduce``
  (``bench_java_client.run_bare``), both after ``--java-warmup`` seconds (default 10) in the same JVM;
* **franz-go, sarama, kafka-go, confluent-kafka-go**: ``bench/drivers/go/cmd/<client>``
  (``bench_go_clients.run_driver``, 1 s warm-up) vs ``bench/drivers/go/cmd/bare/<client>`` (``run_bare``).

Columns: msg/s and MB/s = acks inside the driver's measured window / window (MB = 10^6 bytes); publish
p50/p99 (ms) from the driver's whole-window HDR histogram, latency from the intended send time; CPU s/M =
the driver process's user + system CPU over its whole life (start-up and warm-up included: a JVM's start
and JIT cost shows here) per million messages; bare msg/s and driver/bare (ratio of the medians,
and the median of the rounds' own ratios). The bare loops' rates are their own scripts' (acks in their
measured window, after their warm-up), except librdkafka's: ``bench_generator`` times its bare loop and
the generator as acks / (whole run + final flush), so that row's ratio compares those two whole-run rates
(its msg/s column stays the window rate). Client configurations are each script's: ``acks=1`` alone for
java and the Go clients (their other defaults differ), ``bench_generator.CONF`` for librdkafka.

    flock /tmp/kbench-measure.lock python benchmarks/bench_clients.py              # embedded Apache Kafka
    python benchmarks/bench_clients.py --rounds 5 --seconds 5 --json /tmp/clients.json
    python benchmarks/bench_clients.py --bootstrap 127.0.0.1:9092 --clients java,franz-go
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

# Only the standard library at module level: a spawned child (the librdkafka contestants) imports this
# file again as __mp_main__, and its CPU time is measured.
ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "benchmarks", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

CLIENTS = ("librdkafka", "java", "franz-go", "sarama", "kafka-go", "confluent-kafka-go")
GO_CLIENTS = CLIENTS[2:]
SIZE = 100
ACKS = "1"
PARTITIONS = 3


@dataclass
class Sample:
    """One run of one contestant (``who``: driver or bare)."""

    client: str
    who: str
    round: int
    msgs_per_s: float
    mb_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_s_per_m: float | None
    ratio_rate: float   # the rate driver/bare compares: msgs_per_s, except librdkafka's whole-run rate
    broker_jit: float | None = None   # the embedded broker's JIT compiler cores over the whole run


Runner = Callable[[str, float], Sample]   # (bootstrap, measured seconds) -> sample (round set by the caller)


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Topics:
    """Where each run's topic comes from (:class:`side_by_side.RunTopics`: fresh, kept until the end, the page
    cache written back before each run), and the embedded broker's pid for the JIT figures."""

    def __init__(self, bootstrap: str, broker_pid: int | None) -> None:
        from side_by_side import RunTopics

        from bench.kafka.admin import TopicAdmin

        self.admin = TopicAdmin(bootstrap)
        self.broker_pid = broker_pid
        self.topics = RunTopics(self.admin, "bench-clients", PARTITIONS)

    def run(self, fn: Callable[[str], Sample]) -> Sample:
        return fn(self.topics.fresh())

    def close(self) -> None:
        self.topics.delete_all()
        self.admin.close()


# ------------------------------------------------------------------------------------------ librdkafka


def _librdkafka_driver(bootstrap: str, seconds: float, topics: Topics) -> Sample:
    """kbench's generator, run from this process so its producer process is this one's child: the
    children's CPU before and after the call is that process's CPU (it is joined inside)."""
    import queue

    import bench_generator as gen

    from bench.metrics.hdr import decode_histogram, value_at_percentiles

    def one(topic: str) -> Sample:
        q: queue.Queue[Any] = queue.Queue()
        cpu0 = _children_cpu_s()
        gen.kbench_loop(bootstrap, topic, gen.WARMUP_S + seconds, q)
        cpu = _children_cpu_s() - cpu0
        acked_total, elapsed, _sample, res = q.get_nowait()
        rate = res["acked_measured"] / res["window_s"]
        p50, p99 = value_at_percentiles(decode_histogram(res["hdr"]["publish"]), (50.0, 99.0))
        return Sample("librdkafka", "driver", 0, rate, res["bytes_measured"] / res["window_s"] / 1e6, p50 / 1000,
                      p99 / 1000, cpu / res["sent_total"] * 1e6, acked_total / elapsed)

    return topics.run(one)


def _librdkafka_bare(bootstrap: str, seconds: float, topics: Topics) -> Sample:
    import bench_generator as gen

    def one(topic: str) -> Sample:
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        cpu0 = _children_cpu_s()
        proc = ctx.Process(target=gen.bare_loop, args=(bootstrap, topic, gen.WARMUP_S + seconds, q))
        proc.start()
        acked, elapsed = q.get(timeout=seconds + 180)
        proc.join(30)
        cpu = _children_cpu_s() - cpu0
        rate = acked / elapsed
        return Sample("librdkafka", "bare", 0, rate, rate * gen.SIZE / 1e6, None, None, cpu / acked * 1e6, rate)

    return topics.run(one)


# ------------------------------------------------------------------------------------------------ java


def _java(who: str, warmup: float, topics: Topics) -> Runner:
    import bench_java_client as bj

    from bench.drivers.javabuild import build_java_driver

    driver = build_java_driver(bj.KAFKA_VERSION, progress=print)
    fn = bj.run_driver if who == "driver" else bj.run_bare

    def run(bootstrap: str, seconds: float) -> Sample:
        def one(topic: str) -> Sample:
            r = fn(driver, bootstrap, topic, SIZE, warmup, int(seconds), {"acks": ACKS}, topics.broker_pid)
            return Sample("java", who, 0, r.msgs_per_s, r.mib_per_s * bj.MIB / 1e6, r.p50_ms, r.p99_ms,
                          r.cpu_s_per_m, r.msgs_per_s)

        return topics.run(one)

    return run


# -------------------------------------------------------------------------------------------------- Go


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def _go(client: str, who: str, topics: Topics) -> Runner:
    import bench_go_clients as bg

    from bench.drivers.gobuild import build_go_driver

    binary = build_go_driver(client, progress=print, bare=who == "bare")
    fn = bg.run_driver if who == "driver" else bg.run_bare

    def run(bootstrap: str, seconds: float) -> Sample:
        def one(topic: str) -> Sample:
            r = fn(binary, bootstrap, topic, SIZE, ACKS, seconds)
            return Sample(client, who, 0, r.msgs_per_s, r.mb_per_s, _ms(r.p50_us), _ms(r.p99_us),
                          r.cpu_s_per_million, r.msgs_per_s)

        return topics.run(one)

    return run


def runners(clients: list[str], java_warmup: float, topics: Topics) -> dict[tuple[str, str], Runner]:
    """(client, who) -> what runs it; builds what needs building first."""
    out: dict[tuple[str, str], Runner] = {}
    for client in clients:
        for who in ("driver", "bare"):
            if client == "librdkafka":
                out[client, who] = partial(_librdkafka_driver if who == "driver" else _librdkafka_bare,
                                           topics=topics)
            elif client == "java":
                out[client, who] = _java(who, java_warmup, topics)
            else:
                out[client, who] = _go(client, who, topics)
    return out


# ---------------------------------------------------------------------------------------------- rounds


def round_order(clients: list[str], i: int) -> list[tuple[str, str]]:
    """Round ``i``'s contestants: the clients rotated by ``i``, driver first in even rounds, bare in odd."""
    k = i % len(clients)
    pair = ("driver", "bare") if i % 2 == 0 else ("bare", "driver")
    return [(c, who) for c in clients[k:] + clients[:k] for who in pair]


#: measured seconds of the uncounted bare run of a client before each of its driver/bare pairs. Without it
#: the first Java run after a librdkafka run was the slow one of the pair, driver or bare alike (1.17 M against
#: 1.73 M msg/s for the run after it; the broker's JIT was quiet): a client's pair then meets the broker as the
#: previous client left it.
PAIR_PRIME_S = 4.0


def run_rounds(run: dict[tuple[str, str], Runner], clients: list[str], bootstrap: str, rounds: int,
               seconds: float, broker_pid: int | None) -> list[Sample]:
    from side_by_side import JitWatch

    samples: list[Sample] = []
    last = None
    for i in range(rounds):
        t = time.monotonic()
        for client, who in round_order(clients, i):
            if client != last:   # uncounted: the broker meets this client's traffic before the pair is measured
                run[client, "bare"](bootstrap, PAIR_PRIME_S)
                last = client
            watch = JitWatch({"broker": broker_pid} if broker_pid else {})
            t0 = time.monotonic_ns()
            s = run[client, who](bootstrap, seconds)
            watch.stop()
            s.round, s.broker_jit = i, watch.cores(t0, time.monotonic_ns()).get("broker")
            samples.append(s)
            jit = "" if s.broker_jit is None else f"   broker JIT over the run {s.broker_jit:.2f} cores"
            print(f"  round {i + 1} {client:>18} {who:>6}: {s.msgs_per_s:>11,.0f} msg/s{jit}", flush=True)
        print(f"  round {i + 1} took {time.monotonic() - t:.0f} s", flush=True)
    return samples


def _median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def summarize(samples: list[Sample], clients: list[str]) -> list[dict[str, Any]]:
    """One row per client: the driver's medians, the bare loop's median rate and both ratio forms."""
    rows = []
    for client in clients:
        drv = [s for s in samples if s.client == client and s.who == "driver"]
        bare = {s.round: s for s in samples if s.client == client and s.who == "bare"}
        per_round = [d.ratio_rate / bare[d.round].ratio_rate for d in drv if d.round in bare]
        drv_rate, bare_rate = _median([d.ratio_rate for d in drv]), _median([b.ratio_rate for b in bare.values()])
        rows.append({
            "client": client, "rounds": len(drv),
            "msgs_per_s": _median([d.msgs_per_s for d in drv]), "mb_per_s": _median([d.mb_per_s for d in drv]),
            "p50_ms": _median([d.p50_ms for d in drv]), "p99_ms": _median([d.p99_ms for d in drv]),
            "cpu_s_per_m": _median([d.cpu_s_per_m for d in drv]),
            "bare_msgs_per_s": _median([b.msgs_per_s for b in bare.values()]),
            "bare_cpu_s_per_m": _median([b.cpu_s_per_m for b in bare.values()]),
            "ratio_of_medians": drv_rate / bare_rate if drv_rate and bare_rate else None,
            "median_of_ratios": _median(list(per_round)), "round_ratios": per_round,
        })
    return rows


def _f(x: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if x is None else format(x, f">{width}{spec}")


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'client':<19}{'msg/s':>11}{'MB/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'CPU s/M':>9}"
          f"{'bare msg/s':>12}{'bare CPU':>9}{'drv/bare':>9}{'(rounds)':>9}")
    for r in rows:
        print(f"{r['client']:<19}{_f(r['msgs_per_s'], ',.0f', 11)}{_f(r['mb_per_s'], '.1f', 7)}"
              f"{_f(r['p50_ms'], '.2f', 8)}{_f(r['p99_ms'], '.2f', 8)}{_f(r['cpu_s_per_m'], '.2f', 9)}"
              f"{_f(r['bare_msgs_per_s'], ',.0f', 12)}{_f(r['bare_cpu_s_per_m'], '.2f', 9)}"
              f"{_f(r['ratio_of_medians'], '.3f', 9)}{_f(r['median_of_ratios'], '.3f', 9)}")
    print("\nmedians over the rounds; drv/bare = ratio of the medians, (rounds) = median of the rounds' ratios; "
          "librdkafka's ratio compares whole-run rates (see the docstring)")


def main() -> int:
    from side_by_side import add_prime_arg, prime_broker

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", help="an external broker (default: an embedded Apache Kafka)")
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3, help="measured seconds per run (after its warm-up)")
    ap.add_argument("--java-warmup", type=float, default=10.0, help="the Java contestants' warm-up seconds "
                    "(at 3 s the client's JIT compilers still took 0.25-0.45 cores inside the window)")
    add_prime_arg(ap)
    ap.add_argument("--json", help="write the samples and the table's rows here")
    args = ap.parse_args()
    clients = [c for c in args.clients.split(",") if c]
    unknown = sorted(set(clients) - set(CLIENTS))
    if unknown:
        ap.error(f"unknown client(s) {', '.join(unknown)}; known: {', '.join(CLIENTS)}")
    from bench.run.target import open_target

    t_start = time.monotonic()
    with open_target(args.bootstrap, "kafka") as target:
        topics = Topics(target.bootstrap, target.handle.nodes[0].pid if target.handle is not None else None)
        try:
            run = runners(clients, args.java_warmup, topics)
            print(f"{target.describe()}; {SIZE} B, acks={ACKS}, max rate, {PARTITIONS} partitions; {args.rounds} "
                  f"rounds x {len(run)} runs of {args.seconds} s measured", flush=True)
            prime_broker(lambda: run[clients[0], "bare"](target.bootstrap, 4).msgs_per_s, topics.broker_pid,
                         args.prime_max)
            samples = run_rounds(run, clients, target.bootstrap, args.rounds, args.seconds, topics.broker_pid)
        finally:
            topics.close()
    rows = summarize(samples, clients)
    print_table(rows)
    print(f"bench_clients: {time.monotonic() - t_start:.0f} s in all")
    if args.json:
        doc = {"settings": {"size": SIZE, "acks": ACKS, "partitions": PARTITIONS, "rounds": args.rounds,
                            "seconds": args.seconds, "java_warmup": args.java_warmup, "bootstrap": args.bootstrap},
               "rows": rows, "samples": [asdict(s) for s in samples]}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
