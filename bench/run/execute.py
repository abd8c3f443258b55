"""Execute a scenario: for each matrix cell, create the topic, let a driver run the load, merge what the
workers measured into the cell's entry, and write the result document after every cell.

A cell: create topic → ``driver.run_cell`` (workers, warm-up, window, drain; :mod:`bench.drivers`) →
extensions (faults stop, ``--verify``'s final read) → broker offsets → merged cell document → topic
deleted. Events go to ``events`` (:mod:`bench.run.events`); nothing here prints.

A cell the driver could not finish (a driver died or exited, a worker never became ready, a consumer never
joined) is *failed*: its partial entry is kept (``status: failed``, ``failure``, marked incomplete), its
topic deleted, the broker checked, and the run goes on; the run's ``failed_cells`` lists it. Ctrl-C, a dead
or silent broker, a stop in the Locust web UI, or a failed cell with ``fail_fast`` stop the run: what was
measured is written, marked incomplete (then :class:`RunAborted`).
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
from bench.results.model import CellDocument, CellFailure, RunDocument
from bench.results.store import new_run_dir, utc_now, write_result
from bench.run.cell import build_cell_result
from bench.run.events import CellFailed, CellStarted, RunEvents
from bench.run.repeats import merge_repeats
from bench.scenario.model import Cell, Scenario, to_plain

__all__ = ["PROBE_TIMEOUT_S", "RunOptions", "RunOutcome", "broker_offsets", "create_topic", "delete_topic",
           "execute", "new_run_document"]

PROBE_TIMEOUT_S = 8.0   # after a failed cell: does the broker still answer?


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
    fail_fast: bool = False                      # a failed cell stops the run (default: the next cell runs)


@dataclass
class RunOutcome:
    run_dir: Path
    document: RunDocument
    complete: bool


class _Aborted(Exception):
    """A cell stopped early; ``partial`` is its entry with what it measured (None if nothing).
    ``stops_run``: nothing after it can run (Ctrl-C, the broker died or stopped answering, a stop in the
    Locust web UI); otherwise only the cell failed and the run goes on (unless ``--fail-fast``)."""

    def __init__(self, reason: str, partial: CellDocument | None = None, *, interrupted: bool = False,
                 stops_run: bool = False, failed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
        self.interrupted = interrupted   # Ctrl-C (KeyboardInterrupt caught), not a failure
        self.stops_run = stops_run or interrupted
        self.failed = failed             # the cell failed (not stopped by the user): listed in failed_cells


@dataclass(frozen=True)
class _Run:
    """What every cell of one run shares."""

    driver: Driver
    events: RunEvents
    scenario: Scenario
    opts: RunOptions
    run_id: str
    run_dir: Path


def execute(scenario: Scenario, opts: RunOptions, driver: Driver | None = None, events: RunEvents | None = None,
            *, next_cell: Callable[[list[CellDocument]], Cell | None] | None = None,
            extra: RunDocument | None = None) -> RunOutcome:
    """Run every cell of a prepared (validated) ``scenario`` through ``driver`` (default: the process
    driver); return where the result is. A cell-local failure (a driver died, a worker never became ready,
    a consumer never joined) marks that cell failed and the run goes on with the next cell (``opts.fail_fast``:
    it stops the run). Raises RunAborted after writing a partial result when interrupted, when the broker
    died or stopped answering, or on a failed cell with ``fail_fast``. With ``scenario.repeat`` = N > 1 every
    cell runs N times in a row, each on a fresh topic, and its entry keeps every run (:mod:`bench.run.repeats`).

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
    doc["failed_cells"] = []
    doc.update(extra or {})
    write_result(run_dir, doc)
    run = _Run(driver, events or RunEvents(), scenario, opts, run_id, run_dir)
    total = len(scenario.cells) if next_cell is None else 0
    stop: _Aborted | None = None
    try:
        cells = iter(scenario.cells) if next_cell is None else iter(lambda: next_cell(doc["cells"]), None)
        for cell in cells:
            stop = _run_repeated_cell(run, doc, cell, total)
            if stop is not None:
                break
            write_result(run_dir, doc)
    finally:
        _finish(run_dir, doc, stop)
    if stop is not None:
        raise RunAborted(f"run stopped: {stop.reason}; partial results written to {run_dir / 'result.json'} "
                         "(marked incomplete)", interrupted=stop.interrupted)
    return RunOutcome(run_dir, doc, bool(doc["complete"]))


def _run_repeated_cell(run: _Run, doc: RunDocument, cell: Cell, total: int) -> _Aborted | None:
    """The runs of ``cell`` (one unless ``repeat``), merged into ``doc``'s cells; why the run must stop, if it
    must (a failed cell is recorded in ``failed_cells`` and stops it only with ``fail_fast``)."""
    runs: list[CellDocument] = []
    abort: _Aborted | None = None
    repeat = run.scenario.repeat
    for k in range(repeat):
        label = cell.label() if repeat == 1 else f"{cell.label()} (run {k + 1}/{repeat})"
        run.events.emit(CellStarted(cell.index, label, total))
        try:
            runs.append(_run_cell(run, cell, repeat=k))
        except _Aborted as exc:
            abort = exc
            if exc.partial is not None:
                runs.append(exc.partial)
            break
    if runs:
        why = None if abort is None or len(runs) == 1 else f"stopped after {len(runs)} of {repeat} runs: {abort.reason}"
        merged = merge_repeats(runs, incomplete_reason=why)
        if len(runs) > 1:
            _write_merged_hgrm(run.run_dir, merged)
        doc["cells"].append(merged)
    if abort is None:
        return None
    if abort.failed:
        doc["failed_cells"].append({"index": cell.index, "label": cell.label(), "reason": abort.reason})
        run.events.emit(CellFailed(cell.index, cell.label(), abort.reason, abort.stops_run or run.opts.fail_fast))
    if abort.stops_run:
        return abort
    if run.opts.fail_fast:
        return _Aborted(f"{cell.label()} failed (--fail-fast): {abort.reason}")
    return None


