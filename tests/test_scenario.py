"""Scenario loading: full documents, defaults, errors (file:line:key), matrix, overrides, OMB, payload files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest

from bench.errors import ScenarioError
from bench.scenario.model import (
    Backlog,
    Keys,
    MessageSize,
    Payload,
    Workload,
    load_scenario,
    load_scenario_text,
    parse_duration,
    to_plain,
)

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

FULL = """\
name: full-1
description: "everything set"
broker: tansu
topic:
  name: null
  partitions: 6
  replication_factor: 1
  config: {retention.ms: 600000, cleanup.policy: delete}
workload:
  message_size: {distribution: uniform, min: 100, max: 2000}
  payload: {kind: random, compressibility: 0.5}
  keys: {kind: zipf, count: 50, zipf_s: 1.5}
  producers: 2
  consumer_groups: 2
  consumers_per_group: 3
  rate: 2500.5
  warmup: 500ms
  duration: 2m
  backlog: {duration: 10s}
  end_to_end: false
producer: {acks: all, linger.ms: 5, compression.type: lz4, enable.idempotence: true}
consumer: {fetch.min.bytes: 1}
thresholds:
  - {metric: publish_latency.p99_ms, max: 50}
  - {metric: produce.msgs_per_s, min: 1000}
faults: {kill_broker: {after: 5s}}
search: [1, 2]
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def raises(fn: Callable[..., object], *args: object, **kwargs: object) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        fn(*args, **kwargs)
    return info.value


def error_of(text: str, *, overrides: tuple[str, ...] = (), filename: str = "t.yaml") -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(textwrap.dedent(text), filename=filename, overrides=overrides)
    return info.value


def test_full_document(tmp_path: Path) -> None:
    path = write(tmp_path, FULL, "full.yaml")
    sc = load_scenario(path)
    assert (sc.name, sc.description, sc.broker, sc.source_format) == ("full-1", "everything set", "tansu", "kbench")
    assert sc.path == path.resolve()
    assert sc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(sc.cells) == 1 and sc.cells[0].label() == "base" and dict(sc.cells[0].params) == {}
    cell = sc.cells[0]
    assert (cell.topic.name, cell.topic.partitions, cell.topic.replication_factor) == (None, 6, 1)
    assert dict(cell.topic.config) == {"retention.ms": "600000", "cleanup.policy": "delete"}
    w = cell.workload
    assert w.message_size == MessageSize("uniform", min=100, max=2000)
    assert w.payload == Payload("random", 0.5, None)
    assert w.keys == Keys("zipf", 50, 1.5)
    assert (w.producers, w.consumer_groups, w.consumers_per_group) == (2, 2, 3)
    assert (w.rate, w.warmup_s, w.duration_s, w.end_to_end) == (2500.5, 0.5, 120.0, False)
    assert w.backlog == Backlog(None, 10.0)
    assert dict(cell.producer) == {"acks": "all", "linger.ms": "5", "compression.type": "lz4",
                                   "enable.idempotence": "true"}
    assert dict(cell.consumer) == {"fetch.min.bytes": "1"}
    assert [(t.metric, t.max, t.min) for t in sc.thresholds] == [
        ("publish_latency.p99_ms", 50.0, None), ("produce.msgs_per_s", None, 1000.0)]
    assert to_plain(sc.faults) == {"kill_broker": {"after": "5s"}} and to_plain(sc.search) == [1, 2]
    assert json.loads(json.dumps(to_plain(sc.raw)))["workload"]["rate"] == 2500.5


