"""C27's pure parts (conformance/test_client_commits.py): the commit metadata string, the offset a member's last
commit must carry, the metadata's bytes as text, and confluent-kafka-python's admin view (observed only)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

__all__ = ["METADATA", "admin_view", "expected_commit", "metadata_text"]

#: as O6's: non-ASCII (BMP and astral), JSON with quotes and a slash, longer than one short field
METADATA = ("kbench C27 \u2713 \u00e9\u00df\u4e2d\u6587 \U0001f680 "
            '{"gen": 7, "host": "a/b", "note": "caf\u00e9 \\"q\\""} ' + "x" * 200)


def admin_view(admin: Any, group: str, topic: str) -> object:
    """confluent-kafka-python's ListConsumerGroupOffsets of partition 0: (offset, metadata) or the error it raised."""
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    try:
        res = admin.list_consumer_group_offsets([req], request_timeout=10)[group].result(timeout=10)
        return [(int(tp.offset), tp.metadata) for tp in res.topic_partitions]
    except (UnicodeDecodeError, KafkaException) as exc:
        return f"{type(exc).__name__}: {exc}"


def expected_commit(reads: list[tuple[int, int, int, int]]) -> dict[int, int]:
    """Per partition, the next offset after the last record read (what the member's last commit must say)."""
    out: dict[int, int] = {}
    for p, o, _producer, _seq in reads:
        out[p] = max(out.get(p, -1), o + 1)
    return out


def metadata_text(raw: bytes | None) -> str | None:
    """The metadata's bytes as text; invalid UTF-8 stays visible (backslash escapes) and cannot equal the string."""
    return None if raw is None else raw.decode("utf-8", "backslashreplace")
