"""Run a scenario: for each matrix cell, create the topic, start consumers and producers (processes),
warm up, measure, drain, and write the result document after every cell.

Phases of a cell: consumers join → producers ready → ``t0`` set → warm-up → measure → producers flush →
consumers drain (until every group has read all acked messages, or the drain timeout) → merge → verify
counts against the broker's offsets. Ctrl-C or a dead broker stops the workers, and what was measured is
written, marked incomplete.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cli.progress import RunProgress
from bench.errors import BrokerError, RunAborted
from bench.load.consumer import run_consumer
from bench.load.producer import run_producer
from bench.load.worker import Control, WorkerSpec
from bench.metrics.files import write_hgrm
from bench.metrics.hdr import decode_histogram
from bench.results.environment import client_versions, host_info
from bench.results.store import new_run_dir, utc_now, write_result
from bench.run.cell import build_cell_result
from bench.run.repeats import merge_repeats
from bench.scenario.model import Cell, Scenario, latency_sample_every, to_plain

__all__ = ["RunOptions", "RunOutcome", "broker_offsets", "create_topic", "delete_topic", "new_run_document",
           "run_scenario"]

JOIN_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0


@dataclass
class RunOptions:
    bootstrap: str
    broker: dict[str, Any]                       # kind, version, embedded, … (recorded)
    reports_root: Path = Path("reports")
    out: Path | None = None
    client_config: dict[str, str] = field(default_factory=dict)   # SASL/TLS etc., all clients
    progress: bool = True
    verify: bool = False
    drain_timeout_s: float = 30.0
    keep_topics: bool = False
    broker_alive: Any = None                     # callable -> bool for embedded brokers
    # hooks (fault injection, verification): on_load_start(cell, topic, t0_ns) -> object with .stop() -> dict
    # (its dict goes into the cell as "faults"); on_cell_end(cell, topic, worker_results) -> dict merged into
    # the cell document (e.g. {"verification": …}); both called in the coordinator process.
    on_load_start: Any = None
    on_cell_end: Any = None


@dataclass
class RunOutcome:
    run_dir: Path
    document: dict[str, Any]
    complete: bool


class _Aborted(Exception):
    """A cell stopped early; ``partial`` is what it measured (None until built)."""

    def __init__(self, reason: str, partial: dict[str, Any] | None = None, *, interrupted: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
        self.interrupted = interrupted   # Ctrl-C (KeyboardInterrupt caught), not a failure


def run_scenario(scenario: Scenario, opts: RunOptions,
                 next_cell: Callable[[list[dict[str, Any]]], Cell | None] | None = None,
                 extra: dict[str, Any] | None = None) -> RunOutcome:
    """Run every cell of ``scenario``; return where the result is. Raises RunAborted after writing a
    partial result when interrupted or when the broker died. With ``scenario.repeat`` = N > 1 every cell
    runs N times in a row, each on a fresh topic, and its entry keeps every run (:mod:`bench.run.repeats`).

    ``next_cell`` makes the run adaptive (e.g. a knee search): it is called with the cell documents so far
    and returns the next cell to run, or None to finish (then ``scenario.cells`` is ignored). ``extra`` is
    merged into the root of the document (and may be mutated by ``next_cell`` as it decides)."""
    run_id = uuid.uuid4().hex[:8]
    run_dir = new_run_dir(opts.reports_root, scenario.name, opts.out)
    doc = new_run_document(scenario, run_id, opts.broker, clock="CLOCK_MONOTONIC; producers and consumers on one host")
    doc["repeat"] = scenario.repeat
    doc.update(extra or {})
    write_result(run_dir, doc)
    progress = RunProgress(len(scenario.cells) if next_cell is None else 0, enabled=opts.progress)
    ctx = mp.get_context("spawn")
    reason: str | None = None
    interrupted = False
    try:
        cells = iter(scenario.cells) if next_cell is None else iter(lambda: next_cell(doc["cells"]), None)
        for cell in cells:
            runs: list[dict[str, Any]] = []
            for k in range(scenario.repeat):
                label = cell.label() if scenario.repeat == 1 else f"{cell.label()} (run {k + 1}/{scenario.repeat})"
                progress.start_cell(cell.index, label)
                try:
                    runs.append(_run_cell(ctx, scenario, cell, opts, run_id, progress, run_dir, repeat=k))
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
        progress.close()
        doc["ended_at"] = utc_now()
        doc["complete"] = reason is None and all(c.get("complete") for c in doc["cells"])
        doc["incomplete_reason"] = reason if reason else (
            None if doc["complete"] else "a cell did not complete (see cells[].incomplete_reason)")
        write_result(run_dir, doc)
    if reason is not None:
        raise RunAborted(f"run stopped: {reason}; partial results written to {run_dir / 'result.json'} "
                         "(marked incomplete)", interrupted=interrupted)
    return RunOutcome(run_dir, doc, bool(doc["complete"]))


def new_run_document(scenario: Scenario, run_id: str, broker: dict[str, Any], *, clock: str,
                     **environment: Any) -> dict[str, Any]:
    """The root of a result document before any cell ran (shared by `kbench run` and `kbench locust`)."""
    return {
        "kind": "kbench.run", "run_id": run_id, "complete": False, "incomplete_reason": "running",
        "started_at": utc_now(), "ended_at": None,
        "scenario": {"name": scenario.name, "description": scenario.description,
                     "path": str(scenario.path) if scenario.path else None, "sha256": scenario.sha256,
                     "source_format": scenario.source_format, "document": to_plain(scenario.raw)},
        "environment": {**client_versions(), "host": host_info(), "broker": broker, "clock": clock, **environment},
        "cells": [],
    }


def create_topic(opts: RunOptions, cell: Cell, name: str) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": opts.bootstrap, **opts.client_config})
    spec = NewTopic(name, cell.topic.partitions, cell.topic.replication_factor, config=dict(cell.topic.config))
    try:
        admin.create_topics([spec], operation_timeout=30)[name].result(60)
    except KafkaException as exc:
        raise BrokerError(f"could not create topic {name} ({cell.topic.partitions} partitions, replication "
                          f"factor {cell.topic.replication_factor}): {exc.args[0].str()}") from exc
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for every partition to have a leader
        md = admin.list_topics(name, timeout=10).topics.get(name)
        if md and md.error is None and len(md.partitions) == cell.topic.partitions and \
                all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.1)
    raise BrokerError(f"topic {name} has partitions without a leader after 30 s")


def delete_topic(opts: RunOptions, name: str) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": opts.bootstrap, "log_level": 3, **opts.client_config})
    with contextlib.suppress(KafkaException):
        admin.delete_topics([name], operation_timeout=10)[name].result(15)


def broker_offsets(bootstrap: str, topic: str, client_config: dict[str, str]) -> dict[str, Any]:
    """Low/high watermarks per partition and the total number of offsets (high − low)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"kbench-offsets-{uuid.uuid4().hex[:6]}",
                  **client_config})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in sorted(md.partitions)}
    finally:
        c.close()
    return {"partitions": {str(p): list(m) for p, m in marks.items()},
            "total": sum(hi - lo for lo, hi in marks.values())}


