"""Partitioning checks K1–K3 (docs/conformance.md)."""

from __future__ import annotations

import random

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewPartitions

from bench.kafka.murmur2 import partition_for
from conformance.clients import Clients, produce_all, read_partition, wait_for
from conformance.verdicts import CheckContext, expect_eq

CREATE_PARTITIONS = 37


@pytest.mark.check("K1", "explicit partition honoured")
def test_k1_explicit_partition(check: CheckContext, clients: Clients) -> None:
    parts = 4
    topic = clients.create_topic(parts)
    # the same key to every partition: an explicit partition must win over the key hash
    records = [{"key": b"same-key", "value": f"k1-{p}-{i}".encode(), "partition": p}
               for i in range(5) for p in range(parts)]
    reports = produce_all(clients.producer(), topic, records)
    expect_eq([d.error for d in reports if d.error], [], "delivery errors")
    expect_eq([d.partition for d in reports], [r["partition"] for r in records],
              "partitions in delivery reports")
    reads = clients.read_all(topic, parts, acked=reports)
    for p in range(parts):
        want = [r["value"] for r in records if r["partition"] == p]
        expect_eq(reads[p].values(), want, f"values stored in partition {p}")


@pytest.mark.check("K2", "key → partition (murmur2, Java-compatible)")
def test_k2_murmur2_key_mapping(check: CheckContext, clients: Clients) -> None:
    parts = 7
    topic = clients.create_topic(parts)
    rng = random.Random(20240607)
    keys = [b"user-%d" % i for i in range(100)]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(100)]
    producer = clients.producer(partitioner="murmur2_random")
    reports = produce_all(producer, topic, [{"key": k, "value": b"%d" % i} for i, k in enumerate(keys)])
    expect_eq([d.error for d in reports if d.error], [], "delivery errors")
    mismatches = [(k.hex(), d.partition, partition_for(k, parts))
                  for k, d in zip(keys, reports, strict=True) if d.partition != partition_for(k, parts)]
    expect_eq(mismatches[:5], [], "(key, librdkafka partition, Java murmur2 partition) mismatches")
    # the broker stores each record in the partition the client chose
    consumer = clients.consumer()
    for p in sorted({partition_for(k, parts) for k in keys})[:3]:
        want = [k for k in keys if partition_for(k, parts) == p]
        got = read_partition(consumer, topic, p, until_offset=len(want))
        expect_eq([m.key() for m in got.messages], want, f"keys stored in partition {p}")
    check.note(f"{len(keys)} keys over {parts} partitions; default partitioner consistent_random "
               "(CRC32) is not Java-compatible, murmur2_random is")


@pytest.mark.check("K3", "CreatePartitions")
def test_k3_create_partitions(check: CheckContext, clients: Clients) -> None:
    check.require_api(CREATE_PARTITIONS, 0, "add partitions")
    topic = clients.create_topic(2)
    producer = clients.producer(**{"topic.metadata.refresh.interval.ms": 1000})
    expect_eq([d.error for d in produce_all(producer, topic, [{"value": b"before", "partition": 1}])],
              [None], "delivery error before growing")
    admin = clients.admin()
    admin.create_partitions([NewPartitions(topic, 5)], request_timeout=15)[topic].result(timeout=15)
    clients.wait_topic(topic, 5, timeout=15)  # admin metadata
    wait_for(lambda: len(producer.list_topics(topic, timeout=5).topics[topic].partitions) == 5, 15,
             "the existing producer's metadata shows 5 partitions")
    reports = produce_all(producer, topic, [{"value": b"new-%d" % p, "partition": p} for p in (2, 3, 4)])
    expect_eq([(d.partition, d.error) for d in reports], [(2, None), (3, None), (4, None)],
              "(partition, error) of sends to the new partitions")
    consumer = clients.consumer()
    for p in (2, 3, 4):
        got = read_partition(consumer, topic, p, count=1)
        expect_eq(got.values(), [b"new-%d" % p], f"record in new partition {p}")
    lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, 4), timeout=10, cached=False)
    expect_eq((lo, hi), (0, 1), "watermarks of new partition 4")
