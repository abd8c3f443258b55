"""bench.verify.cell.read_topic against a real broker: the final read of --verify (watermarks via TopicAdmin)."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from bench.kafka.admin import TopicAdmin
from bench.load.payload import HEADER
from bench.verify.cell import read_topic, value_id


def test_final_read_gets_every_record_with_ids_and_intended_times(kafka_bootstrap: str) -> None:
    topic = f"kbench-verify-read-{uuid.uuid4().hex[:8]}"
    with TopicAdmin(kafka_bootstrap) as admin:
        admin.create_topic(topic, partitions=2)
        try:
            producer = Producer({"bootstrap.servers": kafka_bootstrap})
            for seq in range(6):
                producer.produce(topic, HEADER.pack(1000 + seq, 3, 0, seq) + b"x" * 10, partition=seq % 2)
            producer.produce(topic, b"short", partition=0)  # no kbench header: a raw id
            assert producer.flush(15) == 0
            final = read_topic(kafka_bootstrap, topic, timeout_s=30)
        finally:
            admin.delete_topic(topic)
    assert final.complete and final.error is None, final.error
    assert final.low == {0: 0, 1: 0} and final.high == {0: 4, 1: 3}
    assert final.records[1] == [(0, value_id(3, 1)), (1, value_id(3, 3)), (2, value_id(3, 5))]
    assert final.records[0][:3] == [(0, value_id(3, 0)), (1, value_id(3, 2)), (2, value_id(3, 4))]
    assert final.records[0][3] == (3, "raw:" + b"short".hex())
    assert final.intended_ns[value_id(3, 5)] == 1005
    assert final.to_dict()["records"] == 7


def test_final_read_of_a_missing_topic_is_incomplete_and_says_why(kafka_bootstrap: str) -> None:
    topic = f"kbench-verify-missing-{uuid.uuid4().hex[:8]}"
    final = read_topic(kafka_bootstrap, topic, timeout_s=2)
    assert not final.complete
    assert final.error is not None and "no watermarks within 2 s" in final.error and topic in final.error
