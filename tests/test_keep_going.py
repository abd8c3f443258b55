"""A failed cell does not stop the run (issue 13): which failures are cell-local and which stop the run,
what the result, the thresholds, `kbench report` and `kbench compare` say about a failed cell.

Pure: a stand-in driver (the seam of bench/drivers/base.py) whose cells complete with a real producer
result of the open-loop core, or raise CellAborted as the process driver does; the scenario names its
topic, so no broker is needed (the broker check after a failed cell is replaced where the test says so).
The same path against a real broker and a real dying driver process: tests/test_clients.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bench.drivers.base import CellAborted, CellJob, CellRun, DriverEnvironment
from bench.errors import BrokerUnreachableError, RunAborted
from bench.results.model import RunDocument
from bench.results.store import load_result
from bench.run.events import CellFailed, RunEvent, RunEvents
from bench.run.execute import RunOptions, RunOutcome, execute
from bench.scenario.model import load_scenario_text

THREE = """\
name: three
topic: {name: fixed-topic, partitions: 1}
matrix: {workload.message_size: [100, 200, 300]}
workload: {producers: 1, consumer_groups: 0, rate: 1000, warmup: 100ms, duration: 200ms}
thresholds:
  - {metric: errors.total, max: 0}
"""


def _producer_result() -> Any:
    from tests.test_load_core import FakeClock, _core, _run

    clock = FakeClock()
    core, _client = _core(clock, rate=500.0)
    _run(core, clock, step_ns=0)
    return core.result(stopped=True)


class _Driver:
    """Cell i raises ``plan[i]`` (with a partial producer result) or completes."""

    name = "stand-in"

    def __init__(self, plan: dict[int, CellAborted]) -> None:
        self.plan = plan
        self.ran: list[int] = []

    def environment(self) -> DriverEnvironment:
        return DriverEnvironment(clock="stand-in")

    def run_cell(self, job: CellJob, events: RunEvents) -> CellRun:
        self.ran.append(job.cell.index)
        events.set_phase("consumers joining")
        run = CellRun(results={"producer": {0: _producer_result()}, "consumer": {}})
        abort = self.plan.get(job.cell.index)
        if abort is not None:
            abort.run = run
            raise abort
        return run


class _Seen:
    def __init__(self) -> None:
        self.failed: list[CellFailed] = []

    def on_event(self, event: RunEvent) -> None:
        if isinstance(event, CellFailed):
            self.failed.append(event)


def _execute(tmp_path: Path, plan: dict[int, CellAborted], *, fail_fast: bool = False, alive: bool = True,
             seen: _Seen | None = None) -> tuple[_Driver, RunOutcome]:
    driver = _Driver(plan)
    opts = RunOptions(bootstrap="127.0.0.1:1", broker={"kind": "external"}, out=tmp_path / "run", fail_fast=fail_fast)
    events = RunEvents(observers=[seen or _Seen()], broker_alive=lambda: alive)
    return driver, execute(load_scenario_text(THREE), opts, driver, events)


@pytest.fixture
def broker_answers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The broker check after a failed cell answers (records the bootstrap it was asked)."""
    asked: list[str] = []
    monkeypatch.setattr("bench.brokers.probe_cluster", lambda bootstrap, **_kw: asked.append(bootstrap) or {})
    return asked


def test_a_failed_cell_is_kept_and_the_run_goes_on(tmp_path: Path, broker_answers: list[str]) -> None:
    died = "franz-go driver 0 died (exit code 3); its stderr ends with:\nlost the connection"
    seen = _Seen()
    driver, outcome = _execute(tmp_path, {1: CellAborted(died)}, seen=seen)
    assert driver.ran == [0, 1, 2] and broker_answers == ["127.0.0.1:1"]
    assert [(e.index, e.stops_run) for e in seen.failed] == [(1, False)]     # the progress display says it
    doc = load_result(outcome.run_dir)
    assert not outcome.complete and doc["complete"] is False
    assert [c["status"] for c in doc["cells"]] == ["ok", "failed", "ok"]
    failed = doc["cells"][1]
    assert failed["complete"] is False and "lost the connection" in failed["incomplete_reason"]
    assert failed["failure"] == {"reason": died, "phase": "consumers joining", "stops_run": False}
    assert failed["produce"]["messages"] > 0                     # the partial measurements are kept
    assert doc["failed_cells"] == [{"index": 1, "label": failed["label"], "reason": died}]
    assert doc["incomplete_reason"] == ("1 of 3 cell(s) failed (message_size=200: franz-go driver 0 died "
                                        "(exit code 3); its stderr ends with: lost the connection)")
    assert doc["cells"][0]["failure"] is None and doc["cells"][0]["complete"] is True


