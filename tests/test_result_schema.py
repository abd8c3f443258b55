"""The published result schema (schemas/result.schema.json) and validation on load.

Every result fixture validates; malformed variants of one are exit 2 naming the bad field, with no traceback,
through each of `kbench report`, `compare` and `plan` (the three commands that load a result).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, run_kbench

from bench.errors import ResultError
from bench.results.schema import RESULT_SCHEMA, check_result, json_path
from bench.results.store import load_result
from bench.run.repeats import merge_repeats

FIXTURES = REPO / "tests" / "fixtures"
GOOD = FIXTURES / "results" / "smoke-acks-a.json"
SCHEMA_FILE = REPO / "schemas" / "result.schema.json"


def _result_fixtures() -> list[Path]:
    paths = []
    for p in sorted(FIXTURES.rglob("*.json")):
        doc = json.loads(p.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "kbench.run":
            paths.append(p)
    return paths


def test_committed_schema_is_the_generated_one() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(RESULT_SCHEMA)
    assert json.loads(SCHEMA_FILE.read_text()) == RESULT_SCHEMA, \
        "schemas/result.schema.json is stale: python -m bench.results.schema > schemas/result.schema.json"


@pytest.mark.parametrize("path", _result_fixtures(), ids=lambda p: p.name)
def test_every_result_fixture_validates(path: Path) -> None:
    from jsonschema import Draft202012Validator

    doc = json.loads(path.read_text())
    assert list(Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).iter_errors(doc)) == []
    assert load_result(path)["cells"]


def test_result_fixtures_exist() -> None:
    assert len(_result_fixtures()) >= 3


def test_a_repeated_cell_validates() -> None:
    doc = json.loads(GOOD.read_text())
    doc["cells"] = [merge_repeats([cell, copy.deepcopy(cell)]) for cell in doc["cells"]]
    assert all("repeats" in c for c in doc["cells"])
    check_result(doc, "repeated")


def test_optional_v1_fields_are_allowed() -> None:
    doc = json.loads(GOOD.read_text())
    doc.update(priming={"cell": "smoke", "complete": True, "seconds": 3.0, "steady": None},
               search={"status": "converged", "steps": [], "spec": {}, "knee": None},
               driver="librdkafka", thresholds=[], some_future_field={"x": 1})
    cell = doc["cells"][0]
    cell["produce"].pop("latency_sample", None)  # absent from results written before they existed
    cell["produce"].pop("errors_estimated", None)
    _cell(doc, 1)["produce"].update(latency_sample=10, errors_estimated=True)
    cell.update(faults={"actions": []}, verification={"ok": True}, locust={"end_reason": "done"},
                steady_state={"steady": True, "warning": None, "method": "mann-kendall", "tests": []})
    check_result(doc, "optional")


def test_json_path() -> None:
    assert json_path(()) == "$"
    assert json_path(("cells", 0, "produce", "msgs_per_s")) == "cells[0].produce.msgs_per_s"
    assert json_path(("cells", 1, "repeats", 2, "latency")) == "cells[1].repeats[2].latency"


# ---------------------------------------------------------------------------------- malformed variants
def _cell(doc: dict[str, Any], i: int = 0) -> dict[str, Any]:
    cell: dict[str, Any] = doc["cells"][i]
    return cell


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return apply


def _delete(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return apply


def _truncate_hdr(doc: dict[str, Any]) -> None:
    lat = _cell(doc)["latency"]["publish"]
    lat["hdr"] = lat["hdr"][:40]  # valid base64, a cut zlib stream


def _ragged(doc: dict[str, Any]) -> None:
    _cell(doc)["series"]["produce"]["count"].pop()


# (id, change, substrings the error must contain: the JSON path of the field and what was wrong)
VARIANTS: list[tuple[str, Callable[[dict[str, Any]], None], tuple[str, ...]]] = [
    ("bad-hdr-blob", _set(("cells", 0, "latency", "publish", "hdr"), "HISTFAAA!!not base64!!"),
     ("cells[0].latency.publish.hdr", "HdrHistogram")),
    ("truncated-hdr-blob", _truncate_hdr, ("cells[0].latency.publish.hdr", "does not decode")),
    ("number-for-hdr", _set(("cells", 0, "latency", "service", "hdr"), 12345),
     ("cells[0].latency.service.hdr", "string")),
    ("null-cell", _set(("cells", 0), None), ("cells[0]", "object")),
    ("msgs-per-s-fast", _set(("cells", 0, "produce", "msgs_per_s"), "fast"),
     ("cells[0].produce.msgs_per_s", "number")),
    ("negative-messages", _set(("cells", 0, "produce", "messages"), -5),
     ("cells[0].produce.messages", "minimum")),
    ("negative-error-count", _set(("cells", 1, "consume", "errors"), {"timeout": -1}),
     ("cells[1].consume.errors.timeout", "minimum")),
    ("ragged-series", _ragged, ("cells[0].series.produce", "equal length", "count: 5")),
    ("missing-latency", _delete(("cells", 0, "latency")), ("cells[0]", "'latency' is a required property")),
    ("missing-produce", _delete(("cells", 1, "produce")), ("cells[1]", "'produce' is a required property")),
    ("schema-version-string", _set(("schema_version",), "1"), ("schema_version", "not supported")),
    ("schema-version-2", _set(("schema_version",), 2), ("schema_version", "2", "not supported")),
    ("cells-not-a-list", _set(("cells",), {"0": {}}), ("cells", "array")),
    ("wrong-kind", _set(("kind",), "kbench.conformance"), ("kind", "kbench.run")),
    ("latency-section-a-string", _set(("cells", 0, "latency", "e2e"), "slow"), ("cells[0].latency.e2e",)),
    ("per-second-value-string", _set(("cells", 0, "produce", "per_second", "values", 2), "many"),
     ("cells[0].produce.per_second.values[2]", "number")),
    ("hdr-count-mismatch", _set(("cells", 0, "latency", "publish", "count"), 3),
     ("cells[0].latency.publish.count", "histogram")),
    ("zero-partitions", _set(("cells", 1, "topic", "partitions"), 0), ("cells[1].topic.partitions", "minimum")),
    ("lag-sample-short", _set(("cells", 0, "series", "lag", 0), [1.0]), ("cells[0].series.lag[0]",)),
    ("index-a-string", _set(("cells", 1, "index"), "one"), ("cells[1].index", "integer")),
    ("complete-a-string", _set(("complete",), "yes"), ("complete", "boolean")),
]


def _variant(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    doc = json.loads(GOOD.read_text())
    change(doc)
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(doc))
    return run


def test_there_are_at_least_15_variants() -> None:
    assert len(VARIANTS) >= 15


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _i, c, e in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_malformed_result_is_a_clear_error_in_load_result(tmp_path: Path, change: Callable[[dict[str, Any]], None],
                                                          expected: tuple[str, ...]) -> None:
    run = _variant(tmp_path, change)
    with pytest.raises(ResultError) as info:
        load_result(run)
    message = str(info.value)
    assert str(run / "result.json") in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _i, c, e in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_malformed_result_is_exit_2_naming_the_field_in_every_command(
        tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: tuple[str, ...]) -> None:
    run = _variant(tmp_path, change)
    commands = {
        "report": ("report", str(run)),
        "compare": ("compare", str(GOOD), str(run)),
        "plan": ("plan", str(run), "--target-mbps", "10", "--p99-ms", "50"),
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip(commands, pool.map(lambda argv: run_kbench(*argv, timeout=120), commands.values()),
                        strict=True))
    for name, proc in done.items():
        assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, f"{name}: {proc.stderr}"
        for part in expected:
            assert part in proc.stderr, f"{name}: {part!r} not in {proc.stderr!r}"
    assert not (run / "report").exists() and not (run / "plan").exists()