def _write_merged_hgrm(run_dir: Path, merged: dict[str, Any]) -> None:
    """The cell's ``.hgrm`` files from its merged histograms (each run rewrote them with its own)."""
    for name, lat in (merged.get("latency") or {}).items():
        if lat and lat.get("hdr"):
            write_hgrm(decode_histogram(lat["hdr"]), run_dir / f"cell-{int(merged.get('index') or 0):02d}-{name}.hgrm")


def _run_cell(ctx: Any, scenario: Scenario, cell: Cell, opts: RunOptions, run_id: str,
              progress: RunProgress, run_dir: Path, repeat: int = 0) -> dict[str, Any]:
    w = cell.workload
    created = cell.topic.name is None
    suffix = f"-r{repeat}" if repeat else ""
    topic = cell.topic.name or f"kbench-{scenario.name}-{run_id}-c{cell.index}{suffix}"[:249]
    if created:
        progress.set_phase(f"creating topic {topic}")
        create_topic(opts, cell, topic)
    ctl = Control(stop=ctx.Event(), consume=ctx.Event(), t0=ctx.RawValue("q", 0))
    out = ctx.Queue()
    common: dict[str, Any] = {"bootstrap": opts.bootstrap, "topic": topic, "warmup_ns": int(w.warmup_s * 1e9),
              "duration_ns": int(w.duration_s * 1e9), "message_size": w.message_size, "payload": w.payload,
              "keys": w.keys, "verify": opts.verify}
    procs: dict[tuple[str, int], Any] = {}
    for g in range(w.consumer_groups):
        for k in range(w.consumers_per_group):
            idx = g * w.consumers_per_group + k
            spec = WorkerSpec(role="consumer", index=idx, group=f"kbench-{run_id}-c{cell.index}{suffix}-g{g}",
                              client_config={**opts.client_config, **cell.consumer}, seed=idx, **common)
            procs[("consumer", idx)] = ctx.Process(target=run_consumer, args=(spec, ctl, out), daemon=True)
    per_rate = (w.rate / w.producers) if (w.rate and w.producers) else None
    for i in range(w.producers):
        spec = WorkerSpec(role="producer", index=i, rate=per_rate, seed=1000 + i,
                          client_config={**opts.client_config, **cell.producer},
                          latency_sample=latency_sample_every(w, verify=opts.verify),
                          extra={"producers": w.producers}, **common)
        procs[("producer", i)] = ctx.Process(target=run_producer, args=(spec, ctl, out), daemon=True)
    state = _CellState(out, progress, opts, procs)
    injector: Any = None
    backlog = w.backlog
    if backlog is None:
        ctl.consume.set()
    started = time.monotonic()
    try:
        progress.set_phase("starting workers")
        for p in procs.values():
            p.start()
        n_cons = w.consumer_groups * w.consumers_per_group
        if backlog is None and n_cons:
            progress.set_phase("consumers joining")
            state.wait_for(lambda: state.ready["consumer"] >= n_cons, JOIN_TIMEOUT_S, "consumers to join their group")
        state.wait_for(lambda: state.ready["producer"] >= w.producers, READY_TIMEOUT_S, "producers to start")
        ctl.t0.value = time.monotonic_ns() + 50_000_000
        if opts.on_load_start is not None:
            injector = opts.on_load_start(cell, topic, int(ctl.t0.value))
        t_end = time.monotonic() + 0.05 + w.warmup_s + w.duration_s
        backlog_doc = _run_backlog(state, ctl, w, n_cons) if backlog is not None else None
        progress.set_phase("warm-up" if w.warmup_s else "measure")
        measure_at = time.monotonic() + max(0.0, (ctl.t0.value + common["warmup_ns"] - time.monotonic_ns()) / 1e9)
        while time.monotonic() < t_end:
            if progress.phase == "warm-up" and time.monotonic() >= measure_at:
                progress.set_phase("measure")
            state.pump(0.2)
        progress.set_phase("producers flushing")
        state.wait_for(lambda: state.results_of("producer") >= w.producers, 60.0, "producers to flush", hard=False)
        acked = sum(r.get("acked_total", 0) for r in state.results["producer"].values())
        if n_cons:
            progress.set_phase("consumers draining")
            state.wait_for(lambda: state.drained(acked, w.consumer_groups, w.consumers_per_group),
                           opts.drain_timeout_s, "consumers to drain", hard=False)
        ctl.stop.set()
        state.wait_for(lambda: state.results_of("consumer") >= n_cons, 30.0, "consumers to finish", hard=False)
    except (KeyboardInterrupt, _Aborted) as exc:
        interrupted = exc.interrupted if isinstance(exc, _Aborted) else True
        reason = exc.reason if isinstance(exc, _Aborted) else "interrupted (SIGINT)"
        ctl.stop.set()
        ctl.consume.set()
        with contextlib.suppress(KeyboardInterrupt, _Aborted):
            state.collect_all(30.0)
        partial = build_cell_result(cell, topic, state.results, state.errors, opts, incomplete_reason=reason,
                                    elapsed_s=time.monotonic() - started, run_dir=run_dir)
        _stop_processes(procs)
        raise _Aborted(reason, partial, interrupted=interrupted) from None
    finally:
        ctl.stop.set()
        _stop_processes(procs)
        fault_log = injector.stop() if injector is not None else None
    offsets = None
    if created and w.producers:
        from confluent_kafka import KafkaException

        try:
            offsets = broker_offsets(opts.bootstrap, topic, opts.client_config)
        except (KafkaException, KeyError) as exc:
            state.warnings.append(f"could not read the topic's offsets to verify counts: {exc}")
    result = build_cell_result(cell, topic, state.results, state.errors, opts, offsets=offsets,
                               backlog=backlog_doc, elapsed_s=time.monotonic() - started, run_dir=run_dir,
                               warnings=state.warnings)
    if fault_log is not None:
        result["faults"] = fault_log
    if opts.on_cell_end is not None:
        result.update(opts.on_cell_end(cell, topic, state.results))
    if created and not opts.keep_topics:
        delete_topic(opts, topic)
    return result


