"""`kbench report` on results of real `kbench run`s (tests/fixtures/results/): tables, markdown, CSV/Parquet,
charts, and the rule that kbench never overwrites a file it did not write."""

from __future__ import annotations

import copy
import json
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from bench.cli.main import main
from bench.errors import ConfigError, ResultError
from bench.metrics.hdr import decode_histogram
from bench.report.charts import CHARTS
from bench.report.data import REPORT_METRICS, latency_spectrum
from bench.report.tables import BEST, markdown_summary, metric_tables
from bench.report.writer import MANIFEST, write_report
from bench.results.store import load_result

FIXTURES = Path(__file__).parent / "fixtures" / "results"
LINGER = FIXTURES / "smoke-linger-max.json"   # kbench run smoke, rate max, linger.ms=[0,5,20], 4 s
ACKS = FIXTURES / "smoke-acks-a.json"         # kbench run smoke, rate 2000, acks=[1,all], 5 s


def _run_dir(tmp_path: Path, fixture: Path, doc: dict[str, Any] | None = None) -> Path:
    run = tmp_path / fixture.stem
    run.mkdir()
    if doc is None:
        shutil.copy(fixture, run / "result.json")
    else:
        (run / "result.json").write_text(json.dumps({k: v for k, v in doc.items() if k != "_path"}))
    return run


def test_report_files_from_real_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path, LINGER)
    assert main(["report", str(run)]) == 0
    out = run / "report"
    assert f"report written to {out}" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"summary.md", "report.html", "cells.csv", MANIFEST, *(n for _, n in CHARTS)} <= names
    for _, name in CHARTS:
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width >= 600 and img.height >= 300
            # not a blank canvas: many distinct colours
            assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == names - {MANIFEST}


def test_csv_and_parquet_match_the_result(tmp_path: Path) -> None:
    doc = load_result(LINGER)
    files = write_report(_run_dir(tmp_path, LINGER))
    frame = pd.read_csv(files.csv)
    assert list(frame["label"]) == [c["label"] for c in doc["cells"]]
    for row, cell in zip(frame.itertuples(index=False), doc["cells"], strict=True):
        values = dict(zip(frame.columns, row, strict=True))
        assert values["produce.msgs_per_s"] == pytest.approx(cell["produce"]["msgs_per_s"])
        assert values["consume.mb_per_s"] == pytest.approx(cell["consume"]["mb_per_s"])
        hist = decode_histogram(cell["latency"]["publish"]["hdr"])   # independent: hdrh itself
        assert values["latency.publish.p99_ms"] == pytest.approx(hist.get_value_at_percentile(99.0) / 1000)
        per_second = cell["produce"]["per_second"]
        assert values["produce.msgs_per_s.per_second.stdev"] == pytest.approx(per_second["stdev"])
        assert values["produce.msgs_per_s.per_second.n"] == per_second["samples"]
        assert str(values["param:producer.linger.ms"]) == str(cell["params"]["producer.linger.ms"])
    pytest.importorskip("pyarrow")  # Parquet is optional: written only when pyarrow imports
    assert files.parquet is not None
    parquet = pd.read_parquet(files.parquet)
    assert list(parquet.columns) == list(frame.columns) and len(parquet) == len(frame)


def test_one_table_per_metric_with_best_cell_marked() -> None:
    doc = load_result(LINGER)
    tables = metric_tables(doc)
    titles = [t.title for t in tables]
    assert len(titles) == len(set(titles)) >= 10
    produce = next(t for t in tables if t.title.startswith("produce throughput (msg/s)"))
    rates = [c["produce"]["msgs_per_s"] for c in doc["cells"]]
    best = rates.index(max(rates))
    assert produce.best_rows == [best]
    assert produce.frame["cell"][best] == f"{doc['cells'][best]['label']} {BEST}"
    assert sum(BEST in str(v) for v in produce.frame["cell"]) == 1
    p99 = next(t for t in tables if t.title.startswith("publish latency p99 (ms)"))
    lat = [decode_histogram(c["latency"]["publish"]["hdr"]).get_value_at_percentile(99.0) for c in doc["cells"]]
    assert p99.best_rows == [lat.index(min(lat))]
    # spread of per-second samples: mean ± stdev and min – max, recomputed here with statistics
    values = doc["cells"][0]["produce"]["per_second"]["values"]
    assert produce.frame["per-second mean ± stdev"][0] == (f"{statistics.fmean(values):,.0f} ± "
                                                          f"{statistics.stdev(values):,.0f}")
    assert produce.frame["per-second min – max"][0] == f"{min(values):,.0f} – {max(values):,.0f}"
    # errors are 0 everywhere: no cell is "best"
    errors = next(t for t in tables if t.title.startswith("errors"))
    assert errors.best_rows == [] and "vs best" not in errors.frame.columns


