"""The Locust driver: one matrix cell's load from Locust users, behind the pipeline's driver seam.

``kbench locust`` runs like ``kbench run`` (:func:`bench.run.session.run_prepared` →
:func:`bench.run.execute.execute`): the pipeline creates the topic, checks the offsets, runs the
extensions, builds the cell and writes ``result.json``. :class:`LocustDriver` owns only the workers:

write the plan (a private temp file: it holds client secrets) → start Locust (a master and N local
workers, or one local process) in the run directory (its CSV/HTML reports and logs land there) → emit
``load_started`` when the master has fixed the common start ``t0`` → wait, bounded, while the kbench
plugin inside Locust times the run and the master merges the workers' histograms into
``locust-results.json`` → return the merged workers' results (:mod:`bench.locust.collect`).

Ctrl-C, a dead broker or a run past its time budget asks the master to stop gracefully; what was measured
comes back in :class:`~bench.drivers.base.CellAborted` (``stops_run`` unless only the budget or the results
failed). Nothing here imports Locust.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.drivers.base import CellAborted, CellJob, CellRun, DriverEnvironment
from bench.errors import ConfigError
from bench.locust.collect import cell_run, load_collected
from bench.locust.launcher import WILDCARD_HOSTS, LaunchSpec, LocustProcesses
from bench.locust.plan import Plan, build_plan
from bench.scenario.model import Scenario, latency_sample_every

if TYPE_CHECKING:
    from bench.run.events import RunEvents

__all__ = ["RESULTS_FILE", "STARTED_FILE", "LocustDriver", "LocustOptions", "LocustSetup", "setup_locust"]

RESULTS_FILE = "locust-results.json"
STARTED_FILE = "locust-started.json"
STARTUP_BUDGET_S = 150.0   # processes start, workers connect (the master waits up to 120 s)
_POLL_S = 0.2
BROKER_DIED = "the embedded broker died mid-run"

CLOCK = ("CLOCK_MONOTONIC per Locust process, anchored to CLOCK_REALTIME once; end-to-end latency across hosts "
         "is only as good as their clock synchronisation")


@dataclass(frozen=True)
class LocustOptions:
    """The ``kbench locust`` flags (not yet checked against the scenario)."""

    cell: int = 0
    workers: int = 0
    expect_workers: int | None = None    # default: workers
    headless: bool = True
    master_host: str | None = None       # bind the master here (multi-machine); default loopback
    master_port: int = 0
    users: int | None = None             # producer users; default: the scenario's producers
    spawn_rate: float | None = None
    web_port: int = 8089
    flush_timeout_s: float = 30.0
    embedded: bool = False               # the broker is embedded (listens on 127.0.0.1 only)


@dataclass(frozen=True)
class LocustSetup:
    """The options checked against the cell: how many users, workers and how fast they start."""

    options: LocustOptions
    producer_users: int
    consumer_users: int
    expect_workers: int                  # workers the master waits for (0: one local Locust process)
    spawn_rate: float
    rate: float | None
    warmup_s: float

    @property
    def users(self) -> int:
        return self.producer_users + self.consumer_users

    @property
    def user_classes(self) -> list[str]:
        return (["KafkaProducerUser"] if self.producer_users else []) + \
            (["KafkaConsumerUser"] if self.consumer_users else [])

    @property
    def user_rate(self) -> float | None:
        return self.rate / self.producer_users if self.rate is not None and self.producer_users else None


def _check(scenario: Scenario, opts: LocustOptions) -> None:
    if not 0 <= opts.cell < len(scenario.cells):
        raise ConfigError(f"--cell {opts.cell}: the scenario has {len(scenario.cells)} cell(s) "
                          f"(0..{len(scenario.cells) - 1})")
    cell = scenario.cells[opts.cell]
    w = cell.workload
    if cell.client != "librdkafka" or cell.consumer_client != "librdkafka":
        raise ConfigError(f"cell {cell.index} ({cell.label()}): kbench locust drives confluent-kafka (librdkafka) "
                          f"users; the cell's clients are {cell.client} / {cell.consumer_client} (use `kbench run`)")
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


def setup_locust(scenario: Scenario, opts: LocustOptions) -> tuple[Scenario, LocustSetup]:
    """ConfigError for options that cannot work (checked before any broker is started); else the scenario
    narrowed to its one cell run once, with ``workload.producers`` = the producer users, and the setup."""
    _check(scenario, opts)
    cell = scenario.cells[opts.cell]
    w = cell.workload
    producers = w.producers if opts.users is None else opts.users
    consumers = w.consumer_groups * w.consumers_per_group
    expect = opts.expect_workers if opts.expect_workers is not None else opts.workers
    if opts.master_host and not expect:
        expect = 1
    users = producers + consumers
    setup = LocustSetup(options=opts, producer_users=producers, consumer_users=consumers, expect_workers=expect,
                        spawn_rate=opts.spawn_rate or float(min(max(users, 1), 100 * max(1, expect))),
                        rate=w.rate, warmup_s=w.warmup_s)
    shaped = replace(cell, workload=replace(w, producers=producers))
    return dataclasses.replace(scenario, cells=(shaped,), repeat=1), setup


def _dist_version(dist: str) -> str | None:
    """A distribution's version without importing it (importing Locust monkey-patches this process)."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _reachable(host: str | None) -> str:
    """The master address to give workers: a wildcard bind address is not one."""
    if host in WILDCARD_HOSTS:
        return socket.getfqdn()
    return host or "127.0.0.1"


