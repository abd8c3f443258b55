"""``kbench locust``: one matrix cell of a scenario driven by Locust users, ending in the same result
document as ``kbench run`` (``environment.driver: "locust"``).

Steps: create the cell's topic → write the plan (a private temp file: it holds client secrets) → start
Locust (master + N workers, or one local process) → wait, bounded, while the kbench plugin inside Locust
times the run and the master merges the workers' histograms into ``locust-results.json`` → build the
cell with :func:`bench.run.cell.build_cell_result` from the workers' results → read the topic's offsets →
write ``result.json`` next to Locust's own ``locust_*.csv`` / ``locust.html``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from bench.drivers.results import ConsumerResult, ProducerResult, WorkerResults, empty_results
from bench.errors import ConfigError, RunAborted
from bench.locust.launcher import LaunchSpec, LocustProcesses
from bench.locust.plan import Plan, build_plan
from bench.results.model import CellDocument, RunDocument
from bench.results.store import new_run_dir, utc_now, write_result
from bench.run.cell import build_cell_result
from bench.run.execute import RunOptions, RunOutcome, broker_offsets, create_topic, delete_topic, new_run_document
from bench.scenario.model import Cell, Scenario, latency_sample_every

__all__ = ["LocustOptions", "check_options", "locust_stats", "run_locust"]

RESULTS_FILE = "locust-results.json"
STARTUP_BUDGET_S = 150.0   # processes start, workers connect (the master waits up to 120 s)


@dataclass
class LocustOptions:
    bootstrap: str
    broker: dict[str, Any]
    cell: int = 0
    workers: int = 0
    expect_workers: int | None = None    # default: workers
    headless: bool = True
    master_host: str | None = None       # bind the master here (multi-machine); default loopback
    master_port: int = 0
    users: int | None = None             # producer users; default: the scenario's producers
    spawn_rate: float | None = None
    web_port: int = 8089
    reports_root: Path = Path("reports")
    out: Path | None = None
    client_config: dict[str, str] = field(default_factory=dict)
    drain_timeout_s: float = 30.0
    flush_timeout_s: float = 30.0
    keep_topics: bool = False
    embedded: bool = False
    progress: Callable[[str], None] | None = None


def _say(opts: LocustOptions, msg: str) -> None:
    if opts.progress is not None:
        opts.progress(msg)


def check_options(scenario: Scenario, opts: LocustOptions) -> Cell:
    """The cell to run; ConfigError for options that cannot work (checked before any broker is started)."""
    if not 0 <= opts.cell < len(scenario.cells):
        raise ConfigError(f"--cell {opts.cell}: the scenario has {len(scenario.cells)} cell(s) "
                          f"(0..{len(scenario.cells) - 1})")
    cell = scenario.cells[opts.cell]
    w = cell.workload
    if w.backlog is not None:
        raise ConfigError("kbench locust does not run backlog phases (workload.backlog); use `kbench run`")
    if opts.workers < 0 or (opts.expect_workers is not None and opts.expect_workers < opts.workers):
        raise ConfigError("--workers must be >= 0 and --expect-workers >= --workers")
    if opts.users is not None and opts.users < 0:
        raise ConfigError(f"--users must be >= 0, got {opts.users}")
    if opts.spawn_rate is not None and opts.spawn_rate <= 0:
        raise ConfigError(f"--spawn-rate must be > 0, got {opts.spawn_rate}")
    producers = w.producers if opts.users is None else opts.users
    if producers + w.consumer_groups * w.consumers_per_group == 0:
        raise ConfigError("nothing to run: no producer users and no consumers")
    remote = opts.master_host not in (None, "127.0.0.1", "localhost")
    if remote and opts.embedded:
        raise ConfigError("--master-host with an embedded broker: workers on other machines cannot reach a broker "
                          "listening on 127.0.0.1; pass --bootstrap HOST:PORT of a broker they can reach")
    if remote and not (opts.expect_workers or opts.workers):
        raise ConfigError("--master-host needs --expect-workers N (the workers you will start elsewhere)")
    return cell


def run_locust(scenario: Scenario, opts: LocustOptions) -> RunOutcome:
    """Run cell ``opts.cell`` of ``scenario`` through Locust; return where the result is."""
    cell = check_options(scenario, opts)
    w = cell.workload
    run_id = uuid.uuid4().hex[:8]
    run_dir = new_run_dir(opts.reports_root, scenario.name, opts.out)
    producer_users = w.producers if opts.users is None else opts.users
    consumers = w.consumer_groups * w.consumers_per_group
    expect = opts.expect_workers if opts.expect_workers is not None else opts.workers
    if opts.master_host and not expect:
        expect = 1
    created = cell.topic.name is None
    topic = cell.topic.name or f"kbench-{scenario.name}-{run_id}-locust-c{cell.index}"[:249]
    run_opts = RunOptions(bootstrap=opts.bootstrap, broker=opts.broker, client_config=opts.client_config)
    if created:
        _say(opts, f"creating topic {topic}")
        create_topic(run_opts, cell, topic)
    plan = _plan(cell, opts, run_id=run_id, topic=topic, producer_users=producer_users, workers=expect,
                 results_path=run_dir / RESULTS_FILE)
    secrets = Path(tempfile.mkdtemp(prefix="kbench-locust-"))
    plan_path = secrets / "plan.json"
    plan_path.write_text(plan.to_json())
    os.chmod(plan_path, 0o600)
    users = producer_users + consumers
    classes = (["KafkaProducerUser"] if producer_users else []) + (["KafkaConsumerUser"] if consumers else [])
    run_s = plan.start_delay_s + w.warmup_s + w.duration_s
    spawn_rate = opts.spawn_rate or float(min(max(users, 1), 100 * max(1, expect)))
    budget = run_s + users / spawn_rate + plan.flush_timeout_s + plan.drain_timeout_s + plan.collect_timeout_s + 30
    spec = LaunchSpec(run_dir=run_dir, plan_path=plan_path, user_classes=classes, users=users,
                      spawn_rate=spawn_rate, workers=opts.workers, expect_workers=expect, headless=opts.headless,
                      master_bind_host=opts.master_host or "127.0.0.1", master_port=opts.master_port,
                      web_port=opts.web_port, time_limit_s=budget + 30)
    procs = LocustProcesses(spec)
    doc = _document(scenario, opts, run_id, expect, users, spawn_rate, plan)
    write_result(run_dir, doc)
    started = time.monotonic()
    reason: str | None = None
    interrupted = False
    try:
        procs.start()
        _say(opts, _describe(procs, spec, opts))
        try:
            code = procs.wait(None if not opts.headless else STARTUP_BUDGET_S + budget)
            if code is None:
                reason = f"Locust did not finish within {STARTUP_BUDGET_S + budget:.0f} s; stopped"
                procs.request_stop()
                procs.wait(plan.collect_timeout_s + 15)
        except KeyboardInterrupt:
            reason, interrupted = "interrupted (SIGINT)", True
            _say(opts, "stopping Locust (results of what ran are still collected)…")
            procs.request_stop()
            procs.wait(plan.flush_timeout_s + plan.collect_timeout_s + 15)
    finally:
        procs.stop()
        shutil.rmtree(secrets, ignore_errors=True)
    elapsed = time.monotonic() - started
    collected = _load_results(run_dir / RESULTS_FILE)
    if collected is None:
        reason = reason or "Locust ended without kbench results (see locust-master.log)"
        tail = procs.log_tail()
        if tail:
            doc.setdefault("warnings", []).append(f"locust-master.log ends with:\n{tail}")
    else:
        if collected.get("end_reason") != "completed":
            reason = reason or str(collected.get("end_reason") or "stopped early")
        ramp_s = users / spawn_rate
        notes = [f"users take {ramp_s:.1f} s to start (spawn rate {spawn_rate:g}/s), longer than the "
                 f"{w.warmup_s:g} s warm-up: the measurement includes the ramp"] if ramp_s > w.warmup_s else []
        doc["cells"].append(_cell(cell, topic, created, plan, collected, run_opts, run_dir, elapsed, reason, notes))
    if created and not opts.keep_topics:
        delete_topic(run_opts, topic)
    doc["ended_at"] = utc_now()
    doc["complete"] = reason is None and bool(doc["cells"]) and all(c.get("complete") for c in doc["cells"])
    doc["incomplete_reason"] = None if doc["complete"] else (
        reason or "the cell did not complete (see cells[].incomplete_reason)")
    write_result(run_dir, doc)
    if interrupted:
        raise RunAborted(f"run stopped: {reason}; partial results written to {run_dir / 'result.json'} "
                         "(marked incomplete)", interrupted=True)
    return RunOutcome(run_dir, doc, bool(doc["complete"]))


def _plan(cell: Cell, opts: LocustOptions, *, run_id: str, topic: str, producer_users: int, workers: int,
          results_path: Path) -> Plan:
    plan = build_plan(cell, run_id=run_id, bootstrap=opts.bootstrap, topic=topic, client_config=opts.client_config,
                      producer_users=producer_users, workers=workers, results_path=str(results_path),
                      drain_timeout_s=opts.drain_timeout_s, flush_timeout_s=opts.flush_timeout_s)
    # the producers' 1-in-N timing at max rate, as `kbench run` (0: auto from the warm-up's rate)
    return replace(plan, extra={**plan.extra, "latency_sample": latency_sample_every(cell.workload)})


def _describe(procs: LocustProcesses, spec: LaunchSpec, opts: LocustOptions) -> str:
    lines = [f"Locust: {spec.users} user(s) ({', '.join(spec.user_classes)}), "
             f"{spec.workers} local worker(s); log {procs.master_log}"]
    if spec.expect_workers > spec.workers:
        lines.append(f"waiting for {spec.expect_workers - spec.workers} more worker(s); start each with:\n  "
                     + procs.remote_worker_command(_reachable(opts.master_host)))
    if not spec.headless:
        lines.append(f"web UI: http://{spec.web_host}:{spec.web_port}/ — start the test there "
                     f"({spec.users} users, spawn rate {spec.spawn_rate:g}); Ctrl-C to stop")
    return "\n".join(lines)


def _reachable(host: str | None) -> str:
    """The master address to give workers: a wildcard bind address is not one."""
    if host in ("0.0.0.0", "*", "::", ""):
        import socket

        return socket.getfqdn()
    return host or "127.0.0.1"


def _document(scenario: Scenario, opts: LocustOptions, run_id: str, workers: int, users: int, spawn_rate: float,
              plan: Plan) -> RunDocument:
    return new_run_document(
        scenario, run_id, opts.broker,
        clock="CLOCK_MONOTONIC per Locust process, anchored to CLOCK_REALTIME once; end-to-end "
              "latency across hosts is only as good as their clock synchronisation",
        driver="locust",
        locust={"version": _dist_version("locust"), "gevent": _dist_version("gevent"),
                                   "workers": workers, "local_workers": opts.workers,
                                   "master_host": opts.master_host or ("127.0.0.1" if workers else None),
                                   "mode": "headless" if opts.headless else "web", "users": users,
                                   "producer_users": plan.producer_users, "consumer_users": plan.consumer_users,
                "spawn_rate": spawn_rate, "user_rate": plan.user_rate, "cell": opts.cell})


def _dist_version(dist: str) -> str | None:
    """A distribution's version without importing it (importing Locust monkey-patches this process)."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _load_results(path: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc


