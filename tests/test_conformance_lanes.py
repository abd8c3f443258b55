"""Client lanes of ``kbench conformance --jobs N`` (conformance/lanes.py, runner._run_lanes), offline: lane
planning from arguments, the merge of the lanes' reports, and the pool on a synthetic suite (no broker)."""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bench.errors import RunAborted
from conformance.lanes import BROKER_LANE, EXCLUSIVE_LANE, Lane, merge_docs, merge_timings, plan_lanes, split_args
from conformance.report import CheckResult, build_doc, load_report
from conformance.timings import Timings


# ------------------------------------------------------------------ planning
def test_no_lanes_without_jobs_or_clients() -> None:
    assert plan_lanes(["--client", "java"], 1) is None
    assert plan_lanes(["-k", "P1"], 4) is None          # no through-client checks: nothing beside the broker lane


def test_split_args_takes_out_marks_and_clients() -> None:
    rest, mark, clients = split_args(["-k", "P1 or C1", "--client", "java,sarama", "-m", "not slow",
                                      "--clients=franz-go", "--client", "java", "-x", "-mfoo"])
    assert rest == ["-k", "P1 or C1", "-x"]
    assert mark == "foo"                                 # the last -m wins, as in pytest
    assert clients == ["java", "sarama", "franz-go"]


def test_plan_lanes_marks_clients_and_order() -> None:
    lanes = plan_lanes(["-k", "C1 or P1", "--client", "librdkafka,sarama", "--client", "java",
                        "--broker-attach", "b1"], 3)
    assert lanes is not None
    by = {lane.name: lane for lane in lanes}
    assert [lane.name for lane in lanes] == [BROKER_LANE, "java", "sarama", "librdkafka", EXCLUSIVE_LANE]
    assert by[BROKER_LANE].args == ("-k", "C1 or P1", "--broker-attach", "b1",
                                    "-m", "not through_client and not exclusive")
    assert by["sarama"].args == ("-k", "C1 or P1", "--broker-attach", "b1",
                                 "-m", "through_client and not exclusive", "--client", "sarama")
    assert by["sarama"].clients == ("sarama",)
    ex = by[EXCLUSIVE_LANE]
    assert ex.exclusive and ex.clients == ("librdkafka", "sarama", "java")
    assert ex.args[-8:] == ("-m", "exclusive", "--client", "librdkafka", "--client", "sarama", "--client", "java")
    # the order of a sequential run: the broker checks, then the clients in --client order, exclusive last
    assert sorted(lanes, key=lambda x: x.rank) == [by[n] for n in (BROKER_LANE, "librdkafka", "sarama", "java",
                                                                    EXCLUSIVE_LANE)]


def test_plan_lanes_ands_a_user_mark() -> None:
    lanes = plan_lanes(["-m", "through_client or slow", "--client", "java"], 2)
    assert lanes is not None
    marks = {lane.name: lane.args[lane.args.index("-m") + 1] for lane in lanes}
    assert marks == {BROKER_LANE: "(through_client or slow) and (not through_client and not exclusive)",
                     "java": "(through_client or slow) and (through_client and not exclusive)",
                     EXCLUSIVE_LANE: "(through_client or slow) and (exclusive)"}


# ------------------------------------------------------------------ merging
def _res(cid: str, verdict: str, client: str = "librdkafka", case: str = "") -> CheckResult:
    return CheckResult(id=cid, title=f"t {cid}", verdict=verdict, case=case, client=client,
                       nodeid=f"test_{cid.lower()}[{client}-{case}]")


def _lane_doc(checks: list[CheckResult], impl: str = "kafka", complete: bool = True) -> dict[str, Any]:
    return build_doc(checks, run_id="r-" + impl, started_at="t0", finished_at="t1", wall_seconds=9.0,
                     complete=complete, exit_status=0, broker={"bootstrap": "h:1", "implementation": impl},
                     client={"librdkafka": "2"}, host={"cpus": 2}, timings={})