def test_everything_read_only() -> None:
    sc = load_scenario_text(FULL)
    cell = sc.cells[0]
    for mapping in (sc.raw, cell.producer, cell.consumer, cell.topic.config, cell.params, sc.matrix):
        with pytest.raises(TypeError):
            mapping["x"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        sc.raw["workload"]["rate"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        sc.name = "other"  # type: ignore[misc]


def test_defaults(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, "description: minimal\n", "my scenario.yaml"))
    assert sc.name == "my-scenario" and sc.broker is None and sc.thresholds == ()
    assert sc.faults is None and sc.search is None and dict(sc.matrix) == {}
    cell = sc.cells[0]
    assert (cell.topic.name, cell.topic.partitions, cell.topic.replication_factor) == (None, 1, 1)
    assert dict(cell.topic.config) == {} and dict(cell.producer) == {} and dict(cell.consumer) == {}
    w = cell.workload
    assert w.message_size == MessageSize("fixed", value=1024, min=1024, max=1024)
    assert w.payload == Payload("random", 0.0, None) and w.keys == Keys("none", None, 1.2)
    assert (w.producers, w.consumer_groups, w.consumers_per_group) == (1, 1, 1)
    assert (w.rate, w.warmup_s, w.duration_s, w.backlog, w.end_to_end) == (1000.0, 5.0, 20.0, None, True)
    assert load_scenario_text("workload: {rate: max, keys: none}").cells[0].workload.rate is None


@pytest.mark.parametrize(("text", "where", "expect"), [
    ("name: x\nworkload:\n  rate: -5\n", "t.yaml:3: workload.rate: ",
     "expected a positive number or 'max', got -5"),
    ("workload:\n  rate: 1.0e+12\n", "t.yaml:2: workload.rate: ", "at most"),
    ("workload:\n  rate: 1e6\n", "t.yaml:2: workload.rate: ", "got '1e6' (a string: YAML 1.1 needs"),
    ("workload:\n  rate: .nan\n", "t.yaml:2: workload.rate: ", "got nan"),
    ("workload:\n  duration: -1s\n", "t.yaml:2: workload.duration: ", "duration > 0"),
    ("workload:\n  duration: 0\n", "t.yaml:2: workload.duration: ", "duration > 0"),
    ("workload:\n  duration: 25h\n", "t.yaml:2: workload.duration: ", "at most 86400s"),
    ("workload:\n  warmup: soon\n", "t.yaml:2: workload.warmup: ", "got 'soon'"),
    ("topic:\n  partitions: 0\n", "t.yaml:2: topic.partitions: ", "from 1 to 10000, got 0"),
    ("topic:\n  partitions: 100000000000000000000000000000000000\n", "t.yaml:2: topic.partitions: ",
     "very large integer"),
    ("topic:\n  partitions: true\n", "t.yaml:2: topic.partitions: ", "got true"),
    ("topic:\n  replication_factor: 11\n", "t.yaml:2: topic.replication_factor: ", "from 1 to 10"),
    ("topic:\n  name: 'bad name'\n", "t.yaml:2: topic.name: ", "topic name"),
    ("topic:\n  config: {retention.ms: [1]}\n", "t.yaml:2: topic.config.retention.ms: ", "got a list"),
    ("workload:\n  producers: 65\n", "t.yaml:2: workload.producers: ", "from 0 to 64"),
    ("workload:\n  consumer_groups: 17\n", "t.yaml:2: workload.consumer_groups: ", "from 0 to 16"),
    ("workload:\n  consumers_per_group: 0\n", "t.yaml:2: workload.consumers_per_group: ", "from 1 to 64"),
    ("workload:\n  producers: 0\n", "t.yaml:2: workload.producers: ", "needs an existing topic"),
    ("topic: {name: t}\nworkload:\n  producers: 0\n  consumer_groups: 0\n", "t.yaml:3: workload.producers: ",
     "nothing to run"),
    ("workload:\n  message_size: 0\n", "t.yaml:2: workload.message_size: ", "from 1 to 104857600"),
    ("workload:\n  message_size: {distribution: uniform, min: 10, max: 5}\n",
     "t.yaml:2: workload.message_size.max: ", "max >= min"),
    ("workload:\n  message_size:\n    distribution: uniform\n    min: 10\n",
     "t.yaml:2: workload.message_size.max: ", "required for distribution uniform"),
    ("workload:\n  message_size:\n    distribution: uniform\n    min: 1\n    max: 9\n    mean: 3\n",
     "t.yaml:6: workload.message_size.mean: ", "does not apply to distribution uniform"),
    ("workload:\n  message_size: {distribution: choice, values: [1, 2], weights: [1]}\n",
     "t.yaml:2: workload.message_size.weights: ", "2 weights"),
    ("workload:\n  message_size: {distribution: lognormal}\n", "t.yaml:2: workload.message_size.distribution: ",
     "expected one of fixed, uniform, normal, choice"),
    ("workload:\n  payload: {kind: random, compressibility: 1.5}\n",
     "t.yaml:2: workload.payload.compressibility: ", ">= 0 and <= 1"),
    ("workload:\n  payload:\n    kind: file\n    file: nope.bin\n", "t.yaml:4: workload.payload.file: ",
     "existing, non-empty file"),
    ("workload:\n  keys:\n    kind: uniform\n", "t.yaml:2: workload.keys.count: ", "required for kind: uniform"),
    ("workload:\n  keys: {kind: zipf, count: 10, zipf_s: 1}\n", "t.yaml:2: workload.keys.zipf_s: ", "> 1"),
    ("workload:\n  keys: {kind: round_robin, count: 10, zipf_s: 2}\n", "t.yaml:2: workload.keys.zipf_s: ",
     "only for kind: zipf"),
    ("workload:\n  backlog: {messages: 10, duration: 5s}\n", "t.yaml:2: workload.backlog: ", "exactly one"),
    ("workload:\n  consumer_groups: 0\n  backlog: {messages: 10}\n", "t.yaml:3: workload.backlog: ",
     "consumer_groups >= 1"),
    ("workload:\n  end_to_end: yes please\n", "t.yaml:2: workload.end_to_end: ", "true or false"),
    ("workload:\n  rate: 500\n  latency_sample: 8\n", "t.yaml:3: workload.latency_sample: ", "rate: max only"),
    ("workload:\n  rate: max\n  latency_sample: 0\n", "t.yaml:3: workload.latency_sample: ", "'auto' or an integer"),
    ("workload:\n  rate: max\n  latency_sample: 4096\n", "t.yaml:3: workload.latency_sample: ", "1..1024"),
    ("workload:\n  rate: max\n  latency_sample: some\n", "t.yaml:3: workload.latency_sample: ", "'auto'"),
    ("workload:\n  rat: 5\n", "t.yaml:2: workload.rat: ", "did you mean 'rate'?"),
    ("workload:\n  transactions: {messages: 0}\n", "t.yaml:2: workload.transactions.messages: ",
     "records per transaction, an integer from 1"),
    ("workload:\n  transactions: {messages: 5, abort_ratio: 1.5}\n", "t.yaml:2: workload.transactions.abort_ratio: ",
     "from 0 to 1"),
    ("workload:\n  transactions: {abort_ratio: 0.5}\n", "t.yaml:2: workload.transactions.messages: ", "required"),
    ("workload:\n  transactions: 10\n", "t.yaml:2: workload.transactions: ", "{messages: N, abort_ratio: r}"),
    ("workload:\n  transactions: {messages: 5}\nproducer:\n  acks: 1\n", "t.yaml:4: producer.acks: ",
     "needs acks: all, got 1"),
    ("workload:\n  transactions: {messages: 5}\nproducer:\n  enable.idempotence: false\n",
     "t.yaml:4: producer.enable.idempotence: ", "is idempotent"),
    ("workload:\n  transactions: {messages: 5}\nproducer:\n  transactional.id: mine\n",
     "t.yaml:4: producer.transactional.id: ", "set by kbench"),
    ("workload:\n  transactions: {messages: 5}\nconsumer:\n  isolation.level: read_uncommitted\n",
     "t.yaml:4: consumer.isolation.level: ", "read_committed"),
    ("workload:\n  transactions: {messages: 5}\nclient: java\n", "t.yaml:3: client: ",
     "librdkafka workers only; got java"),
    ("workload:\n  transactions: {messages: 5}\nconsumer_client: franz-go\n", "t.yaml:3: consumer_client: ",
     "librdkafka workers only; got franz-go"),
    ("topic: {name: t}\nworkload:\n  producers: 0\n  transactions: {messages: 5}\n", "t.yaml:3: workload.producers: ",
     "needs producers >= 1"),
    ("name: x\nbogus: 1\n", "t.yaml:2: bogus: ", "unknown key"),
    ("name: 'a b'\n", "t.yaml:1: name: ", "[A-Za-z0-9._-]"),
    ("broker: redpanda\n", "t.yaml:1: broker: ", "kafka, kafka-zk, tansu, kfake"),
    ("description: 2024-01-01\n", "t.yaml:1: description: ", "quote it"),
    ("thresholds:\n  - {metric: x, max: 1}\n  - {metric: y}\n", "t.yaml:3: thresholds[1]: ", "max or min"),
    ("thresholds: {metric: x}\n", "t.yaml:1: thresholds: ", "expected a list"),
    ("faults: 5\n", "t.yaml:1: faults: ", "mapping or a list"),
    ("producer: [1]\n", "t.yaml:1: producer: ", "expected a mapping"),
    ("name: a\nworkload: {}\nname: b\n", "t.yaml:3: name: ", "duplicate key (first written on line 1)"),
    ("faults: &f {a: *f}\n", "t.yaml:1: faults.a: ", "recursive"),
    ("1: 2\n", "t.yaml:1: ", "keys must be strings"),
])
def test_error_names_file_line_and_key(text: str, where: str, expect: str) -> None:
    err = error_of(text)
    assert str(err).startswith(where), str(err)
    assert expect in str(err)
    assert err.file == "t.yaml" and err.line == int(where.split(":")[1])


@pytest.mark.parametrize(("text", "line", "expect"), [
    ("", None, "empty"),
    ("# only a comment\n", None, "empty"),
    ("name: [unclosed\n", 2, "invalid YAML"),
    ("a: 1\n---\nb: 2\n", 2, "single document"),
    ("- 1\n- 2\n", 1, "expected a mapping of scenario keys at the top level, got a list"),
    ("just a string\n", 1, "got 'just a string'"),
    ("null\n", 1, "got null"),
    ("name: ok\x00\x01\n", 1, "unacceptable character"),
    ("description: !!python/object:os.system ls\n", 1, "constructor"),
    ("description: 2021-13-45\n", None, "month"),
    ("description: !!timestamp x\n", None, "invalid YAML value"),
    ("description: !!int x\n", None, "invalid YAML value"),
    ("faults: " + "[" * 5000 + "]" * 5000 + "\n", None, "nested too deeply"),
    ("faults: " + "[" * 40 + "]" * 40 + "\n", 1, "nested more than 32 levels"),
])
def test_unusable_documents(text: str, line: int | None, expect: str) -> None:
    err = error_of(text)
    assert err.line == line and err.file == "t.yaml" and expect in str(err), str(err)


def test_file_level_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "g.yaml"
    garbage.write_bytes(b"name: x\n\xff\xfe\x00binary")
    err = raises(load_scenario, garbage)
    assert "not UTF-8" in str(err) and err.line == 2 and err.file == str(garbage)
    assert "cannot read" in str(raises(load_scenario, tmp_path / "missing.yaml"))
    assert "cannot read" in str(raises(load_scenario, tmp_path))
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1024 * 1024 + 10))
    assert "larger than" in str(raises(load_scenario, big))


