"""Offline tests of the conformance report, matrix and verdict plumbing (synthetic verdicts)."""

from __future__ import annotations

import io
import json
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bench.errors import ResultError
from bench.metrics.files import write_hgrm
from conformance.report import (
    CheckResult,
    build_doc,
    check_sort_key,
    load_report,
    matrix,
    new_run_dir,
    write_report,
)
from conformance.timings import Timings


def _doc(impl: str, verdicts: dict[str, str]) -> dict:
    checks = [CheckResult(id=k, title=f"semantic {k}", verdict=v, detail=f"{k} is {v}")
              for k, v in verdicts.items()]
    return build_doc(checks, run_id="r1", started_at="t0", finished_at="t1", wall_seconds=1.5,
                     complete=True, exit_status=0,
                     broker={"bootstrap": "h:1", "implementation": impl, "version": "1.0"},
                     client={}, host={}, timings={})


def test_sort_key_follows_conformance_md_order() -> None:
    ids = ["E1", "A10", "P2", "A2", "K1", "P10", "G3", "O1", "T1", "R1", "ZZ"]
    assert sorted(ids, key=check_sort_key) == ["P2", "P10", "K1", "G3", "O1", "T1", "A2", "A10",
                                               "R1", "E1", "ZZ"]


def test_build_doc_counts_and_orders() -> None:
    doc = _doc("kafka", {"E1": "FAIL", "P1": "PASS", "A1": "RECORD", "K3": "N/A", "P2": "PASS"})
    assert doc["counts"] == {"PASS": 2, "FAIL": 1, "ERROR": 0, "N/A": 1, "RECORD": 1}
    assert [c["id"] for c in doc["checks"]] == ["P1", "P2", "K3", "A1", "E1"]
    assert doc["schema_version"] == 1


def test_write_report_files(tmp_path: Path) -> None:
    doc = _doc("tansu", {"P1": "PASS", "E1": "FAIL", "K3": "N/A", "A1": "RECORD", "P3": "ERROR"})
    t = Timings()
    for us in (100, 200, 300):
        t.record("commit", us)
    doc["timings"] = t.summary()
    write_report(tmp_path, doc, t.write_hgrm)
    loaded = load_report(tmp_path)
    assert loaded["timings"]["commit"]["count"] == 3
    assert loaded["timings"]["commit"]["hgrm"] == "commit.hgrm"
    assert "Percentile" in (tmp_path / "commit.hgrm").read_text()
    md = (tmp_path / "report.md").read_text()
    assert "| E1 | semantic E1 | FAIL | E1 is FAIL |" in md
    assert "PASS 1, FAIL 1, ERROR 1, N/A 1, RECORD 1" in md
    assert "| P3 | semantic P3 | ERROR | P3 is ERROR |" in md
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.get("tests") == "5" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    assert suite.get("errors") == "1"
    fails = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in fails] == ["E1 semantic E1"]
    errors = [c for c in suite.iter("testcase") if c.find("error") is not None]
    assert [c.get("name") for c in errors] == ["P3 semantic P3"]


