"""Driver protocol v2's explicit-records mode: the spec encoding, the features, the acks, the refusal text
(pure), and the drivers' refusals before hello (no broker: a refused spec never connects)."""

from __future__ import annotations

import base64
import os
import shutil
from typing import Any

import pytest

from bench.drivers import gobuild
from bench.drivers.external import RECORDS, spec_line, spec_protocol
from bench.drivers.records import (
    FEATURES,
    REFUSAL_PREFIX,
    ExplicitRecord,
    RecordAck,
    RecordsError,
    decode_spec,
    features,
    parse_acks,
    records_spec,
    refusal,
)
from bench.load.worker import WorkerSpec
from bench.scenario.model import Keys, MessageSize, Payload
from tests.go_driver_helper import DriverProc, spec

HEADERS: tuple[tuple[str, bytes | None], ...] = (("dup", b"a"), ("e", b""), ("n", None), ("dup", bytes(range(256))))


def _spec(role: str = "producer", **extra: Any) -> WorkerSpec:
    return WorkerSpec(role=role, index=0, bootstrap="127.0.0.1:1", topic="t", client_config={}, warmup_ns=0,
                      duration_ns=1_000_000_000, message_size=MessageSize("fixed", 64, 64, 64),
                      payload=Payload("random", 0.0, None), keys=Keys("none", None, 1.2), rate=None, group=None,
                      seed=1, verify=True, flush_timeout_s=5.0, extra=extra)


# ---- pure -------------------------------------------------------------------------------------------------

def test_record_spec_null_empty_bytes() -> None:
    r = ExplicitRecord(key=None, value=b"", partition=3, headers=HEADERS, timestamp_ms=1_700_000_000_123)
    doc = r.to_spec()
    assert doc == {"partition": 3, "key": None, "value": "", "timestamp_ms": 1_700_000_000_123,
                   "headers": [["dup", "YQ=="], ["e", ""], ["n", None],
                               ["dup", base64.b64encode(bytes(range(256))).decode()]]}
    assert ExplicitRecord(key=b"", value=None).to_spec() == {"partition": None, "key": "", "value": None,
                                                             "headers": [], "timestamp_ms": None}


def test_decode_round_trip() -> None:
    recs = [ExplicitRecord(key=None, value=None), ExplicitRecord(key=b"", value=b"", headers=HEADERS),
            ExplicitRecord(key=b"k", value=bytes(range(256)), partition=0, timestamp_ms=0)]
    back = decode_spec(records_spec(recs))
    assert back == recs
    assert back[0].key is None and back[1].key == b"" and back[1].headers[2][1] is None


@pytest.mark.parametrize("bad", [[], None, [{"value": 5}], [{"value": "!!"}], [{"partition": -1}],
                                 [{"partition": True}], [{"headers": [["x"]]}], [{"headers": [[1, None]]}],
                                 [{"timestamp_ms": 1.5}], ["x"]])
def test_decode_refuses(bad: Any) -> None:
    with pytest.raises(RecordsError):
        decode_spec(bad)


def test_features() -> None:
    assert features([ExplicitRecord(value=b"v")]) == ["null_key"]
    assert features([ExplicitRecord(key=b"", value=None, headers=HEADERS, timestamp_ms=5)]) == [
        "empty_key", "null_value", "headers", "null_header_value", "empty_header_value", "timestamp"]
    assert features([ExplicitRecord(key=b"k", value=b"v", partition=1)]) == ["partition"]
    mixed = [ExplicitRecord(key=b"k", value=b"v", partition=1), ExplicitRecord(key=b"k", value=b"v")]
    assert features(mixed) == ["partition", "partition_mix"]
    assert set(features(mixed)) <= set(FEATURES)


def test_to_spec_refuses_negative() -> None:
    with pytest.raises(RecordsError):
        ExplicitRecord(value=b"v", partition=-1).to_spec()
    with pytest.raises(RecordsError):
        records_spec([])


def test_spec_line_is_v2_with_records() -> None:
    assert spec_protocol(_spec()) == 1 and "records" not in spec_line(_spec())
    recs = (ExplicitRecord(value=b"x", key=None, partition=2),)
    s = _spec(**{RECORDS: recs})
    line = spec_line(s)
    assert spec_protocol(s) == 2 and line["protocol"] == 2
    assert line["records"] == [{"partition": 2, "key": None, "value": "eA==", "headers": [], "timestamp_ms": None}]
    with pytest.raises(Exception, match="records"):
        spec_line(_spec("consumer", **{RECORDS: recs}))


