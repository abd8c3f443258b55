"""The harness survives bad input: malformed scenario files fail with exit 2 and a location, never a traceback.

CLI-level (``kbench run`` in a child process) for each kind of bad file; the ``faults:`` section is fuzzed
in-process (a CLI call per example would be too slow). Elsewhere: an unreachable bootstrap fails within
10 s naming the address (tests/test_run.py::test_unreachable_bootstrap_fails_fast); secrets never reach
a run's files (tests/test_run.py::test_secrets_never_written, and the verify/faults outputs in
tests/test_faults.py::test_leader_kill_loses_nothing_on_embedded_kafka).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.errors import ScenarioError
from bench.faults.plan import FAULT_KEYS, MAX_OCCURRENCES, validate
from bench.scenario.model import load_scenario_text
from tests.conftest import run_kbench

UNREACHABLE = "127.0.0.1:1"  # never contacted: the scenario is rejected first


def _run_bad(tmp_path: Path, content: str | bytes, name: str = "bad.yaml") -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    proc = run_kbench("run", str(path), "--bootstrap", UNREACHABLE, "--no-progress", timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert str(path) in proc.stderr, proc.stderr
    assert UNREACHABLE not in proc.stderr, "the scenario must be rejected before any broker is contacted"
    return proc.stderr


def test_missing_required_key(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "workload:\n  message_size: {distribution: uniform, min: 10}\n")
    assert "bad.yaml:2" in err and "workload.message_size.max" in err and "required" in err


def test_wrong_type(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "topic:\n  partitions: three\n")
    assert "bad.yaml:2" in err and "topic.partitions" in err and "'three'" in err


def test_unknown_key_with_suggestion(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "workload:\n  rat: 100\n")
    assert "bad.yaml:2" in err and "workload.rat" in err and "did you mean 'rate'" in err


def test_bad_yaml(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "workload:\n  rate: [1, 2\n  duration: 5s\n")
    assert "bad.yaml:" in err and "invalid YAML" in err


def test_empty_file(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "")
    assert "empty" in err


def test_comments_only_file(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "# nothing here\n\n")
    assert "empty" in err


def test_binary_garbage(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, bytes(range(256)) * 4)
    assert "bad.yaml" in err and ("UTF-8" in err or "invalid YAML" in err)


def test_top_level_list(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "- name: x\n- rate: 5\n")
    assert "bad.yaml:1" in err and "mapping" in err


def test_huge_numbers(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "topic:\n  partitions: 1" + "0" * 400 + "\n")
    assert "bad.yaml:2" in err and "topic.partitions" in err


def test_huge_float_rate(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "workload:\n  rate: 1.0e+300\n")
    assert "bad.yaml:2" in err and "workload.rate" in err


def test_negative_duration(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "workload:\n  rate: 10\n  duration: -5s\n")
    assert "bad.yaml:3" in err and "workload.duration" in err


def test_nan_and_infinity(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "workload:\n  rate: .nan\n")
    assert "bad.yaml:2" in err and "workload.rate" in err


def test_file_is_a_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.yaml"
    d.mkdir()
    proc = run_kbench("run", str(d), "--bootstrap", UNREACHABLE, timeout=60)
    assert proc.returncode == 2 and str(d) in proc.stderr and "Traceback" not in proc.stderr


def test_missing_file(tmp_path: Path) -> None:
    proc = run_kbench("run", str(tmp_path / "nope.yaml"), "--bootstrap", UNREACHABLE, timeout=60)
    assert proc.returncode == 2 and "nope.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_faults_rejected_by_the_cli(tmp_path: Path) -> None:
    err = _run_bad(tmp_path, "workload: {rate: 10, duration: 20s}\nfaults:\n"
                             "  - {action: kill, node: leader, at: 5s}\n  - {action: pause, node: 2, at: -1s}\n")
    assert "bad.yaml:4" in err and "faults[1].at" in err


# ----------------------------------------------------------------------------- faults fuzz (in-process)
FUZZ_SETTINGS = settings(max_examples=300, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow])
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-5, max_value=80),
    st.integers(min_value=-(2**80), max_value=2**80), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["kill", "pause", "restart", "leader", "boss", "10s", "500ms", "1m", "-1s", "0", "0s",
                     "2h", "1e6", "", " 5s ", "5 s", "inf", "nan"]),
    st.lists(st.integers(min_value=0, max_value=3), max_size=2), st.text(max_size=6),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
ENTRY = st.dictionaries(st.one_of(st.sampled_from(FAULT_KEYS), st.text(max_size=6)), VALUES, max_size=8)


@st.composite
def near_valid_entry(draw: st.DrawFn) -> dict[str, object]:
    """Mostly valid fault entries, each field sometimes just past a bound."""
    def pick(good: st.SearchStrategy[object], bad: st.SearchStrategy[object]) -> object:
        return draw(bad) if draw(st.integers(0, 9)) == 0 else draw(good)

    entry: dict[str, object] = {"action": pick(st.sampled_from(["kill", "pause", "restart"]), VALUES),
                                "node": pick(st.sampled_from(["leader", 1, 2, 3]), st.sampled_from([0, 65, "x"]))}
    if draw(st.booleans()):
        entry["at"] = pick(st.one_of(st.floats(0, 59.9), st.sampled_from(["0s", "10s", "59s"])),
                           st.sampled_from([-1, 60, "60s", "-0.5s", None]))
    if draw(st.booleans()):
        entry["every"] = pick(st.one_of(st.floats(1, 70), st.sampled_from(["1s", "10s", "30s"])),
                              st.sampled_from([0, 0.99, "500ms", None]))
    if draw(st.integers(0, 3)) == 0:
        entry["until"] = pick(st.floats(0.1, 90), st.sampled_from([0, -1, None]))
    if draw(st.booleans()):
        entry["duration"] = pick(st.one_of(st.floats(0, 9), st.sampled_from(["3s", "500ms"])),
                                 st.sampled_from([-1, "1e3s", None]))
    if entry["node"] == "leader" and draw(st.integers(0, 3)) == 0:
        entry["partition"] = pick(st.integers(0, 2), st.sampled_from([-1, 3]))
    return entry


NEAR = near_valid_entry()
FAULTS = st.one_of(st.lists(st.one_of(ENTRY, NEAR, VALUES), max_size=6), VALUES, ENTRY)


def _check_faults(faults: object) -> None:
    doc = {"name": "fuzz", "topic": {"partitions": 3}, "workload": {"rate": 100, "warmup": "5s",
                                                                   "duration": "55s"}, "faults": faults}
    try:
        scenario = load_scenario_text(yaml.safe_dump(doc), filename="fuzz.yaml")
        plan = validate(scenario, filename="fuzz.yaml")
    except ScenarioError as exc:
        assert str(exc).startswith("fuzz.yaml"), str(exc)
        assert exc.key is None or exc.key.startswith("faults"), str(exc)
        return
    if plan is None:
        assert faults in (None, []), faults
        return
    total = 0
    for a in plan.actions:
        times = a.times(60.0)
        total += len(times)
        assert times and all(0 <= t < 60.0 for t in times) and times == sorted(times)
        assert a.action in ("kill", "pause", "restart") and (a.node == "leader" or 1 <= int(a.node) <= 64)
        assert 0 <= a.partition < 3
        for d in (a.at_s, a.every_s, a.until_s, a.duration_s):
            assert d is None or (math.isfinite(d) and d >= 0)
        if a.every_s is not None and a.duration_s is not None:
            assert a.duration_s < a.every_s
        if a.action == "pause":
            assert a.duration_s is not None and a.duration_s > 0
    assert total <= MAX_OCCURRENCES
    json.dumps(plan.to_dict())


@FUZZ_SETTINGS
@given(FAULTS)
def test_fuzz_faults_section(faults: object) -> None:
    _check_faults(faults)


@FUZZ_SETTINGS
@given(st.lists(NEAR, min_size=1, max_size=2))
def test_fuzz_near_valid_faults(faults: list[dict[str, object]]) -> None:
    _check_faults(faults)
