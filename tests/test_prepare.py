"""No side effects before validation (issue 12): `kbench run`, `search` and `locust` each exit 2 with a
one-line error, before any broker or process starts, on a bad --out, a bad faults: section, a bad search:
section and an unknown threshold metric. Every case runs the real CLI with ``--broker kafka``, so a broker
would be started if validation came late; KBENCH_HOME (broker state) and the reports dir must stay empty.
Also the unit checks of :mod:`bench.run.prepare` and of the threshold verdicts kept in the result."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.errors import ConfigError, RunAborted, ScenarioError
from bench.run.prepare import PrepareRequest, check_out_dir, prepare
from bench.run.thresholds import verdicts
from bench.scenario.model import Threshold
from tests.conftest import run_kbench

GOOD = """\
name: prep
topic: {partitions: 3, replication_factor: 1}
workload: {rate: 100, warmup: 1s, duration: 5s}
search: {p99_ms: 50, step_duration: 5s}
thresholds:
  - {metric: errors.total, max: 0}
"""
COMMANDS = ("run", "search", "locust")


def _scenario(tmp_path: Path, text: str = GOOD) -> Path:
    path = tmp_path / "prep.yaml"
    path.write_text(text)
    return path


def _out_nonempty(tmp: Path) -> tuple[list[str], str]:
    d = tmp / "full"
    d.mkdir()
    (d / "result.json").write_text("{}")
    return ["--out", str(d)], "not empty"


def _out_file(tmp: Path) -> tuple[list[str], str]:
    f = tmp / "a-file"
    f.write_text("x")
    return ["--out", str(f)], "is a file"


def _out_parent_ro(tmp: Path) -> tuple[list[str], str]:
    if os.geteuid() == 0:  # root writes to a 0o555 directory; not to procfs
        if os.access("/proc/sys", os.W_OK):
            pytest.skip("running as root with a writable /proc/sys: no unwritable directory to try")
        return ["--out", "/proc/sys/kbench-run"], "parent directory /proc/sys is not writable"
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ["--out", str(ro / "run")], "not writable"


def _bad_faults(tmp: Path) -> tuple[list[str], str]:
    return ["--set", "faults=[{action: explode, node: 1, at: 1s}]"], "faults[0].action"


def _bad_search(tmp: Path) -> tuple[list[str], str]:
    return ["--set", "search.p99_ms=-5"], "search.p99_ms"


def _bad_metric(tmp: Path) -> tuple[list[str], str]:
    return ["--set", "thresholds=[{metric: produce.bogus, max: 1}]"], "unknown metric 'produce.bogus'"


BAD_INPUTS: dict[str, Callable[[Path], tuple[list[str], str]]] = {
    "out-not-empty": _out_nonempty, "out-is-file": _out_file, "out-parent-not-writable": _out_parent_ro,
    "bad-faults": _bad_faults, "bad-search": _bad_search, "unknown-metric": _bad_metric,
}


@pytest.mark.parametrize("bad", list(BAD_INPUTS))
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_exits_2_before_any_side_effect(tmp_path: Path, command: str, bad: str) -> None:
    scenario = _scenario(tmp_path)
    home, reports = tmp_path / "home", tmp_path / "reports"
    home.mkdir()
    extra, expected = BAD_INPUTS[bad](tmp_path)
    r = run_kbench(command, str(scenario), "--broker", "kafka", "--reports-dir", str(reports), *extra,
                   env={"KBENCH_HOME": str(home)}, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kbench: error:"), r.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    if bad in ("bad-faults", "bad-search", "unknown-metric"):
        assert "prep.yaml" in lines[0], lines[0]     # names the file
    assert not (home / "brokers").exists() or not any((home / "brokers").iterdir())
    assert not any(home.iterdir()), list(home.iterdir())
    assert not reports.exists()
    if bad == "out-parent-not-writable" and (tmp_path / "ro").exists():
        (tmp_path / "ro").chmod(0o755)
        assert not (tmp_path / "ro" / "run").exists()


@pytest.mark.parametrize("command", ["search", "locust"])
def test_valid_faults_are_rejected_outside_run(tmp_path: Path, command: str) -> None:
    scenario = _scenario(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    r = run_kbench(command, str(scenario), "--broker", "kafka", "--reports-dir", str(tmp_path / "reports"),
                   "--set", "faults=[{action: kill, node: 1, at: 2s}]", env={"KBENCH_HOME": str(home)}, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "faults are only supported by `kbench run`" in r.stderr and "prep.yaml" in r.stderr
    assert not any(home.iterdir())


# -------------------------------------------------------------------------------------- unit: prepare
def _req(tmp_path: Path, command: str = "run", **kw: object) -> PrepareRequest:
    return PrepareRequest(command=command, scenario_path=str(_scenario(tmp_path)),  # type: ignore[arg-type]
                          reports_dir=str(tmp_path / "reports"), **kw)  # type: ignore[arg-type]


def test_prepare_returns_everything_and_creates_nothing(tmp_path: Path) -> None:
    before = set(tmp_path.iterdir())
    p = prepare(_req(tmp_path, "search", out=str(tmp_path / "new" / "run"), client_config={"a": "b"}))
    assert p.search_spec is not None and p.search_spec.p99_ms == 50 and p.search_cell is not None
    assert p.fault_plan is None and p.out == tmp_path / "new" / "run" and dict(p.client_config) == {"a": "b"}
    assert set(tmp_path.iterdir()) == before | {tmp_path / "prep.yaml"}
    run = prepare(_req(tmp_path, "run", repeat=3))
    assert run.scenario.repeat == 3 and run.search_cell is None and run.search_spec is not None


def test_prepare_run_checks_the_search_section_but_not_the_cell(tmp_path: Path) -> None:
    # a backlog cell cannot be searched, but `kbench run` of it is fine as long as search: itself is valid
    text = GOOD.replace("duration: 5s}\n", "duration: 5s, backlog: {messages: 100}}\n", 1)
    path = _scenario(tmp_path, text)
    prepare(PrepareRequest(command="run", scenario_path=str(path), reports_dir=str(tmp_path)))
    with pytest.raises(ScenarioError, match="backlog"):
        prepare(PrepareRequest(command="search", scenario_path=str(path), reports_dir=str(tmp_path)))


def test_prepare_run_faults_need_an_embedded_broker(tmp_path: Path) -> None:
    req = _req(tmp_path, "run", overrides=("faults=[{action: kill, node: 1, at: 2s}]",))
    assert prepare(req).fault_plan is not None
    with pytest.raises(ConfigError, match="external --bootstrap cannot be faulted"):
        prepare(_req(tmp_path, "run", overrides=req.overrides, bootstrap="127.0.0.1:9092"))


def test_unknown_metric_names_file_line_and_key(tmp_path: Path) -> None:
    path = _scenario(tmp_path, GOOD.replace("errors.total", "errors.bogus"))
    with pytest.raises(ScenarioError) as info:
        prepare(PrepareRequest(command="run", scenario_path=str(path), reports_dir=str(tmp_path)))
    assert info.value.key == "thresholds[0].metric" and info.value.line == 6, str(info.value)


def test_check_out_dir(tmp_path: Path) -> None:
    assert check_out_dir(None) is None
    assert check_out_dir(str(tmp_path)) == tmp_path                   # empty dir: fine
    assert check_out_dir(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_out_dir(str(tmp_path / "f" / "sub"))
    with pytest.raises(ConfigError, match="expected a directory path"):
        check_out_dir("")


def test_check_out_dir_unwritable_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a non-root user on a 0o555 directory
    with pytest.raises(ConfigError, match=f"parent directory {tmp_path} is not writable"):
        check_out_dir(str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="is not writable"):
        check_out_dir(str(tmp_path))


def test_run_aborted_exit_code_comes_from_the_flag_not_the_text() -> None:
    assert RunAborted("interrupted (SIGINT)").exit_code == 1
    assert RunAborted("the broker died", interrupted=True).exit_code == 130
    assert RunAborted("x", interrupted=True).interrupted


# ------------------------------------------------------------------------------- unit: verdicts
def test_threshold_verdicts_shape() -> None:
    cells = [{"label": "a", "errors": {"total": 0}, "produce": {"msgs_per_s": 900.0}},
             {"label": "b", "errors": {"total": 3}, "produce": {}}]
    th = [Threshold("errors.total", max=0, min=None), Threshold("produce.msgs_per_s", max=2000, min=1000)]
    got = verdicts(cells, th)
    assert got == [
        {"metric": "errors.total", "max": 0, "cell": "a", "value": 0.0, "passed": True},
        {"metric": "produce.msgs_per_s", "max": 2000, "cell": "a", "value": 900.0, "passed": True},
        {"metric": "produce.msgs_per_s", "min": 1000, "cell": "a", "value": 900.0, "passed": False},
        {"metric": "errors.total", "max": 0, "cell": "b", "value": 3.0, "passed": False},
        {"metric": "produce.msgs_per_s", "max": 2000, "cell": "b", "value": None, "passed": False},
        {"metric": "produce.msgs_per_s", "min": 1000, "cell": "b", "value": None, "passed": False},
    ]
    assert verdicts(cells, []) == []


def test_report_thresholds_keeps_the_verdicts_in_the_result(tmp_path: Path) -> None:
    import json

    from bench.cli.options import report_thresholds
    from bench.results.store import write_result
    from bench.run.execute import RunOutcome

    doc = {"kind": "kbench.run", "cells": [{"label": "a", "errors": {"total": 2}}]}
    write_result(tmp_path, doc)
    th = [Threshold("errors.total", max=0, min=None)]
    assert report_thresholds(RunOutcome(tmp_path, doc, True), th) == 1
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["thresholds"] == [{"metric": "errors.total", "max": 0, "cell": "a", "value": 2.0, "passed": False}]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(("args", "text"), [
    (("--bootstrap", "127.0.0.1:1", "--runtime", "docker"), "cannot apply to an external --bootstrap"),
    (("--broker", "kafka", "--runtime", "docker", "--netns"), "the docker runtime cannot (drop --runtime)"),
])
def test_runtime_refusals_exit_2_before_anything_starts(tmp_path: Path, args: tuple[str, ...], text: str) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nworkload: {message_size: 100, rate: 100, warmup: 0s, duration: 2s}\n")
    home, reports = tmp_path / "home", tmp_path / "r"
    proc = run_kbench("run", str(scenario), *args, "--reports-dir", str(reports), env={"KBENCH_HOME": str(home)})
    assert proc.returncode == 2 and text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not reports.exists() and not (home / "brokers").exists()


def test_transactions_are_refused_by_locust_only(tmp_path: Path) -> None:
    over = ["workload.transactions={messages: 10, abort_ratio: 0.2}"]
    p = prepare(_req(tmp_path, "run", overrides=over))
    assert p.scenario.cells[0].workload.transactions is not None
    with pytest.raises(ScenarioError, match=r"workload\.transactions: kbench locust does not run transactional"):
        prepare(_req(tmp_path, "locust", overrides=over))
