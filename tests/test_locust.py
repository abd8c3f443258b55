"""`kbench locust`: Kafka users in Locust (master + workers on loopback), the exact merge of the workers'
histograms, the web UI, and throughput beside `kbench run` for the same cell — against a real broker."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest
from hdrh.histogram import HdrHistogram

from bench.locust.plan import Plan, build_plan, merge_worker_reports, rebase_result
from bench.metrics.hdr import LatencyRecorder
from bench.results.store import load_result
from bench.scenario.model import load_scenario_text
from tests.conftest import REPO

TINY = """\
name: tiny
topic: {{partitions: 2}}
workload:
  message_size: 200
  producers: 2
  consumer_groups: 1
  rate: {rate}
  warmup: 1s
  duration: {duration}
producer: {{acks: all, linger.ms: 2}}
"""


def _kbench(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=dict(os.environ), check=False)


def _popen_kbench(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)


def _scenario(tmp_path: Path, rate: str = "1500", duration: str = "4s") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(rate=rate, duration=duration))
    return path


def _watermarks(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex[:6]}"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(hi - lo for lo, hi in (c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                                          for p in parts))
    finally:
        c.close()


def _delete_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(15)


def _leftovers(run_dir: Path) -> list[psutil.Process]:
    """Locust processes kbench started for this run (they run with the run directory as cwd)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if "locust" in " ".join(p.info["cmdline"] or []) and Path(p.cwd()) == run_dir:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


