"""What a worker returns: the typed contract every driver fills (docs/drivers.md, "result").

These are the JSON objects a worker sends once at its end, exactly as they travel (a Python worker puts
one on its queue; an external driver writes one as its last line), so they are ``TypedDict``\\ s: the
JSON Schema of the result document is the published contract, and these give mypy the same shape
without a conversion layer. Every key is optional (``total=False``): a worker that failed before it
started sends only ``failed``.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

__all__ = ["ClientInfo", "ConsumerHdr", "ConsumerResult", "ConsumerVerify", "ProducerHdr", "ProducerResult",
           "ProducerVerify", "Role", "SeriesDoc", "TxnRecord", "TxnStats", "WorkerResults", "empty_results"]

Role = Literal["producer", "consumer"]


class SeriesDoc(TypedDict):
    """Per-interval columns from ``IntervalSeries.encode`` (interval histograms as HDR V2 base64)."""

    origin_ns: int
    interval_s: float
    count: list[int]
    bytes: list[int]
    errors: list[int]
    out_of_range: int
    hists: dict[str, str]


class ClientInfo(TypedDict):
    name: str
    version: str


class ProducerHdr(TypedDict):
    publish: str
    service: str
    send_delay: str | None


#: one transaction of a transactional producer (bench.load.txn): its index k in the producer, outcome
#: (committed | aborted | unknown), its sends' seqs [seq_from, seq_to), when commit was called (ns) or None
TxnRecord = tuple[int, str, int, int, int | None]


class TxnStats(TypedDict):
    """A transactional producer's transactions by outcome, the markers they wrote (one per partition per
    transaction that had an ack there) and the acked records of aborted / unknown ones."""

    committed: int
    aborted: int
    unknown: int
    markers: int
    acked_aborted: int
    acked_unknown: int


class ProducerVerify(TypedDict):
    acks: list[tuple[int, int, int, int, int]]       # partition, offset, producer, seq, ack ns
    failed: list[tuple[int, int, str]]              # producer, seq, error name
    unacked_seq_from: int | None
    sent: int
    txns: NotRequired[list[TxnRecord]]              # workload.transactions only


class ProducerResult(TypedDict, total=False):
    failed: str
    client: ClientInfo
    protocol: int
    latency_sample: int
    errors_estimated: bool
    sent_total: int
    sent_measured: int
    acked_total: int
    acked_measured: int
    bytes_measured: int
    unacked_at_end: int
    queue_full_events: int
    errors: dict[str, int]
    window_s: float
    stopped_early: bool
    hdr: ProducerHdr
    series: SeriesDoc
    window_end_ns: int
    verify: ProducerVerify | None
    transactions: TxnStats                   # workload.transactions only


class ConsumerHdr(TypedDict):
    e2e: str


#: every record a consumer read, in order: (partition, offset, producer, seq)
ConsumerVerify = list[tuple[int, int, int, int]]


class ConsumerResult(TypedDict, total=False):
    failed: str
    client: ClientInfo
    protocol: int
    group: str | None
    received_total: int
    received_measured: int
    bytes_measured: int
    errors: dict[str, int]
    window_s: float
    join_s: float | None
    released_s: float
    first_receive_ns: int | None
    last_receive_ns: int | None
    hdr: ConsumerHdr
    series: SeriesDoc
    window_end_ns: int
    lag: list[tuple[float, int]]             # (seconds since t0, total lag) samples, about once a second
    verify: ConsumerVerify | None
    #: librdkafka consumers in verify mode: one (index of its first record in ``verify``, receipt ns) per batch
    verify_polls: list[tuple[int, int]] | None


class WorkerResults(TypedDict):
    """One cell's worker results by role and worker index."""

    producer: dict[int, ProducerResult]
    consumer: dict[int, ConsumerResult]


def empty_results() -> WorkerResults:
    return {"producer": {}, "consumer": {}}
