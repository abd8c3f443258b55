"""Client plumbing for checks: deadlines, unique names, client factories, produce/read helpers.

Every wait in a check goes through a :class:`Deadline` (or a helper that takes ``timeout``), every
client gets short explicit timeouts, and every topic/group/transactional id comes from
:class:`Names` so that runs never collide on a shared broker. Topic administration is
:class:`bench.kafka.admin.TopicAdmin` (a refused or unready topic is a :class:`~bench.errors.TopicError`
with the broker's error code).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from bench.kafka.admin import TopicAdmin
from bench.kafka.closing import close_all

__all__ = [
    "Clients",
    "Deadline",
    "Delivery",
    "Names",
    "ReadResult",
    "flush_all",
    "on_delivery",
    "produce_all",
    "read_partition",
    "wait_for",
]

T = TypeVar("T")

#: defaults applied to every client (each check may override any of them)
COMMON_CONF: dict[str, Any] = {"socket.timeout.ms": 10_000, "metadata.max.age.ms": 10_000,
                               "topic.metadata.refresh.interval.ms": 2_000}
#: max.in.flight 1: without idempotence, a retried batch may land after later ones when more requests
#: are in flight (Kafka's documented reordering), and the checks read records back in send order;
#: checks about retries (P2, P3) set their own
PRODUCER_CONF: dict[str, Any] = {"acks": "all", "linger.ms": 5, "message.timeout.ms": 15_000,
                                 "request.timeout.ms": 10_000,
                                 "max.in.flight.requests.per.connection": 1}
CONSUMER_CONF: dict[str, Any] = {"auto.offset.reset": "earliest", "enable.auto.commit": False,
                                 "session.timeout.ms": 6_000, "heartbeat.interval.ms": 1_000,
                                 "fetch.wait.max.ms": 100, "max.poll.interval.ms": 30_000}


class Deadline:
    """A monotonic deadline: ``Deadline(10).remaining()``; ``expired``; ``poll_timeout(0.2)``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(self.end - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def poll_timeout(self, step: float = 0.2) -> float:
        """The timeout for the next poll: ``step`` or what remains, whichever is smaller."""
        return min(step, self.remaining())


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call ``predicate`` until it returns a truthy value; TimeoutError naming ``what`` otherwise."""
    deadline = Deadline(timeout)
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        if deadline.expired:
            raise TimeoutError(f"{what}: not reached within {timeout:g} s (last: {last!r})")
        time.sleep(min(interval, deadline.remaining()))


class Names:
    """Unique names: ``kbc-<run_id>-<tag>-<n>`` (Kafka topic-name safe)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._n = itertools.count(1)
        self._lock = threading.Lock()

    def _make(self, kind: str, tag: str) -> str:
        with self._lock:
            n = next(self._n)
        safe = re.sub(r"[^A-Za-z0-9._-]", "-", tag)[:40]
        return f"kbc-{self.run_id}-{kind}{safe}-{n}"

    def topic(self, tag: str = "") -> str:
        return self._make("t", tag)

    def group(self, tag: str = "") -> str:
        return self._make("g", tag)

    def txn_id(self, tag: str = "") -> str:
        return self._make("x", tag)


@dataclass
class Delivery:
    """One delivery report (``index`` is the produce call's position in the input)."""

    index: int
    error: KafkaError | None
    partition: int
    offset: int
    timestamp: tuple[int, int]
    key: bytes | None
    value: bytes | None
    latency_us: float = 0.0


@dataclass
class ReadResult:
    """Messages (data only), errors seen (other than partition EOF), whether EOF was reached."""

    messages: list[Message] = field(default_factory=list)
    errors: list[KafkaError] = field(default_factory=list)
    eof: bool = False

    def offsets(self) -> list[int]:
        return [int(m.offset()) for m in self.messages]  # type: ignore[arg-type]

    def values(self) -> list[bytes | None]:
        return [m.value() for m in self.messages]


def on_delivery(reports: list[Delivery], index: int) -> Callable[[KafkaError | None, Message], None]:
    """A delivery callback appending a :class:`Delivery` with ``index`` to ``reports``."""
    sent_ns = time.perf_counter_ns()

    def callback(err: KafkaError | None, msg: Message) -> None:
        part, off = msg.partition(), msg.offset()
        reports.append(Delivery(index, err, -1 if part is None else part, -1 if off is None else off,
                                msg.timestamp(), msg.key(), msg.value(),
                                (time.perf_counter_ns() - sent_ns) / 1000))
    return callback


def flush_all(producers: Sequence[Producer], reports: list[Delivery], expected: int,
              timeout: float) -> None:
    """Flush ``producers`` until ``expected`` reports arrived; TimeoutError (after purging) if not."""
    deadline = Deadline(timeout)
    while len(reports) < expected and not deadline.expired:
        for p in producers:
            p.flush(deadline.poll_timeout(0.5))
    if len(reports) < expected:
        for p in producers:
            p.purge()
            p.flush(1.0)
        raise TimeoutError(f"{expected - len(reports)} of {expected} delivery reports missing "
                           f"after {timeout:g} s")


def produce_all(producer: Producer, topic: str, records: Iterable[Mapping[str, Any]],
                timeout: float = 20.0) -> list[Delivery]:
    """Produce ``records`` (kwargs of ``Producer.produce``) and wait for every delivery report.

    Returns the reports ordered by input index. Raises TimeoutError if reports are missing at the
    deadline (the producer is purged so nothing is left in flight).
    """
    reports: list[Delivery] = []
    deadline = Deadline(timeout)
    n = 0
    for i, rec in enumerate(records):
        while True:
            try:
                producer.produce(topic, on_delivery=on_delivery(reports, i), **rec)
                break
            except BufferError:
                producer.poll(0.05)
                if deadline.expired:
                    raise TimeoutError("producer queue full until the deadline") from None
        producer.poll(0)
        n += 1
    flush_all([producer], reports, n, max(deadline.remaining(), 1.0))
    return sorted(reports, key=lambda d: d.index)


def read_partition(consumer: Consumer, topic: str, partition: int, start: int = OFFSET_BEGINNING,
                   until_offset: int | None = None, count: int | None = None,
                   timeout: float = 10.0) -> ReadResult:
    """Assign ``consumer`` to one partition at ``start`` and read until ``until_offset`` (exclusive)
    or ``count`` messages, or EOF when neither is given (needs ``enable.partition.eof``), or the
    deadline. Never raises on a short read: the caller compares what was read with what it expects.
    """
    consumer.assign([TopicPartition(topic, partition, start)])
    result = ReadResult()
    deadline = Deadline(timeout)
    try:
        while not deadline.expired:
            msg = consumer.poll(deadline.poll_timeout(0.2))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    result.eof = True
                    if until_offset is None and count is None:
                        break
                    continue
                result.errors.append(err)
                continue
            result.messages.append(msg)
            if count is not None and len(result.messages) >= count:
                break
            if until_offset is not None and int(msg.offset() or 0) + 1 >= until_offset:
                break
    finally:
        consumer.unassign()
    return result


class Clients:
    """Factory for producers, consumers, admin clients and topics; cleans up after the test.

    Created per test by the ``clients`` fixture; ``extra_conf`` (e.g. from ``--client-conf``) is
    applied to every client.
    """

    def __init__(self, bootstrap: str, names: Names, tag: str,
                 created_topics: list[str] | None = None, extra_conf: Mapping[str, Any] | None = None
                 ) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.tag = tag
        self.extra_conf = dict(extra_conf or {})
        self.created_topics = created_topics if created_topics is not None else []
        self._producers: list[Producer] = []
        self._consumers: list[Consumer] = []
        self._topics: TopicAdmin | None = None

    def _conf(self, defaults: Mapping[str, Any], conf: Mapping[str, Any]) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, "client.id": f"kbench-{self.tag}",
                **COMMON_CONF, **defaults, **self.extra_conf, **conf}

    def producer(self, **conf: Any) -> Producer:
        """A producer with acks=all, short timeouts; ``conf`` keys use dots: pass a dict via **{}."""
        p = Producer(self._conf(PRODUCER_CONF, conf))
        self._producers.append(p)
        return p

    def consumer(self, group: str | None = None, **conf: Any) -> Consumer:
        """A consumer in a fresh unique group (or ``group``), earliest, no auto-commit."""
        c = Consumer(self._conf({**CONSUMER_CONF, "group.id": group or self.names.group(self.tag)},
                                conf))
        self._consumers.append(c)
        return c

    @property
    def topics(self) -> TopicAdmin:
        """The topic admin (create/delete/describe/watermarks) with this run's client config."""
        if self._topics is None:
            self._topics = TopicAdmin(self.bootstrap, {**COMMON_CONF, **self.extra_conf})
        return self._topics

    def admin(self) -> AdminClient:
        """The raw librdkafka admin client, for the checks of admin APIs themselves."""
        return self.topics.client

    def create_topic(self, partitions: int = 1, config: Mapping[str, str] | None = None,
                     tag: str = "", timeout: float = 15.0, name: str | None = None) -> str:
        """Create a unique topic (or ``name``); wait until metadata shows every partition's leader.

        TopicError if the broker refuses it (``code``, e.g. ``TOPIC_ALREADY_EXISTS``) or it is not
        ready within ``timeout``. The name is kept for cleanup either way."""
        name = name or self.names.topic(tag or self.tag)
        if name not in self.created_topics:
            self.created_topics.append(name)
        self.topics.create_topic(name, partitions, 1, config, timeout_s=timeout)
        return name

    def wait_topic(self, name: str, partitions: int, timeout: float = 15.0) -> None:
        """Wait until metadata shows ``partitions`` partitions of ``name``, each with a leader."""
        self.topics.wait_topic(name, partitions, timeout_s=timeout)

    def watermarks(self, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
        """(low, high) watermarks from the broker (ListOffsets, not cached)."""
        marks = self.topics.watermark(topic, partition, timeout_s=timeout)
        return marks.low, marks.high

    def read_all(self, topic: str, partitions: int, timeout: float = 15.0,
                 acked: Iterable[Delivery] = (), **conf: Any) -> dict[int, ReadResult]:
        """Read every partition from its low watermark up to its high watermark or, if higher, past
        the last ``acked`` offset (so a wrong high watermark cannot hide acked records)."""
        consumer = self.consumer(**conf)
        deadline = Deadline(timeout)
        ends: dict[int, int] = {}
        for d in acked:
            if d.error is None and d.offset >= 0:
                ends[d.partition] = max(ends.get(d.partition, 0), d.offset + 1)
        out: dict[int, ReadResult] = {}
        for p in range(partitions):
            lo, hi = self.topics.watermark(topic, p, timeout_s=10.0)
            end = max(hi, ends.get(p, 0))
            if end <= lo:
                out[p] = ReadResult()
                continue
            out[p] = read_partition(consumer, topic, p, start=lo, until_offset=end,
                                    timeout=max(deadline.remaining(), 1.0))
        return out

    def close(self) -> list[str]:
        """Close everything (bounded); returns problems seen while closing."""
        problems: list[str] = []
        for p in self._producers:
            p.purge()
            left = p.flush(2.0)
            if left:
                problems.append(f"{left} messages still queued in a producer at close")
        problems += close_all(self._consumers)   # concurrently, within one limit: a close can hang
        self._producers.clear()
        self._consumers.clear()
        if self._topics is not None:
            topics, self._topics = self._topics, None
            try:
                topics.close()
            except (KafkaException, RuntimeError) as exc:
                problems.append(f"admin close: {exc}")
        return problems


def delete_topics(bootstrap: str, topics: Sequence[str], timeout: float = 15.0,
                  extra_conf: Mapping[str, Any] | None = None) -> list[str]:
    """Delete ``topics`` (best effort at session end); returns the errors as text (topics that were
    never created, e.g. refused by a check, are not errors)."""
    if not topics:
        return []
    with TopicAdmin(bootstrap, {**COMMON_CONF, **(extra_conf or {})}) as admin:
        errors = admin.delete_topics(topics, timeout_s=timeout)
    return [str(e) for e in errors if e.code != "UNKNOWN_TOPIC_OR_PART"]