def test_matrix_product_count_and_order() -> None:
    sc = load_scenario_text("""\
        producer: {acks: all, linger.ms: 1}
        matrix:
          producer.acks: [0, 1, all]
          workload.message_size: [100, 1000]
          producer.linger.ms: [5]
        """.replace("        ", ""))
    assert len(sc.cells) == 3 * 2 * 1 and [c.index for c in sc.cells] == list(range(6))
    got = [(c.producer["acks"], c.workload.message_size.value, c.producer["linger.ms"]) for c in sc.cells]
    assert got == [("0", 100, "5"), ("0", 1000, "5"), ("1", 100, "5"), ("1", 1000, "5"),
                   ("all", 100, "5"), ("all", 1000, "5")]
    assert list(sc.cells[0].params) == ["producer.acks", "workload.message_size", "producer.linger.ms"]
    assert sc.cells[-1].label() == "acks=all,message_size=1000,linger.ms=5"
    assert dict(sc.matrix) == {"producer.acks": (0, 1, "all"), "workload.message_size": (100, 1000),
                               "producer.linger.ms": (5,)}
    assert "linger" not in sc.cells[0].producer and "linger.ms" in sc.cells[0].producer


def test_matrix_nested_values_and_label_collisions() -> None:
    sc = load_scenario_text("""\
matrix:
  producer.client.id: [a]
  consumer.client.id: [b]
  topic.config.retention.ms: [1000, 2000]
  workload.message_size: [{distribution: uniform, min: 1, max: 3}]
""")
    assert [c.topic.config["retention.ms"] for c in sc.cells] == ["1000", "2000"]
    assert sc.cells[0].label() == ("producer.client.id=a,consumer.client.id=b,retention.ms=1000,"
                                   "message_size={distribution:uniform,min:1,max:3}")
    assert sc.cells[1].workload.message_size.distribution == "uniform"