# -- without a broker -----------------------------------------------------------------------------------
def test_package_import_does_not_import_locust() -> None:
    code = ("import sys, bench.locust, bench.locust.driver, bench.cli.locust; "
            "print('locust' in sys.modules, 'gevent' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_plan_round_trip_and_rate_share() -> None:
    sc = load_scenario_text(TINY.format(rate="3000", duration="2s"))
    plan = build_plan(sc.cells[0], group_prefix="kbench-r1-c0", bootstrap="127.0.0.1:1", topic="t",
                      client_config={"x": "1"}, producer_users=4, workers=2, results_path=None)
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.user_rate == 750.0 and again.consumer_users == 1
    assert again.group_id(0) == "kbench-r1-c0-g0"     # the pipeline's CellJob.group_prefix contract
    assert again.message_size_spec() == sc.cells[0].workload.message_size
    assert again.keys_spec() == sc.cells[0].workload.keys and again.payload_spec() == sc.cells[0].workload.payload
    assert again.producer_config == {"x": "1", "acks": "all", "linger.ms": "2"}


def _user(role: str, values: list[int], count: int) -> dict[str, Any]:
    rec = LatencyRecorder()
    rec.record_many(values)
    if role == "producer":
        result = {"hdr": {"publish": rec.encode(), "service": rec.encode(), "send_delay": None},
                  "acked_measured": count, "acked_total": count + 5, "series": {"origin_ns": 123}, "window_end_ns": 500}
    else:
        result = {"hdr": {"e2e": rec.encode()}, "received_measured": count, "received_total": count}
    return {"role": role, "index": 0, "result": result}


def test_producer_user_fires_one_event_per_batch_and_folds_untimed_batches() -> None:
    """Pure logic of the Locust producer's events (a client is built, never connected)."""
    from bench.load.core import Batch
    from bench.locust.clients import ProducerDriver, Window

    sc = load_scenario_text(TINY.format(rate="max", duration="2s"))
    plan = build_plan(sc.cells[0], group_prefix="g", bootstrap="127.0.0.1:1", topic="t", client_config={},
                      producer_users=1, workers=0, results_path=None)
    fired: list[dict[str, Any]] = []
    driver = ProducerDriver(plan, Window.from_wall(time.time_ns(), 1.0, 2.0), 3, lambda **kw: fired.append(kw))
    try:
        driver._fire_batch(Batch(100, 20_000, 1500, {}))
        driver._fire_batch(Batch(50, 10_000, None, {}))        # sampled: no timed message in this batch
        assert len(fired) == 1
        driver._fire_batch(Batch(10, 2_000, 900, {"MSG_TIMED_OUT": 4}))
        assert [(f["response_time"], f["response_length"], f["context"]["messages"], f["exception"] is None)
                for f in fired] == [(1.5, 20_000, 100, True), (0.9, 12_000, 60, True), (0.0, 0, 4, False)]
        assert vars(driver.events) == {"requests": 2, "messages": 160, "failures": 1}
        assert {f["request_type"] for f in fired} == {"kafka-produce"} and {f["name"] for f in fired} == {"base"}
    finally:
        driver.producer.flush(0)


def test_master_merge_is_exact() -> None:
    reports = {"w1": {"users": [_user("producer", [5, 7, 900], 3), _user("consumer", [40, 41], 2)]},
               "w2": {"users": [_user("producer", [6, 100_000], 2), _user("producer", [1], 1),
                                {"role": "producer", "index": 9, "result": {"failed": "boom"}}]}}
    merged = merge_worker_reports(reports)
    assert merged["workers"] == 2
    assert merged["per_worker"]["w1"]["publish"] == 3 and merged["per_worker"]["w2"]["publish"] == 3
    assert merged["sum"]["produced"] == 6 and merged["sum"]["acked_total"] == 21
    assert merged["merged"]["publish"]["count"] == merged["sum"]["publish"] == 6
    assert merged["merged"]["e2e"]["count"] == 2
    hist = HdrHistogram.decode(merged["merged"]["publish"]["hdr"])
    everything = LatencyRecorder()
    everything.record_many([5, 7, 900, 6, 100_000, 1])
    for q in (0.0, 50.0, 99.0, 100.0):
        assert hist.get_value_at_percentile(q) == everything.histogram.get_value_at_percentile(q)
    rebased = rebase_result(reports["w1"]["users"][0]["result"], t_start_ns=100)
    assert rebased["series"]["origin_ns"] == 0 and rebased["window_end_ns"] == 400


def test_bad_options_fail_before_any_broker(tmp_path: Path) -> None:
    scen = _scenario(tmp_path)
    proc = _kbench("locust", str(scen), "--cell", "3", "--broker", "kafka", timeout=30)
    assert proc.returncode == 2 and "--cell 3: the scenario has 1 cell(s)" in proc.stderr
    proc = _kbench("locust", str(scen), "--master-host", "10.1.2.3", "--broker", "kafka", timeout=30)
    assert proc.returncode == 2 and "embedded broker" in proc.stderr


MATRIX = """\
name: two
topic: {name: fixed-topic, partitions: 1}
matrix: {workload.message_size: [100, 200]}
workload: {producers: 1, consumer_groups: 0, rate: 1000, warmup: 100ms, duration: 200ms}
"""


def _producer_result(index: int) -> Any:
    """A real producer result of the open-loop core (fake clock and client; tests/test_load_core.py), rebased
    as a Locust worker sends it."""
    from tests.test_load_core import MS, FakeClock, _core, _run

    clock = FakeClock()
    core, _client = _core(clock, rate=500.0, index=index)
    _run(core, clock, step_ns=0)
    return rebase_result(dict(core.result(stopped=True)), 100 * MS)


class _FakeLocust:
    """Stands in for bench.locust.launcher.LocustProcesses: at start() it writes what a master writes (the
    started file, then two workers' reports with their exact merge, and Locust's stats CSV)."""

    end_reason: str | None = "completed"
    plans: ClassVar[list[Plan]] = []

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.master_log = spec.run_dir / "locust-master.log"

    def start(self) -> None:
        plan = Plan.from_json(self.spec.plan_path.read_text())
        type(self).plans.append(plan)
        (self.spec.run_dir / "locust-started.json").write_text(json.dumps({"t0_wall_ns": time.time_ns()}))
        reports = {f"w{i}": {"worker_index": i, "errors": [],
                             "users": [{"role": "producer", "index": 0, "worker": i, "result": _producer_result(i)}]}
                   for i in range(2)}
        if self.end_reason is None:     # the master quit before it collected anything
            return
        collected = {"group_prefix": plan.group_prefix, "end_reason": self.end_reason, "missing_workers": [],
                     "reports": reports, "merge": merge_worker_reports(reports),  # type: ignore[arg-type]
                     "target_user_classes_count": {"KafkaProducerUser": 2}}
        (self.spec.run_dir / "locust-results.json").write_text(json.dumps(collected))
        (self.spec.run_dir / "locust_stats.csv").write_text(
            "Type,Name,Request Count,Failure Count,Median Response Time,Requests/s\n"
            "kafka-produce,base,40,0,3,20.0\n,Aggregated,40,0,3,20.0\n")

    def wait(self, timeout_s: float | None) -> int | None:
        return 0

    def request_stop(self) -> None: ...

    def stop(self, grace_s: float = 10.0) -> None: ...

    def log_tail(self, lines: int = 20) -> str:
        return ""

    def remote_worker_command(self, master_host: str) -> str:
        return "locust --worker"


def _locust_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end_reason: str | None = "completed") -> Any:
    """`kbench locust`'s pipeline (execute with the Locust driver) on cell 1, users 2, two workers, with
    the fake Locust processes; no broker (the scenario names its topic: no topic, no offsets to read)."""
    from bench.locust.driver import LocustDriver, LocustOptions, setup_locust
    from bench.run.events import LoadStarted, RunEvent, RunEvents
    from bench.run.execute import RunOptions, execute

    monkeypatch.setattr("bench.locust.driver.LocustProcesses", _FakeLocust)
    monkeypatch.setattr(_FakeLocust, "end_reason", end_reason)
    monkeypatch.setattr(_FakeLocust, "plans", [])
    seen: list[RunEvent] = []

    class Recorder:
        def on_event(self, event: RunEvent) -> None:
            seen.append(event)

    scenario, setup = setup_locust(load_scenario_text(MATRIX), LocustOptions(cell=1, users=2, workers=2))
    opts = RunOptions(bootstrap="127.0.0.1:1", broker={"kind": "external"}, out=tmp_path / "run")
    try:
        outcome = execute(scenario, opts, LocustDriver(setup), RunEvents(observers=[Recorder()]))
    finally:
        (plan,) = _FakeLocust.plans
    assert [e.topic for e in seen if isinstance(e, LoadStarted)] == ["fixed-topic"]
    return outcome, plan


