"""kbench's producer generator vs a bare confluent-kafka produce loop, side by side in one run.

100-byte messages, acks=1, one producer process at max rate, against the same broker, alternating
bare/kbench ``--rounds`` times (the machine is noisy: compare medians of the same run, not runs).
All are timed the same way: messages acknowledged / (produce time + final flush).

"kbench" is the generator as ``kbench run`` drives it at ``rate: max`` (``workload.latency_sample:
auto``): a 2 s warm-up inside the same total time, whose rate fixes N for the window (1 in N messages
timed; N = 64 at ~2M msg/s). "kbench-all" times every message (``latency_sample: 1``), which costs one
Python delivery callback per message; it is printed for reference.

    python benchmarks/bench_generator.py                  # embedded Apache Kafka
    python benchmarks/bench_generator.py --bootstrap 127.0.0.1:9092 --seconds 10 --rounds 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import uuid
from typing import Any

from side_by_side import broker, paired

CONF = {"acks": "1", "linger.ms": "5", "queue.buffering.max.messages": "500000"}
SIZE = 100
WARMUP_S = 2.0


def bare_loop(bootstrap: str, topic: str, seconds: float, q: Any) -> None:
    import os

    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, **CONF})
    payload = os.urandom(SIZE)
    produce, poll = p.produce, p.poll
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(512):
            while True:
                try:
                    produce(topic, payload)
                    break
                except BufferError:  # local queue full: serve delivery reports, then try again
                    poll(0.0005)
        n += 512
        poll(0)
    left = p.flush(60)
    q.put((n - left, time.perf_counter() - t0))


def kbench_loop(bootstrap: str, topic: str, seconds: float, q: Any, sample: int | None = None) -> None:
    from bench.load.producer import run_producer
    from bench.load.worker import Control, WorkerSpec
    from bench.scenario.model import Keys, MessageSize, Payload

    ctx = mp.get_context("spawn")
    ctl = Control(stop=ctx.Event(), consume=ctx.Event(), t0=ctx.RawValue("q", 0))
    out: Any = ctx.Queue()
    spec = WorkerSpec(role="producer", index=0, bootstrap=bootstrap, topic=topic, client_config=dict(CONF),
                      warmup_ns=int(WARMUP_S * 1e9), duration_ns=int((seconds - WARMUP_S) * 1e9),
                      message_size=MessageSize(distribution="fixed", value=SIZE, min=SIZE, max=SIZE),
                      payload=Payload(kind="random", compressibility=0.0, file=None),
                      keys=Keys(kind="none", count=None, zipf_s=1.2),
                      latency_sample=0 if sample is None else sample)
    proc = ctx.Process(target=run_producer, args=(spec, ctl, out))
    proc.start()
    while (msg := out.get(timeout=60))[0] != "ready":
        pass
    ctl.t0.value = time.monotonic_ns()
    t0 = time.perf_counter()
    while (msg := out.get(timeout=120))[0] != "result":
        pass
    elapsed = time.perf_counter() - t0
    proc.join(10)
    res = msg[3]
    q.put((res["acked_total"], elapsed, res["latency_sample"], res))   # res: the whole result (bench_clients)


def kbench_all_loop(bootstrap: str, topic: str, seconds: float, q: Any) -> None:
    kbench_loop(bootstrap, topic, seconds, q, sample=1)


def _run(target: Any, bootstrap: str, seconds: float) -> tuple[float, Any]:
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-gen-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(bootstrap, topic, seconds, q))
    p.start()
    res = q.get(timeout=seconds + 180)
    p.join(30)
    admin.delete_topics([topic])[topic].result(30)
    return res[0] / res[1], res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap")
    ap.add_argument("--seconds", type=float, default=8.0, help="per run, > 2 (kbench's warm-up is 2 s of it)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with broker(args.bootstrap, "bench-gen") as bootstrap:
        bare, ours, every = [], [], []
        for r in range(args.rounds):
            b, _ = _run(bare_loop, bootstrap, args.seconds)
            k, res = _run(kbench_loop, bootstrap, args.seconds)
            a, _ = _run(kbench_all_loop, bootstrap, args.seconds)
            bare.append(b)
            ours.append(k)
            every.append(a)
            print(f"round {r + 1}: bare {b:,.0f} msg/s   kbench {k:,.0f} msg/s (ratio {k / b:.3f}, 1 in "
                  f"{res[2]} timed)   "
                  f"kbench-all {a:,.0f} msg/s (ratio {a / b:.3f})", flush=True)
    gen, every_msg = paired(ours, bare), paired(every, bare)
    print(f"bench_generator: 100 B, acks=1, 1 producer, max rate, {args.rounds} rounds x {args.seconds:g} s: "
          f"bare median {gen.median_base:,.0f} msg/s, kbench median {gen.median_ours:,.0f} msg/s; kbench/bare: "
          f"median of the rounds' ratios {gen.median_of_ratios:.3f}, ratio of medians {gen.ratio_of_medians:.3f} "
          f"(target >= 0.95); kbench-all (every message timed) {every_msg.median_ours:,.0f} msg/s, ratios "
          f"{every_msg.median_of_ratios:.3f} / {every_msg.ratio_of_medians:.3f}")


if __name__ == "__main__":
    main()
