"""Repeated runs of a cell: the scenario key, the merge (pure, on real recorded cells), and a real run.

The merge is checked on the two real runs of tests/fixtures/results/ (the same command run twice): the
merged histograms must hold exactly the sum of the runs' counts, the merged cell must stay a valid cell
for report/summary/thresholds, and every run must be kept for compare's run-level test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli.main import main
from bench.errors import ScenarioError
from bench.metrics.hdr import decode_histogram
from bench.report.compare import EXIT_INCONCLUSIVE, compare_results
from bench.report.data import COMPARE_METRICS, full_seconds, metric_samples, metric_value
from bench.results.store import load_result
from bench.run.repeats import cell_runs, merge_repeats
from bench.scenario.model import load_scenario_text

FIXTURES = Path(__file__).parent / "fixtures" / "results"
SMOKE = """
name: rep
topic: {partitions: 1}
workload: {rate: 500, warmup: 0.5s, duration: 2s, message_size: 100}
"""


def _cells() -> tuple[dict, dict]:
    a = load_result(FIXTURES / "smoke-acks-a.json")["cells"][0]
    b = load_result(FIXTURES / "smoke-acks-b.json")["cells"][0]
    return a, b


def test_repeat_key_validated() -> None:
    assert load_scenario_text(SMOKE).repeat == 1
    assert load_scenario_text(SMOKE + "repeat: 5\n").repeat == 5
    assert load_scenario_text(SMOKE, overrides=["repeat=3"]).repeat == 3
    for bad in ("0", "101", "two", "1.5"):
        with pytest.raises(ScenarioError, match="repeat"):
            load_scenario_text(SMOKE + f"repeat: {bad}\n")


def test_merge_keeps_every_run_and_merges_histograms_exactly() -> None:
    a, b = _cells()
    merged = merge_repeats([a, b])
    assert [r["repeat"] for r in merged["repeats"]] == [0, 1]
    assert merged["repeats"][1]["topic"]["name"] == b["topic"]["name"]
    assert "workload" not in merged["repeats"][0] and merged["workload"] == a["workload"]
    for name in ("publish", "e2e", "service"):
        total = decode_histogram(merged["latency"][name]["hdr"]).get_total_count()
        assert total == a["latency"][name]["count"] + b["latency"][name]["count"]
        assert merged["latency"][name]["count"] == total
    assert merged["produce"]["messages"] == a["produce"]["messages"] + b["produce"]["messages"]
    window = full_seconds(a) + full_seconds(b)
    assert merged["timing"]["window_s"] == window
    assert merged["produce"]["msgs_per_s"] == pytest.approx(merged["produce"]["messages"] / window)
    assert len(merged["series"]["produce"]["count"]) == window  # whole seconds of each run, end to end
    assert merged["produce"]["per_second"]["samples"] == window
    assert merged["complete"] == (a["complete"] and b["complete"])
    # run-level values come from the runs, the same numbers as the single-run cells give
    assert cell_runs(merged)[1]["produce"]["msgs_per_s"] == b["produce"]["msgs_per_s"]
    for m in COMPARE_METRICS:
        assert metric_value(cell_runs(merged)[0], m) == metric_value(a, m)
        assert len(metric_samples(merged, m)) in (0, window)
    assert cell_runs(a) == [a] and merge_repeats([a]) is a  # one run: the cell as before
    json.dumps(merged)


def test_merge_marks_partial_repeats_incomplete() -> None:
    a, b = _cells()
    merged = merge_repeats([a, {**b, "complete": False, "incomplete_reason": "interrupted (SIGINT)"}],
                           incomplete_reason="stopped after 2 of 4 runs: interrupted (SIGINT)")
    assert not merged["complete"]
    assert "run 2: interrupted" in merged["incomplete_reason"] and "2 of 4" in merged["incomplete_reason"]
    single = merge_repeats([a], incomplete_reason="stopped after 1 of 3 runs")
    assert not single["complete"] and len(single["repeats"]) == 1


def test_merge_combines_steady_state_when_present() -> None:
    a, b = _cells()
    a = {**a, "steady_state": {"steady": True, "warning": None, "tests": [{"metric": "p99"}]}}
    b = {**b, "steady_state": {"steady": False, "warning": "p99 trend", "tests": []}}
    merged = merge_repeats([a, b])
    assert merged["steady_state"]["steady"] is False and merged["steady_state"]["warning"] == "run 2: p99 trend"
    assert "steady_state" not in merge_repeats(list(_cells()))
    short = {**a, "steady_state": {"steady": None, "warning": None, "tests": []}}
    assert merge_repeats([a, short])["steady_state"]["steady"] is None  # too short to tell is not a warning
    assert merge_repeats([a, short])["steady_state"]["warning"] is None


@pytest.mark.integration
def test_run_repeat_writes_every_run_and_compare_judges_runs(tmp_path: Path, kafka_bootstrap: str) -> None:
    scen = tmp_path / "rep.yaml"
    scen.write_text(SMOKE)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    for out in (out_a, out_b):
        code = main(["run", str(scen), "--bootstrap", kafka_bootstrap, "--repeat", "2", "--out", str(out),
                     "--no-progress"])
        assert code == 0
    doc = json.loads((out_a / "result.json").read_text())
    assert doc["repeat"] == 2
    (cell,) = doc["cells"]
    runs = cell["repeats"]
    assert len(runs) == 2 and runs[0]["topic"]["name"] != runs[1]["topic"]["name"]  # a fresh topic per run
    assert all(r["complete"] and r["produce"]["messages"] > 0 for r in runs)
    assert cell["produce"]["messages"] == sum(r["produce"]["messages"] for r in runs)
    assert cell["latency"]["publish"]["count"] == sum(r["latency"]["publish"]["count"] for r in runs)
    assert (out_a / "cell-00-publish.hgrm").exists()
    comp = compare_results(load_result(out_a), load_result(out_b))
    assert comp.cells[0].runs == (2, 2) and comp.exit_code() == EXIT_INCONCLUSIVE  # 2 vs 2 can't reach 0.05
    assert main(["compare", str(out_a), str(out_b), "--allow-inconclusive"]) == 0
    assert main(["report", str(out_a)]) == 0