def test_setup_narrows_the_scenario_to_the_cell_with_its_producer_users() -> None:
    from bench.errors import ConfigError
    from bench.locust.driver import LocustOptions, setup_locust

    sc = load_scenario_text(MATRIX)
    one, setup = setup_locust(sc, LocustOptions(cell=1, users=4, workers=2))
    (cell,) = one.cells
    assert cell.index == 1 and cell.params == sc.cells[1].params and one.repeat == 1
    assert cell.workload.producers == 4 and cell.workload.message_size == sc.cells[1].workload.message_size
    assert (setup.producer_users, setup.consumer_users, setup.expect_workers, setup.users) == (4, 0, 2, 4)
    assert setup.user_rate == 250.0 and setup.spawn_rate == 4.0 and setup.user_classes == ["KafkaProducerUser"]
    for bad, words in ((LocustOptions(cell=2), "--cell 2: the scenario has 2 cell(s)"),
                       (LocustOptions(users=0), "nothing to run"),
                       (LocustOptions(workers=2, expect_workers=1), "--expect-workers >= --workers"),
                       (LocustOptions(spawn_rate=0), "--spawn-rate must be > 0"),
                       (LocustOptions(master_host="10.0.0.1", expect_workers=1, embedded=True), "embedded broker"),
                       (LocustOptions(master_host="10.0.0.1"), "--master-host needs --expect-workers")):
        with pytest.raises(ConfigError, match=re.escape(words)):
            setup_locust(sc, bad)
    with pytest.raises(ConfigError, match=r"drives confluent-kafka .* clients are franz-go / librdkafka"):
        setup_locust(load_scenario_text(MATRIX + "client: franz-go\nconsumer_client: librdkafka\n"), LocustOptions())


def test_locust_goes_through_the_run_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome, plan = _locust_run(tmp_path, monkeypatch)
    doc = load_result(outcome.run_dir)
    assert outcome.complete and doc["complete"] is True
    env = doc["environment"]
    assert env["driver"] == "locust" and "CLOCK_REALTIME" in env["clock"]
    assert env["locust"]["workers"] == 2 and env["locust"]["producer_users"] == 2 and env["locust"]["cell"] == 1
    (cell,) = doc["cells"]
    assert cell["index"] == 1 and cell["workload"]["producers"] == 2 and cell["topic"]["name"] == "fixed-topic"
    # the plan is the pipeline's job: its topic, its consumer-group prefix, its bootstrap; the secret file is gone
    assert plan.topic == "fixed-topic" and plan.group_prefix == f"kbench-{doc['run_id']}-c1"
    assert plan.bootstrap == "127.0.0.1:1" and plan.user_rate == 500.0
    assert not Path(plan.results_path or "").with_name("plan.json").exists()
    merge = cell["check"]["locust_merge"]
    assert merge["workers"] == 2 and merge["merged_equals_sum"] and merge["messages_equal_sum"]
    assert cell["produce"]["messages"] == sum(w["produced"] for w in merge["per_worker"].values()) > 0
    assert cell["latency"]["publish"]["count"] == merge["merged_counts"]["publish"]
    assert cell["locust"]["end_reason"] == "completed" and cell["locust"]["user_rate"] == 500.0
    assert cell["locust"]["stats"]["kafka-produce"]["requests"] == 40
    assert (outcome.run_dir / "cell-01-publish.hgrm").exists()


