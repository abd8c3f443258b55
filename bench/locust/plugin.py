"""The kbench side of a Locust run: event listeners on the environment, custom messages, run control.

Roles (a local run without workers plays both):

* **worker** (``WorkerRunner`` or ``LocalRunner``): at ``test_start`` it builds its :class:`WorkerState`
  from the plan and the common start time the master put into ``parsed_options``; users get their
  clients from it. Twice a second it sends ``kbench_progress`` (acked / received counts); at
  ``test_stop`` — after every user's ``on_stop`` flushed and measured — it sends ``kbench_result``: every
  user's whole HDR histograms and per-second series, in the shape of kbench's own worker results.
* **coordinator** (``MasterRunner`` or ``LocalRunner``): reads ``--kbench-plan`` at ``init``, fixes the
  consumer users' count, sets the common start ``t0`` at ``test_start`` and enforces the run time itself:
  warm-up + duration, then producers flush (bounded), consumers drain (bounded), ``runner.stop()``; at
  ``test_stop`` it waits (bounded) for every worker's ``kbench_result``, merges the histograms exactly
  and writes ``plan.results_path``, then quits Locust (and stops its web UI).
"""

from __future__ import annotations

import logging
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import gevent
from locust.runners import MasterRunner, WorkerRunner

from bench.drivers.results import ConsumerResult, ProducerResult, Role
from bench.locust.clients import ConsumerDriver, ProducerDriver, Window
from bench.locust.plan import Collected, Plan, UserReport, WorkerReport, merge_worker_reports, rebase_result
from bench.locust.users import KafkaConsumerUser
from bench.results.store import write_json_atomic

__all__ = ["Coordinator", "WorkerState", "install"]

log = logging.getLogger("kbench.locust")

PROGRESS_S = 0.5
MSG_PROGRESS = "kbench_progress"
MSG_RESULT = "kbench_result"


class WorkerState:
    """One Locust process's users, clients and results (attached to the environment as ``kbench_worker``)."""

    def __init__(self, environment: Any, plan: Plan, window: Window) -> None:
        self.environment, self.plan, self.window = environment, plan, window
        self.fire = environment.events.request.fire
        runner = environment.runner
        self.worker_index = int(getattr(runner, "worker_index", 0) or 0)
        self.producers: list[ProducerDriver] = []
        self.consumers: list[ConsumerDriver] = []
        self.results: list[UserReport] = []
        self.errors: list[str] = []
        self.reported = False
        self._progress: gevent.Greenlet | None = None

    def new_producer(self) -> ProducerDriver:
        local = len(self.producers)
        producer_id = (self.worker_index * 256 + local) & 0xFFFF
        # schedule slots as dense as the consumers' indices (users are spread round-robin over workers)
        slot = (local * max(1, self.plan.workers) + self.worker_index) % max(1, self.plan.producer_users)
        try:
            driver = ProducerDriver(self.plan, self.window, producer_id, self.fire, seed=1000 + producer_id,
                                    slot=slot)
        except Exception as exc:  # reported with the results; the user stops
            self.errors.append(f"producer {producer_id}: {type(exc).__name__}: {exc}")
            raise
        self.producers.append(driver)
        return driver

    def new_consumer(self) -> ConsumerDriver:
        # consumers are spread round-robin over workers: this gives dense global indices 0..C-1
        index = len(self.consumers) * max(1, self.plan.workers) + self.worker_index
        group = self.plan.group_id(index % max(1, self.plan.consumer_groups))
        try:
            driver = ConsumerDriver(self.plan, self.window, group, self.fire)
        except Exception as exc:  # reported with the results; the user stops
            self.errors.append(f"consumer {index}: {type(exc).__name__}: {exc}")
            raise
        self.consumers.append(driver)
        return driver

    def finish(self, driver: ProducerDriver | ConsumerDriver) -> None:
        """A user stops: measure its client (flushed and closed) into the worker's results."""
        if isinstance(driver, ProducerDriver):
            self._finish("producer", driver.producer_id, lambda: dict(driver.result(stopped=True)))
        else:
            self._finish("consumer", self.consumers.index(driver), lambda: dict(driver.result()))

    def _finish(self, role: Role, index: int, measure: Callable[[], dict[str, Any]]) -> None:
        try:
            result = measure()
        except Exception as exc:  # kept as a failed result: the cell is marked incomplete
            self.errors.append(f"{role} {index}: {type(exc).__name__}: {exc}")
            log.error("kbench %s %s failed at stop:\n%s", role, index, traceback.format_exc())
            result = {"failed": f"{type(exc).__name__}: {exc}"}
        if "failed" not in result:
            result = rebase_result(result, self.window.t_start_ns)
        self.results.append({"role": role, "index": index, "worker": self.worker_index,
                             "result": cast("ProducerResult | ConsumerResult", result)})

    def progress(self) -> dict[str, Any]:
        received: dict[str, int] = {}
        for c in self.consumers:
            received[c.group] = received.get(c.group, 0) + c.received_total
        return {"producers": len(self.producers), "producers_done": sum(p.done for p in self.producers),
                "acked": sum(p.acked_total for p in self.producers), "received": received}

    def start_progress(self) -> None:
        def loop() -> None:
            while True:
                gevent.sleep(PROGRESS_S)
                self.environment.runner.send_message(MSG_PROGRESS, self.progress())

        self._progress = gevent.spawn(loop)

    def report(self) -> WorkerReport:
        if self._progress is not None:
            self._progress.kill(block=False)
        self.reported = True
        return {"worker_index": self.worker_index, "users": self.results, "errors": self.errors,
                "progress": self.progress(), "anchor_ns": self.window.anchor_ns}