def locust_stats(run_dir: Path) -> dict[str, Any] | None:
    """Locust's own totals per request type from ``locust_stats.csv`` (whole run, warm-up included)."""
    path = run_dir / "locust_stats.csv"
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    out: dict[str, Any] = {}
    for row in rows:
        key = row.get("Type") or row.get("Name") or "?"
        if row.get("Name") == "Aggregated":
            key = "aggregated"
        with contextlib.suppress(KeyError, ValueError):
            out[key] = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                        "requests_per_s": float(row["Requests/s"]),
                        "median_ms": float(row["Median Response Time"]) if row["Median Response Time"] != "N/A"
                        else None}
    return out


def _cell(cell: Cell, topic: str, created: bool, plan: Plan, collected: dict[str, Any], run_opts: RunOptions,
          run_dir: Path, elapsed: float, reason: str | None, notes: list[str]) -> CellDocument:
    results: WorkerResults = empty_results()
    errors: list[str] = []
    for client_id, report in sorted(collected.get("reports", {}).items()):
        errors += [f"locust worker {report.get('worker_index', client_id)}: {e}" for e in report.get("errors", [])]
        for user in report.get("users", []):   # JSON from the workers: their driver results
            if user["role"] == "producer":
                results["producer"][len(results["producer"])] = cast(ProducerResult, user["result"])
            else:
                results["consumer"][len(results["consumer"])] = cast(ConsumerResult, user["result"])
    warnings: list[str] = list(notes)
    missing = collected.get("missing_workers") or []
    if missing:
        errors.append(f"{len(missing)} Locust worker(s) sent no results: {', '.join(missing)}")
    groups = {r.get("group") for r in results["consumer"].values()}
    if plan.consumer_users and len(groups) < plan.consumer_groups:
        warnings.append(f"consumer users joined {len(groups)} of {plan.consumer_groups} groups "
                        "(Locust placed them unevenly over workers)")
    offsets = None
    if created and plan.producer_users:
        from confluent_kafka import KafkaException

        try:
            offsets = broker_offsets(run_opts.bootstrap, topic, run_opts.client_config)
        except (KafkaException, KeyError) as exc:
            warnings.append(f"could not read the topic's offsets to verify counts: {exc}")
    w = cell.workload
    shaped = replace(cell, workload=replace(w, producers=plan.producer_users))
    doc = build_cell_result(shaped, topic, results, errors, run_opts, offsets=offsets, elapsed_s=elapsed,
                            run_dir=run_dir, incomplete_reason=reason, warnings=warnings)
    merge = collected.get("merge") or {}
    merged_counts = {m: v["count"] for m, v in (merge.get("merged") or {}).items()}
    sums = merge.get("sum") or {}
    doc["check"]["locust_merge"] = {
        "workers": merge.get("workers"), "per_worker": merge.get("per_worker"), "merged_counts": merged_counts,
        "merged_equals_sum": all(sums.get(m) == n for m, n in merged_counts.items()),
        "messages_equal_sum": doc["produce"]["messages"] == sums.get("produced", 0),
    }
    doc["locust"] = {"end_reason": collected.get("end_reason"), "missing_workers": missing,
                     "target_users": collected.get("target_user_classes_count"), "user_rate": plan.user_rate,
                     "stats": locust_stats(run_dir)}
    return doc
