"""Execute a scenario: for each matrix cell, create the topic, let a driver run the load, merge what the
workers measured into the cell's entry, and write the result document after every cell.

A cell: create topic → ``driver.run_cell`` (workers, warm-up, window, drain; :mod:`bench.drivers`) →
extensions (faults stop, ``--verify``'s final read) → broker offsets → merged cell document → topic
deleted. Events go to ``events`` (:mod:`bench.run.events`); nothing here prints. Ctrl-C or a dead broker
stops the cell, and what was measured is written, marked incomplete (then :class:`RunAborted`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from bench.drivers.base import CellAborted, CellJob, CellRun, Driver
from bench.errors import BrokerError, RunAborted
from bench.metrics.files import write_hgrm
from bench.metrics.hdr import decode_histogram
from bench.results.environment import client_versions, host_info
from bench.results.model import CellDocument, RunDocument
from bench.results.store import new_run_dir, utc_now, write_result
from bench.run.cell import build_cell_result
from bench.run.events import CellStarted, RunEvents
from bench.run.repeats import merge_repeats
from bench.scenario.model import Cell, Scenario, to_plain

__all__ = ["RunOptions", "RunOutcome", "broker_offsets", "create_topic", "delete_topic", "execute",
           "new_run_document"]


@dataclass
class RunOptions:
    bootstrap: str
    broker: dict[str, Any]                       # kind, version, embedded, … (recorded)
    reports_root: Path = Path("reports")
    out: Path | None = None
    client_config: dict[str, str] = field(default_factory=dict)   # SASL/TLS etc., all clients
    verify: bool = False
    drain_timeout_s: float = 30.0
    keep_topics: bool = False


@dataclass
class RunOutcome:
    run_dir: Path
    document: RunDocument
    complete: bool


class _Aborted(Exception):
    """A cell stopped early; ``partial`` is its entry with what it measured (None if nothing)."""

    def __init__(self, reason: str, partial: CellDocument | None = None, *, interrupted: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
        self.interrupted = interrupted   # Ctrl-C (KeyboardInterrupt caught), not a failure


def execute(scenario: Scenario, opts: RunOptions, driver: Driver | None = None, events: RunEvents | None = None,
            *, next_cell: Callable[[list[CellDocument]], Cell | None] | None = None,
            extra: RunDocument | None = None) -> RunOutcome:
    """Run every cell of a prepared (validated) ``scenario`` through ``driver`` (default: the process
    driver); return where the result is. Raises RunAborted after writing a partial result when interrupted
    or when the broker died. With ``scenario.repeat`` = N > 1 every cell runs N times in a row, each on a
    fresh topic, and its entry keeps every run (:mod:`bench.run.repeats`).

    ``next_cell`` makes the run adaptive (e.g. a knee search): it is called with the cell documents so far
    and returns the next cell to run, or None to finish (then ``scenario.cells`` is ignored). ``extra`` is
    merged into the root of the document (and may be mutated by ``next_cell`` as it decides)."""
    run_id = uuid.uuid4().hex[:8]
    run_dir = new_run_dir(opts.reports_root, scenario.name, opts.out)
    if driver is None:
        from bench.drivers.process import ProcessDriver

        driver = ProcessDriver(kafka_version=_broker_version(opts))
    env = driver.environment()
    doc = new_run_document(scenario, run_id, opts.broker, clock=env.clock, **env.fields)
    doc["repeat"] = scenario.repeat
    doc.update(extra or {})
    write_result(run_dir, doc)
    events = events or RunEvents()
    total = len(scenario.cells) if next_cell is None else 0
    reason: str | None = None
    interrupted = False
    try:
        cells = iter(scenario.cells) if next_cell is None else iter(lambda: next_cell(doc["cells"]), None)
        for cell in cells:
            runs: list[CellDocument] = []
            for k in range(scenario.repeat):
                label = cell.label() if scenario.repeat == 1 else f"{cell.label()} (run {k + 1}/{scenario.repeat})"
                events.emit(CellStarted(cell.index, label, total))
                try:
                    runs.append(_run_cell(driver, events, scenario, cell, opts, run_id, run_dir, repeat=k))
                except _Aborted as exc:
                    reason, interrupted = exc.reason, exc.interrupted
                    if exc.partial is not None:
                        runs.append(exc.partial)
                    break
            if runs:
                merged = merge_repeats(runs, incomplete_reason=None if reason is None or len(runs) == 1
                                       else f"stopped after {len(runs)} of {scenario.repeat} runs: {reason}")
                if len(runs) > 1:
                    _write_merged_hgrm(run_dir, merged)
                doc["cells"].append(merged)
            if reason is not None:
                break
            write_result(run_dir, doc)
    finally:
        doc["ended_at"] = utc_now()
        doc["complete"] = reason is None and all(c.get("complete") for c in doc["cells"])
        doc["incomplete_reason"] = reason if reason else (
            None if doc["complete"] else "a cell did not complete (see cells[].incomplete_reason)")
        write_result(run_dir, doc)
    if reason is not None:
        raise RunAborted(f"run stopped: {reason}; partial results written to {run_dir / 'result.json'} "
                         "(marked incomplete)", interrupted=interrupted)
    return RunOutcome(run_dir, doc, bool(doc["complete"]))


def _broker_version(opts: RunOptions) -> str | None:
    version = opts.broker.get("version")
    return version if isinstance(version, str) and opts.broker.get("kind") in ("kafka", "kafka-zk") else None


def new_run_document(scenario: Scenario, run_id: str, broker: dict[str, Any], *, clock: str,
                     **environment: Any) -> RunDocument:
    """The root of a result document before any cell ran (shared by `kbench run` and `kbench locust`)."""
    return {
        "kind": "kbench.run", "run_id": run_id, "complete": False, "incomplete_reason": "running",
        "started_at": utc_now(), "ended_at": None,
        "scenario": {"name": scenario.name, "description": scenario.description,
                     "path": str(scenario.path) if scenario.path else None, "sha256": scenario.sha256,
                     "source_format": scenario.source_format,
                     "document": cast(dict[str, Any], to_plain(scenario.raw))},
        "environment": {**client_versions(), "host": host_info(), "broker": broker, "clock": clock, **environment},
        "cells": [],
    }


def create_topic(opts: RunOptions, cell: Cell, name: str) -> None:
    """Create the cell's topic and wait until every partition has a leader (TopicError otherwise)."""
    from bench.kafka.admin import TopicAdmin

    with TopicAdmin(opts.bootstrap, opts.client_config) as admin:
        admin.create_topic(name, cell.topic.partitions, cell.topic.replication_factor, cell.topic.config,
                           timeout_s=60)


