"""Conformance through a client's driver (issue 15): run one client's workers, return their verify data.

A check of ``conformance/test_client_*.py`` runs producer and/or consumer workers of the selected client
(``--client NAME``) through the same seam as ``kbench run``: :class:`bench.drivers.pool.WorkerPool`, which
starts an external driver process (docs/drivers.md) per worker for java and the Go clients, and a Python
librdkafka worker for ``librdkafka``. Workers run in verify mode, so a producer returns every ack
``(partition, offset, producer, seq, ack_ns)`` and a consumer every read ``(partition, offset, producer,
seq)``; :func:`history` feeds them, with a final read of the topic, to the one history checker
(:func:`bench.verify.history.check`). Nothing here re-implements a client.

What the driver protocol or a client does not express is N/A (client): :func:`not_applicable` says why.
Explicit partitions, null/empty keys and values, headers and CreateTime go through protocol v2's
explicit-records mode, :mod:`conformance.records_client`. Group members with protocol v2's assignment and commit events
are :mod:`conformance.group_client`; transactional workers (protocol v2's transactional mode)
:mod:`conformance.txn_client`.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.drivers.pool import WorkerPool
from bench.drivers.registry import CLIENTS, DEFAULT_CLIENT
from bench.load.worker import WorkerSpec
from bench.scenario.model import Keys, MessageSize, Payload
from bench.verify.cell import build_history, read_topic, value_id
from bench.verify.history import HistoryReport, Poll, check
from conformance.verdicts import HarnessError, NotApplicable

__all__ = ["CLIENT_OPTION", "NOT_BUILT", "ClientRun", "Worker", "history", "not_applicable",
           "producer_config", "run_workers", "selected_clients"]

#: pytest option (``--client NAME``, repeatable; ``--clients a,b``), registered in conformance/conftest.py
CLIENT_OPTION = "client"
#: the reason of a group check protocol v2's events could express, not written yet
NOT_BUILT = "not built through a client yet (driver protocol v2 has the assignment events it needs)"
#: clients whose driver takes librdkafka properties (so the --client-config-file properties apply)
LIBRDKAFKA_BASED = ("librdkafka", "confluent-kafka-go")
READY_TIMEOUT_S = 45.0
DRAIN_TIMEOUT_S = 20.0
_T0_LEAD_NS = 50_000_000
NO_KEYS = Keys("none", None, 1.2)


def selected_clients(config: Any) -> list[str]:
    """The clients named by ``--client``/``--clients`` (in order, once each); refuses unknown ones."""
    names: list[str] = []
    for opt in (config.getoption(CLIENT_OPTION, None) or []):
        names += [n.strip() for n in str(opt).split(",") if n.strip()]
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        raise ValueError(f"--client {', '.join(unknown)}: expected one of {', '.join(CLIENTS)}")
    return list(dict.fromkeys(names))


def not_applicable(client: str, reason: str) -> NotApplicable:
    """N/A (client): the client (or the driver protocol) cannot express the check. Raise it."""
    return NotApplicable(f"N/A (client {client}): {reason}")


#: producer properties per client: ``ordered`` = acks=all, no idempotence, one request in flight (send
#: order kept without idempotence); ``idempotent`` = the client's idempotent producer with its usual window
_ORDERED: dict[str, dict[str, str]] = {
    "librdkafka": {"acks": "all", "enable.idempotence": "false", "max.in.flight.requests.per.connection": "1"},
    "confluent-kafka-go": {"acks": "all", "enable.idempotence": "false",
                           "max.in.flight.requests.per.connection": "1"},
    "java": {"acks": "all", "enable.idempotence": "false", "max.in.flight.requests.per.connection": "1"},
    "franz-go": {"acks": "all", "enable.idempotence": "false", "max.in.flight": "1"},
    "sarama": {"acks": "all", "enable.idempotence": "false", "max.in.flight": "1"},
    "kafka-go": {"acks": "all"},      # no in-flight knob: kafka-go writes one batch per partition at a time
}
_IDEMPOTENT: dict[str, dict[str, str]] = {
    "librdkafka": {"acks": "all", "enable.idempotence": "true", "max.in.flight.requests.per.connection": "5"},
    "confluent-kafka-go": {"acks": "all", "enable.idempotence": "true",
                           "max.in.flight.requests.per.connection": "5"},
    "java": {"acks": "all", "enable.idempotence": "true", "max.in.flight.requests.per.connection": "5"},
    "franz-go": {"acks": "all", "enable.idempotence": "true"},   # kgo refuses an in-flight knob with it
    "sarama": {"acks": "all", "enable.idempotence": "true", "max.in.flight": "1"},  # sarama needs 1
}


def producer_config(client: str, mode: Literal["ordered", "idempotent"], **extra: str) -> dict[str, str]:
    """The client's native producer properties for ``mode`` (N/A (client) if it has no such producer)."""
    table = _ORDERED if mode == "ordered" else _IDEMPOTENT
    if client not in table:
        raise not_applicable(client, f"{client} has no idempotent producer (enable.idempotence=true refused)")
    return {**table[client], **extra}