def test_a_test_stopped_early_is_a_partial_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The web UI's Stop is the user's: it stops the run (exit 1), the cell is incomplete, not failed."""
    from bench.errors import RunAborted

    with pytest.raises(RunAborted, match="stopped before the end") as info:
        _locust_run(tmp_path, monkeypatch, end_reason="stopped before the end of the run (web UI stop or Ctrl-C)")
    assert not info.value.interrupted and info.value.exit_code == 1
    doc = load_result(tmp_path / "run")
    (cell,) = doc["cells"]
    assert doc["complete"] is False and cell["complete"] is False
    assert cell["status"] == "incomplete" and cell["failure"] is None and doc["failed_cells"] == []
    assert "stopped before the end" in cell["incomplete_reason"] and cell["produce"]["messages"] > 0


def test_no_results_from_the_master_is_a_failed_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Locust quit without results: the cell fails (with the master log's tail), the run itself ends normally
    (its broker still answers), incomplete: exit 1 at the CLI."""
    monkeypatch.setattr("bench.brokers.probe_cluster", lambda bootstrap, **_kw: {})
    outcome, _plan = _locust_run(tmp_path, monkeypatch, end_reason=None)
    doc = load_result(tmp_path / "run")
    assert not outcome.complete and doc["complete"] is False and "locust-master.log" in doc["incomplete_reason"]
    (cell,) = doc["cells"]
    assert cell["status"] == "failed" and cell["produce"]["messages"] == 0
    assert "Locust ended without kbench results" in cell["failure"]["reason"]
    assert [f["index"] for f in doc["failed_cells"]] == [1]