@pytest.mark.parametrize(("text", "where", "expect"), [
    ("matrix:\n  workload.rate: [1, 2]\n  producer.acks: [1, -5, x]\n  workload.message_size: [1, -7]\n",
     "t.yaml:4: matrix.workload.message_size[1]: ", "from 1 to 104857600 or a mapping {distribution: "
     "fixed|uniform|normal|choice, ...}, got -7"),
    ("matrix:\n  workload.rate:\n    - 100\n    - -5\n", "t.yaml:4: matrix.workload.rate[1]: ",
     "expected a positive number or 'max', got -5"),
    ("matrix:\n  workload.message_size:\n    - {distribution: uniform, min: 9, max: 1}\n",
     "t.yaml:3: matrix.workload.message_size[0].max: ", "max >= min"),
    ("matrix:\n  workload.rat: [1]\n", "t.yaml:2: matrix.workload.rat: ", "unknown matrix key"),
    ("matrix:\n  broker: [kafka]\n", "t.yaml:2: matrix.broker: ", "unknown matrix key"),
    ("matrix:\n  workload.rate: []\n", "t.yaml:2: matrix.workload.rate: ", "non-empty list"),
    ("matrix:\n  workload.rate: 5\n", "t.yaml:2: matrix.workload.rate: ", "non-empty list"),
    ("matrix:\n  workload.keys: [none]\n  workload.keys.count: [1]\n", "t.yaml:3: matrix.workload.keys.count: ",
     "overlaps matrix key workload.keys"),
    ("workload: {message_size: 10}\nmatrix:\n  workload.message_size.max: [5]\n",
     "t.yaml:3: matrix.workload.message_size.max: ", "not a mapping"),
    ("matrix:\n  producer.acks: " + str(list(range(17))) + "\n  producer.linger.ms: " + str(list(range(16))) + "\n",
     "t.yaml:1: matrix: ", "expands to 272 cells; the limit is 256"),
])
def test_matrix_errors(text: str, where: str, expect: str) -> None:
    err = error_of(text)
    assert str(err).startswith(where) and expect in str(err), str(err)


