"""Which protocol v2 group options each client's driver honours (issue 15): the capability table of C11–C17, C27.

A group check through a client needs the client's group events (:func:`conformance.group_client.require_group_events`)
and, for some checks, a group option beyond the assignor and commits: static membership (``instance_id``),
``auto_offset_reset``, KIP-848's ``group_protocol: consumer`` or commit metadata (``commit_metadata``)
(docs/drivers.md, "Protocol v2"). A client whose driver lacks one is **N/A (client)** with the reason, decided
here, before any driver starts: a driver given an option it cannot honour refuses its spec (exit 2), which a
check would report as ERROR.

Kept apart from :mod:`conformance.group_client`'s event tables on purpose: a client gains group events and group
options in separate steps.
"""

from __future__ import annotations

from typing import Literal

from conformance.group_client import require_group_events
from conformance.through_client import not_applicable

__all__ = ["FEATURES", "GROUP_FEATURES", "LACKS", "Feature", "heartbeat", "require_feature"]

Feature = Literal["static", "offset_reset", "kip848", "heartbeat", "commit_metadata"]
#: what each feature is, as a reason's subject
FEATURES: dict[Feature, str] = {
    "static": "static membership (group_options.instance_id)",
    "offset_reset": "an auto.offset.reset choice (group_options.auto_offset_reset)",
    "kip848": "KIP-848's consumer group protocol (group_options.group_protocol \"consumer\")",
    "heartbeat": "a heartbeat interval (group_options.heartbeat_interval_ms)",
    "commit_metadata": "a metadata string on its commits (group_options.commit_metadata)",
}
#: the group options each client's driver honours (java: kafka-clients group.instance.id, auto.offset.reset,
#: group.protocol, heartbeat.interval.ms; franz-go v1.22.3: kgo.InstanceID, ConsumeResetOffset/ConsumeStartOffset,
#: ServerSideBalancer, HeartbeatInterval). ``heartbeat`` is no requirement: without it a check waits longer.
#: ``commit_metadata``: kafka-clients OffsetAndMetadata(offset, metadata), sarama v1.61.1
#: ConsumerGroupSession.MarkOffset(topic, partition, offset, metadata), confluent-kafka-go v2.11.1
#: TopicPartition.Metadata in CommitOffsets
GROUP_FEATURES: dict[str, frozenset[Feature]] = {
    "java": frozenset({"static", "offset_reset", "kip848", "heartbeat", "commit_metadata"}),
    "franz-go": frozenset({"static", "offset_reset", "kip848", "heartbeat"}),
    "sarama": frozenset({"commit_metadata"}),
    "confluent-kafka-go": frozenset({"commit_metadata"}),
}
#: why a client's library (not just its driver) lacks a feature: the N/A (client) reason, read in the library's
#: sources at the version the drivers build against (bench/drivers/go/go.mod)
LACKS: dict[tuple[str, Feature], str] = {
    ("franz-go", "commit_metadata"): "franz-go v1.22.3's group commits carry no caller metadata: CommitOffsetsSync "
                                     "takes kgo.EpochOffset (epoch, offset) and kgo writes the member id as every "
                                     "commit's metadata (consumer_group.go, groupConsumer.commit)",
    ("kafka-go", "commit_metadata"): "kafka-go v0.4.51's ConsumerGroup commits carry no metadata: "
                                     "Generation.CommitOffsets takes map[topic]map[partition]offset only",
}
#: the heartbeat the checks set where they can (as the suite's librdkafka members: conformance/_group.py)
FAST_HEARTBEAT_MS = 500
#: kafka-clients' and kgo's default heartbeat.interval.ms
DEFAULT_HEARTBEAT_MS = 3000


def require_feature(client: str, feature: Feature) -> None:
    """N/A (client) unless ``client``'s driver has group events and honours ``feature``'s option."""
    require_group_events(client)
    if feature not in GROUP_FEATURES.get(client, frozenset()):
        raise not_applicable(client, LACKS.get((client, feature),
                                               f"the {client} driver does not honour {FEATURES[feature]} yet"))


def heartbeat(client: str) -> tuple[int | None, float]:
    """(``heartbeat_interval_ms`` for the client's members, or None where its driver cannot set it; the
    seconds within which a member hears of a rebalance: a heartbeat interval and a margin)."""
    if "heartbeat" in GROUP_FEATURES.get(client, frozenset()):
        return FAST_HEARTBEAT_MS, FAST_HEARTBEAT_MS / 1000 + 1.0
    return None, DEFAULT_HEARTBEAT_MS / 1000 + 0.5