class Coordinator:
    """Run control and result collection on the master (attached to the environment as ``kbench_coordinator``)."""

    def __init__(self, environment: Any, plan: Plan) -> None:
        self.environment, self.plan = environment, plan
        self.progress: dict[str, dict[str, Any]] = {}
        self.reports: dict[str, WorkerReport] = {}
        self.t0_wall_ns: int | None = None
        self.started_mono: float | None = None
        self.phase = "waiting"
        self.end_reason: str | None = None
        self._control: gevent.Greenlet | None = None
        self._finishing = False

    # -- messages from workers ----------------------------------------------------------------------
    def on_progress(self, environment: Any, msg: Any, **kw: Any) -> None:
        self.progress[str(msg.node_id)] = msg.data

    def on_result(self, environment: Any, msg: Any, **kw: Any) -> None:
        self.reports[str(msg.node_id)] = cast(WorkerReport, msg.data)

    # -- run control ---------------------------------------------------------------------------------
    def start(self) -> None:
        """At ``test_start``: fix the common start (forwarded to workers in the spawn message) and time the run."""
        if self.t0_wall_ns is not None:
            return
        self.t0_wall_ns = time.time_ns() + int(self.plan.start_delay_s * 1e9)
        self.started_mono = time.monotonic()
        self.environment.parsed_options.kbench_t0_wall_ns = self.t0_wall_ns
        if self.plan.started_path:   # the kbench process waits for it to emit its load-started event
            write_json_atomic(Path(self.plan.started_path), {"t0_wall_ns": self.t0_wall_ns})
        self.phase = "running"
        self._control = gevent.spawn(self._run_control)

    def _producers_done(self) -> bool:
        expected = int(self.environment.runner.target_user_classes_count.get("KafkaProducerUser", 0))
        reports = list(self.progress.values())
        return sum(p["producers"] for p in reports) >= expected and \
            all(p["producers_done"] >= p["producers"] for p in reports)

    def _drained(self) -> bool:
        if not self.plan.consumer_users:
            return True
        acked = sum(p["acked"] for p in self.progress.values())
        received: dict[str, int] = {}
        for p in self.progress.values():
            for g, n in p["received"].items():
                received[g] = received.get(g, 0) + n
        groups = [self.plan.group_id(g) for g in range(self.plan.consumer_groups)]
        return all(received.get(g, 0) >= acked for g in groups)

    def _wait(self, cond: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.1)
        return True

    def _run_control(self) -> None:
        assert self.t0_wall_ns is not None
        end_wall = self.t0_wall_ns + int((self.plan.warmup_s + self.plan.duration_s) * 1e9)
        while (left := (end_wall - time.time_ns()) / 1e9) > 0:
            gevent.sleep(min(left, 0.5))
        self.phase = "flushing"
        gevent.sleep(PROGRESS_S * 2)  # let every worker's progress catch up with the window's end
        if not self._wait(self._producers_done, self.plan.flush_timeout_s):
            log.warning("kbench: producers did not finish flushing in %.0f s", self.plan.flush_timeout_s)
        self.phase = "draining"
        if not self._wait(self._drained, self.plan.drain_timeout_s):
            log.warning("kbench: consumers did not catch up in %.0f s", self.plan.drain_timeout_s)
        self.end_reason = "completed"
        self.phase = "stopping"
        self.environment.runner.stop()

    def request_stop(self) -> None:
        """SIGUSR1 from ``kbench`` (its Ctrl-C): end the test gracefully, or quit if none ran."""
        if self.t0_wall_ns is None:
            gevent.spawn(self._quit)
        elif not self._finishing:
            self.end_reason = self.end_reason or "stopped early by kbench (Ctrl-C)"
            gevent.spawn(self.environment.runner.stop)

    def _quit(self) -> None:
        self.environment.runner.quit()
        web_ui = getattr(self.environment, "web_ui", None)
        if web_ui is not None:
            web_ui.stop()

    def on_test_stop(self) -> None:
        if self._finishing:
            return
        self._finishing = True
        if self.end_reason is None:
            self.end_reason = "stopped before the end of the run (web UI stop or Ctrl-C)"
        if self._control is not None and not self._control.dead and self._control is not gevent.getcurrent():
            self._control.kill(block=False)
        gevent.spawn(self._collect_and_quit)

    def _expected_workers(self) -> set[str]:
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            return {str(c.id) for c in runner.clients.all}
        return {"local"}

    def _collect_and_quit(self) -> None:
        self.phase = "collecting"
        self._wait(lambda: self._expected_workers() <= set(self.reports), self.plan.collect_timeout_s)
        try:
            self.write()
        finally:
            self._quit()

    def write(self) -> None:
        missing = sorted(self._expected_workers() - set(self.reports))
        merge = merge_worker_reports(self.reports)
        doc: Collected = {
            "group_prefix": self.plan.group_prefix, "t0_wall_ns": self.t0_wall_ns, "end_reason": self.end_reason,
            "elapsed_s": time.monotonic() - self.started_mono if self.started_mono else 0.0,
            "missing_workers": missing, "reports": self.reports, "merge": merge,
            "target_user_classes_count": dict(self.environment.runner.target_user_classes_count)}
        if self.plan.results_path:
            write_json_atomic(Path(self.plan.results_path), doc)
        merged = merge["merged"]
        log.info("kbench: %d worker report(s) merged; publish count %s, e2e count %s", len(self.reports),
                 merged.get("publish", {}).get("count"), merged.get("e2e", {}).get("count"))


