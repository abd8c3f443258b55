"""Driver protocol v2, explicit-records mode (docs/drivers.md, "Protocol v2: explicit records").

A producer spec with a ``records`` list sends exactly those records, in order, one in flight, instead of
its schedule: each with an optional partition, a key and a value that may be null (JSON ``null``), empty
(``""``) or bytes (base64), headers ``[[name, base64 value or null], ...]`` and an optional CreateTime
(``timestamp_ms``). Its result's ``records`` holds one ``[partition, offset, error or null]`` per spec
record, in spec order. A driver whose client cannot send a kind of record refuses the spec before
``hello`` (exit 2) with an error line ``unsupported record feature NAME: reason``; :func:`refusal` finds it.

Pure logic: encoding the spec, naming the features a list of records uses, parsing the acks.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FEATURES", "RECORDS", "REFUSAL_PREFIX", "ExplicitRecord", "RecordAck", "RecordsError", "decode_spec",
           "features", "parse_acks", "records_spec", "refusal"]

#: ``WorkerSpec.extra`` key of a producer's explicit records (a sequence of :class:`ExplicitRecord`)
RECORDS = "records"
#: what a record may use; a driver refuses the ones its client cannot send (``partition_mix``: some records
#: with a partition and some without, which a driver may refuse even if it has ``partition``)
FEATURES = ("partition", "partition_mix", "null_key", "empty_key", "null_value", "empty_value", "headers",
            "null_header_value", "empty_header_value", "timestamp")
#: the start of a driver's refusal (its error line's message contains it)
REFUSAL_PREFIX = "unsupported record feature "
_REFUSAL = re.compile(re.escape(REFUSAL_PREFIX) + r"([a-z_]+): (.+)")


class RecordsError(ValueError):
    """A records spec or a result's ``records`` that does not follow the protocol."""


@dataclass(frozen=True)
class ExplicitRecord:
    """One record to send: ``None`` key/value/header value is null, ``b""`` empty."""

    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_ms: int | None = None

    def to_spec(self) -> dict[str, Any]:
        if self.partition is not None and self.partition < 0:
            raise RecordsError(f"partition {self.partition}: expected >= 0 or None")
        if self.timestamp_ms is not None and self.timestamp_ms < 0:
            raise RecordsError(f"timestamp_ms {self.timestamp_ms}: expected >= 0 or None")
        return {"partition": self.partition, "key": _b64(self.key), "value": _b64(self.value),
                "headers": [[name, _b64(v)] for name, v in self.headers], "timestamp_ms": self.timestamp_ms}

    def features(self) -> set[str]:
        out: set[str] = set()
        if self.partition is not None:
            out.add("partition")
        for name, b in (("key", self.key), ("value", self.value)):
            if b is None:
                out.add(f"null_{name}")
            elif b == b"":
                out.add(f"empty_{name}")
        if self.headers:
            out.add("headers")
        if any(v is None for _, v in self.headers):
            out.add("null_header_value")
        if any(v == b"" for _, v in self.headers):
            out.add("empty_header_value")
        if self.timestamp_ms is not None:
            out.add("timestamp")
        return out


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode("ascii")


def _unb64(v: Any, what: str) -> bytes | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise RecordsError(f"{what}: expected base64 text or null, got {v!r}")
    try:
        return base64.b64decode(v, validate=True)
    except ValueError as exc:
        raise RecordsError(f"{what}: not base64 ({exc})") from None


def features(records: Iterable[ExplicitRecord]) -> list[str]:
    """The features ``records`` use, in :data:`FEATURES` order."""
    recs = list(records)
    used: set[str] = set().union(*(r.features() for r in recs)) if recs else set()
    if "partition" in used and any(r.partition is None for r in recs):
        used.add("partition_mix")
    return [f for f in FEATURES if f in used]


def records_spec(records: Sequence[ExplicitRecord]) -> list[dict[str, Any]]:
    """The spec's ``records`` list (at least one record)."""
    if not records:
        raise RecordsError("records: expected at least one record")
    return [r.to_spec() for r in records]