def _finish(run_dir: Path, doc: RunDocument, stop: _Aborted | None) -> None:
    """The run's end: ``complete``, ``incomplete_reason`` (why it stopped, or which cells failed), written."""
    doc["ended_at"] = utc_now()
    failed = doc.get("failed_cells") or []
    doc["complete"] = stop is None and all(c.get("complete") for c in doc["cells"])
    names = "; ".join(f"{f['label']}: {_one_line(f['reason'])}" for f in failed)
    if stop is not None:
        doc["incomplete_reason"] = stop.reason + (f" (failed cells: {names})" if failed else "")
    elif failed:
        doc["incomplete_reason"] = f"{len(failed)} of {len(doc['cells'])} cell(s) failed ({names})"
    else:
        doc["incomplete_reason"] = (None if doc["complete"]
                                    else "a cell did not complete (see cells[].incomplete_reason)")
    write_result(run_dir, doc)


def _one_line(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


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


def _run_cell(run: _Run, cell: Cell, repeat: int = 0) -> CellDocument:
    opts = run.opts
    created = cell.topic.name is None
    suffix = f"-r{repeat}" if repeat else ""
    topic = cell.topic.name or f"kbench-{run.scenario.name}-{run.run_id}-c{cell.index}{suffix}"[:249]
    if created:
        run.events.set_phase(f"creating topic {topic}")
        create_topic(opts, cell, topic)
    job = CellJob(cell=cell, topic=topic, group_prefix=f"kbench-{run.run_id}-c{cell.index}{suffix}",
                  bootstrap=opts.bootstrap, client_config=opts.client_config, verify=opts.verify,
                  drain_timeout_s=opts.drain_timeout_s, run_dir=run.run_dir)
    try:
        result = run.driver.run_cell(job, run.events)
    except CellAborted as exc:
        raise _cell_aborted(run, cell, topic, exc) from None
    fields = run.events.cell_finished(cell, topic, result.results)
    offsets = _offsets(opts, topic, result) if created and cell.workload.producers else None
    doc = _cell_document(cell, topic, result, opts, run.run_dir, offsets=offsets)
    doc.update(fields)
    if created and not opts.keep_topics:
        delete_topic(opts, topic)
    return doc


def _cell_aborted(run: _Run, cell: Cell, topic: str, exc: CellAborted) -> _Aborted:
    """What a cell the driver stopped leaves: its partial entry, marked failed unless the user stopped it.
    A cell-local failure is followed by a look at the broker: if it died or no longer answers, the run
    stops; if it answers, the cell's topic is deleted as a finished cell's is (unless ``keep_topics``). A cell
    that stops the run (``fail_fast`` included) leaves its topic, as before."""
    run.events.cell_aborted(cell, topic)
    phase = run.events.phase or None
    reason, stops_run = exc.reason, exc.stops_run
    if not stops_run and not run.opts.fail_fast:    # the run would go on: can it?
        gone = _broker_gone(run)
        if gone is not None:
            reason, stops_run = f"{reason}; then {gone}", True
        elif cell.topic.name is None and not run.opts.keep_topics:
            delete_topic(run.opts, topic)
    failure: CellFailure | None = None if exc.by_user else {"reason": reason, "phase": phase, "stops_run": stops_run}
    measured = exc.run if exc.run is not None or stops_run else CellRun()
    partial = None if measured is None else _cell_document(cell, topic, measured, run.opts, run.run_dir,
                                                           incomplete_reason=reason, failure=failure)
    return _Aborted(reason, partial, interrupted=exc.interrupted, stops_run=stops_run, failed=failure is not None)


def _broker_gone(run: _Run) -> str | None:
    """Why the broker cannot serve another cell (the embedded one died, or it no longer answers), or None."""
    if not run.events.alive():
        return "the embedded broker died"
    from bench.brokers import probe_cluster
    from bench.errors import BrokerUnreachableError

    try:
        probe_cluster(run.opts.bootstrap, timeout=PROBE_TIMEOUT_S, extra=run.opts.client_config)
    except BrokerUnreachableError as exc:
        return f"the broker stopped answering: {exc}"
    return None


def _offsets(opts: RunOptions, topic: str, run: CellRun) -> dict[str, Any] | None:
    from confluent_kafka import KafkaException

    try:
        return broker_offsets(opts.bootstrap, topic, opts.client_config)
    except (KafkaException, BrokerError) as exc:
        run.warnings.append(f"could not read the topic's offsets to verify counts: {exc}")
        return None


def _cell_document(cell: Cell, topic: str, run: CellRun, opts: RunOptions, run_dir: Path, *,
                   offsets: dict[str, Any] | None = None, incomplete_reason: str | None = None,
                   failure: CellFailure | None = None) -> CellDocument:
    """The cell's entry from what the driver measured, with the driver's own checks and fields."""
    doc = build_cell_result(cell, topic, run.results, run.errors, opts, offsets=offsets,
                            backlog=asdict(run.backlog) if run.backlog is not None else None,
                            elapsed_s=run.elapsed_s, run_dir=run_dir, incomplete_reason=incomplete_reason,
                            warnings=run.warnings, failure=failure)
    doc["check"].update(run.checks)
    doc.update(run.fields)
    return doc