# -- event listeners ------------------------------------------------------------------------------------
def _on_parser(parser: Any, **kw: Any) -> None:
    parser.add_argument("--kbench-plan", default="", include_in_web_ui=False,
                        help="kbench plan (JSON) written by `kbench locust`; master / local runs only")


def _on_init(environment: Any, **kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner) or runner is None:
        return
    opts = environment.parsed_options
    path = getattr(opts, "kbench_plan", "") if opts is not None else ""
    if not path:
        log.error("kbench: no --kbench-plan given; the Kafka users will not start (run `kbench locust`)")
        return
    text = Path(path).read_text()
    plan = Plan.from_json(text)
    opts.kbench_plan_doc = text  # forwarded to every worker with the spawn message
    KafkaConsumerUser.fixed_count = plan.consumer_users
    coordinator = Coordinator(environment, plan)
    environment.kbench_coordinator = coordinator
    runner.register_message(MSG_PROGRESS, coordinator.on_progress)
    runner.register_message(MSG_RESULT, coordinator.on_result)
    gevent.signal_handler(signal.SIGUSR1, coordinator.request_stop)


def _on_test_start(environment: Any, **kw: Any) -> None:
    coordinator: Coordinator | None = getattr(environment, "kbench_coordinator", None)
    if coordinator is not None:
        coordinator.start()
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return
    opts = environment.parsed_options
    text, t0 = getattr(opts, "kbench_plan_doc", None), getattr(opts, "kbench_t0_wall_ns", None)
    if not text or not t0:
        log.error("kbench: the master sent no plan; is it a `kbench locust` master?")
        return
    plan = Plan.from_json(text)
    state = WorkerState(environment, plan, Window.from_wall(int(t0), plan.warmup_s, plan.duration_s))
    environment.kbench_worker = state
    state.start_progress()


def _on_test_stop(environment: Any, **kw: Any) -> None:
    state: WorkerState | None = getattr(environment, "kbench_worker", None)
    runner = environment.runner
    if state is not None and not state.reported:
        runner.send_message(MSG_RESULT, state.report())
    coordinator: Coordinator | None = getattr(environment, "kbench_coordinator", None)
    if coordinator is not None:
        coordinator.on_test_stop()


def install(events: Any) -> None:
    """Add kbench's listeners to a Locust ``Events`` (the locustfile passes ``locust.events``)."""
    events.init_command_line_parser.add_listener(_on_parser)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(_on_test_stop)

