"""Offline tests of the conformance stability summary (kbench conformance --repeat N)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.report import CheckResult, build_doc, write_report
from conformance.stability import render_markdown, summarize


def _doc(verdicts: dict[str, str], wall: float = 50.0) -> dict[str, Any]:
    checks = [CheckResult(id=k.split("/")[0], case=k.split("/")[1] if "/" in k else "",
                          title=f"semantic {k}", verdict=v, detail=f"{k} detail {v}")
              for k, v in verdicts.items()]
    return build_doc(checks, run_id="r", started_at="t0", finished_at="t1", wall_seconds=wall,
                     complete=True, exit_status=0,
                     broker={"bootstrap": "h:1", "implementation": "kafka", "version": "4.3.1"},
                     client={}, host={}, timings={})


def test_summarize_marks_unstable_checks_and_counts() -> None:
    docs = [_doc({"P1": "PASS", "G8": "PASS", "P3": "RECORD", "P10/lz4": "PASS"}, 60.0),
            _doc({"P1": "PASS", "G8": "FAIL", "P3": "ERROR", "P10/lz4": "PASS"}, 70.0),
            _doc({"P1": "PASS", "G8": "PASS", "P3": "RECORD"}, 65.0)]
    s = summarize(docs, ["run-01", "run-02", "run-03"], [61.0, 71.0, 66.0])
    by = {(c["id"], c["case"]): c for c in s["checks"]}
    assert by[("P1", "")]["stable"] and by[("P1", "")]["verdicts"] == ["PASS"] * 3
    assert not by[("G8", "")]["stable"] and by[("G8", "")]["counts"] == {"PASS": 2, "FAIL": 1}
    assert by[("G8", "")]["problems"] == [{"run": 2, "verdict": "FAIL", "detail": "G8 detail FAIL"}]
    assert by[("P3", "")]["counts"] == {"ERROR": 1, "RECORD": 2}
    assert by[("P10", "lz4")]["verdicts"] == ["PASS", "PASS", "—"]
    assert not by[("P10", "lz4")]["stable"]  # missing in a run: not stable
    assert [c["id"] for c in s["checks"]] == ["P1", "P3", "P10", "G8"]  # docs/conformance.md order
    assert (s["stable"], s["unstable"], s["runs"]) == (1, 3, 3)
    assert s["all_clean_runs"] == 2
    assert s["totals"]["FAIL"] == 1 and s["totals"]["ERROR"] == 1 and s["totals"]["PASS"] == 7
    assert s["wall_seconds"] == [60.0, 70.0, 65.0] and s["elapsed_seconds"] == [61.0, 71.0, 66.0]
    json.dumps(s)  # stability.json is plain JSON


def test_render_markdown_table() -> None:
    docs = [_doc({"P1": "PASS", "G8": "PASS"}, 60.0), _doc({"P1": "PASS", "G8": "ERROR"}, 80.0)]
    md = render_markdown(summarize(docs, ["run-01", "run-02"], [62.0, 83.0]))
    lines = md.splitlines()
    assert lines[0] == "# Conformance stability: kafka 4.3.1, 2 runs"
    assert "- checks: 1 stable (same verdict in every run), 1 unstable" in lines
    assert "- runs without FAIL or ERROR: 1 of 2" in lines
    assert any("min 60.0 s, median 70.0 s, max 80.0 s" in ln for ln in lines)
    assert "| P1 | semantic P1 | `PP` | 2 |  |  |  |  | yes |" in lines
    assert "| G8 | semantic G8 | `PE` | 1 |  | 1 |  |  | **no** |" in lines
    assert "- G8 run 2 ERROR: G8 detail ERROR" in lines


def test_summarize_of_nothing() -> None:
    s = summarize([])
    assert s["runs"] == 0 and s["checks"] == [] and s["stable"] == 0
    assert "0 runs" in render_markdown(s)


def test_repeat_writes_stability_after_each_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """runner.repeat with the suite run replaced by a fake that writes a report."""
    from conformance import runner

    verdicts = iter([{"P1": "PASS", "G8": "PASS"}, {"P1": "PASS", "G8": "FAIL"}])

    def fake_run(bootstrap: Any, broker: Any, report_dir: Path, args: Any, **kw: Any) -> int:
        report_dir.mkdir(parents=True)
        doc = _doc(next(verdicts))
        write_report(report_dir, doc)
        return 1 if doc["counts"]["FAIL"] else 0

    monkeypatch.setattr(runner, "run", fake_run)
    lines: list[str] = []
    code, summary = runner.repeat(None, "kafka", tmp_path / "st", 2, [], echo=lines.append)
    assert code == 1
    assert summary["exit_codes"] == [0, 1] and summary["run_dirs"] == ["run-01", "run-02"]
    assert (tmp_path / "st" / "run-02" / "report.json").exists()
    saved = json.loads((tmp_path / "st" / "stability.json").read_text())
    assert saved["unstable"] == 1 and saved["runs"] == 2
    assert "`PF`" in (tmp_path / "st" / "stability.md").read_text()
    assert lines[0].startswith("run 1/2: exit 0, PASS 2")
    with pytest.raises(ValueError):
        runner.repeat(None, "kafka", tmp_path / "st2", 0)