def test_parse_acks() -> None:
    acks = parse_acks({"records": [[0, 5, None], [-1, -1, "NOT_LEADER"]]}, 2)
    assert acks == [RecordAck(0, 5, None), RecordAck(-1, -1, "NOT_LEADER")]
    assert acks[0].to_row() == [0, 5, None]
    for bad, n in [({"records": [[0, 5, None]]}, 2), ({}, 0), ({"records": [[0, "5", None]]}, 1),
                   ({"records": [[0, 5]]}, 1), ({"records": [[-1, -1, None]]}, 1), ({"records": [[0, 1, 3]]}, 1)]:
        with pytest.raises(RecordsError):
            parse_acks(bad, n)


def test_refusal() -> None:
    text = f"sarama driver: sarama: {REFUSAL_PREFIX}partition_mix: the driver picks one partitioner"
    assert refusal(text) == ("partition_mix", "the driver picks one partitioner")
    assert refusal("spec.records[0].key: not base64") is None


# ---- the drivers refuse before hello (no broker) ---------------------------------------------------------

needs_go = pytest.mark.skipif(shutil.which("go") is None and not os.access("/usr/local/go/bin/go", os.X_OK),
                              reason="the Go toolchain is not installed")
_MIXED = [{"partition": 0, "key": None, "value": "", "headers": [], "timestamp_ms": None},
          {"partition": None, "key": None, "value": "", "headers": [], "timestamp_ms": None}]


def _refused(argv: list[str], doc: dict[str, Any]) -> tuple[str, list[str]]:
    d = DriverProc(argv)
    try:
        d.send(doc)
        err = d.wait_for("error", 30)
        d.wait_for("result", 5)
        assert d.finish() == 2
    finally:
        d.kill()
    return str(err["message"]), [x["type"] for x in d.lines]


@needs_go
@pytest.mark.parametrize("client", ["franz-go", "sarama", "kafka-go"])
def test_go_driver_refuses_a_partition_mix(client: str) -> None:
    msg, types = _refused([str(gobuild.build_go_driver(client))],
                          spec("producer", "127.0.0.1:1", "t", protocol=2, records=_MIXED))
    assert refusal(msg) is not None and refusal(msg)[0] == "partition_mix"  # type: ignore[index]
    assert types == ["error", "result"]     # before hello


@needs_go
@pytest.mark.parametrize(("over", "words"), [
    ({"protocol": 1, "records": _MIXED[:1]}, "needs protocol 2"),
    ({"protocol": 2, "records": [{"value": "!!"}]}, "base64"),
    ({"protocol": 2, "records": [{"value": "", "headers": [["x"]]}]}, "headers[0]"),
    ({"protocol": 2, "records": []}, "at least one"),
])
def test_go_driver_refuses_a_bad_records_spec(over: dict[str, Any], words: str) -> None:
    msg, types = _refused([str(gobuild.build_go_driver("franz-go"))], spec("producer", "127.0.0.1:1", "t", **over))
    assert words in msg and refusal(msg) is None and types == ["error", "result"]


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("javac"), reason="needs a JDK (javac)")
@pytest.mark.parametrize(("over", "words"), [
    ({"protocol": 1, "records": _MIXED[:1]}, "records"),
    ({"protocol": 2, "records": [{"value": "!!"}]}, "base64"),
    ({"protocol": 2, "role": "consumer", "group": "g", "records": _MIXED[:1]}, "records"),
])
def test_java_driver_refuses_a_bad_records_spec(over: dict[str, Any], words: str) -> None:
    from bench.drivers.javabuild import build_java_driver

    doc = {**spec("producer", "127.0.0.1:1", "t"), **over}
    msg, types = _refused(build_java_driver("4.3.1").command(), doc)
    assert words in msg and types == ["error", "result"]


@needs_go
def test_send_records_turns_a_refusal_into_na() -> None:
    """conformance.records_client: a driver's refusal (exit 2 before hello, no broker needed) is N/A (client)
    with the driver's reason, not a failure."""
    from conformance.records_client import send_records
    from conformance.verdicts import NotApplicable

    mixed = [ExplicitRecord(value=b"v", partition=0), ExplicitRecord(value=b"v")]
    with pytest.raises(NotApplicable, match=r"N/A \(client sarama\): its driver refuses record feature partition_mix: "
                                            r"the driver picks one partitioner"):
        send_records("sarama", "127.0.0.1:1", "t", mixed, config={})
