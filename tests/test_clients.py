"""The client axis of a scenario (issue 13): `client:` / `consumer_client:` run cells through the Java and
Go drivers with the same pipeline, a key a client cannot honour is exit 2 before anything starts, and a
driver that dies fails its cell with its stderr tail, keeps the partial result and leaves no process, and
the run goes on with the next cell.

The round trips run the real drivers (built on first use into the kbench cache) against embedded Kafka.
The crash test uses a stand-in driver script: what it tests is the coordinator's handling of a dying
process, which needs no real client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psutil
import pytest

from bench.run.execute import RunOptions, execute
from bench.scenario.model import load_scenario_text
from tests.conftest import run_kbench

TINY = """\
name: clients
topic: {partitions: 2}
workload: {message_size: 200, rate: 500, warmup: 1s, duration: 3s, producers: 1, consumer_groups: 1}
producer: {acks: all, linger.ms: 5}
"""


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clients.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("client", "key"), [
    ("sarama", "socket.keepalive.enable"), ("franz-go", "queue.buffering.max.ms"), ("kafka-go", "enable.idempotence")])
def test_key_a_client_cannot_honour_is_exit_2_before_any_broker(tmp_path: Path, client: str, key: str) -> None:
    home, reports = tmp_path / "home", tmp_path / "reports"
    path = _scenario(tmp_path, TINY + f"client: {client}\n")
    r = run_kbench("run", str(path), "--broker", "kafka", "--set", f"producer.{key}=true",
                   "--reports-dir", str(reports), env={"KBENCH_HOME": str(home)})
    assert r.returncode == 2, r.stderr
    assert client in r.stderr and key in r.stderr and "Traceback" not in r.stderr
    assert not reports.exists() and not (home / "brokers").exists()


def test_unknown_client_names_the_choices(tmp_path: Path) -> None:
    r = run_kbench("run", str(_scenario(tmp_path, TINY + "client: rdkafka-rs\n")), "--broker", "kafka",
                   "--reports-dir", str(tmp_path / "r"), env={"KBENCH_HOME": str(tmp_path / "home")})
    assert r.returncode == 2 and "client" in r.stderr and "franz-go" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_java_and_go_clients_round_trip_with_librdkafka(tmp_path: Path) -> None:
    """A Java producer read by a librdkafka consumer, and a librdkafka producer read by franz-go: counts
    agree with the broker's offsets, e2e latency comes from the shared header and clock, and each cell
    records its clients."""
    text = TINY + "matrix:\n  client: [java, librdkafka]\n  consumer_client: [librdkafka, franz-go]\n"
    path = _scenario(tmp_path, text)
    r = run_kbench("run", str(path), "--broker", "kafka", "--prime", "0", "--no-progress", "--out",
                   str(tmp_path / "run"), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((tmp_path / "run" / "result.json").read_text())
    seen = set()
    for cell in doc["cells"]:
        producer, consumer = cell["clients"]["producer"], cell["clients"]["consumer"]
        seen.add((producer["name"], consumer["name"]))
        assert cell["complete"] and cell["check"]["offsets_agree"], cell["label"]
        assert cell["produce"]["messages"] >= 1000 and cell["check"]["consumed_all"], cell["check"]
        e2e = cell["latency"]["e2e"]
        assert e2e is not None and 0 < e2e["p50_ms"] < 2000, (cell["label"], e2e)
        for info in (producer, consumer):
            assert info["version"] and info["version"] != "unknown"
            assert info["protocol"] == (None if info["name"] == "librdkafka" else 1)
    assert seen == {("java", "librdkafka"), ("java", "franz-go"), ("librdkafka", "librdkafka"),
                    ("librdkafka", "franz-go")}


DYING_DRIVER = """\
import json, sys, time
spec = json.loads(sys.stdin.readline())
print(json.dumps({"type": "hello", "protocol": 1, "now_ns": time.monotonic_ns()}), flush=True)
print(json.dumps({"type": "ready"}), flush=True)
line = sys.stdin.readline()
sys.stderr.write("driver stand-in: lost the connection to the broker\\n")
sys.exit(3)
"""


@pytest.mark.integration
def test_a_dying_driver_fails_its_cell_the_next_cell_runs_and_no_process_is_left(
        tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cells: the franz-go producer of the first dies after t0 (exit 3, a line on stderr); the cell is
    failed with the stderr tail and the consumer's partial result, its topic deleted, and the second cell
    (librdkafka) runs to its end. The run returns (no RunAborted): incomplete, exit 1 at the CLI."""
    from bench.kafka.admin import TopicAdmin

    script = tmp_path / "dying_driver.py"
    script.write_text(DYING_DRIVER)
    monkeypatch.setattr("bench.drivers.pool.worker_command",
                        lambda client, version: [sys.executable, str(script)])
    scenario = load_scenario_text(TINY + "consumer_client: librdkafka\nmatrix: {client: [franz-go, librdkafka]}\n")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    opts = RunOptions(bootstrap=kafka_bootstrap, broker={"kind": "external"}, out=tmp_path / "run")
    outcome = execute(scenario, opts)
    doc = json.loads((tmp_path / "run" / "result.json").read_text())
    assert not outcome.complete and doc["complete"] is False
    dead, good = doc["cells"]
    assert dead["status"] == "failed" and dead["complete"] is False
    for reason in (dead["incomplete_reason"], dead["failure"]["reason"], doc["failed_cells"][0]["reason"]):
        assert "franz-go driver 0 died (exit code 3)" in reason and "lost the connection to the broker" in reason
    assert dead["failure"]["stops_run"] is False and [f["index"] for f in doc["failed_cells"]] == [0]
    assert len(dead["consume"]["join_s"]) == 1          # the librdkafka consumer's partial result is kept
    assert "1 of 2 cell(s) failed" in doc["incomplete_reason"] and "exit code 3" in doc["incomplete_reason"]
    assert good["status"] == "ok" and good["complete"] and good["check"]["offsets_agree"], good["check"]
    with TopicAdmin(kafka_bootstrap) as admin:          # deleted like a finished cell's
        admin.wait_deleted(dead["topic"]["name"], timeout_s=15)
    left = [psutil.Process(pid) for pid in {p.pid for p in psutil.Process().children(recursive=True)} - before
            if psutil.pid_exists(pid)]
    # multiprocessing's resource tracker lives as long as this process; anything else is a leak
    leaked = [" ".join(p.cmdline()) for p in left if p.status() != psutil.STATUS_ZOMBIE
              and "resource_tracker" not in " ".join(p.cmdline())]
    assert not leaked