# -- against a real broker -----------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.timeout(60)
def test_headless_master_two_workers_exact_counts(tmp_path: Path, kafka_bootstrap: str) -> None:
    out = tmp_path / "run"
    t0 = time.monotonic()
    proc = _kbench("locust", str(_scenario(tmp_path)), "--bootstrap", kafka_bootstrap, "--workers", "2",
                   "--headless", "--out", str(out), "--keep-topics", timeout=55)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # warm-up 1 s + duration 4 s; the rest is bounded start-up (3 Python processes), flush, drain and stop
    assert wall < 5 + 25, f"took {wall:.1f} s"
    doc = load_result(out)
    assert doc["complete"] is True and doc["environment"]["driver"] == "locust"
    assert doc["environment"]["locust"]["workers"] == 2
    (cell,) = doc["cells"]
    topic = cell["topic"]["name"]
    try:
        offsets = _watermarks(kafka_bootstrap, topic)
    finally:
        _delete_topic(kafka_bootstrap, topic)
    # every acked message is on the broker, and every group read all of them
    assert offsets == cell["produce"]["acked_total"] == cell["check"]["broker_offsets"]["total"] > 0
    assert cell["check"]["consumed_all"] is True
    # both workers reported; the master's merge equals the sum of the workers' counts
    collected = json.loads((out / "locust-results.json").read_text())
    assert len(collected["reports"]) == 2 and not collected["missing_workers"]
    merge = cell["check"]["locust_merge"]
    assert merge["workers"] == 2 and merge["merged_equals_sum"] and merge["messages_equal_sum"]
    per_worker = merge["per_worker"].values()
    assert cell["produce"]["messages"] == sum(w["produced"] for w in per_worker) > 0
    assert sum(w["acked_total"] for w in per_worker) == offsets
    # the document's histogram is the exact sum of every user's histogram (re-merged here with hdrh alone)
    by_hand = HdrHistogram(1, 3_600_000_000, 3)
    for report in collected["reports"].values():
        for user in report["users"]:
            if user["role"] == "producer":
                by_hand.add(HdrHistogram.decode(user["result"]["hdr"]["publish"]))
    doc_hist = HdrHistogram.decode(cell["latency"]["publish"]["hdr"])
    assert doc_hist.get_total_count() == by_hand.get_total_count() == merge["merged_counts"]["publish"]
    assert doc_hist.get_value_at_percentile(99.0) == by_hand.get_value_at_percentile(99.0)
    assert cell["latency"]["e2e"]["count"] > 0
    # Locust's own statistics saw one request event per batch (of delivery reports, of records read); the
    # events' message counts add up to every message, and their bytes to every message's 200 bytes
    with (out / "locust_stats.csv").open(newline="") as f:
        stats = {row["Type"]: row for row in csv.DictReader(f) if row["Name"] != "Aggregated"}
    users = [u for r in collected["reports"].values() for u in r["users"]]
    for role, kind in (("producer", "kafka-produce"), ("consumer", "kafka-consume")):
        events = [u["result"]["locust_events"] for u in users if u["role"] == role]
        requests = int(stats[kind]["Request Count"])
        assert requests == sum(e["requests"] for e in events) > 0
        assert sum(e["messages"] for e in events) == offsets
        assert requests < offsets                                 # batches, not messages
        assert int(stats[kind]["Failure Count"]) == sum(e["failures"] for e in events) == 0
        assert float(stats[kind]["Average Content Size"]) * requests == pytest.approx(200 * offsets, rel=1e-9)
    assert (out / "locust.html").stat().st_size > 0
    # the rate was shared by the two producer users and held
    assert cell["locust"]["user_rate"] == 750.0
    assert abs(cell["produce"]["msgs_per_s"] - 1500) < 1500 * 0.1
    assert not _leftovers(out)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_web_ui_serves_on_loopback_then_stops(tmp_path: Path, kafka_bootstrap: str) -> None:
    from bench.locust.launcher import free_port

    port = free_port()
    out = tmp_path / "web"
    proc = _popen_kbench("locust", str(_scenario(tmp_path)), "--bootstrap", kafka_bootstrap, "--web",
                         "--web-port", str(port), "--out", str(out))
    try:
        page, deadline = "", time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    assert resp.status == 200
                    page = resp.read().decode("utf-8", "replace")
                    break
            except OSError:
                time.sleep(0.3)
        assert "locust" in page.lower(), "web UI did not answer within 30 s"
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=40)
    assert proc.returncode == 130, output
    doc = load_result(out)  # nothing ran: written, and marked incomplete
    assert doc["complete"] is False and doc["cells"] == [] and doc["environment"]["locust"]["mode"] == "web"
    assert not _leftovers(out)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_throughput_beside_kbench_run(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Same cell (smoke, rate max, 8 s) through `kbench run` and through Locust, one after the other."""
    smoke = str(REPO / "scenarios" / "smoke.yaml")
    common = ["--bootstrap", kafka_bootstrap, "--set", "workload.rate=max", "--set", "workload.duration=8s",
              "--set", "workload.warmup=1s"]
    run = _kbench("run", smoke, *common, "--out", str(tmp_path / "run"), "--no-progress", timeout=28)
    assert run.returncode in (0, 1), run.stdout + run.stderr   # 1: a threshold missed on a busy machine
    loc = _kbench("locust", smoke, *common, "--out", str(tmp_path / "locust"), timeout=28)
    assert loc.returncode in (0, 1), loc.stdout + loc.stderr
    a, b = load_result(tmp_path / "run"), load_result(tmp_path / "locust")
    ca, cb = a["cells"][0], b["cells"][0]
    assert ca["label"] == cb["label"] and ca["workload"] == cb["workload"]
    for c in (ca, cb):
        assert c["check"]["offsets_agree"] is True and c["produce"]["messages"] > 0
    ratio = cb["produce"]["msgs_per_s"] / ca["produce"]["msgs_per_s"]
    line = (f"smoke rate=max 8 s: kbench run {ca['produce']['msgs_per_s']:,.0f} msg/s, "
            f"Locust {cb['produce']['msgs_per_s']:,.0f} msg/s ({ratio:.2f}x); publish p50 "
            f"{ca['latency']['publish']['p50_ms']:.2f} vs {cb['latency']['publish']['p50_ms']:.2f} ms")
    (tmp_path / "throughput.txt").write_text(line + "\n")
    print("\n" + line)
    assert ratio > 0
