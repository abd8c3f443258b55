"""The Go load drivers (bench/drivers/go) against a real Kafka broker, through the driver protocol.

Each driver is built with bench.drivers.gobuild and driven by a small coordinator (tests/go_driver_helper.py):
bounded producer runs (2,000 msg/s for 3 s; max rate for 2 s) whose acked counts must equal the topic's
offsets and whose histograms must decode with hdrh with the right totals; a consumer per client reading
records a librdkafka producer wrote (the shared header); a Go producer read by a librdkafka consumer (e2e
from the header on one clock); the hello clock check; refusal of a knob; EOF on stdin as stop; the protocol
v2 group consumers of sarama, confluent-kafka-go and kafka-go (their events parse and agree with the reads,
the commits and the group's committed offsets; an assignor the client lacks is refused).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from hdrh.histogram import HdrHistogram

from bench.drivers import gobuild
from bench.drivers.events import EVENT_TYPES, Assigned, Committed, parse_event
from bench.errors import ConfigError
from bench.load.payload import decode_header, encode_header
from tests.go_driver_helper import DriverProc, run_driver, spec

CLIENTS = list(gobuild.GO_CLIENTS)
needs_go = pytest.mark.skipif(shutil.which("go") is None and not os.access("/usr/local/go/bin/go", os.X_OK),
                              reason="the Go toolchain is not installed")
def _acks(client: str, value: str = "all") -> dict[str, str]:
    """Every run states its acks: kafka-go's Writer defaults to acks=0 (no offsets come back)."""
    return {"acks": value}


# ---- pure: the config check ----------------------------------------------------------------------------

@pytest.mark.parametrize("client", ["franz-go", "sarama", "kafka-go"])
def test_knobs_accepted(client: str) -> None:
    part = gobuild.GO_CLIENTS[client].partitioners[0]
    cfg = {"acks": "1", "linger.ms": "5", "batch.size": "65536", "compression.type": "lz4", "partitioner": part,
           "enable.idempotence": "false"}
    for role in ("producer", "consumer"):
        gobuild.check_client_config(client, role, cfg)


@pytest.mark.parametrize(("client", "cfg", "words"), [
    ("franz-go", {"fetch.min.bytes": "1"}, ["franz-go", "fetch.min.bytes", "unknown key"]),
    ("franz-go", {"batch.num.messages": "100"}, ["franz-go", "batch.num.messages", "not supported"]),
    ("franz-go", {"acks": "1", "enable.idempotence": "true"}, ["franz-go", "enable.idempotence", "acks=all"]),
    ("sarama", {"partitioner": "sticky"}, ["sarama", "partitioner", "hash, random, roundrobin"]),
    ("sarama", {"acks": "2"}, ["sarama", "acks", "'2'"]),
    ("kafka-go", {"enable.idempotence": "true"}, ["kafka-go", "enable.idempotence", "idempotent"]),
    ("kafka-go", {"max.in.flight": "5"}, ["kafka-go", "max.in.flight", "not supported"]),
    ("kafka-go", {"linger.ms": "-1"}, ["kafka-go", "linger.ms", ">= 0"]),
    ("kafka-go", {"compression.type": "brotli"}, ["kafka-go", "compression.type", "zstd"]),
])
def test_knobs_refused(client: str, cfg: dict[str, str], words: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        gobuild.check_client_config(client, "producer", cfg)
    for w in words:
        assert w in str(exc.value)


def test_confluent_passes_librdkafka_properties_and_unknown_client() -> None:
    gobuild.check_client_config("confluent-kafka-go", "producer", {"queue.buffering.max.ms": "5", "x": "y"})
    with pytest.raises(ConfigError, match=r"confluent-kafka-go: client_config group\.id: set by the driver"):
        gobuild.check_client_config("confluent-kafka-go", "consumer", {"group.id": "mine"})
    with pytest.raises(ConfigError, match="unknown Go client 'nope'"):
        gobuild.check_client_config("nope", "producer", {})


def test_missing_go_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gobuild.shutil, "which", lambda _name: None)
    monkeypatch.setattr(gobuild.os, "access", lambda *_a: False)
    with pytest.raises(ConfigError, match=r"install Go 1\.26"):
        gobuild.build_go_driver("franz-go")
    status = gobuild.go_driver_status("sarama")
    assert not status.built and "install Go" in status.detail


# ---- builds ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    if shutil.which("go") is None and not os.access("/usr/local/go/bin/go", os.X_OK):
        pytest.skip("the Go toolchain is not installed")
    return {c: gobuild.build_go_driver(c) for c in CLIENTS}


