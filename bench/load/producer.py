"""The producer worker process: the open-loop core (:mod:`bench.load.core`) on a confluent-kafka producer.

Rate-limited runs follow the schedule (message *n* of producer *i* is due at ``t0 + interval·i/producers +
n·interval``); at max rate every chunk goes out as fast as the client takes it. Latencies, the warm-up reset
and the result are the core's. Between due messages the process blocks in ``poll(t)`` (at most 1 ms), which
serves delivery reports while it waits.

**Sampled mode** (max rate, ``latency_sample`` N != 1): a delivery callback is the one per-message cost
Python cannot batch away (confluent-kafka builds a ``Message`` and calls into Python for each, ~0.6 µs),
and it capped the generator at ~0.7x a bare produce loop. So only every N-th message carries a callback
(``produce(..., callback=)``): the timed messages are a systematic 1-in-N sample of the stream, and their
histograms are whole histograms of that sample. N = 0 (*auto*) is chosen once, when the warm-up ends,
from the warm-up's send rate (:func:`auto_latency_sample`: about 20k timed messages/s at most, N <= 64),
and stays fixed for the window so the sample is uniform. Counts stay exact without callbacks (see
:class:`bench.load.schedule.Resolution`); failures among untimed messages are estimated as N x the sampled
failures (result ``errors_estimated``), and the broker-offsets check after the cell
(``check.offsets_agree``) catches any that the sample missed.
"""

from __future__ import annotations

import time
from typing import Any

from bench.drivers.results import ProducerResult
from bench.load.acks import DeliverySink
from bench.load.chunks import ChunkBuilder, chunk_max, send_chunk
from bench.load.core import OpenLoopProducer, ProducerSettings
from bench.load.payload import HEADER_SIZE, KeyStream
from bench.load.schedule import MONOTONIC, Clock, Sampling, Window, auto_latency_sample
from bench.load.txn import AbortPlan, TransactionalSends
from bench.load.worker import Control, WorkerSpec, run_worker

__all__ = ["ChunkBuilder", "auto_latency_sample", "run_producer", "send_chunk"]

_MAX_IDLE_S = 0.001    # rate-limited: block in poll at most this long between due messages
_STOPPED_FLUSH_S = 3.0  # stopped early (Ctrl-C, dead broker): don't wait long for acks that may never come
_INIT_TXN_S = 30.0      # init_transactions: find the coordinator, fence an earlier producer of this id


def run_producer(spec: WorkerSpec, ctl: Control, out: Any) -> None:
    """Process entry point."""
    run_worker(_produce, spec, ctl, out)


def settings_of(spec: WorkerSpec) -> ProducerSettings:
    size = spec.message_size
    return ProducerSettings(
        topic=spec.topic, index=spec.index, slot=spec.index, producers=int(spec.extra.get("producers", 1)),
        rate=spec.rate, verify=spec.verify,
        fixed_size=max(size.value or 1, HEADER_SIZE) if size.distribution == "fixed" else None,
        chunk_max=chunk_max(max(size.max or 1, HEADER_SIZE)))


def _produce(spec: WorkerSpec, ctl: Control, out: Any, clock: Clock = MONOTONIC) -> ProducerResult:
    from confluent_kafka import Producer

    settings = settings_of(spec)
    sampling = Sampling.choose(spec.latency_sample, rate_limited=spec.rate is not None, verify=spec.verify)
    txn_spec = spec.transactions
    sink = DeliverySink.for_run(rate_limited=spec.rate is not None, verify=spec.verify, sampled=sampling.sampled,
                                fixed_size=settings.fixed_size, clock=clock, transactional=txn_spec is not None)
    conf: dict[str, Any] = {"bootstrap.servers": spec.bootstrap, **spec.client_config, **sink.client_config()}
    if txn_spec is not None:
        conf["transactional.id"] = spec.transactional_id or f"kbench-{spec.topic}-p{spec.index}"
    producer = Producer(conf)
    txn: TransactionalSends | None = None
    if txn_spec is not None:
        producer.init_transactions(_INIT_TXN_S)
        assert sink.txn_acked is not None
        txn = TransactionalSends(producer, txn_spec.messages, AbortPlan(txn_spec.abort_ratio, spec.seed),
                                 acked=sink.txn_acked, clock=clock, timeout_s=spec.flush_timeout_s,
                                 on_error=sink.count_error)
    chunks = ChunkBuilder.for_workload(spec.message_size, spec.payload, producer=spec.index, seed=spec.seed)
    keys = KeyStream(spec.keys.kind, spec.keys.count, spec.keys.zipf_s, seed=spec.seed, producer=spec.index)
    out.put(("ready", "producer", spec.index, None))
    window = ctl.wait_window(spec)
    if window is None:
        producer.flush(1)
        return {"failed": "stopped before the start"}
    core = OpenLoopProducer(settings, producer, sink, sampling, chunks, keys, Window(*window),
                            wait=producer.poll, clock=clock, txn=txn)
    _wait_for_start(core, ctl, clock)
    _send_loop(core, ctl, out, spec.index, clock)
    core.stop_sending(clock())
    core.end_transaction(stopped=ctl.stop.is_set())
    core.flush(_STOPPED_FLUSH_S if ctl.stop.is_set() else spec.flush_timeout_s, 0.05)
    return core.result(stopped=ctl.stop.is_set() or (txn is not None and txn.broken))


def _wait_for_start(core: OpenLoopProducer, ctl: Control, clock: Clock) -> None:
    t0 = core.window.t0_ns
    while (now := clock()) < t0 and not ctl.stop.is_set():
        time.sleep(min(0.01, (t0 - now) / 1e9))


def _send_loop(core: OpenLoopProducer, ctl: Control, out: Any, index: int, clock: Clock) -> None:
    """Send on schedule until the window ends (or a stop); a stat line for the progress display each second."""
    t_end = core.window.t_end_ns
    last_stat = clock()
    while not ctl.stop.is_set():
        now = clock()
        if now >= t_end or (core.txn is not None and core.txn.broken):
            break
        core.enter(now)
        wait_ns = core.schedule.wait_ns(now)
        if wait_ns:
            core.idle(min(_MAX_IDLE_S, wait_ns / 1e9))
            continue
        core.send_due()
        core.after_send()
        if now - last_stat >= 1_000_000_000:
            out.put(("stat", "producer", index, *core.stat(now)))
            last_stat = now