def test_markdown_summary_content() -> None:
    doc = load_result(ACKS)
    md = markdown_summary(doc, [(t, n) for t, n in CHARTS])
    assert md.startswith(f"# kbench report: {doc['scenario']['name']}")
    assert md.count("\n### ") == len(metric_tables(doc))
    for metric in REPORT_METRICS[:4]:
        assert f"### {metric.label}" in md
    for cell in doc["cells"]:
        assert f"| {cell['label']} | ok |" in md
    for _, name in CHARTS:
        assert f"]({name})" in md
    assert "threshold(s) met in every cell" in md
    assert "INCOMPLETE" not in md


def test_incomplete_run_and_cell_are_marked(tmp_path: Path) -> None:
    doc = copy.deepcopy(load_result(LINGER))
    rates = [c["produce"]["msgs_per_s"] for c in doc["cells"]]
    fastest = rates.index(max(rates))
    doc["complete"] = False
    doc["incomplete_reason"] = "interrupted (Ctrl-C)"
    doc["cells"][fastest]["complete"] = False
    doc["cells"][fastest]["incomplete_reason"] = "producers stopped before the end of the window"
    md = markdown_summary(doc)
    label = doc["cells"][fastest]["label"]
    assert "INCOMPLETE RUN:** interrupted (Ctrl-C)" in md
    assert f"| {label} (incomplete) | INCOMPLETE |" in md
    assert f"**{label}** incomplete: producers stopped" in md
    produce = next(t for t in metric_tables(doc) if t.title.startswith("produce throughput (msg/s)"))
    assert fastest not in produce.best_rows and produce.best_rows  # an incomplete cell is never "best"
    assert produce.incomplete_rows == [fastest]
    files = write_report(_run_dir(tmp_path, LINGER, doc))
    assert "INCOMPLETE RUN" in files.html.read_text()


def test_run_without_cells(tmp_path: Path) -> None:
    doc = copy.deepcopy(load_result(ACKS))
    doc["cells"] = []
    doc["complete"] = False
    doc["incomplete_reason"] = "broker died"
    files = write_report(_run_dir(tmp_path, ACKS, doc))
    assert files.charts == []
    assert "No cell was measured" in files.markdown.read_text()
    assert "broker died" in files.html.read_text()


def test_never_overwrites_foreign_files(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, ACKS)
    files = write_report(run)
    first = files.markdown.read_text()
    notes = run / "report" / "my-notes.txt"
    notes.write_text("mine")
    assert write_report(run).markdown.read_text() == first  # own files replaced, foreign ones left alone
    assert notes.read_text() == "mine"
    files.html.write_text("edited by hand")
    with pytest.raises(ConfigError, match=r"report\.html: changed since kbench wrote it"):
        write_report(run)
    assert files.html.read_text() == "edited by hand"
    # a folder kbench did not create is refused outright
    (tmp_path / "x").mkdir()
    other = _run_dir(tmp_path / "x", ACKS)
    (other / "report").mkdir()
    (other / "report" / "summary.md").write_text("user's summary")
    assert main(["report", str(other)]) == 2
    assert (other / "report" / "summary.md").read_text() == "user's summary"
    # --out elsewhere works
    assert main(["report", str(other), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.html").exists()


def test_unusable_result(tmp_path: Path) -> None:
    with pytest.raises(ResultError):
        write_report(tmp_path / "nothing-here")
    bad = tmp_path / "result.json"
    bad.write_text(json.dumps({"schema_version": 99, "kind": "kbench.run", "cells": []}))
    assert main(["report", str(bad)]) == 2


def test_latency_spectrum_on_nines_axis() -> None:
    cell = load_result(LINGER)["cells"][1]
    spectrum = latency_spectrum(cell, "publish")
    assert spectrum is not None
    xs, ys = spectrum
    assert xs[0] == 0 and ys == sorted(ys)  # percentiles never decrease
    hist = decode_histogram(cell["latency"]["publish"]["hdr"])
    # x = log10(1 / (1 - p)): x = 2 is the 99th percentile, x = 3 the 99.9th
    for k in range(0, len(xs), 17):
        pct = 100.0 * (1.0 - 10.0 ** -xs[k])
        assert ys[k] == pytest.approx(hist.get_value_at_percentile(pct) / 1000), (xs[k], pct)
    assert xs[-1] == pytest.approx(min(5.0, math.log10(hist.get_total_count())))
    assert ys[-1] <= hist.get_max_value() / 1000 + 1e-9
    assert latency_spectrum({"latency": {"publish": None}}, "publish") is None