@needs_go
def test_build_is_reused(binaries: dict[str, Path]) -> None:
    for client, path in binaries.items():
        assert path.is_file() and os.access(path, os.X_OK)
        t = time.monotonic()
        assert gobuild.build_go_driver(client) == path
        assert time.monotonic() - t < 5          # hashing and `go version` only
        status = gobuild.go_driver_status(client)
        assert status.built and status.path == path and status.version == gobuild.GO_CLIENTS[client].version


# ---- against a broker ------------------------------------------------------------------------------------

@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    name = f"go-drv-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.create_topics([NewTopic(name, 3, 1)], operation_timeout=30).values():
        fut.result(timeout=30)
    yield name
    for fut in admin.delete_topics([name], operation_timeout=30).values():
        fut.result(timeout=30)


def _offsets(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kbench-offsets"})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions)
    finally:
        c.close()


def _total(b64: str) -> int:
    return int(HdrHistogram.decode(b64).get_total_count())


def _check_producer(r: dict[str, Any], client: str) -> None:
    assert r["type"] == "result" and r["protocol"] == 1 and "failed" not in r, r
    assert r["client"] == {"name": client, "version": gobuild.GO_CLIENTS[client].version}
    assert r["errors"] == {} and r["unacked_at_end"] == 0
    assert r["acked_total"] == r["sent_total"] > 0
    assert _total(r["hdr"]["publish"]) == r["acked_measured"] == _total(r["hdr"]["service"])
    assert sum(r["series"]["count"]) == r["acked_measured"]
    assert sum(r["series"]["bytes"]) == r["bytes_measured"] == 100 * r["acked_measured"]
    assert sum(_total(h) for h in r["series"]["hists"].values()) == r["acked_measured"]


@needs_go
@pytest.mark.parametrize("client", CLIENTS)
def test_producer_rate_limited(client: str, binaries: dict[str, Path], kafka_bootstrap: str, topic: str) -> None:
    d, r = run_driver(binaries[client], spec("producer", kafka_bootstrap, topic, rate=2000.0,
                                             warmup_ns=500_000_000, duration_ns=2_500_000_000,
                                             client_config=_acks(client)))
    _check_producer(r, client)
    assert r["sent_total"] == 6000 and r["sent_measured"] == 5000 == r["acked_measured"]
    assert _total(r["hdr"]["send_delay"]) == 5000
    assert _offsets(kafka_bootstrap, topic) == 6000
    hello = d.lines[0]
    assert hello["type"] == "hello" and hello["protocol"] == 1
    assert d.spawned_ns <= hello["now_ns"] <= time.monotonic_ns()     # the one clock
    assert [x["type"] for x in d.lines[1:2]] == ["ready"]
    assert any(x["type"] == "stat" for x in d.lines)
    assert len(r["series"]["count"]) == 3
    assert HdrHistogram.decode(r["hdr"]["send_delay"]).get_value_at_percentile(50) < 5_000


@needs_go
@pytest.mark.parametrize("client", CLIENTS)
def test_producer_max_rate(client: str, binaries: dict[str, Path], kafka_bootstrap: str, topic: str) -> None:
    _, r = run_driver(binaries[client], spec("producer", kafka_bootstrap, topic, rate=None,
                                             duration_ns=2_000_000_000, client_config=_acks(client, "1")))
    _check_producer(r, client)
    assert r["hdr"]["send_delay"] is None
    assert r["acked_measured"] > 1000
    assert _offsets(kafka_bootstrap, topic) == r["acked_total"]


def _produce_with_librdkafka(bootstrap: str, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    for seq in range(n):
        p.produce(topic, encode_header(time.monotonic_ns(), 7, seq) + bytes(84))
        if seq % 100 == 99:
            p.poll(0)
            time.sleep(0.01)
    assert p.flush(30) == 0


def _consume(binary: Path, bootstrap: str, topic: str, n: int, *, before_consume: Callable[[DriverProc], None]
             | None = None, **over: Any) -> tuple[int, dict[str, Any]]:
    """A consumer driver in group ``g-<topic>``, started at t0; librdkafka then writes ``n`` records.
    ``before_consume`` runs once they are written (with ``wait_for_consume``: it sends ``consume``). The
    driver is stopped once a stat line counts ``n`` received (or after 30 s); returns t0 and the result."""
    d = DriverProc([str(binary)])
    try:
        d.send(spec("consumer", bootstrap, topic, group=f"g-{topic}", duration_ns=60_000_000_000, **over))
        d.wait_for("ready", 60)
        t0 = time.monotonic_ns()
        d.send({"type": "start", "t0_ns": t0})
        _produce_with_librdkafka(bootstrap, topic, n)
        if before_consume is not None:
            before_consume(d)
        deadline = time.monotonic() + 30
        total = 0
        while total < n and time.monotonic() < deadline:
            total = d.wait_for("stat", 5)["total"]
        d.send({"type": "stop"})
        r = d.wait_for("result", 30)
        assert d.finish() == 0
    finally:
        d.kill()
    return t0, r


@needs_go
@pytest.mark.parametrize("client", CLIENTS)
def test_consumer(client: str, binaries: dict[str, Path], kafka_bootstrap: str, topic: str) -> None:
    n = 2000
    _, r = _consume(binaries[client], kafka_bootstrap, topic, n, verify=True)
    assert "failed" not in r, r
    assert r["received_total"] == r["received_measured"] == n, r
    assert r["errors"] == {}
    assert _total(r["hdr"]["e2e"]) == n
    e2e = HdrHistogram.decode(r["hdr"]["e2e"])
    assert e2e.get_min_value() >= 0 and e2e.get_max_value() < 30_000_000
    reads = r["verify"]
    assert len(reads) == n and sorted(x[3] for x in reads) == list(range(n)) and {x[2] for x in reads} == {7}
    assert len({(x[0], x[1]) for x in reads}) == n
    assert r["first_receive_ns"] <= r["last_receive_ns"]
    assert all(len(x) == 2 and x[1] >= 0 for x in r["lag"])


@needs_go
def test_go_producer_librdkafka_consumer_e2e(binaries: dict[str, Path], kafka_bootstrap: str, topic: str) -> None:
    _, r = run_driver(binaries["franz-go"], spec("producer", kafka_bootstrap, topic, rate=1000.0, index=3, producers=4,
                                                 duration_ns=2_000_000_000, verify=True,
                                                 client_config=_acks("franz-go")))
    _check_producer(r, "franz-go")
    acks = r["verify"]["acks"]
    assert len(acks) == 2000 and sorted(a[3] for a in acks) == list(range(2000))
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"e2e-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 2000 and time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                if m.error() is None:
                    t, producer, seq = decode_header(m.value())
                    now = time.monotonic_ns()
                    assert producer == 3
                    seen[seq] = now - t
    finally:
        c.close()
    assert sorted(seen) == list(range(2000))
    assert all(0 < e2e < 60_000_000_000 for e2e in seen.values())   # same clock: positive, below a minute


@needs_go
@pytest.mark.parametrize(("client", "cfg", "key"), [
    ("franz-go", {"no.such.knob": "1"}, "no.such.knob"),
    ("sarama", {"batch.size": "lots"}, "batch.size"),
    ("kafka-go", {"enable.idempotence": "true"}, "enable.idempotence"),
    ("confluent-kafka-go", {"no.such.property": "1"}, "no.such.property"),
])
def test_driver_refuses_a_knob(client: str, cfg: dict[str, str], key: str, binaries: dict[str, Path],
                               kafka_bootstrap: str) -> None:
    d = DriverProc([str(binaries[client])])
    try:
        d.send(spec("producer", kafka_bootstrap, "t", client_config=cfg))
        err = d.wait_for("error", 30)
        res = d.wait_for("result", 5)
        assert d.finish() == 2
    finally:
        d.kill()
    assert client in err["message"] and key in err["message"]
    assert res["failed"] and [x["type"] for x in d.lines] == ["error", "result"]


@needs_go
@pytest.mark.parametrize("client", ["franz-go", "kafka-go"])
def test_eof_on_stdin_stops(client: str, binaries: dict[str, Path], kafka_bootstrap: str, topic: str) -> None:
    d = DriverProc([str(binaries[client])])
    try:
        d.send(spec("producer", kafka_bootstrap, topic, rate=500.0, duration_ns=120_000_000_000,
                    client_config=_acks(client)))
        d.wait_for("ready", 60)
        d.send({"type": "start", "t0_ns": time.monotonic_ns()})
        d.wait_for("stat", 10)
        t = time.monotonic()
        d.close_stdin()
        r = d.wait_for("result", 10)
        assert d.finish(10) == 0 and time.monotonic() - t < 5
    finally:
        d.kill()
    assert r["stopped_early"] and r["window_s"] < 10
    assert r["acked_total"] == r["sent_total"] == _offsets(kafka_bootstrap, topic)


@needs_go
def test_consumer_eof_before_start(binaries: dict[str, Path], kafka_bootstrap: str, topic: str) -> None:
    d = DriverProc([str(binaries["sarama"])])
    try:
        d.send(spec("consumer", kafka_bootstrap, topic, group=f"g-{topic}"))
        d.wait_for("ready", 60)
        d.close_stdin()
        r = d.wait_for("result", 15)
        assert d.finish(15) == 0
    finally:
        d.kill()
    assert r["failed"] == "stopped before start"


@needs_go
@pytest.mark.parametrize("client", CLIENTS)
def test_consumer_waits_for_consume(client: str, binaries: dict[str, Path], kafka_bootstrap: str,
                                    topic: str) -> None:
    """wait_for_consume: joined (ready) but nothing handed over before ``consume``; then the backlog."""
    n = 500
    stats_before: list[int] = []

    def release(d: DriverProc) -> None:
        time.sleep(1.5)
        stats_before.append(sum(x["type"] == "stat" for x in d.drain()))
        d.send({"type": "consume"})

    t0, r = _consume(binaries[client], kafka_bootstrap, topic, n, before_consume=release, wait_for_consume=True)
    assert stats_before == [0]     # no polling before consume
    assert r["received_total"] == n, r
    assert r["released_s"] >= 1.5
    assert r["first_receive_ns"] >= t0 + int(r["released_s"] * 1e9) - 1_000_000


# ---- protocol v2: the group consumers of sarama, confluent-kafka-go and kafka-go -------------------------

V2_CLIENTS = ["sarama", "confluent-kafka-go", "kafka-go"]   # franz-go's runs in the conformance gate (C8-C10)


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in got if tp.offset >= 0}


@needs_go
@pytest.mark.parametrize("client", V2_CLIENTS)
def test_v2_group_consumer_events(client: str, binaries: dict[str, Path], kafka_bootstrap: str, topic: str) -> None:
    """A lone v2 member (range, commit each batch, stop after 150 records): its lines parse as protocol v2
    events; the first is the whole assignment, before ready; every commit is ok and names the next offset
    of the last record read per partition; the group's committed offsets are the last commit's."""
    _produce_with_librdkafka(kafka_bootstrap, topic, 300)
    group, n = f"g-{topic}", 150
    d = DriverProc([str(binaries[client])])
    try:
        d.send(spec("consumer", kafka_bootstrap, topic, protocol=2, group=group, verify=True,
                    duration_ns=60_000_000_000, group_options={"assignor": "range", "auto_commit": False,
                                                               "commit": "batch", "max_records": n}))
        ready = d.wait_for("ready", 60)
        d.send({"type": "start", "t0_ns": time.monotonic_ns()})
        r = d.wait_for("result", 30)       # it stops on its own after n records
        assert d.finish() == 0
    finally:
        d.kill()
    assert d.lines[0]["protocol"] == 2 and ready == {"type": "ready", "protocol": 2, "group_events": True}
    assert r["protocol"] == 2 and "failed" not in r and len(r["verify"]) == n, r
    kinds = [x["type"] for x in d.lines if x["type"] != "stat"]
    assert kinds[:3] == ["hello", "assigned", "ready"] and kinds[-1] == "result", kinds
    events = [parse_event(x) for x in d.lines if x["type"] in EVENT_TYPES]
    first = events[0]
    assert isinstance(first, Assigned) and first.partitions == (0, 1, 2) and first.reads == 0, first
    assert first.generation is not None and first.generation >= 1, first
    commits = [e for e in events if isinstance(e, Committed)]
    assert commits and [c.error for c in commits if not c.ok] == [] and len(events) == 1 + len(commits), events
    assert [c.reads for c in commits] == sorted(c.reads for c in commits) and commits[-1].reads == n
    last: dict[int, int] = {}
    for c in commits:       # each commit: the next offset of the last record read before it, per partition
        upto = {p: o + 1 for p, o, _prod, _seq in r["verify"][:c.reads]}
        assert all(upto[p] == o for p, o in c.offsets.items()), (c, upto)
        last.update(c.offsets)
    assert last == {p: o + 1 for p, o, _prod, _seq in r["verify"]}
    assert _committed(kafka_bootstrap, group, topic) == last


@needs_go
@pytest.mark.parametrize(("client", "assignor"), [("confluent-kafka-go", "sticky"), ("kafka-go", "cooperative-sticky")])
def test_v2_driver_refuses_an_assignor_it_lacks(client: str, assignor: str, binaries: dict[str, Path],
                                               kafka_bootstrap: str) -> None:
    d = DriverProc([str(binaries[client])])
    try:
        d.send(spec("consumer", kafka_bootstrap, "t", protocol=2, group="g", group_options={"assignor": assignor}))
        err = d.wait_for("error", 30)
        assert d.finish() == 2
    finally:
        d.kill()
    assert "spec.group_options.assignor" in err["message"] and assignor in err["message"], err