def test_matrix_at_limit() -> None:
    sc = load_scenario_text("matrix:\n  producer.acks: " + str(list(range(16))) +
                            "\n  producer.linger.ms: " + str(list(range(16))) + "\n")
    assert len(sc.cells) == 256 and len({c.label() for c in sc.cells}) == 256


def test_overrides() -> None:
    base = "workload: {rate: 100}\nproducer: {acks: all}\n"
    sc = load_scenario_text(base, overrides=["workload.rate=5000", "producer.linger.ms=10",
                                             "matrix.producer.acks=[1,all]", "topic.config.retention.ms=60000",
                                             "workload.duration=1m"])
    assert [c.workload.rate for c in sc.cells] == [5000.0, 5000.0]
    assert [dict(c.producer) for c in sc.cells] == [{"acks": "1", "linger.ms": "10"},
                                                   {"acks": "all", "linger.ms": "10"}]
    assert sc.cells[0].topic.config["retention.ms"] == "60000" and sc.cells[0].workload.duration_s == 60.0
    raw_workload = sc.raw["workload"]
    assert isinstance(raw_workload, Mapping) and raw_workload["rate"] == 5000
    assert list(sc.matrix) == ["producer.acks"]
    # an override never leaks into an aliased sibling
    aliased = load_scenario_text("producer: &p {acks: all}\nconsumer: *p\n", overrides=["producer.acks=1"])
    assert aliased.cells[0].consumer["acks"] == "all" and aliased.cells[0].producer["acks"] == "1"


