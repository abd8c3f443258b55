"""Conformance through a client (issue 15): the --client plumbing, the broker × client matrix, and the
harness (conformance/through_client.py) against a real Kafka broker with a real client driver."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.cli.main import main
from bench.kafka.admin import TopicAdmin
from conformance import through_client
from conformance.plugin import _client_case
from conformance.report import CheckResult, build_doc, matrix, write_report
from conformance.stability import summarize
from conformance.verdicts import NotApplicable

REPO = Path(__file__).resolve().parent.parent


def _item(cid: str, params: dict[str, Any]) -> Any:
    return SimpleNamespace(callspec=SimpleNamespace(id=cid, params=params))


@pytest.mark.parametrize(("cid", "params", "want"), [
    ("franz-go", {"client": "franz-go"}, ("franz-go", "")),
    ("gzip-franz-go", {"client": "franz-go", "codec": "gzip"}, ("franz-go", "gzip")),
    ("kafka-go-G1", {"client": "kafka-go", "mapped": "G1"}, ("kafka-go", "G1")),
    ("range", {"strategy": "range"}, ("librdkafka", "range")),
])
def test_client_is_not_part_of_the_case(cid: str, params: dict[str, Any], want: tuple[str, str]) -> None:
    assert _client_case(_item(cid, params)) == want
    assert _client_case(SimpleNamespace()) == ("librdkafka", "")


def test_selected_clients_parse_and_refuse() -> None:
    cfg = SimpleNamespace(getoption=lambda name, default=None: ["java", "franz-go,sarama", "java"])
    assert through_client.selected_clients(cfg) == ["java", "franz-go", "sarama"]
    bad = SimpleNamespace(getoption=lambda name, default=None: ["nope"])
    with pytest.raises(ValueError, match="nope"):
        through_client.selected_clients(bad)
    assert through_client.selected_clients(SimpleNamespace(getoption=lambda name, default=None: None)) == []


def test_cli_refuses_an_unknown_client_before_starting_anything() -> None:
    assert main(["conformance", "--broker", "kafka", "--client", "java,nope"]) == 2


def test_a_pytest_tail_after_double_dash_reaches_pytest() -> None:
    from bench.cli.main import _split_pytest_tail

    argv = ["conformance", "--broker", "kafka", "--client", "java", "--", "-m", "through_client", "-x"]
    assert _split_pytest_tail(argv) == (argv[:5], ["-m", "through_client", "-x"])
    assert _split_pytest_tail(["run", "s.yaml", "--", "x"]) == (["run", "s.yaml", "--", "x"], [])
    assert _split_pytest_tail(["conformance", "matrix", "a", "b"]) == (["conformance", "matrix", "a", "b"], [])


def test_idempotence_na_and_reason() -> None:
    with pytest.raises(NotApplicable, match=r"N/A \(client kafka-go\): kafka-go has no idempotent producer"):
        through_client.producer_config("kafka-go", "idempotent")
    exc = through_client.not_applicable("sarama", f"K1: {through_client.NOT_BUILT}")
    assert str(exc.msg).startswith("N/A (client sarama): K1: not built through a client yet")


def _doc(impl: str, checks: list[CheckResult]) -> dict[str, Any]:
    return build_doc(checks, run_id="r", started_at="a", finished_at="b", wall_seconds=1.0, complete=True,
                     exit_status=0, broker={"bootstrap": "h:1", "implementation": impl, "version": "4.3"},
                     client={}, host={}, timings={})


def test_matrix_is_broker_by_client_by_check(tmp_path: Path) -> None:
    checks = [CheckResult("P1", "p1", "PASS"), CheckResult("C1", "c1", "PASS", client="java"),
              CheckResult("C1", "c1", "FAIL", client="sarama"),
              CheckResult("C7", "c7", "N/A", case="G1", client="java"),
              CheckResult("C6", "c6", "RECORD", client="sarama")]
    for impl in ("kafka", "tansu"):
        (tmp_path / impl).mkdir()
        write_report(tmp_path / impl, _doc(impl, checks if impl == "kafka" else checks[:2]))
    lines = matrix([tmp_path / "kafka", tmp_path / "tansu"]).splitlines()
    assert lines[0] == ("| ID | semantic | kafka 4.3 · librdkafka | kafka 4.3 · java | kafka 4.3 · sarama | "
                        "tansu 4.3 · librdkafka | tansu 4.3 · java |")
    assert "| P1 | p1 | PASS | — | — | PASS | — |" in lines
    assert "| C1 | c1 | — | PASS | FAIL | — | PASS |" in lines
    assert "| C7 (G1) | c7 | — | N/A | — | — | — |" in lines
    assert "| **RECORD** | | 0 | 0 | 1 | 0 | 0 |" in lines
    md = (tmp_path / "kafka" / "report.md").read_text()
    assert "| C1 · sarama | c1 | FAIL |" in md
    # one stability row per (check, client): java's and sarama's C1 are not merged
    summary = summarize([_doc("kafka", checks)] * 2)
    assert {(c["id"], c["case"]) for c in summary["checks"] if c["id"] == "C1"} == {("C1", "@java"),
                                                                                  ("C1", "@sarama")}


def test_matrix_joins_reports_of_one_broker_with_other_clients(tmp_path: Path) -> None:
    runs = {"gate": [CheckResult("P1", "p1", "PASS"), CheckResult("C1", "c1", "PASS", client="java")],
            "more": [CheckResult("C1", "c1", "FAIL", client="sarama")],
            "again": [CheckResult("C1", "c1", "PASS", client="sarama")]}
    for name, checks in runs.items():
        (tmp_path / name).mkdir()
        write_report(tmp_path / name, _doc("kafka", checks))
    lines = matrix([tmp_path / n for n in runs]).splitlines()
    assert lines[0] == ("| ID | semantic | kafka 4.3 · librdkafka | kafka 4.3 · java | kafka 4.3 · sarama | "
                        "kafka 4.3 #2 · sarama |")      # a repeated client is a column of its own, not merged
    assert "| C1 | c1 | — | PASS | FAIL | PASS |" in lines


def test_through_client_checks_need_a_client() -> None:
    def collect(*extra: str) -> str:
        return subprocess.run([sys.executable, "-m", "pytest", "conformance", "--collect-only", "-q",
                               "-p", "no:cacheprovider", "--bootstrap", "127.0.0.1:1", *extra],
                              capture_output=True, text=True, cwd=REPO, timeout=120, check=False).stdout
    without = collect()
    assert "test_client_checks" not in without and "deselected" in without
    with_two = collect("--client", "java", "--clients", "librdkafka")
    assert "test_c1_acked_readable[java]" in with_two and "test_c5_compression[librdkafka-gzip]" in with_two
    assert "test_c8_single_owner[java-cooperative-sticky]" in with_two
    assert "test_c10_commit_restart[librdkafka]" in with_two


@pytest.mark.parametrize("client", ["franz-go", "librdkafka"])
def test_harness_returns_verify_data_and_the_checker_sees_a_broken_history(
        kafka_bootstrap: str, client: str) -> None:
    topic = f"kbench-clients-{uuid.uuid4().hex[:8]}"
    with TopicAdmin(kafka_bootstrap) as admin:
        admin.create_topic(topic, partitions=2)
    try:
        run = through_client.run_workers(client, kafka_bootstrap, [
            through_client.Worker("consumer", topic, group=f"g-{topic}"),
            through_client.Worker("producer", topic, config=through_client.producer_config(client, "ordered"),
                                  rate=200.0, duration_s=1.0)])
        assert run.errors == []
        assert run.acked() >= 150
        assert run.producers[0]["client"]["name"] == client
        assert len(run.consumers[0]["verify"]) == run.acked()
        report, info = through_client.history(run, kafka_bootstrap, topic)
        assert report.ok, report.summary()
        assert info["consumer_reads"] == run.acked()
        # the same data with one ack moved to a wrong offset: the checker must fail it
        acks = run.producers[0]["verify"]["acks"]
        acks[3] = [acks[3][0], acks[3][1] + 10_000, *acks[3][2:]]
        bad, _ = through_client.history(run, kafka_bootstrap, topic)
        assert not bad.ok
    finally:
        with TopicAdmin(kafka_bootstrap) as admin:
            admin.delete_topics([topic])


def test_matrix_html_is_self_contained(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    write_report(tmp_path / "k", _doc("kafka", [CheckResult("C1", "a | b", "PASS", client="java"),
                                                CheckResult("C7", "c7", "N/A", case="G1", client="java")]))
    out = tmp_path / "m.html"
    assert main(["conformance", "matrix", str(tmp_path / "k"), "--html", str(out)]) == 0
    page = out.read_text()
    assert "<th>kafka 4.3 · java</th>" in page and "<td>a | b</td>" in page
    assert "background:#cfe8cf'>PASS" in page and "background:#e4e4e4'>N/A" in page
    assert "<script" not in page and "http" not in page