def test_timings_hgrm_of_a_known_histogram_uses_the_kbench_writer(tmp_path: Path) -> None:
    t = Timings()
    for us in (100, 200, 300, 400):
        t.record("commit", us)
    t.record("join", 5e12)  # clamped to the 1 h top of the range, not lost
    paths = t.write_hgrm(tmp_path)
    assert [p.name for p in paths] == ["commit.hgrm", "join.hgrm"]
    text = (tmp_path / "commit.hgrm").read_text()
    lines = text.splitlines()
    assert lines[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    assert lines[2].split() == ["0.100", "0.000000000000", "1", "1.00"]  # values in ms
    rows = [line.split() for line in lines[2:] if line and not line.startswith("#")]
    assert rows[-1] == ["0.400", "1.000000000000", "4"]
    assert {r[0] for r in rows} == {"0.100", "0.200", "0.300", "0.400"}
    # mean 250 µs, population stddev sqrt(12500) = 111.8 µs, both in ms like every other column
    assert "#[Mean    =        0.250, StdDeviation   =        0.112]" in lines
    assert "#[Max     =        0.400, Total count    =            4]" in lines
    hist = t.histogram("commit")
    assert hist is not None
    write_hgrm(hist, tmp_path / "same.hgrm")
    assert (tmp_path / "same.hgrm").read_text() == text  # one writer
    ref = io.BytesIO()
    hist.output_percentile_distribution(ref, 1000.0)
    assert "StdDeviation   =      111.803" in ref.getvalue().decode()  # why not hdrh's: unscaled
    summary = t.summary()
    assert {k: summary["commit"][k] for k in ("count", "min_us", "p50_us", "p90_us", "p99_us", "max_us")} == {
        "count": 4, "min_us": 100, "p50_us": 200, "p90_us": 400, "p99_us": 400, "max_us": 400}
    assert summary["join"]["max_us"] >= 3_600_000_000


def test_new_run_dir_never_reuses(tmp_path: Path) -> None:
    a = new_run_dir(tmp_path, "kafka 4.3", "20250101T000000Z")
    b = new_run_dir(tmp_path, "kafka 4.3", "20250101T000000Z")
    assert a != b and a.is_dir() and b.is_dir()
    assert a.name == "conformance-kafka_4.3-20250101T000000Z"


def test_matrix_pivots_brokers(tmp_path: Path) -> None:
    for impl, verdicts in (("kafka", {"P1": "PASS", "K3": "PASS"}),
                           ("tansu", {"P1": "FAIL", "A1": "RECORD", "P3": "ERROR"})):
        d = tmp_path / impl
        d.mkdir()
        write_report(d, _doc(impl, verdicts))
    table = matrix([tmp_path / "kafka", tmp_path / "tansu" / "report.json"])
    lines = table.splitlines()
    assert lines[0] == "| ID | semantic | kafka 1.0 | tansu 1.0 |"
    assert "| P1 | semantic P1 | PASS | FAIL |" in lines
    assert "| K3 | semantic K3 | PASS | — |" in lines
    assert "| A1 | semantic A1 | — | RECORD |" in lines
    assert "| **FAIL** | | 0 | 1 |" in lines
    assert "| P3 | semantic P3 | — | ERROR |" in lines
    assert "| **ERROR** | | 0 | 1 |" in lines


def test_load_report_refuses_unknown_schema(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps({"kind": "kbench-conformance", "schema_version": 99}))
    with pytest.raises(ResultError, match="schema_version 99"):
        load_report(tmp_path)
    with pytest.raises(ResultError):
        matrix([])


SYNTHETIC = textwrap.dedent('''
    import pytest
    from conformance.verdicts import expect_eq

    @pytest.mark.check("X1", "passes")
    def test_pass(check):
        check.note("fine")

    @pytest.mark.check("X2", "fails with observed/expected")
    def test_fail(check):
        expect_eq(3, 4, "count")

    @pytest.mark.check("X3", "records")
    def test_record(check):
        check.record(seen=[1, 2])

    @pytest.mark.check("X4", "not applicable")
    def test_na(check):
        check.require_api(9999, 0)

    @pytest.mark.check("X5", "a broker-side error is FAIL")
    def test_error(check):
        raise RuntimeError("boom")

    @pytest.mark.check("X7", "precondition not effective is ERROR")
    def test_precondition(check):
        from conformance.verdicts import require_effective
        require_effective(False, "connections cut", 0, ">= 5")

    @pytest.mark.check("X8", "a bug in kbench is ERROR")
    def test_bug(check):
        flag = True
        flag()

    @pytest.mark.check("X9", "the hard time limit is ERROR")
    @pytest.mark.timeout(0.5)
    def test_hang(check):
        import time
        time.sleep(5)

    @pytest.mark.check("X6", "plain skip is FAIL")
    def test_skip(check):
        pytest.skip("lazy")
''')


def _checks(imports: str, *checks: tuple[str, str, str]) -> str:
    """A synthetic check module: ``imports``, then a test ``test_<id>`` a (check id, title, one-line body)."""
    tests = [f'@pytest.mark.check("{cid}", "{title}")\ndef test_{cid.lower()}(check):\n    {body}\n'
             for cid, title, body in checks]
    return "\n\n".join([f"import pytest\n{imports}\n", *tests])


def _synthetic_suite(tmp_path: Path, checks: str, module: str = "test_synthetic.py") -> Path:
    """The real conftest with the broker fixture replaced (no network) and ``checks`` as tests."""
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
    (suite / module).write_text(checks)
    return suite


def _run_synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: str,
                   module: str = "test_synthetic.py") -> tuple[int | pytest.ExitCode, dict[str, Any]]:
    """Run the real plugin in-process on ``checks``: (pytest's exit code, the report document)."""
    suite = _synthetic_suite(tmp_path, checks, module)
    out = tmp_path / "out"
    monkeypatch.setattr("conformance.plugin.CONFORMANCE_DIR", suite)
    rc = pytest.main([str(suite), "-q", "-p", "no:cacheprovider", "--report-dir", str(out),
                      "--rootdir", str(suite)])
    return rc, load_report(out)


