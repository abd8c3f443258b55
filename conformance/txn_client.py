"""Transactional workers through a client's driver (driver protocol v2, transactional mode; issue 15).

A :class:`TxnWorker` is one worker of a client in its own :class:`~bench.drivers.pool.WorkerPool`: a
transactional producer (:class:`~bench.drivers.txn_events.TxnOptions`: transactions of the schedule, a
held-open last one, or consume-transform-produce), a plain producer, or a consumer with an isolation
level. It collects the worker's ``txn`` / ``txn_held`` events, its stat totals and its result, so a check
can start workers one after another and wait on what they report. :func:`txn_history` joins the
transactional producers' events and acks (:func:`bench.verify.driver_txns.driver_txns`), plain producers'
acks and consumers' reads for the one history checker.

Which clients have the transactional mode is :data:`TXN_CLIENTS`; :func:`require_txn` is N/A (client)
with the specific reason for the others.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.drivers.external import ISOLATION, TRANSACTIONS
from bench.drivers.pool import WorkerPool
from bench.drivers.results import Role
from bench.drivers.txn_events import IsolationLevel, TxnEnded, TxnEvent, TxnHeld, TxnOptions
from bench.load.worker import WorkerSpec
from bench.scenario.model import MessageSize, Payload
from bench.verify.cell import build_history, value_id
from bench.verify.driver_txns import driver_txns
from bench.verify.model import Poll, Txn
from conformance.through_client import NO_KEYS, not_applicable

__all__ = ["CTP_CLIENTS", "NO_CTP", "NO_TXN", "TXN_CLIENTS", "TxnWorker", "consumer_worker", "producer_worker",
           "pump", "read_poll", "require_txn", "start_ready", "stop_all", "txn_history"]

#: clients whose driver has protocol v2's transactional mode (and a consumer isolation level)
TXN_CLIENTS = ("java", "franz-go", "sarama")
#: of those, the ones with consume-transform-produce (transactions.consume)
CTP_CLIENTS = ("java", "franz-go")
#: why a client has no transactional mode (N/A (client) of C20–C22 through it)
NO_TXN: dict[str, str] = {
    "kafka-go": "kafka-go has no transactions",
    "librdkafka": "kbench's in-process librdkafka worker takes no protocol v2 transactions spec (T1, T3 and T4 "
                  "themselves run through librdkafka)",
    "confluent-kafka-go": "the confluent-kafka-go driver has no protocol v2 transactional mode yet (librdkafka's "
                          "InitTransactions/BeginTransaction/CommitTransaction could feed one)",
}
#: why a client with the transactional mode has no consume-transform-produce (N/A (client) of C21)
NO_CTP: dict[str, str] = {
    "sarama": "the sarama driver has no consume-transform-produce yet (a ConsumerGroup with AddMessageToTxn "
              "could feed one)",
}
READY_TIMEOUT_S = 45.0


def require_txn(client: str, consume: bool = False) -> None:
    """Raise N/A (client) unless ``client``'s driver has the transactional mode (and, with ``consume``,
    consume-transform-produce)."""
    if client not in TXN_CLIENTS:
        raise not_applicable(client, NO_TXN.get(client, f"{client} has no protocol v2 transactional mode"))
    if consume and client not in CTP_CLIENTS:
        raise not_applicable(client, NO_CTP.get(client, f"{client} has no consume-transform-produce"))


def _spec(role: str, index: int, bootstrap: str, topic: str, *, rate: float | None, duration_s: float,
          config: Mapping[str, str], group: str | None, producers: int, extra: dict[str, Any]) -> WorkerSpec:
    return WorkerSpec(
        role=role, index=index, bootstrap=bootstrap, topic=topic, client_config=dict(config), warmup_ns=0,
        duration_ns=int(duration_s * 1e9), message_size=MessageSize("fixed", 64, 64, 64),
        payload=Payload("random", 0.0, None), keys=NO_KEYS, rate=rate, group=group, seed=1000 + index,
        verify=True, flush_timeout_s=15.0, extra={"producers": producers, **extra})


def producer_worker(client: str, index: int, bootstrap: str, topic: str, *, txn: TxnOptions | None = None,
                    rate: float | None = 100.0, duration_s: float = 1.0, config: Mapping[str, str] | None = None,
                    producers: int = 1) -> TxnWorker:
    """A producer of ``client``: transactional with ``txn`` (protocol v2), else plain."""
    extra: dict[str, Any] = {TRANSACTIONS: txn} if txn is not None else {}
    return TxnWorker(client, _spec("producer", index, bootstrap, topic, rate=rate, duration_s=duration_s,
                                   config=config or {}, group=None, producers=producers, extra=extra))


def consumer_worker(client: str, index: int, bootstrap: str, topic: str, group: str,
                    isolation: IsolationLevel) -> TxnWorker:
    """A group consumer of ``client`` with ``isolation`` (protocol v2; no group options: a driver may still
    report group events, which are not needed here)."""
    return TxnWorker(client, _spec("consumer", index, bootstrap, topic, rate=None, duration_s=120.0, config={},
                                   group=group, producers=1, extra={ISOLATION: isolation}))


@dataclass
class TxnWorker:
    """One worker in its own pool; :meth:`pump` takes what it wrote so far."""

    client: str
    spec: WorkerSpec
    kafka_version: str | None = None
    txn_events: list[TxnEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    ready: bool = False
    total: int = 0
    stats: int = 0
    _pool: WorkerPool | None = None

    @property
    def name(self) -> str:
        return f"{self.spec.role} {self.spec.index}"

    def start(self) -> None:
        pool = self._pool = WorkerPool(mp.get_context("spawn"))
        pool.add(self.spec, self.client, kafka_version=self.kafka_version)
        pool.start()
        pool.release_consumers()

    def set_t0(self, t0_ns: int) -> None:
        assert self._pool is not None, "start() first"
        self._pool.set_t0(t0_ns)

    def pump(self) -> None:
        assert self._pool is not None, "start() first"
        while True:
            try:
                msg = self._pool.out.get_nowait()
            except queue.Empty:
                return
            kind = msg[0]
            if kind == "event" and isinstance(msg[3], TxnHeld | TxnEnded):
                self.txn_events.append(msg[3])
            elif kind == "ready":
                self.ready = True
            elif kind == "stat":
                self.total, self.stats = int(msg[6]), self.stats + 1
            elif kind == "error":
                self.errors.append(f"{self.client} {self.name}: {msg[3]}")
            elif kind == "result":
                self.result = dict(msg[3])

    def dead(self) -> str | None:
        """Why the worker is gone without a result (exited non-zero), else None."""
        assert self._pool is not None
        code = next(iter(self._pool.exit_codes().values()))
        if code not in (None, 0) and self.result is None:
            role: Role = "producer" if self.spec.role == "producer" else "consumer"
            return f"{self.client} {self.name} exited with code {code}{self._pool.stderr_tail(role, self.spec.index)}"
        return None

    def held(self) -> TxnHeld | None:
        return next((e for e in self.txn_events if isinstance(e, TxnHeld)), None)

    def ended(self) -> list[TxnEnded]:
        return [e for e in self.txn_events if isinstance(e, TxnEnded)]

    def acks(self) -> list[tuple[int, int, int, int, int]]:
        rows = ((self.result or {}).get("verify") or {}).get("acks", [])
        return [(int(p), int(o), int(prod), int(seq), int(t)) for p, o, prod, seq, t in rows]

    def reads(self) -> list[tuple[int, int, int, int]]:
        rows = (self.result or {}).get("verify") or []
        return [(int(p), int(o), int(prod), int(seq)) for p, o, prod, seq in rows]

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            with contextlib.suppress(OSError):
                self._pool.reap()


def pump(workers: Sequence[TxnWorker], until: Callable[[], bool], timeout: float) -> bool:
    """Pump every started worker until ``until()`` holds (True), a worker dies or ``timeout`` (False; a
    death is added to that worker's errors)."""
    deadline = time.monotonic() + timeout
    while True:
        for w in workers:
            if w._pool is None:
                continue
            w.pump()
            why = w.dead()
            if why is not None:
                if why not in w.errors:
                    w.errors.append(why)
                return False
        if until():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def start_ready(workers: Sequence[TxnWorker], others: Sequence[TxnWorker] = ()) -> bool:
    """Start ``workers`` and wait until each is ready (or one fails)."""
    for w in workers:
        w.start()
    return pump([*others, *workers], lambda: all(w.ready for w in workers)
                or any(w.errors for w in workers), READY_TIMEOUT_S) and all(w.ready for w in workers)


def stop_all(workers: Sequence[TxnWorker], timeout: float = 20.0) -> None:
    """Stop the started workers, wait for their results, end their processes."""
    started = [w for w in workers if w._pool is not None]
    for w in started:
        if w.result is None:
            w.stop()
    pump(started, lambda: all(w.result is not None for w in started), timeout)
    for w in started:
        w.close()


def txn_history(txn_producers: Sequence[TxnWorker], plain: Sequence[TxnWorker],
                polls: Sequence[Poll]) -> tuple[list[Txn], list[Any], list[Poll]]:
    """(transactions, plain sends, polls) for :func:`bench.verify.history.check`."""
    txns = [t for w in txn_producers for t in driver_txns(w.spec.index, w.result or {}, w.txn_events)]
    sends, _polls, _info, _acks = build_history({"producer": {w.spec.index: w.result or {} for w in plain},
                                                 "consumer": {}})
    return txns, sends, list(polls)


def read_poll(worker: TxnWorker, index: int, reads: Sequence[tuple[int, int, int, int]],
              isolation: IsolationLevel) -> Poll:
    """A consumer's reads as one poll of the history (``index`` in its own poll sequence)."""
    return Poll(f"{worker.client}-{worker.name}", index, [(p, o, value_id(prod, seq)) for p, o, prod, seq in reads],
                isolation=isolation)