def test_merge_docs_is_the_sequential_report() -> None:
    broker_checks = [_res("P1", "PASS"), _res("G3", "FAIL"), _res("A2", "N/A")]
    java = [_res("C1", "PASS", "java"), _res("C12", "ERROR", "java", "eager")]
    sarama = [_res("C1", "RECORD", "sarama"), _res("C12", "PASS", "sarama", "eager")]
    exclusive = [_res("O8", "PASS")]
    lanes = plan_lanes(["--client", "sarama,java"], 2)
    assert lanes is not None
    by = {lane.name: lane for lane in lanes}
    parts: list[tuple[Lane, dict[str, Any] | None, list[dict[str, Any]]]] = []
    for name, checks in ((EXCLUSIVE_LANE, exclusive), ("java", java), (BROKER_LANE, broker_checks),
                         ("sarama", sarama)):           # the order lanes finish in does not matter
        doc = _lane_doc(checks)
        parts.append((by[name], doc, doc["checks"]))
    info = [{"name": lane.name, "clients": list(lane.clients), "wall_s": 1.0, "exit": 0} for lane in lanes]
    merged = merge_docs(parts, info, started_at="s", finished_at="f", wall_seconds=12.5, complete=True,
                        exit_status=1)
    sequential = build_doc(broker_checks + exclusive + sarama + java, run_id="x")
    assert [(c["id"], c["client"]) for c in merged["checks"]] == [(c["id"], c["client"])
                                                                  for c in sequential["checks"]]
    assert [(c["id"], c["client"]) for c in merged["checks"]][-4:] == [
        ("C1", "sarama"), ("C1", "java"), ("C12", "sarama"), ("C12", "java")]
    assert merged["counts"] == {"PASS": 4, "FAIL": 1, "ERROR": 1, "N/A": 1, "RECORD": 1}
    assert merged["wall_seconds"] == 12.5 and merged["lanes"] == info
    assert merged["broker"]["implementation"] == "kafka" and merged["host"] == {"cpus": 2}


def test_merge_docs_without_documents_uses_the_fallback_broker() -> None:
    lane = Lane("java", ("java",), ())
    merged = merge_docs([(lane, None, [json.loads(json.dumps(_res("C1", "PASS", "java").__dict__))])], [],
                        started_at="s", finished_at="f", wall_seconds=1.0, complete=False, exit_status=2,
                        fallback_broker={"bootstrap": "h:9"})
    assert merged["broker"] == {"bootstrap": "h:9"} and merged["complete"] is False
    assert merged["counts"]["PASS"] == 1


def test_merge_timings_adds_histograms() -> None:
    a, b = Timings(), Timings()
    for v in (100, 200, 300):
        a.record("commit", v)
    b.record("commit", 5000)
    b.record("join", 10)
    out, hists = merge_timings([a.summary(), b.summary(), {}])
    assert out["commit"]["count"] == 4 and out["commit"]["max_us"] >= 4990 and out["commit"]["min_us"] <= 100
    assert out["join"]["count"] == 1 and set(hists) == {"commit", "join"}


# ------------------------------------------------------------------ the pool, on a synthetic suite
SUITE = '''
import os, time
import pytest
from conformance.through_client import selected_clients


def pytest_generate_tests(metafunc):
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", selected_clients(metafunc.config), ids=str)


@pytest.mark.check("P1", "broker check")
def test_p1(check):
    time.sleep(float(os.environ.get("SYN_SLEEP", "0")))


@pytest.mark.check("O8", "restarts the broker")
@pytest.mark.exclusive
def test_o8(check):
    pass


@pytest.mark.check("C1", "through a client")
@pytest.mark.through_client
def test_c1(check, client):
    if client == os.environ.get("SYN_HANG_CLIENT"):
        time.sleep(120)
    check.record(client=client)
'''


def _suite(tmp_path: Path) -> Path:
    import conformance

    suite = tmp_path / "suite"
    suite.mkdir()
    conf_src = Path(conformance.__file__).parent / "conftest.py"
    (suite / "conftest.py").write_text(conf_src.read_text() + textwrap.dedent('''
        from bench.kafka.protocol import ApiRange, ApiVersionsResult

        @pytest.fixture(scope="session")
        def broker(pytestconfig):
            info = BrokerInfo(bootstrap="127.0.0.1:1", implementation="fake", version="0")
            info.api = ApiVersionsResult({18: ApiRange(18, "ApiVersions", 0, 3)}, 3)
            _plugin(pytestconfig).broker = info
            return info
    '''))
    (suite / "test_syn.py").write_text(SUITE)
    return suite