def test_plugin_verdicts_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the real plugin on synthetic checks (no network)."""
    rc, doc = _run_synthetic(tmp_path, monkeypatch, SYNTHETIC)
    assert rc == 1  # FAIL wins over ERROR
    got = {c["id"]: (c["verdict"], c["detail"]) for c in doc["checks"]}
    assert got["X1"] == ("PASS", "fine")
    assert got["X7"] == ("ERROR", "harness ERROR: precondition not effective: connections cut: "
                                  "observed 0, expected >= 5")
    assert got["X8"][0] == "ERROR" and "TypeError" in got["X8"][1]
    assert got["X9"][0] == "ERROR" and "Timeout" in got["X9"][1]
    assert got["X2"][0] == "FAIL" and "observed 3, expected 4" in got["X2"][1]
    assert got["X3"][0] == "RECORD" and '"seen": [1, 2]' in got["X3"][1]
    assert got["X4"][0] == "N/A" and "Unknown(9999)" in got["X4"][1]
    assert got["X5"] == ("FAIL", "ERROR: RuntimeError: boom")
    assert got["X6"][0] == "FAIL" and "skipped without an ApiVersions reason" in got["X6"][1]
    assert doc["counts"] == {"PASS": 1, "FAIL": 3, "ERROR": 3, "N/A": 1, "RECORD": 1}


def test_plugin_exit_code_3_when_errors_but_no_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    checks = _checks("from conformance.verdicts import HarnessError",
                     ("Z1", "passes", "pass"),
                     ("Z2", "harness", 'raise HarnessError("fault injection did nothing")'))
    rc, doc = _run_synthetic(tmp_path, monkeypatch, checks, "test_synthetic_exit_code.py")
    assert rc == 3
    assert doc["counts"]["ERROR"] == 1 and doc["counts"]["FAIL"] == 0


def test_exit_code_from_counts() -> None:
    from conformance.verdicts import exit_code

    assert exit_code({"PASS": 3, "FAIL": 0, "ERROR": 0, "N/A": 1, "RECORD": 2}) == 0
    assert exit_code({"PASS": 3, "FAIL": 1, "ERROR": 2}) == 1
    assert exit_code({"PASS": 3, "ERROR": 2}) == 3
    assert exit_code({}) == 0


CRASHING = _checks("import os, signal",
                   ("Y1", "before the crash", "pass"),
                   ("Y2", "crashes the process", "os.kill(os.getpid(), signal.SIGSEGV)"),
                   ("Y3", "after the crash", "check.record(ran=True)"))


def test_runner_survives_a_crashing_check(tmp_path: Path) -> None:
    """A check that kills the process is ERROR (a client crash); the checks after it still run."""
    from conformance.runner import _run_children

    suite = _synthetic_suite(tmp_path, CRASHING)
    out = tmp_path / "run"
    rc = _run_children("127.0.0.1:1", None, out, ["-q", "-p", "no:faulthandler"], suite=suite)
    assert rc == 3
    doc = load_report(out)
    got = {c["id"]: (c["verdict"], c["detail"]) for c in doc["checks"]}
    assert got["Y1"][0] == "PASS" and got["Y3"][0] == "RECORD"
    assert got["Y2"][0] == "ERROR" and "died with SIGSEGV" in got["Y2"][1]
    assert got["Y2"][1].startswith("ERROR")
    assert doc["counts"] == {"PASS": 1, "FAIL": 0, "ERROR": 1, "N/A": 0, "RECORD": 1}


# SIGALRM blocked: pytest-timeout's signal cannot end the sleep, as it cannot end a blocking call in C
STUCK = textwrap.dedent('''
    import signal
    import time

    import pytest

    @pytest.mark.check("W1", "before the stuck check")
    def test_w1(check):
        pass

    @pytest.mark.check("W2", "stuck past its limit")
    @pytest.mark.timeout(1)
    def test_w2(check):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(120)

    @pytest.mark.check("W3", "after the stuck check")
    def test_w3(check):
        check.record(ran=True)
''')


def _watched_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: str, grace: str, seconds: float = 1.0
                 ) -> tuple[int, dict[str, tuple[str, str]]]:
    """``_run_children`` on ``checks`` with the watchdog's ``grace`` (a conformance.child constant) at
    ``seconds``: (its exit code, id -> (verdict, detail)); it must end long before the checks' 120 s sleeps."""
    from conformance.runner import _run_children

    monkeypatch.setattr(f"conformance.child.{grace}", seconds)
    monkeypatch.setattr("conformance.child.WATCH_EVERY_S", 0.2)
    out = tmp_path / "run"
    t0 = time.monotonic()
    rc = _run_children("127.0.0.1:1", None, out, ["-q", "-p", "no:faulthandler"],
                       suite=_synthetic_suite(tmp_path, checks))
    assert time.monotonic() - t0 < 60
    return rc, {c["id"]: (c["verdict"], c["detail"]) for c in load_report(out)["checks"]}