@dataclass(frozen=True)
class Worker:
    """One worker to run: a producer (``rate`` msgs/s for ``duration_s``) or a group consumer."""

    role: Literal["producer", "consumer"]
    topic: str
    index: int = 0
    config: Mapping[str, str] = field(default_factory=dict)
    rate: float | None = 200.0
    duration_s: float = 1.5
    keys: Keys = NO_KEYS
    group: str | None = None
    size: int = 64
    compressibility: float = 0.0


@dataclass
class ClientRun:
    """What the workers returned (their result objects by index) and what went wrong."""

    client: str
    producers: dict[int, dict[str, Any]] = field(default_factory=dict)
    consumers: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    t0_ns: int = 0                  # CLOCK_MONOTONIC start of the producers' schedule (0: never started)

    def acked(self) -> int:
        return sum(len((r.get("verify") or {}).get("acks", [])) for r in self.producers.values())

    def results(self) -> dict[str, dict[int, dict[str, Any]]]:
        return {"producer": self.producers, "consumer": self.consumers}


def _spec(w: Worker, bootstrap: str, producers: int, security: Mapping[str, str]) -> WorkerSpec:
    size = max(16, w.size)
    return WorkerSpec(
        role=w.role, index=w.index, bootstrap=bootstrap, topic=w.topic,
        client_config={**security, **w.config}, warmup_ns=0, duration_ns=int(w.duration_s * 1e9),
        message_size=MessageSize("fixed", size, size, size),
        payload=Payload("random", w.compressibility, None), keys=w.keys,
        rate=w.rate if w.role == "producer" else None, group=w.group, seed=1000 + w.index, verify=True,
        flush_timeout_s=15.0, latency_sample=1, extra={"producers": producers})


def _own_client(client: str) -> dict[str, str]:
    """The ``client`` field an in-process librdkafka worker does not send itself."""
    import confluent_kafka

    return {"name": client, "version": str(confluent_kafka.libversion()[0])}


