"""Admin and metadata checks A1–A8 (docs/conformance.md)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from bench.errors import TopicError
from conformance.clients import Clients, Deadline, produce_all, read_partition, wait_for
from conformance.plugin import BrokerInfo
from conformance.verdicts import CheckContext, expect, expect_eq

LIST_OFFSETS = 2
DELETE_RECORDS = 21
DESCRIBE_CLUSTER = 60
REQUIRED_TOPIC_CONFIGS = frozenset({
    "cleanup.policy", "compression.type", "max.message.bytes", "message.timestamp.type",
    "min.insync.replicas", "retention.bytes", "retention.ms", "segment.bytes", "segment.ms",
})


def _conf(conf: dict[str, Any]) -> dict[str, Any]:
    """Typed client overrides (dotted librdkafka keys)."""
    return conf


@pytest.mark.check("A1", "ApiVersions (RECORD)")
def test_a1_api_versions(check: CheckContext, broker: BrokerInfo) -> None:
    assert broker.api is not None and broker.api.apis, "ApiVersions: observed no APIs, expected a list"
    check.note(f"{len(broker.api.apis)} APIs advertised (ApiVersions v{broker.api.request_version})")
    check.record(request_version=broker.api.request_version,
                 apis={r.name: f"{r.min_version}-{r.max_version}" for r in broker.api.apis.values()})


@pytest.mark.check("A2", "cluster id, broker list (RECORD)")
def test_a2_cluster_identity(check: CheckContext, broker: BrokerInfo, clients: Clients) -> None:
    expect(bool(broker.cluster_id), "cluster id in Metadata", broker.cluster_id, "a non-empty id")
    expect(bool(broker.brokers), "brokers in Metadata", broker.brokers, "at least one broker")
    observed: dict[str, Any] = {"cluster_id": broker.cluster_id, "controller_id": broker.controller_id,
                                "brokers": broker.brokers}
    if check.supports(DESCRIBE_CLUSTER):
        desc = clients.admin().describe_cluster(request_timeout=10).result(timeout=15)
        expect_eq(desc.cluster_id, broker.cluster_id, "DescribeCluster cluster id vs Metadata")
        expect_eq(sorted(n.id for n in desc.nodes), sorted(b["id"] for b in broker.brokers),
                  "DescribeCluster node ids vs Metadata broker ids")
        observed["describe_cluster_controller"] = desc.controller.id if desc.controller else None
    else:
        check.note("DescribeCluster not advertised: Metadata only")
    check.record(**observed)


def _create_error(admin: AdminClient, topic: NewTopic) -> str | None:
    try:
        admin.create_topics([topic], request_timeout=10, operation_timeout=10)[topic.topic].result(
            timeout=15)
    except KafkaException as exc:
        return str(exc.args[0].name()) if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
    return None


@pytest.mark.check("A3", "CreateTopics validation")
def test_a3_create_topics_validation(check: CheckContext, clients: Clients, broker: BrokerInfo) -> None:
    admin = clients.admin()
    base = clients.names.topic("a3")
    cases = {
        "bad config value": (NewTopic(base + "-cfg", 1, 1, config={"cleanup.policy": "bogus"}),
                             "INVALID_CONFIG"),  # librdkafka names code 17 TOPIC_EXCEPTION
        "unknown config": (NewTopic(base + "-unk", 1, 1, config={"no.such.config": "1"}),
                           "INVALID_CONFIG"),
        "bad name": (NewTopic(base + "-bad/name", 1, 1), "TOPIC_EXCEPTION"),
        "name too long": (NewTopic(base + "-" + "x" * 250, 1, 1), "TOPIC_EXCEPTION"),
        "non-numeric retention.ms": (NewTopic(base + "-typ", 1, 1,
                                                   config={"retention.ms": "not-a-number"}),
                                          "INVALID_CONFIG"),
    }
    if len(broker.brokers) < 3:
        cases["replication factor > brokers"] = (NewTopic(base + "-rf", 1, 3),
                                                 "INVALID_REPLICATION_FACTOR")
    observed = {what: _create_error(admin, nt) for what, (nt, _) in cases.items()}
    clients.created_topics.extend(nt.topic for nt, _ in cases.values())  # cleanup if wrongly created
    check.observe(errors=observed)
    accepted = [what for what, err in observed.items() if err is None]
    expect_eq(accepted, [], "invalid CreateTopics requests accepted")
    existing = set(admin.list_topics(timeout=10).topics)
    created = [nt.topic[:60] for nt, _ in cases.values() if nt.topic in existing]
    expect_eq(created, [], "topics that exist after a rejected CreateTopics")
    differs = {w: (observed[w], want) for w, (_, want) in cases.items() if observed[w] != want}
    if differs:
        check.note(f"error codes differ from Kafka's (observed, Kafka): {differs}")


@pytest.mark.check("A4", "DescribeConfigs")
def test_a4_describe_configs(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1, config={"retention.ms": "1234567"})
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = clients.admin().describe_configs([res], request_timeout=10)[res].result(timeout=15)
    retention = entries.get("retention.ms")
    expect_eq(retention.value if retention else None, "1234567", "retention.ms (set at creation)")
    assert retention is not None
    expect_eq(ConfigSource(retention.source).name, "DYNAMIC_TOPIC_CONFIG", "retention.ms source")
    missing = sorted(REQUIRED_TOPIC_CONFIGS - set(entries))
    expect_eq(missing, [], "standard topic configs missing from DescribeConfigs")
    defaults = [e for e in entries.values() if e.is_default]
    expect(len(entries) >= 20 and bool(defaults), "DescribeConfigs size / defaults",
           (len(entries), len(defaults)), ">= 20 entries including defaults (full list)")
    check.observe(entries=len(entries), defaults=len(defaults),
                  segment_bytes=entries["segment.bytes"].value)


def _list_offset(admin: AdminClient, tp: TopicPartition, spec: OffsetSpec) -> tuple[int, int]:
    info = admin.list_offsets({tp: spec}, request_timeout=10)[tp].result(timeout=15)
    return int(info.offset), int(info.timestamp)


@pytest.mark.check("A5", "ListOffsets")
def test_a5_list_offsets(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    t0 = (int(time.time() * 1000) - 600_000) // 1000 * 1000
    deltas = [0, 1000, 5000, 2000, 3000]  # offset 2 holds the max timestamp
    producer = clients.producer(**{"linger.ms": 0})
    for i, d in enumerate(deltas):  # one batch per record
        reports = produce_all(producer, topic, [{"value": b"%d" % i, "timestamp": t0 + d}])
        expect_eq((reports[0].error, reports[0].offset), (None, i), f"(error, offset) of record {i}")
    batch = produce_all(clients.producer(**{"linger.ms": 100}),  # then 3 records in one batch
                        topic, [{"value": b"b%d" % i, "timestamp": t0 + 4000} for i in range(3)])
    expect_eq([(d.error, d.offset) for d in batch], [(None, 5), (None, 6), (None, 7)],
              "(error, offset) of a 3-record batch")
    admin = clients.admin()
    tp = TopicPartition(topic, 0)
    expect_eq(_list_offset(admin, tp, OffsetSpec.earliest())[0], 0, "earliest offset")
    expect_eq(_list_offset(admin, tp, OffsetSpec.latest())[0], 8,
              "latest offset (8 records, the last 3 in one batch)")
    expect_eq(_list_offset(admin, tp, OffsetSpec.for_timestamp(t0 + 1500))[0], 2,
              "offset for timestamp t0+1.5 s (first offset with timestamp >= target)")
    expect_eq(_list_offset(admin, tp, OffsetSpec.for_timestamp(t0))[0], 0, "offset for timestamp t0")
    expect_eq(_list_offset(admin, tp, OffsetSpec.for_timestamp(t0 + 3000))[0], 2,
              "offset for timestamp t0+3 s")
    if check.supports(LIST_OFFSETS, 7):
        expect_eq(_list_offset(admin, tp, OffsetSpec.max_timestamp()), (2, t0 + 5000),
                  "(offset, timestamp) for max_timestamp")
    else:
        check.note("max_timestamp not checked: ListOffsets v7 not advertised")


@pytest.mark.check("A6", "offsets_for_times past the end")
def test_a6_offsets_for_times_past_end(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    ts = int(time.time() * 1000) - 60_000
    reports = produce_all(clients.producer(), topic, [{"value": b"%d" % i, "timestamp": ts + i}
                                                      for i in range(3)])
    expect_eq([d.error for d in reports], [None] * 3, "delivery errors")
    later = ts + 3_600_000
    consumer = clients.consumer()
    got = consumer.offsets_for_times([TopicPartition(topic, 0, later)], timeout=10)
    expect(got[0].offset in (-1, 3), "offsets_for_times after the last record", got[0].offset,
           "-1 (none) or 3 (end)")
    admin_off = _list_offset(clients.admin(), TopicPartition(topic, 0), OffsetSpec.for_timestamp(later))
    expect(admin_off[0] in (-1, 3), "ListOffsets(timestamp) after the last record", admin_off,
           "offset -1 (none) or 3 (end)")
    check.observe(consumer_offset=got[0].offset, admin=admin_off)


@pytest.mark.check("A7", "DeleteRecords")
def test_a7_delete_records(check: CheckContext, clients: Clients) -> None:
    check.require_api(DELETE_RECORDS, 0)
    topic = clients.create_topic(1)
    reports = produce_all(clients.producer(), topic, [{"value": b"%d" % i} for i in range(10)])
    expect_eq([d.error for d in reports], [None] * 10, "delivery errors")
    tp = TopicPartition(topic, 0, 4)
    res = clients.admin().delete_records([tp], request_timeout=10)
    deleted = next(iter(res.values())).result(timeout=15)
    expect_eq(deleted.low_watermark, 4, "low watermark in the DeleteRecords response")
    expect_eq(clients.watermarks(topic, 0), (4, 10), "(low, high) watermarks after DeleteRecords")
    got = read_partition(clients.consumer(), topic, 0, until_offset=10)
    expect_eq(got.offsets(), list(range(4, 10)), "offsets read from the beginning")


@pytest.mark.timeout(90)
@pytest.mark.check("A8", "delete and recreate topic")
def test_a8_delete_and_recreate(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    producer = clients.producer()
    expect_eq([d.error for d in produce_all(producer, topic, [{"value": b"old-%d" % i} for i in range(3)])],
              [None] * 3, "delivery errors before delete")
    consumer = clients.consumer(**_conf({"topic.metadata.refresh.interval.ms": 1000}))
    consumer.subscribe([topic])
    seen: list[bytes | None] = []

    def poll_until(values: set[bytes], timeout: float) -> bool:
        deadline = Deadline(timeout)
        while not values.issubset(seen) and not deadline.expired:
            msg = consumer.poll(deadline.poll_timeout(0.2))
            if msg is not None and msg.error() is None:
                seen.append(msg.value())
        return values.issubset(seen)

    expect(poll_until({b"old-0", b"old-1", b"old-2"}, 15), "old records consumed", seen, "old-0..2")
    admin = clients.admin()
    admin.delete_topics([topic], request_timeout=15, operation_timeout=15)[topic].result(timeout=20)
    wait_for(lambda: topic not in admin.list_topics(timeout=5).topics, 20, "topic gone from metadata")
    wait_for(lambda: _recreate(clients, topic), 30, "topic recreated (CreateTopics accepted)",
             interval=0.5)
    new = [b"new-%d" % i for i in range(6)]  # more than the old end offset (3)
    deadline = Deadline(30)
    delivered: list[Any] = []
    while not deadline.expired:  # the same producer resumes, retrying while metadata catches up
        delivered = produce_all(producer, topic, [{"value": v} for v in new],
                                timeout=max(deadline.remaining(), 1.0))
        if all(d.error is None for d in delivered):
            break
        time.sleep(0.5)
    expect_eq([d.error for d in delivered], [None] * 6, "delivery errors of the old producer after recreate")
    # the old consumer may keep its position (3) on the new topic or reset to the start: either way
    # it must go on consuming and get the records past its old position
    expect(poll_until({b"new-3", b"new-4", b"new-5"}, 30),
           "records of the recreated topic consumed by the old consumer", seen[-6:], "new-3..5")
    check.observe(old_consumer_reset_to_start=b"new-0" in seen, seen=len(seen))


def _recreate(clients: Clients, topic: str) -> bool:
    try:
        clients.create_topic(1, name=topic)
    except TopicError as exc:
        if exc.code == "TOPIC_ALREADY_EXISTS":
            return False  # deletion still in progress
        raise
    return True