def decode_spec(items: Any) -> list[ExplicitRecord]:
    """A spec's ``records`` list back as records (what a driver decodes; used by the in-process worker)."""
    if not isinstance(items, list) or not items:
        raise RecordsError(f"records: expected a non-empty list, got {items!r}")
    out: list[ExplicitRecord] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise RecordsError(f"records[{i}]: expected an object")
        part, ts = item.get("partition"), item.get("timestamp_ms")
        for name, v in (("partition", part), ("timestamp_ms", ts)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise RecordsError(f"records[{i}].{name}: expected an integer >= 0 or null, got {v!r}")
        headers: list[tuple[str, bytes | None]] = []
        for j, h in enumerate(item.get("headers") or []):
            if not isinstance(h, list) or len(h) != 2 or not isinstance(h[0], str):
                raise RecordsError(f"records[{i}].headers[{j}]: expected [name, base64 or null], got {h!r}")
            headers.append((h[0], _unb64(h[1], f"records[{i}].headers[{j}]")))
        out.append(ExplicitRecord(value=_unb64(item.get("value"), f"records[{i}].value"),
                                  key=_unb64(item.get("key"), f"records[{i}].key"), partition=part,
                                  headers=tuple(headers), timestamp_ms=ts))
    return out


@dataclass(frozen=True)
class RecordAck:
    """A record's ack: where it was stored, or the error (``partition``/``offset`` -1 then)."""

    partition: int
    offset: int
    error: str | None

    def to_row(self) -> list[Any]:
        return [self.partition, self.offset, self.error]


def parse_acks(result: Mapping[str, Any], sent: int) -> list[RecordAck]:
    """The ``records`` of a records-mode producer's result: one ack per record of the spec."""
    rows = result.get("records")
    if not isinstance(rows, list):
        raise RecordsError(f"result.records: expected a list, got {rows!r}")
    if len(rows) != sent:
        raise RecordsError(f"result.records: {len(rows)} acks for {sent} records sent")
    acks: list[RecordAck] = []
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 3 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                 for x in row[:2])
                and (row[2] is None or isinstance(row[2], str))):
            raise RecordsError(f"result.records[{i}]: expected [partition, offset, error or null], got {row!r}")
        if row[2] is None and (row[0] < 0 or row[1] < 0):
            raise RecordsError(f"result.records[{i}]: no error but partition/offset {row[0]}/{row[1]}")
        acks.append(RecordAck(row[0], row[1], row[2]))
    return acks


def refusal(text: str) -> tuple[str, str] | None:
    """(feature, reason) of a driver's ``unsupported record feature NAME: reason`` error, else None."""
    m = _REFUSAL.search(text)
    return (m.group(1), m.group(2).strip()) if m else None


def run_records(spec: Any, ctl: Any, out: Any) -> None:
    """The in-process librdkafka worker's explicit-records mode (process entry point, like
    :func:`bench.load.producer.run_producer`): the records of ``spec.extra[RECORDS]`` one at a time, each
    ``produce`` + ``flush`` until its delivery report; the result's ``records`` as a driver's."""
    from bench.load.worker import run_worker

    run_worker(_send_records, spec, ctl, out)


def _send_records(spec: Any, ctl: Any, out: Any) -> dict[str, Any]:
    import confluent_kafka
    from confluent_kafka import Producer

    records: Sequence[ExplicitRecord] = spec.extra[RECORDS]
    producer = Producer({"bootstrap.servers": spec.bootstrap, **spec.client_config})
    meta = producer.list_topics(spec.topic, timeout=30.0)
    out.put(("ready", "producer", spec.index, None))
    if ctl.wait_window(spec) is None:
        producer.flush(1)
        return {"failed": "stopped before the start"}
    acks: list[list[Any]] = []
    for r in records:
        if ctl.stop.is_set():
            acks.append([-1, -1, "stopped"])
            continue
        got: list[RecordAck] = []

        def report(err: Any, msg: Any, got: list[RecordAck] = got) -> None:
            got.append(RecordAck(-1, -1, err.name()) if err is not None
                       else RecordAck(int(msg.partition()), int(msg.offset()), None))

        kw: dict[str, Any] = {"value": r.value, "key": r.key, "on_delivery": report}
        if r.partition is not None:
            kw["partition"] = r.partition
        if r.headers:
            kw["headers"] = list(r.headers)
        if r.timestamp_ms is not None:
            kw["timestamp"] = r.timestamp_ms
        producer.produce(spec.topic, **kw)
        producer.flush(spec.flush_timeout_s)
        acks.append((got[0] if got else RecordAck(-1, -1, "no delivery report (flush timed out)")).to_row())
    return {"role": "producer", "index": spec.index, "records": acks, "sent": len(records),
            "partitions": len(meta.topics[spec.topic].partitions),
            "client": {"name": "librdkafka", "version": str(confluent_kafka.libversion()[0])}}
