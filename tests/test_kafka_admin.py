"""bench.kafka.admin against a real broker: create waits for leaders, delete waits, errors name the topic."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from bench.errors import BrokerError, TopicError
from bench.kafka.admin import TopicAdmin, Watermarks, total_offsets


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[TopicAdmin]:
    with TopicAdmin(kafka_bootstrap) as a:
        yield a


def _name(tag: str) -> str:
    return f"kbench-admin-{tag}-{uuid.uuid4().hex[:8]}"


def test_create_waits_for_leaders_then_describe_and_watermarks(admin: TopicAdmin, kafka_bootstrap: str) -> None:
    name = _name("create")
    desc = admin.create_topic(name, partitions=3, config={"retention.ms": "3600000"}, timeout_s=30)
    try:
        assert [p.id for p in desc.partitions] == [0, 1, 2]
        assert desc.has_leaders and all(p.leader >= 0 for p in desc.partitions)
        assert admin.describe_topic(name).has_leaders
        assert admin.watermarks(name) == {p: Watermarks(0, 0) for p in range(3)}
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for i in range(5):
            producer.produce(name, b"v%d" % i, partition=1)
        assert producer.flush(15) == 0
        marks = admin.watermarks(name)
        assert marks[1] == Watermarks(0, 5) and total_offsets(marks) == 5
        assert admin.watermark(name, 1) == Watermarks(0, 5)
    finally:
        admin.delete_topic(name, timeout_s=30)
    with pytest.raises(TopicError) as info:
        admin.describe_topic(name)
    assert info.value.code == "UNKNOWN_TOPIC_OR_PART" and name in str(info.value)


def test_create_existing_topic_is_a_topic_error_with_the_broker_code(admin: TopicAdmin) -> None:
    name = _name("dup")
    admin.create_topic(name)
    try:
        with pytest.raises(TopicError) as info:
            admin.create_topic(name, partitions=2)
        err = info.value
        assert isinstance(err, BrokerError) and err.exit_code == 2
        assert err.code == "TOPIC_ALREADY_EXISTS" and err.operation == "create" and err.topic == name
        assert str(err).startswith(f"could not create topic {name} (2 partition(s), replication factor 1): "
                                   "TOPIC_ALREADY_EXISTS")
    finally:
        admin.delete_topic(name)


def test_invalid_config_and_replication_factor_refused(admin: TopicAdmin) -> None:
    with pytest.raises(TopicError) as info:
        admin.create_topic(_name("cfg"), config={"cleanup.policy": "bogus"})
    assert info.value.code in ("INVALID_CONFIG", "TOPIC_EXCEPTION")
    with pytest.raises(TopicError) as info:
        admin.create_topic(_name("rf"), replication_factor=3)
    assert info.value.code == "INVALID_REPLICATION_FACTOR"


def test_delete_unknown_topic(admin: TopicAdmin) -> None:
    name = _name("missing")
    with pytest.raises(TopicError) as info:
        admin.delete_topic(name)
    assert info.value.code == "UNKNOWN_TOPIC_OR_PART" and info.value.operation == "delete"
    admin.delete_topic(name, missing_ok=True)
    errors = admin.delete_topics([name])
    assert [(e.topic, e.code) for e in errors] == [(name, "UNKNOWN_TOPIC_OR_PART")]
    assert admin.delete_topics([]) == []


def test_describe_and_watermarks_of_a_missing_topic_do_not_create_it(admin: TopicAdmin) -> None:
    name = _name("nocreate")
    for call in (admin.describe_topic, admin.watermarks):
        with pytest.raises(TopicError) as info:
            call(name, timeout_s=3.0)
        assert info.value.code == "UNKNOWN_TOPIC_OR_PART" and info.value.topic == name
    assert name not in admin.client.list_topics(timeout=5).topics


def test_wait_topic_times_out_with_a_clear_error(admin: TopicAdmin) -> None:
    name = _name("wait")
    admin.create_topic(name, partitions=1)
    try:
        with pytest.raises(TopicError) as info:
            admin.wait_topic(name, partitions=4, timeout_s=1.0)  # it has 1: never ready
        assert info.value.code == "_TIMED_OUT"
        assert "1 partition(s) in metadata" in str(info.value) and name in str(info.value)
    finally:
        admin.delete_topic(name)


def test_cluster_info(admin: TopicAdmin, kafka_bootstrap: str) -> None:
    info = admin.cluster()
    assert info.cluster_id and len(info.brokers) >= 1
    assert info.brokers[0].host and info.brokers[0].port > 0
    assert any(f":{b.port}" in kafka_bootstrap for b in info.brokers)


def test_unreachable_broker_is_a_topic_error_not_a_hang() -> None:
    with TopicAdmin("127.0.0.1:1", {"socket.timeout.ms": 1000}) as a, pytest.raises(TopicError) as info:
        a.describe_topic("t", timeout_s=1.0)
    assert info.value.topic == "t"
