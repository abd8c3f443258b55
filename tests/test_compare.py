"""`kbench compare` on results of real `kbench run`s (tests/fixtures/results/), and its statistics.

The regressions are INJECTED: the current result is the real baseline with every latency histogram
re-recorded at 2x (or throughput samples halved) -- see ``scale_latency`` / ``scale_throughput``; repeated
runs are the real run re-recorded at a few factors (``repeated``), merged as ``kbench run --repeat`` does.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from bench.cli.main import main
from bench.cli.report import cmd_compare
from bench.errors import ConfigError, ResultError
from bench.metrics.hdr import decode_histogram, encode_histogram, new_histogram, summarize
from bench.report.compare import (
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_REGRESSION,
    RUN_TEST,
    compare_results,
    parse_threshold,
)
from bench.report.data import COMPARE_METRICS, PRODUCE_MSGS
from bench.report.stats import min_p_value
from bench.results.store import load_result
from bench.run.repeats import merge_repeats

FIXTURES = Path(__file__).parent / "fixtures" / "results"
ACKS_A = FIXTURES / "smoke-acks-a.json"    # kbench run smoke, acks=[1,all], 5 s, rate 2000
ACKS_B = FIXTURES / "smoke-acks-b.json"    # the same command, run again right after
LINGER = FIXTURES / "smoke-linger-max.json"
LATENCY_KEYS = {"latency.publish.p50_ms", "latency.publish.p99_ms", "latency.publish.p99_9_ms",
                "latency.e2e.p99_ms"}
THROUGHPUT_KEYS = {m.key for m in COMPARE_METRICS} - LATENCY_KEYS


# -- injection helpers ------------------------------------------------------------------------------
def _rescale_hist(encoded: str, factor: float) -> str:
    src = decode_histogram(encoded)
    dst = new_histogram()
    for item in src.get_recorded_iterator():
        dst.record_value(max(1, round(item.value_iterated_to * factor)), item.count_at_value_iterated_to)
    return encode_histogram(dst)


def scale_latency(doc: dict[str, Any], factor: float) -> dict[str, Any]:
    """INJECTED change: every latency histogram, summary and per-second latency sample times ``factor``."""
    out = copy.deepcopy(doc)
    for cell in out["cells"]:
        for name, lat in cell["latency"].items():
            if lat and lat.get("hdr"):
                hdr = _rescale_hist(lat["hdr"], factor)
                cell["latency"][name] = {**summarize(decode_histogram(hdr)), "hdr": hdr}
        for side in ("produce", "consume"):
            series = cell["series"].get(side)
            for field in ("p50_us", "p99_us", "max_us"):
                if series and field in series:
                    series[field] = [None if v is None else round(v * factor) for v in series[field]]
    return out


def scale_throughput(doc: dict[str, Any], factor: float) -> dict[str, Any]:
    """INJECTED change: produce/consume rates and their per-second counts/bytes times ``factor``."""
    out = copy.deepcopy(doc)
    for cell in out["cells"]:
        for side in ("produce", "consume"):
            cell[side]["msgs_per_s"] *= factor
            cell[side]["mb_per_s"] *= factor
            series = cell["series"][side]
            series["count"] = [round(v * factor) for v in series["count"]]
            series["bytes"] = [round(v * factor) for v in series["bytes"]]
    return out


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / name
    doc = {k: v for k, v in doc.items() if k != "_path"}
    path.write_text(json.dumps(doc))
    return path


def test_parse_threshold() -> None:
    assert parse_threshold("10%") == pytest.approx(0.10)
    assert parse_threshold("1.25x") == pytest.approx(0.25)
    assert parse_threshold("0.05") == pytest.approx(0.05)
    for bad in ("10", "ten%", "-5%", "x"):
        with pytest.raises(ConfigError):
            parse_threshold(bad)


# -- compare on real results -----------------------------------------------------------------------
def repeated(doc: dict[str, Any], factors: list[float]) -> dict[str, Any]:
    """A result whose cells hold one run per factor: the real run with its latencies times that factor
    (INJECTED run-to-run spread), merged as `kbench run --repeat` merges runs."""
    runs = [scale_latency(doc, f) for f in factors]
    out = copy.deepcopy(doc)
    out["cells"] = [merge_repeats([r["cells"][i] for r in runs]) for i in range(len(doc["cells"]))]
    return out


def test_single_runs_are_inconclusive_not_a_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "out.md"
    assert main(["compare", str(ACKS_A), str(ACKS_A), "--markdown", str(md)]) == EXIT_INCONCLUSIVE == 3
    captured = capsys.readouterr()
    assert md.read_text() == captured.out and "INCONCLUSIVE" in captured.err
    comp = compare_results(load_result(ACKS_A), load_result(ACKS_A))
    assert all(m.inconclusive and m.p_value is None for c in comp.cells for m in c.metrics)
    assert "no significant regression" not in captured.out and "INCONCLUSIVE" in captured.out
    assert RUN_TEST in captured.out  # the output says which test decides
    assert main(["compare", str(ACKS_A), str(ACKS_A), "--allow-inconclusive"]) == 0
    captured = capsys.readouterr()
    assert "accepted with --allow-inconclusive" in captured.out and "--allow-inconclusive" in captured.err


def test_doubled_latency_of_one_run_does_not_pass(tmp_path: Path) -> None:
    # issue 11: a single run with every latency doubled read "no significant regression", exit 0
    base = load_result(ACKS_A)
    current = _write(tmp_path, "current.json", scale_latency(base, 2.0))  # INJECTED, not measured
    assert main(["compare", str(ACKS_A), str(current)]) == EXIT_INCONCLUSIVE
    comp = compare_results(base, load_result(current))
    for cell in comp.cells:
        for m in cell.metrics:
            assert not m.regression and m.inconclusive
            assert m.per_second_p is not None  # shown for information only
            if m.metric.key in LATENCY_KEYS:
                assert m.factor == pytest.approx(2.0, rel=0.01) and m.worse
    assert "for information only" in comp.markdown()


def test_repeated_runs_compared_on_run_level_values() -> None:
    base = load_result(ACKS_A)
    jitter = [0.9, 1.0, 1.05, 1.1, 0.95]
    b = repeated(base, jitter)
    c = repeated(base, [2 * f for f in jitter])  # INJECTED 2x regression of every run
    comp = compare_results(b, c)
    assert comp.exit_code() == EXIT_REGRESSION
    for cell in comp.cells:
        assert cell.runs == (5, 5)
        by_key = {m.metric.key: m for m in cell.metrics}
        for key in LATENCY_KEYS:
            m = by_key[key]
            assert len(m.runs_baseline) == 5 and m.baseline == pytest.approx(statistics.median(m.runs_baseline))
            assert m.p_raw == pytest.approx(1 / math.comb(10, 5))  # complete separation of the run values
            assert m.family == 7 and m.p_value is not None and m.p_raw <= m.p_value <= 7 * m.p_raw  # Holm
            assert m.regression and m.factor == pytest.approx(2.0, rel=0.02)
            assert m.per_second_p is None  # repeated runs: no per-second test at all
        assert not any(by_key[k].significant for k in THROUGHPUT_KEYS)
    text = comp.markdown()
    assert "REGRESSION" in text and "5 vs 5 run(s)" in text and RUN_TEST in text
    # 4 vs 4 runs: smallest raw p 1/70, times 7 metrics (Holm) = 0.1 >= 0.05: inconclusive, whatever the data
    four = compare_results(repeated(base, jitter[:4]), repeated(base, [2 * f for f in jitter[:4]]))
    assert four.exit_code() == EXIT_INCONCLUSIVE
    assert compare_results(repeated(base, jitter[:4]), repeated(base, jitter[:4]),
                           metrics=[COMPARE_METRICS[2]]).exit_code() == EXIT_OK  # one metric: 1/70 suffices
    same = compare_results(b, repeated(base, jitter[::-1]))
    assert same.exit_code() == EXIT_OK and not same.inconclusive
    assert "no significant regression" in same.markdown()


def _fixture_pairs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    a, b = load_result(ACKS_A), load_result(ACKS_B)
    jitter = [0.9, 1.0, 1.05, 1.1, 0.95]
    return [
        ("a vs a", a, a), ("a vs b", a, b), ("a vs latency x2", a, scale_latency(a, 2.0)),
        ("a vs throughput /2", a, scale_throughput(a, 0.5)),
        ("5 vs 5 runs, x2", repeated(a, jitter), repeated(a, [2 * f for f in jitter])),
        ("5 vs 5 runs, same", repeated(a, jitter), repeated(a, jitter[::-1])),
        ("5 vs 5 runs, overlapping", repeated(a, [1.0, 1.3, 0.9, 1.2, 1.05]), repeated(a, [1.25, 1.1, 1.5, 0.95, 1.2])),
        ("5 vs 6 runs, tied values", repeated(b, [1.0, 1.0, 1.0, 1.1, 1.1]),
         repeated(b, [1.1, 1.1, 1.2, 1.2, 1.2, 1.3])),
        ("4 vs 4 runs, x2", repeated(b, jitter[:4]), repeated(b, [2 * f for f in jitter[:4]])),
    ]


def _verdicts(comp: Any) -> list[tuple[Any, ...]]:
    return [(c.label, m.metric.key, m.verdict, m.significant, m.regression, m.inconclusive, m.min_p,
             m.p_raw, m.p_value, m.per_second_p) for c in comp.cells for m in c.metrics]


def test_verdicts_on_the_fixtures_unchanged_by_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """compare with scipy's Mann-Whitney gives the verdicts, p-values and text it gave with the
    hand-written test it replaced (tests/stats_reference.py)."""
    import bench.report.compare as compare_module
    from tests.stats_reference import old_as_result

    pairs = _fixture_pairs()
    new = [compare_results(b, c, allow_inconclusive=True) for _, b, c in pairs]
    monkeypatch.setattr(compare_module, "mann_whitney_u", old_as_result)
    old = [compare_results(b, c, allow_inconclusive=True) for _, b, c in pairs]
    tested = 0
    for (name, _, _), n, o in zip(pairs, new, old, strict=True):
        assert n.exit_code() == o.exit_code(), name
        assert n.markdown() == o.markdown(), name
        for nv, ov in zip(_verdicts(n), _verdicts(o), strict=True):
            assert nv[:7] == ov[:7], (name, nv)
            for got, want in zip(nv[7:], ov[7:], strict=True):
                assert (got is None) == (want is None), (name, nv)
                assert got is None or got == pytest.approx(want, rel=1e-9, abs=1e-12), (name, nv)
            tested += nv[7] is not None or nv[9] is not None
    assert tested >= 30   # the test ran on the run-level or the per-second samples, not only on "inconclusive"
    assert {o.exit_code() for o in old} == {EXIT_OK, EXIT_REGRESSION}


@pytest.mark.parametrize(("raw", "adjusted"), [
    # statsmodels 0.15.0 multipletests(raw, alpha=0.05, method="holm")[1], computed once and hard-coded
    ([0.01, 0.04, 0.03, 0.005, 0.2, 0.5, 0.0079], [0.05, 0.12, 0.12, 0.035, 0.4, 0.5, 0.0474]),
    ([0.0079] * 7, [0.0553] * 7),
    ([0.001, 0.3, 0.02], [0.003, 0.3, 0.04]),
    ([0.04, 0.01], [0.04, 0.02]),
])
def test_holm_matches_statsmodels(raw: list[float], adjusted: list[float]) -> None:
    from bench.report.compare import MetricComparison, _holm

    metrics = [MetricComparison(COMPARE_METRICS[i % len(COMPARE_METRICS)], 1.0, 2.0, 10, 10, p, 2.0, True, True,
                                True, min_p=1e-5, p_raw=p) for i, p in enumerate(raw)]
    out = _holm(metrics, 0.05)
    assert [m.p_value for m in out] == pytest.approx(adjusted, rel=1e-9)
    assert [m.significant for m in out] == [a < 0.05 for a in adjusted]
    assert all(m.family == len(raw) for m in out)


def test_interleaved_runs_overlap_not_significant() -> None:
    base = load_result(ACKS_A)
    # overlapping run values: 1.2x apart in the medians, but not separated: not significant, conclusive
    comp = compare_results(repeated(base, [1.0, 1.3, 0.9, 1.2, 1.05]), repeated(base, [1.25, 1.1, 1.5, 0.95, 1.2]))
    assert comp.exit_code() == EXIT_OK
    assert all(not m.significant for c in comp.cells for m in c.metrics)


def _cell(samples: list[float]) -> dict[str, Any]:
    n = len(samples)
    return {"label": "c", "params": {}, "complete": True, "timing": {"window_s": float(n)},
            "produce": {"msgs_per_s": sum(samples) / n},
            "series": {"produce": {"interval_s": 1.0, "t": list(range(n)), "count": samples}}}


def _runs_cell(values: list[float], **extra: Any) -> dict[str, Any]:
    """A cell of len(values) runs whose run-level produce rate is each value."""
    return {"label": "c", "params": {}, "complete": True, **extra,
            "repeats": [{"repeat": k, "complete": True, "produce": {"msgs_per_s": v}} for k, v in enumerate(values)]}


def _doc(cell: dict[str, Any]) -> dict[str, Any]:
    return {"scenario": {"name": "s"}, "environment": {}, "complete": True, "cells": [cell]}


def test_significant_but_within_threshold_is_not_a_regression() -> None:
    base = [1000.0, 1002, 998, 1001, 999]
    cur = [v * 0.95 for v in base]  # every run 5% lower: significant, but below a 10% threshold
    within = compare_results(_doc(_runs_cell(base)), _doc(_runs_cell(cur)), threshold=0.10, metrics=[PRODUCE_MSGS])
    (m,) = within.cells[0].metrics
    assert m.significant and not m.regression and m.verdict == f"{m.factor:.2f}x slower (within threshold)"
    assert within.exit_code() == EXIT_OK
    beyond = compare_results(_doc(_runs_cell(base)), _doc(_runs_cell(cur)), threshold=0.03, metrics=[PRODUCE_MSGS])
    assert beyond.exit_code() == EXIT_REGRESSION


@pytest.mark.parametrize(("nb", "nc", "code"), [(1, 1, 3), (2, 2, 3), (3, 3, 3), (3, 4, 1), (4, 4, 1), (2, 8, 1)])
def test_too_few_runs_are_inconclusive(nb: int, nc: int, code: int) -> None:
    # one-sided exact Mann-Whitney: smallest p = 1 / C(nb + nc, nb); 3 vs 3 gives 0.05, not < 0.05
    comp = compare_results(_doc(_runs_cell([1000.0 + i for i in range(nb)])),
                           _doc(_runs_cell([500.0 + i for i in range(nc)])), metrics=[PRODUCE_MSGS])
    assert comp.exit_code() == code
    assert comp.cells[0].metrics[0].min_p == pytest.approx(1 / math.comb(nb + nc, nb))
    if code == 3:
        assert any("can never reach" in n for n in comp.notes)
        assert compare_results(_doc(_runs_cell([1000.0] * nb)), _doc(_runs_cell([500.0] * nc)),
                               metrics=[PRODUCE_MSGS], allow_inconclusive=True).exit_code() == 0


def test_regression_elsewhere_beats_inconclusive() -> None:
    b = {"scenario": {"name": "s"}, "environment": {}, "complete": True,
         "cells": [_runs_cell([1000.0] * 4), {**_runs_cell([1000.0]), "params": {"x": 1}, "label": "x=1"}]}
    c = {**b, "cells": [_runs_cell([500.0] * 4), {**_runs_cell([500.0]), "params": {"x": 1}, "label": "x=1"}]}
    comp = compare_results(b, c, metrics=[PRODUCE_MSGS])
    assert comp.regressions and comp.inconclusive and comp.exit_code() == EXIT_REGRESSION


def test_steady_state_warnings_shown_when_present() -> None:
    steady = {"steady": True, "warning": None, "tests": []}
    drifting = {"steady": False, "warning": "publish p99 rises 2 ms/s (Mann-Kendall p = 0.01)", "tests": []}
    comp = compare_results(_doc(_runs_cell([1000.0] * 4, steady_state=steady)),
                           _doc(_runs_cell([1000.0] * 4, steady_state=drifting)), metrics=[PRODUCE_MSGS])
    text = comp.markdown()
    assert "not steady in the current result: publish p99 rises 2 ms/s" in text
    assert "not steady in the baseline" not in text
    per_run = _runs_cell([1000.0] * 4)
    per_run["repeats"][2]["steady_state"] = drifting
    text = compare_results(_doc(per_run), _doc(_runs_cell([1000.0] * 4)), metrics=[PRODUCE_MSGS]).markdown()
    assert "not steady in the baseline: run 3: publish p99 rises" in text
    assert "not steady" not in compare_results(_doc(_runs_cell([1.0] * 4)), _doc(_runs_cell([1.0] * 4)),
                                               metrics=[PRODUCE_MSGS]).markdown()  # field absent: tolerated


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["scenario"].__setitem__("sha256", "0" * 64), "scenario.sha256"),
    (lambda d: d["scenario"].__setitem__("name", "other"), "scenario.name"),
    (lambda d: d["environment"]["broker"].__setitem__("kind", "tansu"), "environment.broker.kind"),
    (lambda d: d["scenario"]["document"]["workload"].__setitem__("message_size", 100),
     "scenario.document.workload.message_size"),
    (lambda d: [c["workload"].__setitem__("producers", 2) for c in d["cells"]], "workload.producers"),
    (lambda d: [c["params"].__setitem__("producer.acks", "0") for c in d["cells"]], "cells (matrix parameters)"),
])
def test_incomparable_results_exit_2_unless_forced(tmp_path: Path, edit: Any, field: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    doc = load_result(ACKS_A)
    edit(doc)
    other = _write(tmp_path, "other.json", doc)
    assert main(["compare", str(ACKS_A), str(other)]) == 2
    captured = capsys.readouterr()
    assert "INCOMPARABLE" in captured.out and field in captured.out and field in captured.err
    with pytest.raises(ResultError, match="not comparable"):
        cmd_compare(argparse.Namespace(baseline=str(ACKS_A), current=str(other), threshold="10%", alpha=0.05,
                                       force=False, markdown=None, allow_inconclusive=False))
    forced = main(["compare", str(ACKS_A), str(other), "--force"])
    assert forced == (2 if field == "cells (matrix parameters)" else EXIT_INCONCLUSIVE)  # single runs


def test_step_summary_appended_and_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(ACKS_B, run_dir / "result.json")
    assert main(["compare", str(ACKS_A), str(run_dir)]) == EXIT_INCONCLUSIVE
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "## kbench compare: smoke" in text
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["compare", str(ACKS_A), str(broken)]) == 2
    assert main(["compare", str(ACKS_A), str(tmp_path / "missing")]) == 2
    assert main(["compare", str(ACKS_A), str(ACKS_A), "--threshold", "lots"]) == 2


# -- the example GitHub Actions workflow -----------------------------------------------------------
WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "kbench.yml"


def test_example_workflow_is_valid_and_gates_on_compare() -> None:
    import shlex

    import yaml

    from bench.cli.main import build_parser

    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc["name"] == "kbench" and (doc.get("on") or doc.get(True))  # YAML 1.1 reads `on` as True
    steps = doc["jobs"]["benchmark"]["steps"]
    assert doc["jobs"]["benchmark"]["runs-on"].startswith("ubuntu")
    uses = {s["uses"].split("@")[0]: s.get("with", {}) for s in steps if "uses" in s}
    assert str(uses["actions/setup-java"]["java-version"]) == "17"
    assert str(uses["actions/setup-python"]["python-version"]) == "3.11"
    commands = [line.strip() for s in steps for line in " ".join(s.get("run", "").split("\n")).split(";")
                if line.strip().startswith("kbench ")]
    parser = build_parser()
    parsed = []
    env = {k: str(v) for k, v in (doc.get("env") or {}).items()}
    for command in commands:
        command = re.sub(r"\$\{\{[^}]*\}\}", "PLACEHOLDER", command)
        command = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), m.group(0)), command)
        argv = shlex.split(command)[1:]
        parsed.append(parser.parse_args(argv))  # every kbench command line of the example is valid
    run = next(a for a in parsed if a.cmd == "run")
    assert run.scenario == "scenarios/smoke.yaml" and run.broker == "kafka"
    # repeated runs, enough for the run-level test to conclude at the default alpha (else exit 3)
    assert run.repeat is not None and len(COMPARE_METRICS) * min_p_value(run.repeat, run.repeat, "greater") < 0.05
    assert any(a.cmd == "report" for a in parsed)
    compare_step = next(s for s in steps if "kbench compare" in s.get("run", ""))
    assert not compare_step.get("continue-on-error"), "the compare step must gate the job"
    assert (WORKFLOW.parent.parent.parent / "scenarios" / "smoke.yaml").exists()