def _run_backlog(state: _CellState, ctl: Control, w: Any, n_cons: int) -> dict[str, Any]:
    """Consumers stay idle while a backlog builds; then they are released and the drain is timed."""
    b = w.backlog
    state.progress.set_phase("building backlog")
    t_build = time.monotonic()
    deadline = t_build + (b.duration_s if b.duration_s is not None else w.warmup_s + w.duration_s)
    while time.monotonic() < deadline:
        if b.messages is not None and state.acked_now() >= b.messages:
            break
        state.pump(0.1)
    backlog_size = state.acked_now()
    released = time.monotonic()
    ctl.consume.set()
    state.progress.set_phase(f"draining backlog of {backlog_size:,}")
    caught_up = state.wait_for(lambda: state.min_group_total(n_cons, w.consumers_per_group) >= backlog_size,
                               max(60.0, w.duration_s * 2), "the backlog to drain", hard=False)
    drain_s = time.monotonic() - released
    return {"build_s": released - t_build, "messages": backlog_size, "drain_s": drain_s, "caught_up": caught_up,
            "drain_msgs_per_s": backlog_size / drain_s if caught_up and drain_s > 0 else None}


class _CellState:
    """The coordinator's view of one cell's workers, fed by their queue."""

    def __init__(self, out: Any, progress: RunProgress, opts: RunOptions, procs: dict[tuple[str, int], Any]) -> None:
        self.out, self.progress, self.opts, self.procs = out, progress, opts, procs
        self.ready = {"producer": 0, "consumer": 0}
        self.results: dict[str, dict[int, dict[str, Any]]] = {"producer": {}, "consumer": {}}
        self.totals: dict[tuple[str, int], int] = {}
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def pump(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = self.out.get(timeout=max(0.0, remaining)) if remaining > 0 else self.out.get_nowait()
            except queue.Empty:
                break
            self._handle(msg)
        self._check_health()

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind, role, index = msg[0], msg[1], msg[2]
        if kind == "ready":
            self.ready[role] += 1
        elif kind == "stat":
            _k, _r, _i, t_s, count, p99, total = msg
            self.totals[(role, index)] = total
            self.progress.stat(role, index, t_s, count, p99, total)
        elif kind == "result":
            self.results[role][index] = msg[3]
            if role == "consumer":
                self.totals[(role, index)] = msg[3].get("received_total", 0)
        elif kind == "error":
            self.errors.append(f"{role} {index}: {msg[3]}")

    def _check_health(self) -> None:
        alive = self.opts.broker_alive
        if alive is not None and not alive():
            raise _Aborted("the embedded broker died mid-run")
        for (role, index), p in self.procs.items():
            if p.exitcode not in (None, 0) and index not in self.results[role]:
                raise _Aborted(f"{role} process {index} died (exit code {p.exitcode})")

    def wait_for(self, cond: Any, timeout: float, what: str, hard: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() >= deadline:
                msg = f"timed out after {timeout:g} s waiting for {what}"
                if hard:
                    raise _Aborted(msg)
                self.warnings.append(msg)
                return False
            self.pump(0.1)
        return True

    def results_of(self, role: str) -> int:
        return len(self.results[role])

    def acked_now(self) -> int:
        return sum(v for (r, _i), v in self.totals.items() if r == "producer")

    def min_group_total(self, n_cons: int, per_group: int) -> int:
        groups: dict[int, int] = {}
        for i in range(n_cons):
            groups[i // per_group] = groups.get(i // per_group, 0) + self.totals.get(("consumer", i), 0)
        return min(groups.values()) if groups else 0

    def drained(self, acked: int, n_groups: int, per_group: int) -> bool:
        return self.min_group_total(n_groups * per_group, per_group) >= acked

    def collect_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        expected = len(self.procs)
        while time.monotonic() < deadline and sum(map(len, self.results.values())) < expected:
            try:
                self._handle(self.out.get(timeout=0.2))
            except queue.Empty:
                if all(not p.is_alive() for p in self.procs.values()):
                    break


def _stop_processes(procs: dict[tuple[str, int], Any]) -> None:
    for p in procs.values():
        if p.is_alive():
            p.join(timeout=5)
    for p in procs.values():
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