def delete_topic(opts: RunOptions, name: str) -> None:
    """Delete a topic kbench created, best effort (a failure is the broker's to report, not the run's)."""
    from bench.errors import TopicError
    from bench.kafka.admin import TopicAdmin

    with TopicAdmin(opts.bootstrap, opts.client_config) as admin, contextlib.suppress(TopicError):
        admin.delete_topic(name, wait=False, missing_ok=True)


def broker_offsets(bootstrap: str, topic: str, client_config: dict[str, str]) -> dict[str, Any]:
    """Low/high watermarks per partition and the total number of offsets (high − low)."""
    from bench.kafka.admin import TopicAdmin, total_offsets

    with TopicAdmin(bootstrap, client_config) as admin:
        marks = admin.watermarks(topic)
    return {"partitions": {str(p): [m.low, m.high] for p, m in marks.items()}, "total": total_offsets(marks)}


def _write_merged_hgrm(run_dir: Path, merged: CellDocument) -> None:
    """The cell's ``.hgrm`` files from its merged histograms (each run rewrote them with its own)."""
    for name, lat in (merged.get("latency") or {}).items():
        if lat and lat.get("hdr"):
            write_hgrm(decode_histogram(lat["hdr"]), run_dir / f"cell-{int(merged.get('index') or 0):02d}-{name}.hgrm")


def _run_cell(driver: Driver, events: RunEvents, scenario: Scenario, cell: Cell, opts: RunOptions, run_id: str,
              run_dir: Path, repeat: int = 0) -> CellDocument:
    created = cell.topic.name is None
    suffix = f"-r{repeat}" if repeat else ""
    topic = cell.topic.name or f"kbench-{scenario.name}-{run_id}-c{cell.index}{suffix}"[:249]
    if created:
        events.set_phase(f"creating topic {topic}")
        create_topic(opts, cell, topic)
    job = CellJob(cell=cell, topic=topic, group_prefix=f"kbench-{run_id}-c{cell.index}{suffix}",
                  bootstrap=opts.bootstrap, client_config=opts.client_config, verify=opts.verify,
                  drain_timeout_s=opts.drain_timeout_s, run_dir=run_dir)
    try:
        run = driver.run_cell(job, events)
    except CellAborted as exc:
        events.cell_aborted(cell, topic)
        partial = None if exc.run is None else _cell_document(cell, topic, exc.run, opts, run_dir,
                                                               incomplete_reason=exc.reason)
        raise _Aborted(exc.reason, partial, interrupted=exc.interrupted) from None
    fields = events.cell_finished(cell, topic, run.results)
    offsets = _offsets(opts, topic, run) if created and cell.workload.producers else None
    result = _cell_document(cell, topic, run, opts, run_dir, offsets=offsets)
    result.update(fields)
    if created and not opts.keep_topics:
        delete_topic(opts, topic)
    return result


def _offsets(opts: RunOptions, topic: str, run: CellRun) -> dict[str, Any] | None:
    from confluent_kafka import KafkaException

    try:
        return broker_offsets(opts.bootstrap, topic, opts.client_config)
    except (KafkaException, BrokerError) as exc:
        run.warnings.append(f"could not read the topic's offsets to verify counts: {exc}")
        return None


def _cell_document(cell: Cell, topic: str, run: CellRun, opts: RunOptions, run_dir: Path, *,
                   offsets: dict[str, Any] | None = None, incomplete_reason: str | None = None) -> CellDocument:
    """The cell's entry from what the driver measured, with the driver's own checks and fields."""
    doc = build_cell_result(cell, topic, run.results, run.errors, opts, offsets=offsets,
                            backlog=asdict(run.backlog) if run.backlog is not None else None,
                            elapsed_s=run.elapsed_s, run_dir=run_dir, incomplete_reason=incomplete_reason,
                            warnings=run.warnings)
    doc["check"].update(run.checks)
    doc.update(run.fields)
    return doc
