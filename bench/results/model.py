"""The typed result document: ``TypedDict``\\ s of ``result.json`` (schema_version 1).

**Why TypedDicts** (and not pydantic or msgspec models): the document's contract is its published JSON
Schema (:mod:`bench.results.schema`), which every load validates; the document *is* JSON, written and
read as plain dicts by the run, the reports, compare and plan. TypedDicts give mypy (strict) the same
shape with no conversion layer, no second validation path, no new dependency and no cost per access;
pydantic would validate a second time what the schema already checked, and its models would have to be
converted back to dicts for the writer and the pandas tables. ``total=False``: readers of older v1
documents meet optional fields (additive within v1, see docs/result-format.md), so they use ``.get``.

The latency statistics (``p50_ms``, ``p99_us`` …) are views computed from the ``hdr`` histogram when the
document is written; the histogram is the one source of truth (``bench.metrics.hdr.summarize``).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = ["CellDocument", "CellFailure", "CellRunDocument", "CellStatus", "ClientRecord", "ConsumeSection",
           "FailedCell", "LatencySummary", "LostLocation", "LostLookupSection", "LostRecordRecord", "PerSecond",
           "ProduceSection", "RunDocument", "ScenarioRecord", "SegmentScanRecord", "SeriesSection", "TimingSection",
           "TopicRecord"]

#: a latency summary: ``count``, ``hdr`` and the derived ``<stat>_us`` / ``<stat>_ms`` views
LatencySummary = dict[str, Any]


class PerSecond(TypedDict, total=False):
    samples: int
    mean: float | None
    stdev: float | None
    min: float | None
    max: float | None
    values: list[float]


class ProduceSection(TypedDict, total=False):
    messages: int
    bytes: int
    msgs_per_s: float
    mb_per_s: float
    acked_total: int
    sent_total: int
    unacked_at_end: int
    queue_full_events: int
    errors: dict[str, int]
    error_total: int
    latency_sample: int
    errors_estimated: bool
    per_second: PerSecond | None


class ConsumeSection(TypedDict, total=False):
    groups: int
    messages: int
    bytes: int
    msgs_per_s: float
    mb_per_s: float
    errors: dict[str, int]
    error_total: int
    join_s: list[float | None]
    per_second: PerSecond | None


class TopicRecord(TypedDict, total=False):
    name: str | list[str | None]
    created: bool
    partitions: int
    replication_factor: int
    config: dict[str, str]


class TimingSection(TypedDict, total=False):
    warmup_s: float
    duration_s: float
    window_s: float
    elapsed_s: float
    runs: int
    windows_s: list[float | None]


class SeriesSection(TypedDict, total=False):
    produce: dict[str, Any] | None       # per-interval columns (t, count, bytes, errors, p50_us, p99_us, max_us)
    consume: dict[str, Any] | None
    lag: list[list[float]]


class ClientRecord(TypedDict, total=False):
    name: str
    version: str
    protocol: int | None


#: ``ok``: ran to its end, nothing missing; ``incomplete``: ran, but something is missing (a worker's
#: measurements, the end of the window, Ctrl-C); ``failed``: the driver could not finish it (``failure``)
CellStatus = Literal["ok", "incomplete", "failed"]


class CellFailure(TypedDict):
    """Why a cell failed: the reason (a dead driver's stderr tail included), the phase it failed in."""

    reason: str
    phase: str | None          # "consumers joining", "measure", … (the driver's phase then)
    stops_run: bool            # the failure stopped the run (the broker died or stopped answering)


class FailedCell(TypedDict):
    """An entry of the run's ``failed_cells``."""

    index: int
    label: str
    reason: str


class LostLocation(TypedDict):
    """Where a lost (or unseen) record was found on disk."""

    node: int
    offset: int
    beyond_high_watermark: bool     # at or past the final read's high watermark: never committed


class LostRecordRecord(TypedDict, total=False):
    """One acked record nobody read, looked up in the nodes' segment files."""

    value: str                      # "<producer>:<seq>"
    producer: str
    seq: int
    partition: int | None
    acked_offset: int | None
    kind: Literal["lost-write", "unseen"]
    status: Literal["on_disk", "gone", "unknown"]
    locations: list[LostLocation]


class SegmentScanRecord(TypedDict, total=False):
    """One node's copy of one partition, as scanned."""

    node: int
    partition: int
    files: int
    bytes: int
    batches: int
    records: int
    undecodable_batches: int        # compressed with snappy/lz4/zstd, or an old message format
    truncated_tail: bool
    complete: bool                  # every file read to its end, every batch decoded
    found: int                      # looked-up records found in it
    errors: list[str]


class LostLookupSection(TypedDict, total=False):
    """``verification.lost_lookup``: the lost and unseen writes looked up in the nodes' log segments."""

    status: Literal["done", "incomplete", "skipped"]
    note: str | None
    looked_up: int
    not_looked_up: int              # beyond the cap (the first ones by partition and offset are looked up)
    on_disk: int
    gone: int
    unknown: int
    elapsed_s: float
    scans: list[SegmentScanRecord]
    examples: list[LostRecordRecord]


class CellRunDocument(TypedDict, total=False):
    """What one run of a cell measured (a cell, and each entry of a repeated cell's ``repeats``)."""

    complete: bool
    incomplete_reason: str | None
    status: CellStatus
    failure: CellFailure | None
    topic: TopicRecord
    timing: TimingSection
    produce: ProduceSection
    consume: ConsumeSection
    errors: dict[str, int]
    latency: dict[str, LatencySummary | None]
    series: SeriesSection
    check: dict[str, Any]
    backlog: dict[str, Any] | None
    warnings: list[str]
    steady_state: dict[str, Any]
    faults: dict[str, Any]
    verification: dict[str, Any]
    locust: dict[str, Any]
    driver: str | dict[str, Any]
    clients: dict[str, ClientRecord]


class CellDocument(CellRunDocument, total=False):
    index: int
    label: str
    params: dict[str, Any]
    workload: dict[str, Any]
    producer_config: dict[str, str]
    consumer_config: dict[str, str]
    repeats: list[CellRunDocument]


class ScenarioRecord(TypedDict, total=False):
    name: str
    description: str | None
    path: str | None
    sha256: str | None
    source_format: str | None
    document: dict[str, Any]


class RunDocument(TypedDict, total=False):
    schema_version: Literal[1]          # the schema's consts (bench/results/schema.py)
    kind: Literal["kbench.run"]
    run_id: str
    complete: bool
    incomplete_reason: str | None
    started_at: str
    ended_at: str | None
    scenario: ScenarioRecord
    environment: dict[str, Any]
    cells: list[CellDocument]
    failed_cells: list[FailedCell]       # the cells that failed (status "failed"), in the order they ran
    warnings: list[str]
    repeat: int
    priming: dict[str, Any] | None
    search: dict[str, Any]
    driver: str | dict[str, Any]
    locust: dict[str, Any]
    faults: dict[str, Any]
    verification: dict[str, Any]
    thresholds: list[dict[str, Any]]
    _path: str                           # set by load_result: where the document was read from