class _Collector:
    """The pool's queue turned into ready counts, per-worker totals, results and errors."""

    def __init__(self, pool: WorkerPool, run: ClientRun) -> None:
        self.pool, self.run = pool, run
        self.ready = {"producer": 0, "consumer": 0}
        self.totals: dict[tuple[str, int], int] = {}

    def pump(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.pool.out.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            kind, role, index = msg[0], str(msg[1]), int(msg[2])
            if kind == "ready":
                self.ready[role] += 1
            elif kind == "stat":
                self.totals[(role, index)] = int(msg[6])
            elif kind == "result":
                result = dict(msg[3])
                if not (result.get("client") or {}).get("version"):
                    result["client"] = _own_client(self.run.client)
                (self.run.producers if role == "producer" else self.run.consumers)[index] = result
            elif kind == "error":
                self.run.errors.append(f"{role} {index}: {msg[3]}")

    def wait(self, cond: Any, timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        errors = len(self.run.errors)
        while not cond():
            if len(self.run.errors) > errors and what.endswith(("join", "start")):
                return False             # a worker failed to start: no point waiting for it
            if time.monotonic() >= deadline:
                self.run.errors.append(f"timed out after {timeout:g} s waiting for {what}")
                return False
            self.pump(0.1)
            dead = [k for k, code in self.pool.exit_codes().items() if code not in (None, 0)
                    and k[1] not in (self.run.producers if k[0] == "producer" else self.run.consumers)]
            if dead:
                self.run.errors.append(f"{dead[0][0]} {dead[0][1]} died before its result while waiting "
                                       f"for {what}{self.pool.stderr_tail(*dead[0])}")
                return False
        return True


#: ``on_started(t0_ns, pids)``: called once the producers are told to start at ``t0_ns``, with every
#: worker's process id by (role, index)
OnStarted = Callable[[int, Mapping[tuple[str, int], int]], None]


def run_workers(client: str, bootstrap: str, workers: Sequence[Worker], *,
                security: Mapping[str, str] | None = None, kafka_version: str | None = None,
                on_started: OnStarted | None = None) -> ClientRun:
    """Run ``workers`` of ``client`` at once: consumers join, producers run their schedule and flush,
    consumers read until each has as many records as were acked (or :data:`DRAIN_TIMEOUT_S`).

    ``on_started`` (C18's connection cutter) is called right after t0 is set, with t0 and the workers'
    process ids; an exception from it ends the run like any other (the workers are stopped)."""
    sec = dict(security or {})
    if sec and client not in LIBRDKAFKA_BASED:
        raise HarnessError(f"--client-config-file properties are librdkafka's; not mapped to {client} yet")
    run = ClientRun(client)
    pool = WorkerPool(mp.get_context("spawn"))
    n_prod = sum(1 for w in workers if w.role == "producer")
    n_cons = len(workers) - n_prod
    for w in workers:
        pool.add(_spec(w, bootstrap, n_prod, sec if w.role == "producer" or client in LIBRDKAFKA_BASED else {}),
                 client if client != DEFAULT_CLIENT else DEFAULT_CLIENT, kafka_version=kafka_version)
    col = _Collector(pool, run)
    started = time.monotonic()
    try:
        pool.start()
        pool.release_consumers()
        ok = (col.wait(lambda: col.ready["consumer"] >= n_cons, READY_TIMEOUT_S, "consumers to join")
              and col.wait(lambda: col.ready["producer"] >= n_prod, READY_TIMEOUT_S, "producers to start"))
        if ok:
            run.t0_ns = time.monotonic_ns() + _T0_LEAD_NS
            pool.set_t0(run.t0_ns)
            if on_started is not None:
                on_started(run.t0_ns, {(str(role), i): pid for (role, i), pid in pool.pids().items()})
            longest = max((w.duration_s for w in workers if w.role == "producer"), default=0.0)
            ok = col.wait(lambda: len(run.producers) >= n_prod, longest + 30.0, "producers to flush")
        if ok and n_cons:
            acked = {w.topic: 0 for w in workers}
            for w in workers:
                if w.role == "producer" and w.index in run.producers:
                    acked[w.topic] += len((run.producers[w.index].get("verify") or {}).get("acks", []))
            cons = [w for w in workers if w.role == "consumer"]
            col.wait(lambda: all(col.totals.get(("consumer", w.index), 0) >= acked[w.topic] for w in cons),
                     DRAIN_TIMEOUT_S, "consumers to read every acked record")
        pool.stop()
        col.wait(lambda: len(run.consumers) >= n_cons, 20.0, "consumers to finish")
    finally:
        pool.stop()
        with contextlib.suppress(OSError):
            pool.reap()
        run.elapsed_s = time.monotonic() - started
    refused = [k for k, code in pool.exit_codes().items() if code == 2]
    if refused:   # exit 2: the driver refused the spec or client_config the check gave it (docs/drivers.md)
        raise HarnessError(f"the {client} driver refused the check's spec/config ({refused[0][0]} "
                           f"{refused[0][1]}): {'; '.join(run.errors)[:400]}")
    return run


def history(run: ClientRun, bootstrap: str, topic: str, *, security: Mapping[str, str] | None = None,
            consumer_order: bool = True, **check_kw: Any) -> tuple[HistoryReport, dict[str, Any]]:
    """The history checker over the run's acks, its consumers' reads and a final read of ``topic``.

    With ``consumer_order`` each consumer's reads are one poll (a single member never rebalances after
    its first assignment, so a rewind or a skip in a partition is judged); else they are cut at every
    discontinuity as ``kbench run --verify`` does. Returns (report, facts for ``check.observe``)."""
    results = {"producer": {i: r for i, r in run.producers.items()},
               "consumer": {} if consumer_order else dict(run.consumers)}
    sends, polls, info, _acks = build_history(results)
    if consumer_order:
        for j, r in sorted(run.consumers.items()):
            reads = r.get("verify")
            if reads is None:
                info["missing_workers"].append(f"consumer {j}")
                continue
            info["consumer_reads"] += len(reads)
            recs = [(int(p), int(o), value_id(prod, seq)) for p, o, prod, seq in reads]
            polls.append(Poll(f"{run.client}-consumer-{j}", 0, recs))
    final = read_topic(bootstrap, topic, dict(security or {}), timeout_s=20.0)
    if not final.complete:
        raise AssertionError(f"final read of {topic} incomplete: {final.error}")
    report = check(sends, polls, final_reads=final.records, log_start=final.low, max_examples=5, **check_kw)
    info["final"] = final.to_dict()
    return report, info