def test_lanes_run_and_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance import runner

    monkeypatch.setenv("SYN_SLEEP", "1.5")
    suite = _suite(tmp_path)
    args = ["-q", "-p", "no:faulthandler", "--client", "java,sarama"]
    lanes = plan_lanes(args, 3)
    assert lanes is not None
    out = tmp_path / "run"
    lines: list[str] = []
    t0 = time.monotonic()
    code = runner._run_lanes("127.0.0.1:1", None, out, args, lanes, 3, lines.append, suite=suite)
    assert code == 0, lines
    doc = load_report(out)
    assert [(c["id"], c["client"], c["verdict"]) for c in doc["checks"]] == [
        ("P1", "librdkafka", "PASS"), ("O8", "librdkafka", "PASS"),
        ("C1", "java", "RECORD"), ("C1", "sarama", "RECORD")]
    assert doc["counts"]["PASS"] == 2 and doc["counts"]["RECORD"] == 2 and doc["complete"] is True
    assert {x["name"]: x["exit"] for x in doc["lanes"]} == {"broker": 0, "java": 0, "sarama": 0, "exclusive": 0}
    assert doc["wall_seconds"] <= time.monotonic() - t0
    assert (out / "report.md").exists() and (out / "junit.xml").exists()
    for name in ("broker", "java", "sarama", "exclusive"):
        assert (out / "lanes" / name / "report.json").exists()
        assert (out / "lanes" / f"{name}.log").exists()
    run_ids = {load_report(out / "lanes" / n)["run_id"] for n in ("broker", "java", "sarama", "exclusive")}
    assert len(run_ids) == 4                              # each lane its own names
    assert any(line.startswith("report: ") for line in lines)
    with pytest.raises(RunAborted, match="not empty"):
        runner._run_lanes("127.0.0.1:1", None, out, args, lanes, 3, lines.append, suite=suite)


def test_a_lane_that_aborts_stops_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One lane's child dies outside a check (RunAborted): the hanging lane is stopped (SIGINT: its pytest
    ends INTERRUPTED and writes what it has), the exclusive lane never runs, the merged report is
    incomplete and the run raises RunAborted."""
    from conformance import runner

    real = runner._run_children

    def fake(bootstrap: Any, broker: Any, report_dir: Path, args: list[str], suite: Path,
             control: Any = None) -> int:
        if args[args.index("-m") + 1] == "through_client and not exclusive" and "sarama" in args:
            # abort once the java lane's hanging check has started (a fixed sleep was a race under load: the
            # java lane was stopped before its pytest ran, and its exit was 'aborted', not INTERRUPTED)
            progress = out / "lanes" / "java" / "progress.jsonl"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and '"start"' not in (progress.read_text() if progress.exists() else ""):
                time.sleep(0.05)
            raise RunAborted("the conformance process died (-9) outside a check")
        return real(bootstrap, broker, report_dir, args, suite, control)

    monkeypatch.setattr(runner, "_run_children", fake)
    monkeypatch.setattr("conformance.child.STOP_GRACE_S", 30.0)
    monkeypatch.setenv("SYN_HANG_CLIENT", "java")
    suite = _suite(tmp_path)
    args = ["-q", "-p", "no:faulthandler", "--client", "java,sarama"]
    lanes = plan_lanes(args, 3)
    assert lanes is not None
    out = tmp_path / "run"
    t0 = time.monotonic()
    with pytest.raises(RunAborted, match="lane sarama") as info:
        runner._run_lanes("127.0.0.1:1", None, out, args, lanes, 3, lambda s: None, suite=suite)
    assert time.monotonic() - t0 < 60 and not info.value.interrupted
    doc = load_report(out)
    assert doc["complete"] is False
    exits = {x["name"]: x["exit"] for x in doc["lanes"]}
    assert exits["exclusive"] == "not run" and exits["sarama"] == "aborted"
    assert exits["java"] == 2                              # pytest INTERRUPTED
    java = load_report(out / "lanes" / "java")
    assert java["complete"] is False
    ids = [c["id"] for c in doc["checks"]]      # the hanging C1@java never got a verdict
    assert set(ids) <= {"P1"} and (exits["broker"] != 0 or ids == ["P1"])


def test_ctrl_c_stops_the_lanes_and_keeps_their_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import _thread

    from conformance import runner

    monkeypatch.setenv("SYN_HANG_CLIENT", "sarama")
    suite = _suite(tmp_path)
    args = ["-q", "-p", "no:faulthandler", "--client", "java,sarama"]
    lanes = plan_lanes(args, 3)
    assert lanes is not None
    out = tmp_path / "run"
    timer = threading.Timer(6.0, _thread.interrupt_main)    # Ctrl-C while sarama's C1 hangs
    timer.start()
    try:
        with pytest.raises(RunAborted, match="interrupted") as info:
            runner._run_lanes("127.0.0.1:1", None, out, args, lanes, 3, lambda s: None, suite=suite)
    finally:
        timer.cancel()
    assert info.value.interrupted and info.value.exit_code == 130
    doc = load_report(out)
    exits = {x["name"]: x["exit"] for x in doc["lanes"]}
    assert doc["complete"] is False and exits["sarama"] == 2 and exits["exclusive"] == "not run"
    assert ("C1", "java") in {(c["id"], c["client"]) for c in doc["checks"]}   # a lane that had ended


def test_run_plans_lanes_after_attaching_the_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lane attaches to the run's one embedded broker (--broker-attach): O8 restarts it for real."""
    import bench.brokers
    from conformance import runner

    class Handle:
        name, kind, version, bootstrap = "conformance-kafka-1", "kafka", "4.3.1", "127.0.0.1:9"
        stopped = False

        def stop(self) -> None:
            Handle.stopped = True

    seen: list[Any] = []
    monkeypatch.setattr(bench.brokers, "start_broker", lambda *a, **k: Handle())
    monkeypatch.setattr(bench.brokers, "get_broker", lambda name: None)
    monkeypatch.setattr(runner, "_run_lanes", lambda *a, **k: seen.append(a) or 0)
    assert runner.run(None, "kafka", tmp_path / "r", ["--client", "java"], jobs=2) == 0
    lanes = seen[0][4]
    assert all("--broker-attach" in lane.args and "conformance-kafka-1" in lane.args for lane in lanes)
    assert Handle.stopped


