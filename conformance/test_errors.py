"""Errors and bad input checks E1–E5 (docs/conformance.md)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from conformance.clients import Clients, Deadline, produce_all, read_partition
from conformance.timings import Timings
from conformance.verdicts import CheckContext, expect, expect_eq


def _conf(conf: dict[str, Any]) -> dict[str, Any]:
    """Typed client overrides (dotted librdkafka keys)."""
    return conf


def _names(errors: list[KafkaError | None]) -> list[str | None]:
    return [None if e is None else str(e.name()) for e in errors]


@pytest.mark.check("E1", "max.message.bytes enforced")
def test_e1_max_message_bytes(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1, config={"max.message.bytes": "2048"})
    producer = clients.producer(**{"linger.ms": 0, "retries": 0})
    small = produce_all(producer, topic, [{"value": b"small-1"}])
    big = produce_all(producer, topic, [{"value": b"B" * 8192}])
    after = produce_all(producer, topic, [{"value": b"small-2"}])
    expect_eq(_names([small[0].error, after[0].error]), [None, None], "errors of the small records")
    expect_eq(_names([big[0].error]), ["MSG_SIZE_TOO_LARGE"], "error of the 8 KiB record (limit 2048)")
    got = clients.read_all(topic, 1, acked=small + after)[0]
    expect_eq(got.values(), [b"small-1", b"small-2"], "records stored")


@pytest.mark.check("E2", "unknown topic/partition")
def test_e2_unknown_topic_partition(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    producer = clients.producer(**{"allow.auto.create.topics": False,
                                   "topic.metadata.propagation.max.ms": 2000,
                                   "message.timeout.ms": 10_000})
    bad_part = produce_all(producer, topic, [{"value": b"x", "partition": 5}])
    missing = clients.names.topic("e2-missing")
    clients.created_topics.append(missing)  # cleanup if a broker creates it anyway
    bad_topic = produce_all(producer, missing, [{"value": b"x"}], timeout=20)
    observed = _names([bad_part[0].error, bad_topic[0].error])
    check.observe(produce_errors=observed)
    expect(observed[0] is not None, "produce to partition 5 of a 1-partition topic", observed[0],
           "an error (UNKNOWN_PARTITION)")
    expect(observed[1] is not None, "produce to a missing topic (auto-create off)", observed[1],
           "an error (UNKNOWN_TOPIC)")
    # consumer side: subscribing to a missing topic → an error event, not silence
    consumer = clients.consumer(**_conf({"topic.metadata.propagation.max.ms": 2000}))
    consumer.subscribe([missing])
    errors: list[str] = []
    deadline = Deadline(15)
    while not errors and not deadline.expired:
        msg = consumer.poll(deadline.poll_timeout(0.2))
        err = msg.error() if msg is not None else None
        if err is not None:
            errors.append(str(err.name()))
        elif msg is not None:
            errors.append(f"record at offset {msg.offset()}")
    expect(bool(errors) and "UNKNOWN" in errors[0], "consumer subscribed to a missing topic",
           errors, "an UNKNOWN_TOPIC* error event")
    existing = set(clients.admin().list_topics(timeout=10).topics)
    expect(missing not in existing, "the missing topic after the attempts", "created", "not created")


@pytest.mark.check("E3", "internal topic write")
def test_e3_internal_topic_write(check: CheckContext, clients: Clients, timings: Timings) -> None:
    # make sure the offsets topic exists (a group commit creates it on Kafka)
    topic = clients.create_topic(1)
    produce_all(clients.producer(), topic, [{"value": b"x"}])
    consumer = clients.consumer()
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = read_partition(consumer, topic, 0, count=1)
    expect_eq(len(got.messages), 1, "records read before commit")
    with timings.time("commit"):
        consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    internal = "__consumer_offsets"
    exists = internal in clients.admin().list_topics(timeout=10).topics
    check.observe(offsets_topic_in_metadata=exists)
    producer = clients.producer(**{"retries": 0, "message.timeout.ms": 10_000})
    reports = produce_all(producer, internal, [{"value": b"garbage", "key": b"garbage", "partition": 0}])
    err = reports[0].error
    expect(err is not None, f"produce to {internal}", f"acked at offset {reports[0].offset}",
           "rejected (Kafka: INVALID_TOPIC_EXCEPTION)")
    assert err is not None
    check.note(f"rejected with {err.name()}" + ("" if exists else f"; {internal} not in metadata"))


@pytest.mark.check("E4", "record larger than fetch.max.bytes")
def test_e4_record_larger_than_fetch_max(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(1)
    values = [b"small-before", b"L" * 200_000, b"small-after"]
    producer = clients.producer(**{"linger.ms": 0})
    for v in values:  # separate batches
        expect_eq(produce_all(producer, topic, [{"value": v}])[0].error, None, f"delivery error ({len(v)} B)")
    consumer = clients.consumer(**_conf({"fetch.max.bytes": 8192, "max.partition.fetch.bytes": 4096,
                                   "message.max.bytes": 4096, "receive.message.max.bytes": 1_000_000}))
    got = read_partition(consumer, topic, 0, until_offset=3, timeout=15)
    expect_eq([len(v or b"") for v in got.values()], [len(v) for v in values],
              "sizes of records consumed with fetch.max.bytes=8192")
    expect_eq([str(e.name()) for e in got.errors], [], "consumer errors")


@pytest.mark.check("E5", "empty topic")
def test_e5_empty_topic(check: CheckContext, clients: Clients) -> None:
    topic = clients.create_topic(2)
    consumer = clients.consumer(**_conf({"enable.partition.eof": True}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
    eof: set[int] = set()
    errors: list[str] = []
    records = 0
    deadline = Deadline(10)
    while len(eof) < 2 and not deadline.expired:
        msg = consumer.poll(deadline.poll_timeout(0.2))
        if msg is None:
            continue
        err = msg.error()
        if err is None:
            records += 1
        elif err.code() == KafkaError._PARTITION_EOF:
            eof.add(int(msg.partition() or 0))
        else:
            errors.append(str(err.name()))
    expect_eq((sorted(eof), errors, records), ([0, 1], [], 0),
              "(partitions at EOF, errors, records) on an empty topic")
    expect_eq(clients.watermarks(topic, 0), (0, 0), "(low, high) watermarks of an empty partition")
