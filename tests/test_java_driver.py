"""The Java load driver (bench/drivers/java) driven through the driver protocol (docs/drivers.md) from Python,
against a real broker: build and reuse, the hello clock check, refusals, EOF, producer counts against the
topic's offsets, histograms decoded with hdrh, e2e across clients (Java → librdkafka, librdkafka → Java),
verify mode."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.drivers.javabuild import JavaDriver, build_java_driver, check_java_config, java_driver_status
from bench.errors import ConfigError
from bench.load.payload import decode_header, encode_header
from bench.metrics.hdr import decode_histogram
from tests.driver_process import DriverStdin

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("javac"), reason="needs a JDK (javac)")]

KAFKA_VERSION = "4.3.1"
SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def driver() -> JavaDriver:
    return build_java_driver(KAFKA_VERSION)


@dataclass
class DriverRun(DriverStdin):
    """One driver process, spoken to over its pipes: ``lines`` gets every stdout line, parsed."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    before_ns: int = 0
    hello: dict[str, Any] = field(default_factory=dict)
    after_ns: int = 0

    def next(self, timeout: float = 30.0) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        self.seen.append(line)
        return line

    def expect(self, kind: str, timeout: float = 30.0, skip: tuple[str, ...] = ("stat",)) -> dict[str, Any]:
        """The next line of type ``kind``, skipping ``skip`` lines; anything else fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.1, deadline - time.monotonic()))
            if line["type"] == kind:
                return line
            assert line["type"] in skip, f"expected {kind}, got {line}"

    def finish(self, timeout: float = 30.0) -> tuple[dict[str, Any], int]:
        result = self.expect("result", timeout, skip=("stat", "error"))
        return result, self.proc.wait(timeout)


def spawn(driver: JavaDriver, spec: dict[str, Any], *, hello: bool = True) -> DriverRun:
    """Start a driver and send ``spec``; with ``hello``, read the hello line, bracketed by this clock."""
    proc = subprocess.Popen(driver.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
    run = DriverRun(proc)

    def pump() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            run.lines.put(json.loads(text))

    threading.Thread(target=pump, daemon=True).start()
    run.before_ns = time.monotonic_ns()
    run.send(spec)
    if hello:
        run.hello = run.next(60)
        run.after_ns = time.monotonic_ns()
        assert run.hello["type"] == "hello", run.hello
    return run


@pytest.fixture
def runs() -> Iterator[list[DriverRun]]:
    """Every driver started by a test; killed at its end if still running (none should be)."""
    started: list[DriverRun] = []
    yield started
    leaked = [r for r in started if r.proc.poll() is None]
    for r in leaked:
        r.proc.kill()
        r.proc.wait(10)
    assert not leaked, "a driver process outlived its test"


def spec(role: str, bootstrap: str, topic: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "spec", "protocol": 1, "role": role, "index": 0, "producers": 1, "bootstrap": bootstrap,
        "topic": topic, "client_config": {}, "warmup_ns": SECOND, "duration_ns": 3 * SECOND, "rate": None,
        "message_size": {"distribution": "fixed", "value": 100, "min": 100, "max": 100},
        "payload": {"kind": "random", "compressibility": 0.0}, "keys": {"kind": "none"},
        "group": None, "wait_for_consume": False, "seed": 1, "verify": False, "flush_timeout_s": 30,
    }
    doc.update(over)
    return doc


def new_topic(bootstrap: str, partitions: int = 3) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"java-driver-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def topic_offsets(bootstrap: str, topic: str, partitions: int = 3) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-" + uuid.uuid4().hex[:6]})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))
    finally:
        c.close()


def run_producer(driver: JavaDriver, runs: list[DriverRun], bootstrap: str, topic: str,
                 **over: Any) -> dict[str, Any]:
    run = spawn(driver, spec("producer", bootstrap, topic, **over))
    runs.append(run)
    run.expect("ready", 60)
    run.send({"type": "start", "t0_ns": time.monotonic_ns() + 200_000_000})
    result, code = run.finish(60)
    assert code == 0, result
    assert result["client"] == {"name": "java", "version": KAFKA_VERSION} and result["protocol"] == 1
    return result


def check_histograms(result: dict[str, Any], names: tuple[str, ...], measured: int, timed: int | None = None) -> None:
    """Every metric's histogram holds the ``timed`` acks (all ``measured`` unless sampled), and so do the
    per-second histograms; the per-second counts add up to ``measured``."""
    timed = measured if timed is None else timed
    for name in names:
        assert decode_histogram(result["hdr"][name]).get_total_count() == timed, name
    series = result["series"]
    assert sum(series["count"]) == measured
    assert sum(decode_histogram(h).get_total_count() for h in series["hists"].values()) == timed
    assert series["out_of_range"] == 0


# ---------------------------------------------------------------------------------------------- build


def test_build_is_reused_and_lists_the_clients_properties(driver: JavaDriver) -> None:
    again = build_java_driver(KAFKA_VERSION)
    assert again.build_dir == driver.build_dir
    status = java_driver_status(KAFKA_VERSION)
    assert status.built and status.path == driver.build_dir and status.client_version == KAFKA_VERSION
    assert {"acks", "linger.ms", "batch.size", "compression.type", "partitioner.class", "enable.idempotence",
            "max.in.flight.requests.per.connection"} <= driver.producer_configs
    assert {"group.id", "fetch.min.bytes", "max.poll.records"} <= driver.consumer_configs
    assert "linger.ms" not in driver.consumer_configs


def test_missing_javac_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match=r"javac.*apt-get install openjdk"):
        build_java_driver(KAFKA_VERSION)
    assert not java_driver_status(KAFKA_VERSION).built


def test_check_java_config_names_the_unknown_key(driver: JavaDriver) -> None:
    check_java_config("producer", {"acks": "1", "linger.ms": "5",
                                   "partitioner.class": "org.apache.kafka.clients.producer.RoundRobinPartitioner"},
                      KAFKA_VERSION)
    with pytest.raises(ConfigError, match=r"client java: producer config 'linger\.mss'"):
        check_java_config("producer", {"linger.mss": "5"}, KAFKA_VERSION)
    with pytest.raises(ConfigError, match=r"'linger\.ms'"):  # a producer key is not a consumer key
        check_java_config("consumer", {"linger.ms": "5"}, KAFKA_VERSION)


# ------------------------------------------------------------------------------------ protocol basics


def test_hello_reads_the_coordinators_clock(driver: JavaDriver, runs: list[DriverRun], kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap)
    run = spawn(driver, spec("producer", kafka_bootstrap, topic))
    runs.append(run)
    hello = run.hello
    assert hello["protocol"] == 1 and hello["client"]["name"] == "java" and hello["role"] == "producer"
    # System.nanoTime() read inside the interval Python's time.monotonic_ns() brackets: one clock. The
    # interval is ~2 ms wide here; CLOCK_MONOTONIC_RAW was 258 ms away from CLOCK_MONOTONIC on this host
    assert run.before_ns <= hello["now_ns"] <= run.after_ns
    run.expect("ready", 60)
    run.close_stdin()   # EOF before start: a clean stop
    result, code = run.finish()
    assert code == 0 and result["failed"] == "stopped before the start"


def test_bad_spec_is_refused_without_hello(driver: JavaDriver, runs: list[DriverRun], kafka_bootstrap: str) -> None:
    run = spawn(driver, spec("banana", kafka_bootstrap, "t"), hello=False)
    runs.append(run)
    assert "role" in run.next()["message"]
    result, code = run.finish()
    assert code == 2 and "role" in result["failed"] and result["client"]["name"] == "java"


@pytest.mark.parametrize(("role", "key"), [("producer", "linger.mss"), ("consumer", "batch.size")])
def test_unknown_property_is_refused_at_spec_time(driver: JavaDriver, runs: list[DriverRun],
                                                  kafka_bootstrap: str, role: str, key: str) -> None:
    run = spawn(driver, spec(role, kafka_bootstrap, "t", group="g", client_config={key: "5", "acks": "1"}
                             if role == "producer" else {key: "5"}), hello=False)
    runs.append(run)
    error = run.expect("error")
    assert f"'{key}'" in error["message"] and role in error["message"]
    result, code = run.finish()
    assert code == 2 and key in result["failed"]


def test_eof_on_stdin_stops_the_driver(driver: JavaDriver, runs: list[DriverRun], kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap)
    run = spawn(driver, spec("producer", kafka_bootstrap, topic, rate=500.0, warmup_ns=0, duration_ns=120 * SECOND))
    runs.append(run)
    run.expect("ready", 60)
    run.send({"type": "start", "t0_ns": time.monotonic_ns()})
    assert run.expect("stat", 10)["type"] == "stat"
    t = time.monotonic()
    run.close_stdin()
    result, code = run.finish(15)
    assert code == 0 and time.monotonic() - t < 5
    assert result["stopped_early"] and result["window_s"] < 10
    assert result["acked_total"] == result["sent_total"] == topic_offsets(kafka_bootstrap, topic)


# ---------------------------------------------------------------------------------------- producers


def test_rate_limited_producer_counts_and_histograms(driver: JavaDriver, runs: list[DriverRun],
                                                     kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap)
    result = run_producer(driver, runs, kafka_bootstrap, topic, rate=2000.0, client_config={"acks": "all"})
    assert result["acked_total"] == result["sent_total"] == topic_offsets(kafka_bootstrap, topic)
    assert result["acked_total"] == 4 * 2000   # 1 s warm-up + 3 s window, every scheduled message sent
    assert result["sent_measured"] == result["acked_measured"] == 3 * 2000
    assert result["bytes_measured"] == 100 * 3 * 2000
    assert result["errors"] == {} and result["unacked_at_end"] == 0 and not result["stopped_early"]
    check_histograms(result, ("publish", "service", "send_delay"), 3 * 2000)
    publish = decode_histogram(result["hdr"]["publish"])
    service = decode_histogram(result["hdr"]["service"])
    assert publish.get_value_at_percentile(50) >= service.get_value_at_percentile(50)
    assert publish.get_value_at_percentile(50) < 1_000_000   # µs (a ns mix-up would be 1000x), on a loaded host
    counts = result["series"]["count"]   # by ack time: the rate each second, but a stall on a loaded host
    assert len(counts) >= 3 and max(counts) <= 3 * 2000, counts   # moves acks into a later second


def test_max_rate_producer_with_round_robin(driver: JavaDriver, runs: list[DriverRun], kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap)
    config = {"acks": "1", "linger.ms": "5",
              "partitioner.class": "org.apache.kafka.clients.producer.RoundRobinPartitioner"}
    result = run_producer(driver, runs, kafka_bootstrap, topic, warmup_ns=SECOND, duration_ns=2 * SECOND,
                          client_config=config)
    assert result["acked_total"] == result["sent_total"] == topic_offsets(kafka_bootstrap, topic)
    assert result["acked_measured"] > 10_000 and result["hdr"]["send_delay"] is None
    # latencies of a 1-in-N sample (N a power of two chosen from the warm-up's rate), counts exact
    n, measured = result["latency_sample"], result["acked_measured"]
    assert n in (1, 2, 4, 8, 16, 32, 64) and result["errors_estimated"] is False
    timed = decode_histogram(result["hdr"]["publish"]).get_total_count()
    assert abs(timed * n - measured) <= 0.05 * measured + 64, (timed, n, measured)
    check_histograms(result, ("publish", "service"), measured, timed)
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "rr-" + uuid.uuid4().hex[:6]})
    per_partition = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)]
    c.close()
    assert max(per_partition) - min(per_partition) <= 2, per_partition   # round-robin, not sticky


def test_verify_mode_keeps_every_ack(driver: JavaDriver, runs: list[DriverRun], kafka_bootstrap: str) -> None:
    topic = new_topic(kafka_bootstrap)
    result = run_producer(driver, runs, kafka_bootstrap, topic, rate=1000.0, warmup_ns=0, duration_ns=SECOND,
                          verify=True, keys={"kind": "round_robin", "count": 10})
    acks = result["verify"]["acks"]
    assert result["verify"]["sent"] == len(acks) == result["acked_total"] == 1000
    assert sorted(seq for _p, _o, _prod, seq, _t in acks) == list(range(1000))
    by_partition: dict[int, list[int]] = {}
    for partition, offset, producer, _seq, _t in acks:
        assert producer == 0
        by_partition.setdefault(partition, []).append(offset)
    assert sum(len(v) for v in by_partition.values()) == topic_offsets(kafka_bootstrap, topic)
    for offsets in by_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))
    assert result["verify"]["failed"] == [] and result["verify"]["unacked_seq_from"] is None


# ---------------------------------------------------------------------------------------- across clients


def test_java_producer_librdkafka_consumer_e2e(driver: JavaDriver, runs: list[DriverRun],
                                               kafka_bootstrap: str) -> None:
    """The header the Java driver writes decodes in Python, and its time is on Python's monotonic clock."""
    from confluent_kafka import Consumer

    topic = new_topic(kafka_bootstrap)
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "e2e-" + uuid.uuid4().hex[:6],
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    try:
        result = run_producer(driver, runs, kafka_bootstrap, topic, rate=1000.0, warmup_ns=0, duration_ns=2 * SECOND,
                              index=7, producers=8)
        e2e_ms: list[float] = []
        seqs: list[int] = []
        deadline = time.monotonic() + 30
        while len(seqs) < result["acked_total"] and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error() is not None:
                continue
            now = time.monotonic_ns()
            value = m.value() or b""
            sent, producer, seq = decode_header(value)
            assert producer == 7 and len(value) == 100
            e2e_ms.append((now - sent) / 1e6)
            seqs.append(seq)
    finally:
        c.close()
    assert sorted(seqs) == list(range(2000))
    # the intended send times are on this process's clock: e2e positive and small (other clocks differ by
    # far more: CLOCK_MONOTONIC_RAW by the NTP slew since boot, a per-process origin by the uptime)
    assert min(e2e_ms) > 0 and max(e2e_ms) < 5_000, (min(e2e_ms), max(e2e_ms))


