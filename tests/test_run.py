"""`kbench run` end to end against a real embedded broker: results, matrix, and the failure paths."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from hdrh.histogram import HdrHistogram

from bench.results.store import load_result
from tests.conftest import REPO, run_kbench

pytestmark = pytest.mark.integration

SCENARIO = """\
name: tiny
topic: {{partitions: 2}}
workload:
  message_size: 200
  producers: {producers}
  consumer_groups: 1
  rate: {rate}
  warmup: 1s
  duration: {duration}
producer: {{acks: all, linger.ms: 2}}
{extra}
"""


def _scenario(tmp_path: Path, *, rate: str = "1500", duration: str = "3s", producers: int = 1,
              extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SCENARIO.format(rate=rate, duration=duration, producers=producers, extra=extra))
    return path


def test_run_writes_trustworthy_result(tmp_path: Path, kafka_bootstrap: str) -> None:
    out = tmp_path / "run"
    proc = run_kbench("run", str(_scenario(tmp_path, producers=2)), "--bootstrap", kafka_bootstrap,
                      "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_result(out)
    assert doc["complete"] is True and doc["schema_version"] == 1
    env = doc["environment"]
    assert env["librdkafka"] and env["confluent_kafka"] and env["host"]["cpu_count"]
    assert env["broker"]["bootstrap"] == kafka_bootstrap and env["broker"]["cluster_id"]
    assert len(doc["scenario"]["sha256"]) == 64
    (cell,) = doc["cells"]
    # counts agree with the broker's offsets
    assert cell["check"]["offsets_agree"] is True
    assert cell["check"]["broker_offsets"]["total"] == cell["produce"]["acked_total"] > 0
    assert cell["check"]["consumed_all"] is True
    # ~1500 msg/s offered open-loop for 3 s
    assert 0.8 * 1500 <= cell["produce"]["msgs_per_s"] <= 1.2 * 1500
    assert cell["produce"]["per_second"]["samples"] == 3
    # histograms are whole, decode with hdrh, and agree with the summary
    for name in ("publish", "service", "send_delay", "e2e"):
        lat = cell["latency"][name]
        hist = HdrHistogram.decode(lat["hdr"])
        assert hist.get_total_count() == lat["count"] > 0
        assert hist.get_value_at_percentile(99) == lat["p99_us"]
    assert cell["latency"]["publish"]["count"] == cell["latency"]["service"]["count"] == cell["produce"]["messages"]
    # coordinated omission: publish latency (from intended time) >= service time, percentile by percentile
    assert cell["latency"]["publish"]["p50_us"] >= cell["latency"]["service"]["p50_us"] * 0.9
    assert (out / "cell-00-publish.hgrm").read_text().strip()
    assert (out / "cell-00-e2e.hlog").exists()
    assert "result:" in proc.stdout and "produce msg/s" in proc.stdout
    # 3 s is too short to test for a trend: unknown, never "steady"
    assert cell["steady_state"]["steady"] is None and "too short" in cell["steady_state"]["warning"]


def test_embedded_broker_is_primed_and_cells_checked_for_steady_state(tmp_path: Path) -> None:
    out = tmp_path / "primed"
    proc = run_kbench("run", str(_scenario(tmp_path, duration="6s")), "--broker", "kafka", "--prime", "3",
                      "--out", str(out), "--no-progress", env={"KBENCH_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_result(out)
    priming = doc["priming"]
    assert priming["seconds"] >= 3 and priming["produce_msgs_per_s"] > 0 and isinstance(priming["settled"], bool)
    assert 2 <= len(priming["rounds"]) <= 8 and all(r["seconds"] == 1.5 for r in priming["rounds"])
    assert priming["seconds"] == 1.5 * len(priming["rounds"])
    (cell,) = doc["cells"]
    steady = cell["steady_state"]
    assert steady["steady"] in (True, False) and {t["series"] for t in steady["tests"]} >= {"produce msg/s",
                                                                                            "publish p99"}
    assert all(t["n"] == 6 for t in steady["tests"])
    assert (steady["warning"] in cell["warnings"]) is (steady["steady"] is False)
    assert f"broker primed for {priming['seconds']:g} s" in proc.stdout
    assert not list(out.glob("*priming*")), "priming results must not land in the run directory"


def test_matrix_cells_and_thresholds(tmp_path: Path, kafka_bootstrap: str) -> None:
    extra = ("matrix:\n  producer.acks: [1, all]\nthresholds:\n  - {metric: produce.msgs_per_s, min: 100000000}\n")
    out = tmp_path / "m"
    proc = run_kbench("run", str(_scenario(tmp_path, duration="2s", extra=extra)), "--bootstrap", kafka_bootstrap,
                      "--out", str(out), "--no-progress")
    assert proc.returncode == 1, proc.stderr  # the impossible threshold is missed, in both cells
    assert "2 threshold miss(es)" in proc.stderr and "acks=1" in proc.stderr
    doc = load_result(out)
    assert [c["params"] for c in doc["cells"]] == [{"producer.acks": 1}, {"producer.acks": "all"}]
    assert [c["producer_config"]["acks"] for c in doc["cells"]] == ["1", "all"]
    assert all(c["check"]["offsets_agree"] for c in doc["cells"])


def test_max_rate_sampled_latency_keeps_exact_counts(tmp_path: Path, kafka_bootstrap: str) -> None:
    """rate: max times 1 in N messages (auto, or set); counts stay exact and agree with the broker's offsets,
    also with keys and varying sizes (the map() sender and the size FIFO), and with N = 1."""
    text = ("name: sampled\ntopic: {partitions: 3}\n"
            "workload:\n  message_size: {distribution: uniform, min: 50, max: 400}\n"
            "  keys: {kind: uniform, count: 20}\n  rate: max\n  warmup: 1s\n  duration: 2s\n"
            "producer: {acks: 1, linger.ms: 5}\n"
            "matrix:\n  workload.latency_sample: [auto, 1, 8]\n")
    path = tmp_path / "sampled.yaml"
    path.write_text(text)
    out = tmp_path / "s"
    proc = run_kbench("run", str(path), "--bootstrap", kafka_bootstrap, "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = load_result(out)["cells"]
    assert [c["params"] for c in cells] == [{"workload.latency_sample": v} for v in ("auto", 1, 8)]
    for cell in cells:
        produce, publish = cell["produce"], cell["latency"]["publish"]
        n = produce["latency_sample"]
        assert cell["check"]["offsets_agree"] is True, cell["check"]
        assert cell["check"]["consumed_all"] is True
        assert produce["acked_total"] == cell["check"]["broker_offsets"]["total"] > 1000
        assert produce["error_total"] == 0 and produce["errors_estimated"] is False
        assert 50 <= produce["bytes"] / produce["messages"] <= 400
        # the histogram holds the timed sample: ~1 in n of the window's messages
        assert publish["count"] == pytest.approx(produce["messages"] / n, rel=0.1, abs=n + 5)
        assert HdrHistogram.decode(publish["hdr"]).get_total_count() == publish["count"]
    assert cells[0]["produce"]["latency_sample"] in (1, 2, 4, 8, 16, 32, 64)  # auto: from the warm-up rate
    assert [c["produce"]["latency_sample"] for c in cells[1:]] == [1, 8]


def test_bad_scenario_is_exit_2_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workload:\n  rate: -5\n")
    proc = run_kbench("run", str(bad), "--bootstrap", "127.0.0.1:1")
    assert proc.returncode == 2
    assert "bad.yaml:2" in proc.stderr and "workload.rate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_bootstrap_fails_fast(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    proc = run_kbench("run", str(_scenario(tmp_path)), "--bootstrap", f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 2 and f"127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_existing_run_dir_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "result.json").write_text("mine")
    proc = run_kbench("run", str(_scenario(tmp_path)), "--broker", "kafka", "--out", str(out))
    assert proc.returncode == 2 and "never overwrites" in proc.stderr
    assert (out / "result.json").read_text() == "mine"


def test_secrets_never_written(tmp_path: Path, kafka_bootstrap: str) -> None:
    extra = "consumer: {sasl.password: hunter2-consumer}\n"
    out = tmp_path / "s"
    proc = run_kbench("run", str(_scenario(tmp_path, duration="1s", extra=extra)), "--bootstrap", kafka_bootstrap,
                      "--out", str(out), "--no-progress", "--client-config", "ssl.key.password=hunter2-cli",
                      "--set", "producer.sasl.password=hunter2-set")
    assert proc.returncode == 0, proc.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert b"hunter2" not in f.read_bytes(), f"secret written to {f}"
    doc = load_result(out)
    assert doc["cells"][0]["consumer_config"]["sasl.password"] == "***REDACTED***"


class _Run:
    """A `kbench run` child process whose stderr (progress lines) is read by a thread."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", *args], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_measuring(self, timeout: float = 90) -> list[psutil.Process]:
        """Block until the run is 2 s into its measurement phase; return its child processes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.rstrip().endswith(": measure") for line in self.lines):
                time.sleep(2)
                return psutil.Process(self.proc.pid).children(recursive=True)
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.1)
        raise AssertionError("run did not reach its measurement phase:\n" + "".join(self.lines))

    def finish(self, timeout: float) -> str:
        self.proc.wait(timeout)
        self._reader.join(10)
        return "".join(self.lines)


def test_sigint_keeps_partial_results(tmp_path: Path, kafka_bootstrap: str) -> None:
    out = tmp_path / "int"
    run = _Run([str(_scenario(tmp_path, duration="60s")), "--bootstrap", kafka_bootstrap, "--out", str(out)])
    kids = run.wait_measuring()
    run.proc.send_signal(signal.SIGINT)
    stderr = run.finish(90)
    assert run.proc.returncode == 130, stderr
    assert "partial results written" in stderr and "Traceback" not in stderr
    doc = json.loads((out / "result.json").read_text())
    assert doc["complete"] is False and "SIGINT" in doc["incomplete_reason"]
    (cell,) = doc["cells"]
    assert cell["complete"] is False and cell["produce"]["messages"] > 0
    assert HdrHistogram.decode(cell["latency"]["publish"]["hdr"]).get_total_count() > 0
    time.sleep(1)
    assert not [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE], "workers left behind"


def test_broker_dying_mid_run_marks_incomplete(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = tmp_path / "dead"
    run = _Run([str(_scenario(tmp_path, duration="60s")), "--broker", "kafka", "--prime", "0", "--out", str(out)],
               env={"KBENCH_HOME": str(home)})
    kids = run.wait_measuring()
    (state,) = home.rglob("state.json")
    broker_pid = json.loads(state.read_text())["nodes"][0]["pid"]
    os.kill(broker_pid, signal.SIGKILL)
    stderr = run.finish(120)
    assert run.proc.returncode == 1, stderr
    assert "broker died" in stderr
    doc = json.loads((out / "result.json").read_text())
    assert doc["complete"] is False and "broker died" in doc["incomplete_reason"]
    assert doc["cells"] and doc["cells"][0]["produce"]["messages"] > 0
    time.sleep(1)
    assert not [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE], "processes left behind"
