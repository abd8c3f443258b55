"""Explicit records through a client's driver (driver protocol v2, explicit-records mode; C23–C26).

:func:`send_records` runs one producer of the client in its own pool with a ``records`` spec
(:mod:`bench.drivers.records`): the driver sends exactly those records, one in flight, and returns one ack
per record. A driver that refuses a record feature (``unsupported record feature NAME: reason``, exit 2)
is N/A (client) with its reason; :func:`stored` reads the topic back with the suite's librdkafka consumer
and pairs each sent record with the message stored at its acked (partition, offset).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from bench.drivers.records import RECORDS, ExplicitRecord, RecordAck, RecordsError, parse_acks, refusal
from bench.load.worker import WorkerSpec
from bench.scenario.model import MessageSize, Payload
from conformance.clients import Clients, Delivery
from conformance.through_client import LIBRDKAFKA_BASED, NO_KEYS, not_applicable
from conformance.txn_client import TxnWorker, pump, start_ready, stop_all
from conformance.verdicts import HarnessError, expect_eq

__all__ = ["RecordsRun", "send_records", "stored"]

RESULT_TIMEOUT_S = 40.0


@dataclass
class RecordsRun:
    """The records sent, the driver's acks, its client and what went wrong."""

    client: str
    records: Sequence[ExplicitRecord]
    acks: list[RecordAck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    client_version: str | None = None
    elapsed_s: float = 0.0


def send_records(client: str, bootstrap: str, topic: str, records: Sequence[ExplicitRecord], *,
                 config: Mapping[str, str], security: Mapping[str, str] | None = None) -> RecordsRun:
    """Send ``records`` through one producer of ``client``; N/A (client) if its driver refuses them."""
    sec = dict(security or {})
    if sec and client not in LIBRDKAFKA_BASED:
        raise HarnessError(f"--client-config-file properties are librdkafka's; not mapped to {client} yet")
    spec = WorkerSpec(role="producer", index=0, bootstrap=bootstrap, topic=topic,
                      client_config={**sec, **config}, warmup_ns=0, duration_ns=1_000_000_000,
                      message_size=MessageSize("fixed", 64, 64, 64), payload=Payload("random", 0.0, None),
                      keys=NO_KEYS, rate=None, group=None, seed=1000, verify=True, flush_timeout_s=15.0,
                      extra={"producers": 1, RECORDS: tuple(records)})
    w = TxnWorker(client, spec)
    run = RecordsRun(client, records)
    started = time.monotonic()
    try:
        if start_ready([w]):
            w.set_t0(time.monotonic_ns())
            pump([w], lambda: w.result is not None, RESULT_TIMEOUT_S)
    finally:
        stop_all([w])
        run.elapsed_s = time.monotonic() - started
    result = w.result or {}
    texts = [*w.errors, str(result.get("failed") or "")]
    why = next((r for r in map(refusal, texts) if r is not None), None)
    if why is not None:
        raise not_applicable(client, f"its driver refuses record feature {why[0]}: {why[1]}")
    run.errors = list(w.errors)
    if result.get("failed"):
        run.errors.append(f"result: {result['failed']}")
    elif w.result is None:
        run.errors.append(f"no result within {RESULT_TIMEOUT_S:g} s")
    else:
        try:
            run.acks = parse_acks(result, len(records))
        except RecordsError as exc:
            run.errors.append(str(exc))
    run.client_version = (result.get("client") or {}).get("version")
    return run


def stored(run: RecordsRun, clients: Clients, topic: str, partitions: int) -> list[Message]:
    """Judge the acks (no worker error, every record acked without error) and read ``topic`` back: the
    message stored at each record's acked (partition, offset), in send order. Each partition must hold
    exactly the acked records."""
    expect_eq(run.errors, [], f"{run.client} driver errors")
    expect_eq([(i, a.error) for i, a in enumerate(run.acks) if a.error][:5], [], "failed sends (record, error)")
    expect_eq(len(run.acks), len(run.records), "acks (one per record sent)")
    acked = [Delivery(i, None, a.partition, a.offset, (0, -1), None, None) for i, a in enumerate(run.acks)]
    reads = clients.read_all(topic, partitions, acked=acked)
    by_pos: dict[tuple[int, int], Message] = {}
    for p, rr in reads.items():
        for m in rr.messages:
            by_pos[(p, int(m.offset()))] = m  # type: ignore[arg-type]
    for p in range(partitions):
        want = sorted(a.offset for a in run.acks if a.partition == p)
        expect_eq(reads[p].offsets() if p in reads else [], want, f"offsets stored in partition {p} (the acked ones)")
    missing = [(i, a.partition, a.offset) for i, a in enumerate(run.acks) if (a.partition, a.offset) not in by_pos]
    expect_eq(missing[:5], [], "records not readable at their acked (partition, offset)")
    return [by_pos[(a.partition, a.offset)] for a in run.acks]


def observe(check: Any, run: RecordsRun) -> None:
    check.observe(client_s=round(run.elapsed_s, 1), records=len(run.records), client_version=run.client_version)