def test_child_stop_interrupts_a_running_child(tmp_path: Path) -> None:
    import sys

    from conformance.child import Child

    child = Child(tmp_path / "log" / "out.log", dict(os.environ))
    got: list[int] = []
    th = threading.Thread(target=lambda: got.append(child.call(
        [sys.executable, "-c", "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
                               "    print('bye', flush=True); raise SystemExit(2)"], 120, tmp_path)))
    th.start()
    time.sleep(1.0)
    child.stop()
    th.join(30)
    assert got == [2] and "bye" in (tmp_path / "log" / "out.log").read_text()
    with pytest.raises(RunAborted):
        child.call([sys.executable, "-c", "pass"], 10, tmp_path)


def test_lanes_split_the_real_suite_exactly(tmp_path: Path) -> None:
    """Collected with each lane's arguments, the real suite's checks: every check of a sequential run in
    exactly one lane; O8 (restarts the broker) only in the exclusive lane."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent

    def collect(args: tuple[str, ...]) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "pytest", "conformance", "--collect-only", "-q",
                              "-p", "no:cacheprovider", "--bootstrap", "127.0.0.1:1", *args],
                             capture_output=True, text=True, cwd=repo, timeout=120, check=False).stdout
        return [line for line in out.splitlines() if "::" in line]

    args = ("-k", "o8 or p1 or c1 or c12 or g3", "--client", "java,sarama")
    sequential = collect(args)
    assert len(sequential) > 6
    lanes = plan_lanes(list(args), 2)
    assert lanes is not None
    got = {lane.name: collect(lane.args) for lane in lanes}
    flat = [n for ids in got.values() for n in ids]
    assert sorted(flat) == sorted(sequential) and len(flat) == len(set(flat))
    assert [n for n in got[EXCLUSIVE_LANE] if "test_o8" in n] == got[EXCLUSIVE_LANE] != []
    assert all("[java" in n or "-java" in n for n in got["java"])
    assert not any("test_client_" in n for n in got[BROKER_LANE])