def test_java_consumer_reads_what_python_produced(driver: JavaDriver, runs: list[DriverRun],
                                                  kafka_bootstrap: str) -> None:
    from confluent_kafka import Producer

    topic = new_topic(kafka_bootstrap)
    run = spawn(driver, spec("consumer", kafka_bootstrap, topic, group="java-" + uuid.uuid4().hex[:6], warmup_ns=0,
                             duration_ns=30 * SECOND, verify=True))
    runs.append(run)
    assert run.expect("ready", 60)["partitions"] == 3
    t0 = time.monotonic_ns()
    run.send({"type": "start", "t0_ns": t0})
    p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 1})
    n = 1500
    for seq in range(n):
        p.produce(topic, encode_header(time.monotonic_ns(), 2, seq) + b"x" * 84)
        p.poll(0)
        time.sleep(0.001)
    assert p.flush(30) == 0
    deadline = time.monotonic() + 20
    total = 0
    while total < n and time.monotonic() < deadline:
        line = run.next(5)
        if line["type"] == "stat":
            total = line["total"]
    run.send({"type": "stop"})
    result, code = run.finish()
    assert code == 0, result
    assert result["received_total"] == result["received_measured"] == n
    assert result["bytes_measured"] == 100 * n
    e2e = decode_histogram(result["hdr"]["e2e"])
    assert e2e.get_total_count() == n and 0 < e2e.get_value_at_percentile(50) < 1_000_000  # µs
    reads = result["verify"]
    assert sorted(seq for _p, _o, producer, seq in reads if producer == 2) == list(range(n))
    assert result["lag"] and result["lag"][-1][1] == 0
    assert result["join_s"] is not None and result["first_receive_ns"] >= t0