@pytest.mark.parametrize(("override", "expect"), [
    ("workload.rate=-5", "--set: workload.rate: expected a positive number or 'max', got -5 "
                         "(from --set workload.rate=-5)"),
    ("workload.ratee=5", "--set: workload.ratee: unknown key"),
    ("workload.rate", "--set: expected key=value"),
    ("=5", "--set: expected a dotted key"),
    ("workload..rate=5", "--set: expected a dotted key"),
    ("workload.rate=[1", "--set: workload.rate: invalid YAML value"),
    ("workload.message_size.min=1", "--set: workload.message_size.min: cannot set workload.message_size.min: "
                                    "workload.message_size is not a mapping"),
    ("matrix.workload.rate=[1,0]", "--set: matrix.workload.rate[1]: expected a positive number"),
])
def test_bad_overrides(override: str, expect: str) -> None:
    err = error_of("workload: {rate: 100, message_size: 10}\n", overrides=(override,))
    assert str(err).startswith(expect) and err.file == "--set", str(err)


OMB = """\
name: 1 topic / 16 partitions / 1kb
topics: 1
partitionsPerTopic: 16
messageSize: 1024
payloadFile: payload/payload-1Kb.data
subscriptionsPerTopic: 2
consumerPerSubscription: 4
producersPerTopic: 3
producerRate: 50000
consumerBacklogSizeGB: 1
testDurationMinutes: 15
keyDistributor: KEY_ROUND_ROBIN
"""


