"""Transactional sends for the open-loop producer (``workload.transactions: {messages: N, abort_ratio: r}``).

:class:`TransactionalSends` groups a producer's open-loop sends into transactions of N records: the first
send of a transaction begins it (``begin_transaction``), the N-th ends it, which commits it, or aborts it
when :class:`AbortPlan` says so (a seeded draw per transaction: a run is reproducible). Before an abort the
transaction's records are flushed, so they are really written to the log and then aborted (what a
read_committed reader must never see). Ending a transaction blocks the sender (the commit waits for every
outstanding ack and for the coordinator); the schedule keeps its intended times meanwhile, so the records
due during a commit are sent late and their publish latency (ack − *intended* time) includes the stall:
the open-loop rule, as for any other stall. A transactional send's publish latency is the ack of its
produce request, which comes *before* the commit (or abort) of its transaction.

Each transaction is recorded as a :data:`TxnRecord` ``(k, outcome, seq_from, seq_to, commit_ns)``: its
index in this producer, ``committed`` (commit returned), ``aborted`` (abort returned, or the commit failed
for certain), ``unknown`` (the commit or abort did not return in time, the client failed fatally, or the
run stopped and the abort failed); its sends are this producer's seqs ``[seq_from, seq_to)``; ``commit_ns``
is when commit was called (the producer's clock: ``time.monotonic_ns``, the clock of the consumers' poll
times), None if it was not. An unknown outcome leaves the client's transaction state undetermined: the
producer stops sending (:attr:`TransactionalSends.broken`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Literal, Protocol

from bench.drivers.results import TxnRecord, TxnStats
from bench.load.schedule import MONOTONIC, Clock

__all__ = ["AbortPlan", "TransactionalSends", "TxnClient", "error_kind"]

Outcome = Literal["committed", "aborted", "unknown"]
ErrorKind = Literal["retriable", "abortable", "fatal"]

#: how long a stopped run (Ctrl-C, a dead broker) tries to abort its open transaction
STOPPED_ABORT_S = 3.0


class TxnClient(Protocol):
    """The transactional part of ``confluent_kafka.Producer``."""

    def begin_transaction(self) -> None: ...

    def commit_transaction(self, timeout: float = ..., /) -> None: ...

    def abort_transaction(self, timeout: float = ..., /) -> None: ...

    def flush(self, timeout: float = ..., /) -> int: ...


class AbortPlan:
    """Which transactions abort: each one draws from a stream seeded per producer, and aborts when the draw
    is below ``ratio`` (0: none, 1: all); the k-th draw decides the k-th transaction."""

    def __init__(self, ratio: float, seed: int) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"abort ratio {ratio} is not in [0, 1]")
        self.ratio = ratio
        self._rng = random.Random(seed)

    def next_aborts(self) -> bool:
        return self._rng.random() < self.ratio


def error_kind(exc: BaseException) -> ErrorKind:
    """What a transactional API error allows: retry the call, abort the transaction, or nothing (fatal, or
    not a Kafka error at all)."""
    err = exc.args[0] if exc.args else None
    if err is None or not hasattr(err, "retriable"):
        return "fatal"
    if err.fatal():
        return "fatal"
    if err.txn_requires_abort():
        return "abortable"
    return "retriable" if err.retriable() else "fatal"


def _error_name(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    return str(err.name()) if err is not None and hasattr(err, "name") else type(exc).__name__


class TransactionalSends:
    """One producer's transactions (module docstring). ``acked`` is the list the delivery sink appends the
    partition of every ack to (cleared at each transaction's end: it counts the transaction's markers)."""

    def __init__(self, client: TxnClient, messages: int, plan: AbortPlan, *, acked: list[int],
                 clock: Clock = MONOTONIC, timeout_s: float = 30.0,
                 on_error: Callable[[str], None] | None = None) -> None:
        if messages < 1:
            raise ValueError(f"{messages} messages per transaction: expected >= 1")
        self.client, self.messages, self.plan, self.acked, self.clock = client, messages, plan, acked, clock
        self.timeout_s = timeout_s
        self.on_error = on_error
        self.records: list[TxnRecord] = []
        self.stats: TxnStats = {"committed": 0, "aborted": 0, "unknown": 0, "markers": 0, "acked_aborted": 0,
                                "acked_unknown": 0}
        self.broken = False
        self._from: int | None = None   # seq of the open transaction's first send; None: none open

    @property
    def open(self) -> bool:
        return self._from is not None

    def room(self, seq: int) -> int:
        """How many of the next sends (from ``seq``) fit in the current transaction; begins one if none is
        open. 0 once broken."""
        if self.broken:
            return 0
        if self._from is None:
            self.client.begin_transaction()
            self._from = seq
        return self.messages - (seq - self._from)

    def sent(self, seq: int) -> None:
        """The sends up to ``seq`` (exclusive) went out: end the transaction if it is full."""
        if self._from is not None and seq - self._from >= self.messages:
            self.end(seq)

    def end(self, seq: int) -> Outcome:
        """Commit or abort (the plan decides) the open transaction, whose last send is ``seq - 1``."""
        assert self._from is not None, "no transaction is open"
        if self.plan.next_aborts():
            outcome, commit_ns = self._abort(flush=True, timeout_s=self.timeout_s), None
        else:
            outcome, commit_ns = self._commit()
        self._record(outcome, seq, commit_ns)
        return outcome

    def finish(self, seq: int, *, stopped: bool) -> Outcome | None:
        """At the end of sending: end the open transaction (shorter than N) as planned, or, when the run was
        stopped, abort it quickly (``unknown`` if that fails). None if none was open."""
        if self._from is None:
            return None
        if not stopped:
            return self.end(seq)
        outcome = self._abort(flush=False, timeout_s=STOPPED_ABORT_S)
        self._record(outcome, seq, None)
        return outcome

    # -- the API calls -------------------------------------------------------------------------------------
    def _commit(self) -> tuple[Outcome, int]:
        commit_ns = self.clock()
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                self.client.commit_transaction(max(0.1, deadline - time.monotonic()))
                return "committed", commit_ns
            except Exception as exc:   # confluent_kafka.KafkaException (the client's only error type here)
                kind = self._failed("commit", exc)
                if kind == "abortable":   # the commit failed for certain: abort, and it is aborted
                    return self._abort(flush=False, timeout_s=self.timeout_s), commit_ns
                if kind == "fatal" or time.monotonic() >= deadline:
                    return "unknown", commit_ns

    def _abort(self, *, flush: bool, timeout_s: float) -> Outcome:
        deadline = time.monotonic() + timeout_s
        if flush:   # write the records before aborting them (unflushed ones would be purged, never written)
            self.client.flush(timeout_s)
        while True:
            try:
                self.client.abort_transaction(max(0.1, deadline - time.monotonic()))
                return "aborted"
            except Exception as exc:   # confluent_kafka.KafkaException
                if self._failed("abort", exc) != "retriable" or time.monotonic() >= deadline:
                    return "unknown"

    def _failed(self, call: str, exc: BaseException) -> ErrorKind:
        kind = error_kind(exc)
        if self.on_error is not None:
            self.on_error(f"txn_{call}:{_error_name(exc)}")
        return kind

    def _record(self, outcome: Outcome, seq: int, commit_ns: int | None) -> None:
        assert self._from is not None
        self.records.append((len(self.records), outcome, self._from, seq, commit_ns))
        self.stats[outcome] += 1
        parts = self.acked
        self.stats["markers"] += len(set(parts))
        if outcome != "committed":
            self.stats["acked_aborted" if outcome == "aborted" else "acked_unknown"] += len(parts)
        parts.clear()
        self._from = None
        if outcome == "unknown":
            self.broken = True
