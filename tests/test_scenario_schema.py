"""The published scenario schema (schemas/scenario.schema.json): generated, shipped scenarios validate, and
the schema and the loader agree on a few invalid documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.capacity.spec import SEARCH_KEYS
from bench.errors import ScenarioError
from bench.faults.plan import FAULT_KEYS
from bench.scenario.model import SUB_KEYS, TOP_KEYS, TOPIC_KEYS, WORKLOAD_KEYS, load_scenario_text
from bench.scenario.schema import SCENARIO_SCHEMA

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "scenario.schema.json"
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
SCHEMA_COMMENT = "# yaml-language-server: $schema=../schemas/scenario.schema.json"


def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def test_committed_schema_is_the_generated_one() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(SCENARIO_SCHEMA)
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == SCENARIO_SCHEMA, \
        "schemas/scenario.schema.json is stale: python -m bench.scenario.schema > schemas/scenario.schema.json"


def test_schema_names_the_keys_the_loader_accepts() -> None:
    props = SCENARIO_SCHEMA["properties"]
    assert set(props) == set(TOP_KEYS)

    def obj(schema: dict[str, Any], kind: str = "object") -> dict[str, Any]:
        return next(s for s in schema.get("anyOf", [schema]) if s.get("type") == kind)

    assert set(obj(props["topic"])["properties"]) == set(TOPIC_KEYS)
    work = obj(props["workload"])["properties"]
    assert set(work) == set(WORKLOAD_KEYS)
    for key in ("payload", "keys", "backlog"):
        assert set(obj(work[key])["properties"]) == set(SUB_KEYS[key])
    assert set(obj(props["faults"], "array")["items"]["properties"]) == set(FAULT_KEYS)
    assert set(obj(props["search"])["properties"]) == set(SEARCH_KEYS)


def test_scenarios_found() -> None:
    assert len(SCENARIOS) >= 5


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenario_validates(path: Path) -> None:
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _validator().iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))]
    assert errors == []


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenario_names_the_schema_first(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_COMMENT
    assert (path.parent / SCHEMA_COMMENT.split("=", 1)[1]).resolve() == SCHEMA_FILE.resolve()


VALID = [
    "name: ok\nworkload: {rate: max, duration: 8s, warmup: 0}\n",
    "topic: {partitions: 3}\nworkload:\n  message_size: {distribution: uniform, min: 10, max: 100}\n"
    "  keys: {kind: zipf, count: 100, zipf_s: 1.5}\n  rate: 500\n  backlog: {messages: 1000}\n",
    "workload: {message_size: {distribution: choice, values: [10, 20], weights: [1, 3]}, keys: none}\n"
    "producer: {acks: all, linger.ms: 5, enable.idempotence: true}\nmatrix:\n  producer.acks: [0, 1, all]\n"
    "thresholds: [{metric: publish.p99_ms, max: 50}]\nrepeat: 3\n",
]

INVALID = [
    ("unknown top-level key", "name: x\nworkloads: {}\n"),
    ("rate fast", "workload: {rate: fast}\n"),
    ("partitions -1", "topic: {partitions: -1}\n"),
    ("message_size 0", "workload: {message_size: 0}\n"),
    ("unknown workload key", "workload: {ratee: 5}\n"),
    ("bad duration", "workload: {duration: 5 seconds}\n"),
    ("count with kind none", "workload: {keys: {kind: none, count: 3}}\n"),
    ("zipf without count", "workload: {keys: {kind: zipf}}\n"),
    ("backlog with two keys", "workload: {backlog: {messages: 5, duration: 2s}}\n"),
    ("unknown matrix key", "matrix: {workload.speed: [1, 2]}\n"),
    ("empty matrix list", "matrix: {producer.acks: []}\n"),
    ("threshold without bound", "thresholds: [{metric: publish.p99_ms}]\n"),
    ("unknown broker", "broker: redpanda\n"),
    ("repeat 0", "repeat: 0\n"),
    ("producer property list", "producer: {acks: [1]}\n"),
]


@pytest.mark.parametrize("text", VALID)
def test_valid_documents_pass_both(text: str) -> None:
    assert list(_validator().iter_errors(yaml.safe_load(text))) == []
    load_scenario_text(text)


@pytest.mark.parametrize(("why", "text"), INVALID, ids=[w for w, _ in INVALID])
def test_invalid_documents_are_rejected_by_both(why: str, text: str) -> None:
    assert list(_validator().iter_errors(yaml.safe_load(text))), f"schema accepted: {why}"
    with pytest.raises(ScenarioError):
        load_scenario_text(text)