def test_omb_workload(tmp_path: Path) -> None:
    (tmp_path / "payload").mkdir()
    (tmp_path / "payload" / "payload-1Kb.data").write_bytes(b"x" * 1024)
    (tmp_path / "workloads").mkdir()
    sc = load_scenario(write(tmp_path / "workloads", OMB, "omb.yaml"), overrides=["workload.warmup=0"])
    assert sc.source_format == "omb" and sc.name == "1-topic-16-partitions-1kb"
    assert sc.description == "1 topic / 16 partitions / 1kb"
    cell = sc.cells[0]
    w = cell.workload
    assert cell.topic.partitions == 16 and w.message_size.value == 1024
    assert (w.producers, w.consumer_groups, w.consumers_per_group) == (3, 2, 4)
    assert (w.rate, w.duration_s, w.warmup_s) == (50000.0, 900.0, 0.0)
    assert w.keys == Keys("round_robin", 10_000, 1.2)
    assert w.payload == Payload("file", 0.0, (tmp_path / "payload" / "payload-1Kb.data").resolve())
    assert w.backlog == Backlog(2**30 // 1024, None)


def test_omb_defaults_and_random_payload() -> None:
    sc = load_scenario_text("topics: 1\nmessageSize: 100\ntestDurationMinutes: 1\nproducerRate: 0\n"
                            "useRandomizedPayloads: true\nrandomBytesRatio: 0.25\n"
                            "randomizedPayloadPoolSize: 100\nkeyDistributor: RANDOM_NANO\n")
    w = sc.cells[0].workload
    assert (w.rate, w.warmup_s, w.duration_s) == (None, 60.0, 60.0)
    assert w.payload == Payload("random", 0.75, None) and w.keys == Keys("uniform", 10_000, 1.2)


@pytest.mark.parametrize(("text", "where", "expect"), [
    ("topics: 4\npartitionsPerTopic: 1\ntestDurationMinutes: 1\n", "t.yaml:1: topics: ", "only topics: 1"),
    ("topics: 1\nbacklogDrainRatio: 0.5\ntestDurationMinutes: 1\n", "t.yaml:2: backlogDrainRatio: ",
     "not supported by kbench"),
    ("topics: 1\npartitionsPerTopic: 1\n", "t.yaml:1: testDurationMinutes: ", "required"),
    ("topics: 1\ntestDurationMinutes: 1\npartitionsPerTopic: 0\n", "t.yaml:3: topic.partitions: ",
     "from OMB key partitionsPerTopic"),
    ("topics: 1\ntestDurationMinutes: 1\nkeyDistributor: ZIPF\n", "t.yaml:3: keyDistributor: ", "NO_KEY"),
    ("topics: 1\ntestDurationMinutes: 1\npayloadFile: nowhere.data\n", "t.yaml:3: workload.payload.file: ",
     "useRandomizedPayloads"),
    ("topics: 1\ntestDurationMinutes: 1\nworkload: {rate: 5}\n", "t.yaml:1: topics: ", "did you mean 'topic'?"),
    ("topics: 1\ntestDurationMinutes: 1\nfoo: 1\n", "t.yaml:3: foo: ", "unknown key"),
])
def test_omb_errors(text: str, where: str, expect: str) -> None:
    err = error_of(text)
    assert str(err).startswith(where) and expect in str(err), str(err)


def test_payload_file_relative_to_scenario(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.bin").write_bytes(b"\x01" * 10)
    (tmp_path / "empty.bin").write_bytes(b"")
    text = "workload:\n  payload: {kind: file, file: data/p.bin}\n"
    sc = load_scenario(write(tmp_path, text))
    assert sc.cells[0].workload.payload == Payload("file", 0.0, (tmp_path / "data" / "p.bin").resolve())
    plain = to_plain(dataclasses.asdict(sc.cells[0].workload))
    assert json.loads(json.dumps(plain))["payload"]["file"] == str((tmp_path / "data" / "p.bin").resolve())
    again = load_scenario_text(text, base_dir=tmp_path)
    assert again.cells[0].workload.payload.file == sc.cells[0].workload.payload.file
    err = raises(load_scenario_text, text, base_dir=tmp_path / "data")
    assert err.line == 2 and err.key == "workload.payload.file"
    err = raises(load_scenario_text,
                        "workload:\n  payload: {kind: file, file: empty.bin}\n", base_dir=tmp_path)
    assert "non-empty" in str(err)


@pytest.mark.parametrize(("value", "seconds"), [
    (0, 0.0), (2.5, 2.5), ("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("1.5h", 5400.0),
    ("7", 7.0), (" 3 s ", 3.0), ("24h", 86400.0),
])
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [-1, "-1s", "5d", "fast", None, True, [], float("nan"), float("inf"),
                                   "25h", 10**400])
def test_parse_duration_rejects(value: object) -> None:
    err = raises(parse_duration, value, key="workload.warmup", file="f.yaml", line=3)
    assert str(err).startswith("f.yaml:3: workload.warmup: expected a duration")


@pytest.mark.parametrize("spec", [
    "1000",
    "{distribution: uniform, min: 100, max: 2000}",
    "{distribution: normal, mean: 1000, stddev: 300}",
    "{distribution: normal, mean: 50, stddev: 100, min: 20, max: 120}",
    "{distribution: choice, values: [100, 1000], weights: [0.9, 0.1]}",
    "{distribution: choice, values: [7, 9]}",
])
def test_message_size_sampling_matches_mean(spec: str) -> None:
    size = load_scenario_text(f"workload: {{message_size: {spec}}}\n").cells[0].workload.message_size
    sizes = size.sample(200_000, np.random.default_rng(7))
    assert sizes.dtype == np.int64 and sizes.shape == (200_000,)
    assert sizes.min() >= max(1, size.min or 1) and sizes.max() <= (size.max or 1)
    expected = size.mean_bytes()
    assert math.isclose(float(sizes.mean()), expected, rel_tol=0.01), (sizes.mean(), expected)
    assert size.sample(0, np.random.default_rng(1)).shape == (0,)


def test_choice_weights_frequencies() -> None:
    size = MessageSize("choice", min=100, max=1000, values=(100, 1000), weights=(0.9, 0.1))
    share = float((size.sample(100_000, np.random.default_rng(3)) == 100).mean())
    assert abs(share - 0.9) < 0.01


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.cells and sc.name
    json.dumps(to_plain(sc.raw))


def test_latency_sample_resolution() -> None:
    """auto (0: the producer picks from its warm-up rate) only at max rate; rate-limited and --verify time all."""
    from bench.scenario.model import latency_sample_every

    def work(text: str) -> Workload:
        return load_scenario_text(text, filename="t.yaml").cells[0].workload

    assert latency_sample_every(work("workload: {rate: max}\n")) == 0
    assert latency_sample_every(work("workload: {rate: max}\n"), verify=True) == 1
    assert latency_sample_every(work("workload: {rate: max, latency_sample: 8}\n")) == 8
    assert latency_sample_every(work("workload: {rate: max, latency_sample: auto}\n")) == 0
    assert latency_sample_every(work("workload: {rate: 100}\n")) == 1
    assert latency_sample_every(work("workload: {rate: 100, latency_sample: 1}\n")) == 1