def test_the_gates_fail_on_a_failed_cell(tmp_path: Path, broker_answers: list[str]) -> None:
    from rich.console import Console

    from bench.cli.summary import print_summary
    from bench.report.compare import compare_results
    from bench.report.tables import markdown_summary
    from bench.run.thresholds import evaluate, verdicts

    _driver, outcome = _execute(tmp_path, {1: CellAborted("consumer never joined")})
    doc = outcome.document
    scenario = load_scenario_text(THREE)
    (miss,) = evaluate(doc["cells"], scenario.thresholds)       # errors.total = 0 in the partial cell: still a miss
    assert miss.failed and "cell FAILED" in str(miss) and miss.cell == doc["cells"][1]["label"]
    assert [v["passed"] for v in verdicts(doc["cells"], scenario.thresholds)] == [True, False, True]
    console = Console(record=True, width=200)
    print_summary(doc, console)
    text = console.export_text()
    assert "│ message_size=200 (FAILED) │             – │" in text
    assert "failed: message_size=200: consumer never joined" in text
    md = markdown_summary(doc)
    assert "| message_size=200 (FAILED) | FAILED | – |" in md
    assert "✗ **message_size=200** FAILED (consumers joining): consumer never joined" in md
    good: RunDocument = copy.deepcopy(doc)
    for cell in good["cells"]:
        cell["status"], cell["failure"], cell["complete"] = "ok", None, True
    assert compare_results(good, doc, allow_inconclusive=True).exit_code() == 1     # failed in the current: gate fails
    assert compare_results(good, good, allow_inconclusive=True).exit_code() == 0
    back = compare_results(doc, good, allow_inconclusive=True)                      # failed in the baseline: unusable
    assert back.exit_code() == 2 and any("status" in d.field for d in back.incomparable)


def test_fail_fast_stops_at_the_first_failed_cell(tmp_path: Path, broker_answers: list[str]) -> None:
    with pytest.raises(RunAborted, match=r"--fail-fast.*exit code 3") as info:
        _execute(tmp_path, {0: CellAborted("driver 0 died (exit code 3)")}, fail_fast=True)
    assert info.value.exit_code == 1 and broker_answers == []
    doc = load_result(tmp_path / "run")
    assert [c["status"] for c in doc["cells"]] == ["failed"] and len(doc["failed_cells"]) == 1


@pytest.mark.parametrize(("abort", "alive", "words", "code"), [
    (CellAborted("the embedded broker died mid-run", stops_run=True), False, "broker died", 1),
    (CellAborted("interrupted (SIGINT)", interrupted=True), True, "SIGINT", 130),
    (CellAborted("timed out after 60 s waiting for consumers to join their group"), False,
     "join their group; then the embedded broker died", 1),
])
def test_what_stops_the_run(tmp_path: Path, broker_answers: list[str], abort: CellAborted, alive: bool,
                            words: str, code: int) -> None:
    with pytest.raises(RunAborted, match=words) as info:
        _execute(tmp_path, {0: abort}, alive=alive)
    assert info.value.exit_code == code
    doc = load_result(tmp_path / "run")
    (cell,) = doc["cells"]
    assert cell["status"] == ("incomplete" if code == 130 else "failed") and doc["complete"] is False
    assert len(doc["failed_cells"]) == (0 if code == 130 else 1)


def test_a_broker_that_stops_answering_after_a_failed_cell_stops_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def silent(bootstrap: str, **_kw: Any) -> dict[str, object]:
        raise BrokerUnreachableError(f"broker at {bootstrap} did not answer a metadata request within 8 s")

    monkeypatch.setattr("bench.brokers.probe_cluster", silent)
    with pytest.raises(RunAborted, match=r"consumers to join.*then the broker stopped answering"):
        _execute(tmp_path, {0: CellAborted("timed out after 60 s waiting for consumers to join their group")})
    doc = load_result(tmp_path / "run")
    assert [c["status"] for c in doc["cells"]] == ["failed"] and doc["cells"][0]["failure"]["stops_run"] is True


def test_a_failed_verification_fails_the_command() -> None:
    from types import SimpleNamespace

    from bench.cli.options import report_verification

    def outcome(*cells: dict[str, Any]) -> Any:
        return SimpleNamespace(document={"cells": list(cells)})

    ok = {"label": "a", "verification": {"ok": True}}
    bad = {"label": "b", "verification": {"ok": False, "counts": {"lost": 3}}}
    assert report_verification(outcome(ok, {"label": "c"})) == 0       # no --verify: nothing to judge
    assert report_verification(outcome(ok, bad)) == 1
