"""The HTML report of a real run: the Jinja2 templates give the document the string-built renderer gave
(tests/html_reference.py), escape what comes from the result, and, opened in headless Chromium, every
image loads and every table is there.

The browser tests need ``/usr/bin/chromium`` (Debian/Ubuntu: ``apt-get install -y chromium``). Without it
they are skipped on a developer machine and FAIL when the environment variable CI is set.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bench.report.html import render_html, table_html
from bench.report.tables import metric_tables, overview_table
from bench.report.writer import ReportFiles, write_report
from bench.results.store import load_result
from tests.html_reference import dom_events, old_report_html, old_table_html

FIXTURES = Path(__file__).parent / "fixtures" / "results"
FIXTURE = FIXTURES / "smoke-linger-max.json"
CHROMIUM = Path("/usr/bin/chromium")
_PROBE = ('<script>window.addEventListener("load", function () {'
          'var imgs = Array.prototype.slice.call(document.images);'
          'document.body.setAttribute("data-imgs-total", imgs.length);'
          'document.body.setAttribute("data-imgs-loaded", imgs.filter(function (i) {'
          ' return i.complete && i.naturalWidth > 0; }).length);'
          'document.body.setAttribute("data-tables", document.querySelectorAll("table").length);'
          '});</script>')


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    run = tmp_path_factory.mktemp("run")
    shutil.copy(FIXTURE, run / "result.json")
    return write_report(run)


def _variants(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fixture as is, and edited into every branch of the template: incomplete run and cell, warnings,
    missed thresholds, markup in every text, no cells at all."""
    edited = copy.deepcopy(doc)
    edited["scenario"]["name"] = "<script>alert('x')</script> & co"
    edited["scenario"]["description"] = 'a "quoted" <b>description</b>'
    edited["scenario"]["document"]["thresholds"] = [{"metric": "produce.msgs_per_s", "min": 1e12},
                                                    {"metric": "errors.total", "max": 0}]
    edited.update(complete=False, incomplete_reason="broker <died> & restarted", _path="runs/<x>/result.json")
    edited["cells"][0].update(complete=False, incomplete_reason="stopped <early>", warnings=["w <1>", "w & 2"])
    return {"as is": doc, "edited": edited, "no cells": {**copy.deepcopy(doc), "cells": []}}


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_templates_give_the_document_the_string_builder_gave(fixture: Path, tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n not a real image")
    doc = load_result(fixture)
    for name, variant in _variants(doc).items():
        for charts in ((), (("latency <over> time", png), ("throughput", png))):
            new = render_html(variant, charts)
            assert dom_events(new) == dom_events(old_report_html(variant, charts)), (name, len(charts))
            assert new.startswith("<!DOCTYPE html>\n<html") and new.endswith("</html>\n")
    table = overview_table(doc)
    assert dom_events(table_html(table, caption="cells <all>")) == dom_events(old_table_html(table,
                                                                                             caption="cells <all>"))
    assert len(dom_events(render_html(doc))) > 200   # a real document was compared, not two empty ones


def test_markup_from_the_result_is_escaped() -> None:
    doc = _variants(load_result(FIXTURE))["edited"]
    page = render_html(doc)
    assert "<script" not in page and "<b>" not in page and "<died>" not in page and "<early>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in page
    assert "<title>kbench report: &lt;script&gt;" in page
    assert ("text", "kbench report: <script>alert('x')</script> & co") in dom_events(page)   # shown as text
    assert "&#34;quoted&#34; &lt;b&gt;description&lt;/b&gt;" in page and "w &lt;1&gt;" in page


def _chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: install it with `apt-get install -y chromium`")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    return CHROMIUM


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def _probe(tmp_path: Path, html: str) -> dict[str, int]:
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", _PROBE + "</body>"))
    result = _browser(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body is not None, result.stdout[:500]
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body.group(0)))
    assert attrs, f"the probe script did not run: {body.group(0)}"
    return {k: int(v) for k, v in attrs.items()}


def test_html_is_self_contained(report: ReportFiles) -> None:
    html = report.html.read_text()
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(ref.startswith("data:image/png;base64,") for ref in refs), refs
    assert "<script" not in html and "<link" not in html
    for ref in refs:
        data = base64.b64decode(ref.split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(refs) == len(report.charts)


def test_images_load_and_tables_present_in_chromium(report: ReportFiles, tmp_path: Path) -> None:
    doc = load_result(report.out_dir.parent)
    found = _probe(tmp_path, report.html.read_text())
    assert found["imgs-total"] == len(report.charts) == 3
    assert found["imgs-loaded"] == found["imgs-total"]
    assert found["tables"] == 1 + len(metric_tables(doc))  # the cells overview + one per metric


def test_probe_notices_a_broken_image(report: ReportFiles, tmp_path: Path) -> None:
    html = report.html.read_text()
    broken = html.replace("data:image/png;base64,iVBORw0KGgo", "data:image/png;base64,AAAAAAAAAAA", 1)
    assert broken != html
    found = _probe(tmp_path, broken)
    assert found["imgs-loaded"] == found["imgs-total"] - 1


def test_screenshot_renders(report: ReportFiles, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = _browser(tmp_path, "--window-size=1280,3000", f"--screenshot={shot}", report.html.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1280, 3000)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 200  # charts and tables drawn, not a blank page
