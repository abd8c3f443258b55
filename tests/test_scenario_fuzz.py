"""Fuzz the scenario loader: whatever goes in, the result is a Scenario or a ScenarioError, nothing else."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.errors import ScenarioError
from bench.scenario.model import Scenario, load_scenario, load_scenario_text, to_plain

SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

VOCAB = ["name", "description", "broker", "topic", "workload", "producer", "consumer", "matrix",
         "thresholds", "faults", "search", "partitions", "replication_factor", "config", "message_size",
         "payload", "keys", "producers", "consumer_groups", "consumers_per_group", "rate", "warmup",
         "duration", "backlog", "end_to_end", "latency_sample", "distribution", "min", "max", "mean", "stddev",
         "values", "weights", "kind", "count", "zipf_s", "compressibility", "file", "messages", "metric",
         "producer.acks", "workload.rate", "workload.message_size", "topic.config.retention.ms",
         "topics", "partitionsPerTopic", "messageSize", "producerRate", "testDurationMinutes",
         "keyDistributor", "payloadFile", "consumerBacklogSizeGB", "useRandomizedPayloads"]
WORDS = ["max", "all", "none", "zipf", "uniform", "normal", "choice", "fixed", "random", "file", "kafka",
         "tansu", "5s", "500ms", "2m", "1h", "-1s", "NO_KEY", "KEY_ROUND_ROBIN", "RANDOM_NANO", "1e6"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70), st.integers(min_value=-3, max_value=300),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS), st.text(max_size=12),
    st.dates(), st.binary(max_size=4),
)
keys = st.one_of(st.sampled_from(VOCAB), st.text(max_size=8))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=30,
)
top_level = st.dictionaries(st.sampled_from(VOCAB), documents, max_size=6)

YAML_TOKENS = ["name:", "workload:", "topic:", "matrix:", "rate:", "  ", "    ", "- ", "\n", ": ", "[", "]",
               "{", "}", ",", "&a ", "*a", "!!binary ", "!!set ", "!!python/tuple ", "<<: ", "'", '"', "|",
               ">", "#", "---", "...", "%YAML 1.1", "~", "null", ".inf", ".nan", "2024-13-45", "0x1F",
               "1_000", "5s", "max", "producer.acks", "partitions:", "producers: 0", "\t", "\x00", "é"]
ODD_VALUES = ["2024-13-45", "2021-02-30 25:61:00", "!!timestamp x", "!!int x", "!!float abc", "!!binary ???",
              "!!bool maybe", "!!null x", "!!map [1]", "!!seq {a: 1}", "!!omap [a: 1]", "!!pairs [a: 1]",
              "!!set [1]", "1:70:00", "0b102", "0o9", "0x", "-.inf", "[*b]", "&b [*b]", "{? [1]: 2}",
              "{[1]: 2}", "!custom 1", "@x", "`y"]
line = st.tuples(st.sampled_from(["", "  ", "    ", "- ", "  - "]), st.sampled_from(VOCAB + YAML_TOKENS),
                 st.sampled_from([": ", ":", " ", ""]), st.sampled_from(ODD_VALUES + WORDS + YAML_TOKENS))
yamlish = st.lists(st.one_of(line.map("".join), st.sampled_from(YAML_TOKENS)), max_size=30).map("\n".join)


# Near-valid documents: every field drawn from good values and values just past a bound.
SIZES = [1024, 0, 1, 104857600, 104857601, -5, "big", {"distribution": "uniform", "min": 5, "max": 1},
         {"distribution": "uniform", "min": 1, "max": 9}, {"distribution": "normal", "mean": 50, "stddev": 0},
         {"distribution": "normal", "mean": 50, "stddev": 10, "min": 60, "max": 70},
         {"distribution": "choice", "values": [1, 2], "weights": [0, 0]},
         {"distribution": "choice", "values": [3, 4], "weights": [1, 2]}, {"distribution": "fixed", "value": 7},
         {"distribution": "choice", "values": []}, {"distribution": "fixed"}]
FIELDS: dict[str, list[object]] = {
    "message_size": SIZES,
    "payload": [None, {"kind": "random", "compressibility": 1}, {"kind": "random", "compressibility": -0.1},
                {"kind": "file", "file": "nope"}, {"kind": "file", "file": ""}, {"kind": "file", "file": "\x00"},
                "random"],
    "keys": [None, "none", "zipf", {"kind": "zipf", "count": 3}, {"kind": "uniform", "count": 0},
             {"kind": "round_robin", "count": 5, "zipf_s": 2}, {"kind": "zipf", "count": 9, "zipf_s": 1.0}],
    "producers": [0, 1, 64, 65, -1, True], "consumer_groups": [0, 1, 16, 17],
    "consumers_per_group": [0, 1, 64, 65], "rate": ["max", "MAX", 0, 1, 1e8, 1.0e9, -5, ".5", None, 0.001],
    "warmup": [0, "0s", "500ms", "24h", "25h", -1, "1 h", 1.5], "duration": [0, "1s", 86400, 86401, "2m", "x"],
    "backlog": [None, {"messages": 10}, {"duration": "1s"}, {"messages": 0}, {}, {"messages": 1, "duration": 1}],
    "end_to_end": [True, False, "true", None],
    "latency_sample": ["auto", 1, 64, 1024, 1025, 0, -1, "x", 2.5, None],
}
TOPIC: dict[str, list[object]] = {"name": [None, "t", "..", "a" * 250, "bad name"],
                                  "partitions": [1, 10000, 10001, 0], "replication_factor": [1, 10, 11],
                                  "config": [None, {"retention.ms": 1}, {"a": [1]}, {"": 1}]}
MATRIX_KEYS = ["producer.acks", "producer.linger.ms", "workload.rate", "workload.message_size",
               "workload.keys.count", "workload.keys", "topic.partitions", "topic.config.x.y", "workload.nope",
               "consumer.fetch.min.bytes", "workload.payload.compressibility", "name"]


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, object]:
    pick = lambda table: {k: draw(st.sampled_from(v)) for k, v in table.items()  # noqa: E731
                          if draw(st.booleans())}
    doc: dict[str, object] = {"workload": pick(FIELDS), "topic": pick(TOPIC)}
    if draw(st.booleans()):
        doc["matrix"] = {k: draw(st.lists(st.sampled_from([v for vs in FIELDS.values() for v in vs] + ["all"]),
                                          max_size=3))
                         for k in draw(st.lists(st.sampled_from(MATRIX_KEYS), max_size=3, unique=True))}
    return doc


def check(text: str | bytes, overrides: tuple[str, ...] = ()) -> None:
    try:
        scenario = load_scenario_text(text, filename="fuzz.yaml", overrides=overrides)  # type: ignore[arg-type]
    except ScenarioError as exc:
        assert str(exc).startswith(("fuzz.yaml", "--set")), str(exc)
        return
    assert isinstance(scenario, Scenario) and 1 <= len(scenario.cells) <= 256
    for cell in scenario.cells:
        w = cell.workload
        assert 0 < w.duration_s <= 86_400 and 0 <= w.warmup_s <= 86_400
        assert w.rate is None or (math.isfinite(w.rate) and w.rate > 0)
        assert 1 <= cell.topic.partitions <= 10_000 and w.message_size.mean_bytes() >= 1
        assert all(isinstance(v, str) for v in cell.producer.values())
        cell.label()
    json.dumps(to_plain(scenario.raw))


@SETTINGS
@given(top_level)
def test_random_documents(doc: dict[str, object]) -> None:
    check(yaml.safe_dump(doc, sort_keys=False))


@SETTINGS
@given(documents)
def test_random_values_at_top_level(doc: object) -> None:
    check(yaml.safe_dump(doc))


@SETTINGS
@given(st.sampled_from(["workload", "topic", "producer", "matrix", "thresholds"]), documents,
       st.lists(st.tuples(st.sampled_from([*VOCAB, "workload.rate", "matrix.producer.acks", "producer.x.y"]),
                          st.sampled_from(["5", "-1", "[1, all]", "{a: 1}", "max", "[", "", "2m", "0"])),
                max_size=3))
def test_mutated_valid_document(section: str, value: object, sets: list[tuple[str, str]]) -> None:
    doc: dict[str, object] = {"name": "fuzz", "workload": {"rate": 100, "duration": "1s"},
                              "producer": {"acks": "all"}}
    doc[section] = value
    check(yaml.safe_dump(doc), tuple(f"{k}={v}" for k, v in sets))


@SETTINGS
@given(yamlish)
def test_yamlish_text(text: str) -> None:
    check(text)


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    check(text)


@settings(max_examples=100, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_random_bytes_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(data)
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            assert str(exc).startswith(str(path))
            return
        assert isinstance(scenario, Scenario)


@SETTINGS
@given(near_valid(), st.lists(st.sampled_from(["workload.rate=5", "workload.producers=0", "topic.name=t",
                                               "matrix.workload.rate=[1, max]", "workload.keys.count=3",
                                               "producer.acks=all", "workload=5"]), max_size=2))
def test_near_valid_documents(doc: dict[str, object], sets: list[str]) -> None:
    check(yaml.safe_dump(doc), tuple(sets))


@settings(max_examples=40, deadline=None, database=None)
@given(st.integers(min_value=1, max_value=1200), st.sampled_from(["[", "{a: ", "- ", "[{b: "]),
       st.sampled_from(["faults: ", "workload: ", "", "matrix: {workload.rate: "]))
def test_deep_nesting(depth: int, opener: str, prefix: str) -> None:
    check(prefix + opener * depth + "1")
