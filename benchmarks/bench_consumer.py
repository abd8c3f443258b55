"""kbench's consumer worker vs a bare confluent-kafka ``consume(10000, 0.5)`` loop, draining one backlog.

A topic (3 partitions) is filled once with ``--messages`` records of 100 B; then, alternating
``--rounds`` times, a fresh consumer group drains it from the start:

* **bare**: ``msgs = c.consume(10000, 0.5); n += len(msgs)`` until every record is read;
* **kbench**: the consumer process ``kbench run`` starts (``bench.load.consumer.run_consumer``), with its
  e2e decoding, per-second series and lag sampling, inside a measurement window covering the drain.

Both are timed the same way: records − 1 over the time from the first record's receipt to the last
one's (group join excluded). Goal (issue 11): kbench >= 0.95 x bare.

    python benchmarks/bench_consumer.py                       # embedded Apache Kafka, 2M records
    python benchmarks/bench_consumer.py --bootstrap 127.0.0.1:9092 --messages 6000000 --rounds 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZE = 100


def fill(bootstrap: str, topic: str, n: int) -> None:
    import os

    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": "20", "batch.size": "262144",
                  "queue.buffering.max.messages": "1000000"})
    value = os.urandom(SIZE)
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.001)
    if p.flush(120):
        raise RuntimeError("could not flush the backlog")


def bare(bootstrap: str, topic: str, n: int, q: Any) -> None:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    c.subscribe([topic])
    got, first, last = 0, 0, 0
    while got < n:
        msgs = c.consume(10000, 0.5)
        if msgs:
            last = time.monotonic_ns()
            if not got:
                first = last
            got += len(msgs)
    c.close()
    q.put((got, first, last))


def kbench(bootstrap: str, topic: str, n: int, q: Any) -> None:
    from bench.load.consumer import run_consumer
    from bench.load.worker import Control, WorkerSpec
    from bench.scenario.model import Keys, MessageSize, Payload

    ctx = mp.get_context("spawn")
    ctl = Control(stop=ctx.Event(), consume=ctx.Event(), t0=ctx.RawValue("q", 0))
    out: Any = ctx.Queue()
    spec = WorkerSpec(role="consumer", index=0, bootstrap=bootstrap, topic=topic, client_config={},
                      warmup_ns=0, duration_ns=int(600e9), group=f"kbench-{uuid.uuid4().hex[:6]}",
                      message_size=MessageSize(distribution="fixed", value=SIZE, min=SIZE, max=SIZE),
                      payload=Payload(kind="random", compressibility=0.0, file=None),
                      keys=Keys(kind="none", count=None, zipf_s=1.2))
    ctl.t0.value = time.monotonic_ns()
    ctl.consume.set()
    proc = ctx.Process(target=run_consumer, args=(spec, ctl, out))
    proc.start()
    while True:
        msg = out.get(timeout=300)
        if msg[0] == "stat" and msg[6] >= n:
            ctl.stop.set()
        if msg[0] == "result":
            break
    proc.join(30)
    res = msg[3]
    q.put((res["received_total"], res["first_receive_ns"], res["last_receive_ns"]))


def _drain(target: Any, bootstrap: str, topic: str, n: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(bootstrap, topic, n, q))
    p.start()
    got, first, last = q.get(timeout=600)
    p.join(30)
    if got < n:
        raise RuntimeError(f"{target.__name__} read {got} of {n} records")
    return (got - 1) / ((last - first) / 1e9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap")
    ap.add_argument("--messages", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.run.target import open_target

    with open_target(args.bootstrap, "kafka") as target:  # --bootstrap, or an embedded Kafka started and stopped
        return _compare(target.bootstrap, args.messages, args.rounds)


def _compare(bootstrap: str, messages: int, rounds: int) -> int:
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bench-cons-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    try:
        t = time.monotonic()
        fill(bootstrap, topic, messages)
        print(f"backlog: {messages:,} records of {SIZE} B in {time.monotonic() - t:.1f} s", flush=True)
        ratios, bares, ours = [], [], []
        for r in range(rounds):
            b = _drain(bare, bootstrap, topic, messages)
            k = _drain(kbench, bootstrap, topic, messages)
            bares.append(b)
            ours.append(k)
            ratios.append(k / b)
            print(f"round {r + 1}: bare {b:,.0f} msg/s   kbench {k:,.0f} msg/s   ratio {k / b:.3f}", flush=True)
    finally:
        admin.delete_topics([topic])
    ratio = statistics.median(ratios)
    print(f"bench_consumer: {messages:,} x {SIZE} B, {rounds} rounds: bare median {statistics.median(bares):,.0f} "
          f"msg/s, kbench median {statistics.median(ours):,.0f} msg/s; median of the rounds' ratios {ratio:.3f} "
          "(goal >= 0.95)")
    return 0 if ratio >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