class LocustDriver:
    """Runs a cell's users in Locust processes; ``say`` gets what the user must see (worker command, web UI)."""

    name = "locust"

    def __init__(self, setup: LocustSetup, *, say: Callable[[str], None] = lambda _m: None) -> None:
        self.setup, self.say = setup, say

    def environment(self) -> DriverEnvironment:
        s, o = self.setup, self.setup.options
        record: dict[str, Any] = {
            "version": _dist_version("locust"), "gevent": _dist_version("gevent"), "workers": s.expect_workers,
            "local_workers": o.workers, "master_host": o.master_host or ("127.0.0.1" if s.expect_workers else None),
            "mode": "headless" if o.headless else "web", "users": s.users, "producer_users": s.producer_users,
            "consumer_users": s.consumer_users, "spawn_rate": s.spawn_rate, "user_rate": s.user_rate,
            "cell": o.cell}
        return DriverEnvironment(clock=CLOCK, fields={"driver": self.name, "locust": record})

    def _plan(self, job: CellJob, run_dir: Path) -> Plan:
        plan = build_plan(job.cell, group_prefix=job.group_prefix, bootstrap=job.bootstrap, topic=job.topic,
                          client_config=dict(job.client_config), producer_users=self.setup.producer_users,
                          workers=self.setup.expect_workers, results_path=str(run_dir / RESULTS_FILE),
                          started_path=str(run_dir / STARTED_FILE), drain_timeout_s=job.drain_timeout_s,
                          flush_timeout_s=self.setup.options.flush_timeout_s)
        # the producers' 1-in-N timing at max rate, as `kbench run` (0: auto from the warm-up's rate)
        return replace(plan, extra={**plan.extra, "latency_sample": latency_sample_every(job.cell.workload)})

    def _budget_s(self, plan: Plan) -> float:
        """How long the test may take once Locust runs: load, ramp, flush, drain, collect, and a margin."""
        load_s = plan.start_delay_s + plan.warmup_s + plan.duration_s
        ramp_s = self.setup.users / self.setup.spawn_rate
        return load_s + ramp_s + plan.flush_timeout_s + plan.drain_timeout_s + plan.collect_timeout_s + 30

    def _spec(self, run_dir: Path, plan_path: Path, budget_s: float) -> LaunchSpec:
        s, o = self.setup, self.setup.options
        return LaunchSpec(run_dir=run_dir, plan_path=plan_path, user_classes=s.user_classes, users=s.users,
                          spawn_rate=s.spawn_rate, workers=o.workers, expect_workers=s.expect_workers,
                          headless=o.headless, master_bind_host=o.master_host or "127.0.0.1",
                          master_port=o.master_port, web_port=o.web_port, time_limit_s=budget_s + 30)

    def run_cell(self, job: CellJob, events: RunEvents) -> CellRun:
        if job.run_dir is None:
            raise ConfigError("the Locust driver writes Locust's reports into the run directory; the job has none")
        plan = self._plan(job, job.run_dir)
        budget = self._budget_s(plan)
        secrets = Path(tempfile.mkdtemp(prefix="kbench-locust-"))
        plan_path = secrets / "plan.json"
        plan_path.write_text(plan.to_json())
        os.chmod(plan_path, 0o600)
        procs = LocustProcesses(self._spec(job.run_dir, plan_path, budget))
        started = time.monotonic()
        try:
            events.set_phase("starting Locust")
            procs.start()
            self.say(self._describe(procs))
            reason, interrupted = self._supervise(procs, job, plan, events,
                                                  STARTUP_BUDGET_S + budget if self.setup.options.headless else None)
        except KeyboardInterrupt:   # before the wait, or a second Ctrl-C during the graceful stop
            reason, interrupted = "interrupted (SIGINT)", True
        finally:
            procs.stop()
            shutil.rmtree(secrets, ignore_errors=True)
        run, ended = self._collect(job.run_dir, plan, procs, time.monotonic() - started)
        # the run stops on Ctrl-C, a dead broker, or a test stopped in Locust itself (the web UI's Stop);
        # a test past its budget or without results fails only its cell
        by_user = reason is None and run is not None and ended is not None
        stops_run = interrupted or reason == BROKER_DIED or by_user
        reason = reason or ended
        if reason is not None or run is None:
            raise CellAborted(reason or "Locust ended without kbench results", run, interrupted=interrupted,
                              stops_run=stops_run, by_user=by_user)
        return run

    def _supervise(self, procs: LocustProcesses, job: CellJob, plan: Plan, events: RunEvents,
                   timeout_s: float | None) -> tuple[str | None, bool]:
        """Wait for the master to exit, emitting the load's events; (why it stopped early, interrupted)."""
        clock = _LoadClock(job, Path(plan.started_path or ""), events)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while procs.wait(_POLL_S) is None:
                clock.poll()
                reason = None if events.alive() else BROKER_DIED
                if reason is None and deadline is not None and time.monotonic() >= deadline:
                    reason = f"Locust did not finish within {timeout_s:.0f} s; stopped"
                if reason is not None:
                    procs.request_stop()
                    procs.wait(plan.collect_timeout_s + 15)
                    return reason, False
            clock.poll()
            return None, False
        except KeyboardInterrupt:
            self.say("stopping Locust (results of what ran are still collected)…")
            procs.request_stop()
            procs.wait(plan.flush_timeout_s + plan.collect_timeout_s + 15)
            return "interrupted (SIGINT)", True

    def _collect(self, run_dir: Path, plan: Plan, procs: LocustProcesses, elapsed_s: float) -> tuple[CellRun | None,
                                                                                                     str | None]:
        """What the master wrote as a CellRun (None if nothing), and why the test ended early (None if it did not)."""
        collected = load_collected(run_dir / RESULTS_FILE)
        if collected is None:
            tail = procs.log_tail()
            reason = "Locust ended without kbench results (see locust-master.log)"
            return None, reason + (f"; locust-master.log ends with:\n{tail}" if tail else "")
        s = self.setup
        ramp_s = s.users / s.spawn_rate
        notes = [f"users take {ramp_s:.1f} s to start (spawn rate {s.spawn_rate:g}/s), longer than the "
                 f"{s.warmup_s:g} s warm-up: the measurement includes the ramp"] if ramp_s > s.warmup_s else []
        run = cell_run(collected, plan, run_dir, elapsed_s=elapsed_s, notes=notes)
        ended = collected.get("end_reason")
        return run, None if ended == "completed" else str(ended or "stopped early")

    def _describe(self, procs: LocustProcesses) -> str:
        spec = procs.spec
        lines = [f"Locust: {spec.users} user(s) ({', '.join(spec.user_classes)}), "
                 f"{spec.workers} local worker(s); log {procs.master_log}"]
        if spec.expect_workers > spec.workers:
            lines.append(f"waiting for {spec.expect_workers - spec.workers} more worker(s); start each with:\n  "
                         + procs.remote_worker_command(_reachable(self.setup.options.master_host)))
        if not spec.headless:
            lines.append(f"web UI: http://{spec.web_host}:{spec.web_port}/ — start the test there "
                         f"({spec.users} users, spawn rate {spec.spawn_rate:g}); Ctrl-C to stop")
        return "\n".join(lines)


class _LoadClock:
    """The load's events from the master's common start: ``load_started`` once, then the phases."""

    def __init__(self, job: CellJob, started_path: Path, events: RunEvents) -> None:
        self.job, self.path, self.events = job, started_path, events
        self.t0_ns: int | None = None

    def _read_t0(self) -> int | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        t0 = doc.get("t0_wall_ns") if isinstance(doc, dict) else None
        return int(t0) if isinstance(t0, int) else None

    def poll(self) -> None:
        if self.t0_ns is None:
            t0_wall = self._read_t0()
            if t0_wall is None:
                if self.events.phase != "waiting for the test to start":
                    self.events.set_phase("waiting for the test to start")
                return
            self.t0_ns = t0_wall - (time.time_ns() - time.monotonic_ns())   # the master's t0 on our clock
            self.events.load_started(self.job.cell, self.job.topic, self.t0_ns)
        w = self.job.cell.workload
        since_s = (time.monotonic_ns() - self.t0_ns) / 1e9
        phase = "warm-up" if since_s < w.warmup_s else "measure" if since_s < w.warmup_s + w.duration_s \
            else "producers flushing, consumers draining"
        if since_s >= 0 and phase != self.events.phase:
            self.events.set_phase(phase)