def test_runner_kills_a_check_stuck_where_pytest_timeout_cannot_reach(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that outlives its limit by STUCK_GRACE_S is ERROR, its process killed; the run goes on."""
    monkeypatch.setenv("KBENCH_CONFORMANCE_STACKS_AFTER_S", "0.3")   # the child's stack dump, before the kill
    rc, got = _watched_run(tmp_path, monkeypatch, STUCK, "STUCK_GRACE_S", 2.0)
    assert rc == 3
    assert got["W1"][0] == "PASS" and got["W3"][0] == "RECORD"
    assert got["W2"][0] == "ERROR" and "pytest-timeout cannot interrupt" in got["W2"][1]
    assert "at suite/test_synthetic.py:" in got["W2"][1] and " in test_w2" in got["W2"][1]   # where it hung


# a non-daemon thread: the interpreter's exit waits for it, as it can wait in a client library's destructor
EXIT_HANG = _checks("import threading, time",
                    ("V1", "leaves a thread that blocks the exit",
                     "threading.Thread(target=time.sleep, args=(120,)).start()"),
                    ("V2", "fails", "assert False"))


def test_runner_kills_a_child_blocked_in_its_exit_and_keeps_its_verdicts(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rc, got = _watched_run(tmp_path, monkeypatch, EXIT_HANG, "EXIT_GRACE_S")
    assert rc == 1                                     # the report's status: V2 FAILs
    assert {k: v for k, (v, _) in got.items()} == {"V1": "PASS", "V2": "FAIL"}


HANGS = _checks("import time", ("U1", "passes", "pass"), ("U2", "hangs until interrupted", "time.sleep(60)"))


def test_ctrl_c_of_a_plain_run_lets_pytest_write_its_report(tmp_path: Path) -> None:
    """The child is in its own session: the runner forwards the one SIGINT, then waits for the report."""
    import _thread
    import threading

    from conformance.runner import _run_children

    out = tmp_path / "run"
    started = threading.Event()

    def ctrl_c_once_u2_runs() -> None:   # not a fixed delay: under load pytest may start late
        progress = out / "progress.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not started.is_set():
            if progress.exists() and '"id": "U2"' in progress.read_text():
                started.set()
                time.sleep(0.5)
                _thread.interrupt_main()
            time.sleep(0.05)

    threading.Thread(target=ctrl_c_once_u2_runs, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _run_children("127.0.0.1:1", None, out, ["-q", "-p", "no:faulthandler"],
                      suite=_synthetic_suite(tmp_path, HANGS))
    assert started.is_set() and time.monotonic() - t0 < 60
    doc = load_report(out)
    assert doc["complete"] is False
    assert {c["id"]: c["verdict"] for c in doc["checks"]}["U1"] == "PASS"
