"""Topic administration, once: create (and wait for leaders), delete (and wait), describe, watermarks.

Used by the run pipeline, ``--verify`` and the conformance suite. Every call has an explicit deadline
and every failure is a :class:`~bench.errors.TopicError` naming the operation, the topic and the
broker's error (``code`` is librdkafka's error name, e.g. ``TOPIC_ALREADY_EXISTS``)::

    with TopicAdmin("127.0.0.1:9092", {"security.protocol": "SASL_SSL", ...}) as admin:
        admin.create_topic("t", partitions=6, replication_factor=3, config={"retention.ms": "60000"})
        marks = admin.watermarks("t")          # {0: Watermarks(low=0, high=0), ...}
        admin.delete_topic("t")

The client config takes librdkafka keys (security settings included); producer- or consumer-only keys
in it are ignored by librdkafka's admin client with a warning, as before. Watermarks come from a
consumer that never joins a group (``get_watermark_offsets(cached=False)``: a ListOffsets request),
because that is what every broker kbench targets answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.errors import TopicError
from bench.kafka.closing import close_within

__all__ = [
    "BrokerNode",
    "ClusterInfo",
    "PartitionInfo",
    "TopicAdmin",
    "TopicDescription",
    "TopicError",
    "Watermarks",
    "total_offsets",
]

T = TypeVar("T")

#: errors retried by the waits and watermark reads: the client's metadata lags the cluster's (a new
#: topic, a leader change); librdkafka does not flag all of them retriable in admin/offset results
RETRIABLE_CODES = frozenset({"NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART",
                             "_TRANSPORT", "_TIMED_OUT", "_UNKNOWN_PARTITION", "_UNKNOWN_TOPIC",
                             "_LEADER_NOT_AVAILABLE", "REQUEST_TIMED_OUT", "NOT_CONTROLLER"})
#: applied to the admin client unless the caller's config sets them
#: (no auto-creation: describing or reading a missing topic must not create it)
DEFAULT_CONF: Mapping[str, str | int] = {"socket.timeout.ms": 10_000, "log_level": 3,
                                         "allow.auto.create.topics": "false"}


class Watermarks(NamedTuple):
    """Low (log start) and high (next offset to be written) watermark of one partition."""

    low: int
    high: int


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    id: int
    leader: int  # -1: no leader
    replicas: tuple[int, ...]
    isrs: tuple[int, ...]
    error: str | None = None  # the partition's metadata error name (e.g. LEADER_NOT_AVAILABLE)


@dataclass(frozen=True, slots=True)
class TopicDescription:
    name: str
    partitions: tuple[PartitionInfo, ...]  # sorted by id

    @property
    def has_leaders(self) -> bool:
        """Every partition has a leader and no metadata error."""
        return all(p.leader >= 0 and p.error is None for p in self.partitions)


@dataclass(frozen=True, slots=True)
class BrokerNode:
    id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    cluster_id: str | None
    controller_id: int  # -1 when the broker does not say
    brokers: tuple[BrokerNode, ...]  # sorted by id


def total_offsets(marks: Mapping[int, Watermarks]) -> int:
    """Offsets held by the topic: the sum over partitions of high − low."""
    return sum(m.high - m.low for m in marks.values())


def _kafka_error(exc: BaseException) -> KafkaError | None:
    arg = exc.args[0] if exc.args else None
    return arg if isinstance(arg, KafkaError) else None


def _error(operation: str, topic: str | None, exc: BaseException, what: str = "") -> TopicError:
    """A TopicError from a KafkaException / TimeoutError of a librdkafka future."""
    err = _kafka_error(exc)
    if err is not None:
        return TopicError(operation, topic, f"{err.name()}: {err.str()}", code=err.name(),
                          retriable=bool(err.retriable()) or err.name() in RETRIABLE_CODES, what=what)
    if isinstance(exc, TimeoutError):
        return TopicError(operation, topic, "no answer from the broker in time", code="_TIMED_OUT",
                          retriable=True, what=what)
    return TopicError(operation, topic, f"{type(exc).__name__}: {exc}", what=what)


def _until(deadline: float, probe: Callable[[], T | None], interval: float = 0.1) -> T | None:
    """Call ``probe`` until it returns non-None or the deadline passes; the last result."""
    while True:
        got = probe()
        if got is not None or time.monotonic() >= deadline:
            return got
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))


class TopicAdmin:
    """Topic operations against one cluster. Thread-safe as librdkafka's clients are; ``close`` frees
    the watermark consumer (the admin client needs no close)."""

    def __init__(self, bootstrap: str, config: Mapping[str, str | int | bool] | None = None) -> None:
        self.bootstrap = bootstrap
        self._config = {k: v for k, v in (config or {}).items() if k != "bootstrap.servers"}
        self.client = AdminClient({**DEFAULT_CONF, **self._config, "bootstrap.servers": bootstrap})
        self._consumer: Consumer | None = None

    def __enter__(self) -> TopicAdmin:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            close_within(consumer)   # bounded: librdkafka's close has no timeout (bench/kafka/closing.py)

    # ------------------------------------------------------------------------------------- create
    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     config: Mapping[str, str] | None = None, *, timeout_s: float = 30.0) -> TopicDescription:
        """Create ``name`` and wait until metadata shows every partition with a leader.

        TopicError (``operation="create"``) if the broker refuses (``code`` says why, e.g.
        ``TOPIC_ALREADY_EXISTS``, ``INVALID_CONFIG``) or the leaders do not appear within ``timeout_s``.
        """
        what = f"{partitions} partition(s), replication factor {replication_factor}"
        deadline = time.monotonic() + timeout_s
        spec = NewTopic(name, partitions, replication_factor, config=dict(config or {}))
        try:
            self.client.create_topics([spec], request_timeout=timeout_s,
                                      operation_timeout=timeout_s)[name].result(timeout_s + 5)
        except (KafkaException, TimeoutError) as exc:
            raise _error("create", name, exc, what) from exc
        return self.wait_topic(name, partitions, timeout_s=max(deadline - time.monotonic(), 1.0))

    def wait_topic(self, name: str, partitions: int, *, timeout_s: float = 30.0) -> TopicDescription:
        """Wait until metadata shows ``partitions`` partitions of ``name``, each with a leader."""
        deadline = time.monotonic() + timeout_s
        last: list[str] = ["no metadata"]

        def ready() -> TopicDescription | None:
            try:
                desc = self.describe_topic(name, timeout_s=min(5.0, max(deadline - time.monotonic(), 0.5)))
            except TopicError as exc:
                last[0] = exc.detail
                return None
            if len(desc.partitions) == partitions and desc.has_leaders:
                return desc
            leaderless = [p.id for p in desc.partitions if p.leader < 0 or p.error is not None]
            last[0] = f"{len(desc.partitions)} partition(s) in metadata, without a leader: {leaderless}"
            return None

        desc = _until(deadline, ready)
        if desc is None:
            raise TopicError("wait for the leaders of", name, f"not ready within {timeout_s:g} s (last: {last[0]})",
                             code="_TIMED_OUT", retriable=True,
                             what=f"{partitions} partition(s), each with a leader")
        return desc

    # ------------------------------------------------------------------------------------- delete
    def delete_topic(self, name: str, *, timeout_s: float = 15.0, wait: bool = True,
                     missing_ok: bool = False) -> None:
        """Delete ``name``; with ``wait``, until metadata no longer lists it. ``missing_ok``: an unknown
        topic is not an error."""
        deadline = time.monotonic() + timeout_s
        try:
            self.client.delete_topics([name], request_timeout=timeout_s,
                                      operation_timeout=timeout_s)[name].result(timeout_s + 5)
        except (KafkaException, TimeoutError) as exc:
            err = _error("delete", name, exc)
            if not (missing_ok and err.code == "UNKNOWN_TOPIC_OR_PART"):
                raise err from exc
        if wait:
            self.wait_deleted(name, timeout_s=max(deadline - time.monotonic(), 1.0))

    def wait_deleted(self, name: str, *, timeout_s: float = 15.0) -> None:
        """Wait until metadata no longer lists ``name``."""
        def gone() -> bool | None:
            return True if name not in self._list_topics(None, 5.0) else None
        if _until(time.monotonic() + timeout_s, gone) is None:
            raise TopicError("wait for the deletion of", name, f"still in metadata after {timeout_s:g} s",
                             code="_TIMED_OUT", retriable=True)

    def delete_topics(self, names: Sequence[str], *, timeout_s: float = 15.0) -> list[TopicError]:
        """Best effort (e.g. at session end): delete all of ``names`` in one request, without waiting
        for metadata; the errors (unknown topics included), never raised."""
        if not names:
            return []
        errors: list[TopicError] = []
        futures = self.client.delete_topics(list(names), request_timeout=timeout_s,
                                            operation_timeout=timeout_s)
        deadline = time.monotonic() + timeout_s + 5   # one limit for all: not ``timeout_s`` per topic
        for name, fut in futures.items():
            try:
                fut.result(max(deadline - time.monotonic(), 0.0))
            except (KafkaException, TimeoutError) as exc:
                errors.append(_error("delete", name, exc))
        return errors

    # ------------------------------------------------------------------------------------- read
    def _list_topics(self, name: str | None, timeout_s: float) -> dict[str, object]:
        try:
            md = self.client.list_topics(name, timeout=timeout_s)
        except KafkaException as exc:
            raise _error("describe", name, exc) from exc
        return dict(md.topics)

    def describe_topic(self, name: str, *, timeout_s: float = 10.0) -> TopicDescription:
        """Partitions, leaders, replicas and ISRs of ``name`` from a metadata request (not cached)."""
        try:
            md = self.client.list_topics(name, timeout=timeout_s).topics.get(name)
        except KafkaException as exc:
            raise _error("describe", name, exc) from exc
        if md is None:
            raise TopicError("describe", name, "not in metadata", code="UNKNOWN_TOPIC_OR_PART")
        if md.error is not None:
            raise TopicError("describe", name, f"{md.error.name()}: {md.error.str()}",
                             code=md.error.name(), retriable=bool(md.error.retriable()))
        parts = tuple(PartitionInfo(p.id, p.leader, tuple(p.replicas), tuple(p.isrs),
                                    p.error.name() if p.error is not None else None)
                      for _, p in sorted(md.partitions.items()))
        return TopicDescription(name, parts)

    def cluster(self, *, timeout_s: float = 10.0) -> ClusterInfo:
        """Cluster id, controller and brokers from a metadata request."""
        try:
            md = self.client.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise _error("describe the cluster", None, exc) from exc
        brokers = tuple(BrokerNode(b.id, b.host or "", b.port) for b in sorted(md.brokers.values(), key=lambda b: b.id))
        return ClusterInfo(md.cluster_id, md.controller_id, brokers)

    def _watermark_consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer({**DEFAULT_CONF, **self._config, "bootstrap.servers": self.bootstrap,
                                       "group.id": f"kbench-admin-{uuid.uuid4().hex[:8]}",
                                       "enable.auto.commit": False})
        return self._consumer

    def watermark(self, topic: str, partition: int, *, timeout_s: float = 10.0) -> Watermarks:
        """(low, high) of one partition from the broker (ListOffsets, not cached).

        Retriable errors (a leader the consumer's metadata does not know yet, e.g. right after
        creation or a fail-over) are retried until ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        consumer = self._watermark_consumer()
        while True:
            try:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                        timeout=max(deadline - time.monotonic(), 0.5),
                                                        cached=False)
                return Watermarks(int(lo), int(hi))
            except KafkaException as exc:
                err = _error("read the watermarks of", topic, exc, f"partition {partition}")
                if not err.retriable or time.monotonic() >= deadline:
                    raise err from exc
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0.0)))

    def watermarks(self, topic: str, *, timeout_s: float = 10.0) -> dict[int, Watermarks]:
        """(low, high) of every partition of ``topic`` (partitions from metadata)."""
        desc = self.describe_topic(topic, timeout_s=timeout_s)
        return {p.id: self.watermark(topic, p.id, timeout_s=timeout_s) for p in desc.partitions}
