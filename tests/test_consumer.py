"""The consumer's batch hand-over and header decoding (pure logic: a fake client, real Message objects)."""

from __future__ import annotations

from typing import Any

import numpy as np
from confluent_kafka import KafkaError, Message

from bench.load.consumer import fetch_ready, split_messages
from bench.load.payload import decode_header, decode_headers, encode_header


def _Msg(value: bytes | None, err: Any = None) -> Message:
    return Message(topic="t", partition=0, offset=0, value=value, error=err)


class _Client:
    """Records how it was called: fetch_ready must never wait for a batch to fill."""

    def __init__(self, ready: list[Any], arriving: Any = None) -> None:
        self.ready, self.arriving, self.calls = ready, arriving, []  # type: ignore[var-annotated]

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.calls.append(("consume", n, timeout))
        out, self.ready = self.ready[:n], self.ready[n:]
        return out

    def poll(self, timeout: float) -> Any:
        self.calls.append(("poll", timeout))
        m, self.arriving = self.arriving, None
        return m


def test_fetch_ready_takes_what_is_fetched_without_waiting() -> None:
    c = _Client([_Msg(b"a"), _Msg(b"b")])
    assert [m.value() for m in fetch_ready(c, 10)] == [b"a", b"b"]
    assert c.calls == [("consume", 10, 0)]


def test_fetch_ready_blocks_only_for_the_first_record() -> None:
    c = _Client([], arriving=_Msg(b"first"))
    got = fetch_ready(c, 10, block_s=0.1)
    assert [m.value() for m in got] == [b"first"]
    assert c.calls == [("consume", 10, 0), ("poll", 0.1), ("consume", 9, 0)]
    assert all(call[-1] == 0 for call in c.calls if call[0] == "consume")


def test_fetch_ready_returns_nothing_when_idle() -> None:
    assert fetch_ready(_Client([]), 10) == []


def test_split_messages_counts_errors_and_keeps_values() -> None:
    errors: dict[str, int] = {}
    seen: list[Any] = []
    eof = KafkaError(KafkaError._PARTITION_EOF)
    boom = KafkaError(KafkaError._TRANSPORT)
    vals = split_messages([_Msg(b"x"), _Msg(None, boom), _Msg(None, eof), _Msg(None)], errors, seen.append)
    assert vals == [b"x", b""]
    assert errors == {"_TRANSPORT": 1} and seen == [boom]
    assert split_messages([_Msg(b"x"), _Msg(None)], errors) == [b"x", b""]


def test_decode_headers_round_trips_and_rejects_short_values() -> None:
    values = [encode_header(123 + i, 2, (7 << 32) + i) + b"body" for i in range(5)]
    heads = decode_headers(values)
    assert heads is not None
    assert heads["t"].tolist() == [123, 124, 125, 126, 127]
    assert np.all(heads["producer"] == 2) and np.all(heads["hi"] == 7)
    assert heads["lo"].tolist() == [0, 1, 2, 3, 4]
    assert decode_headers([*values, b"short"]) is None


def test_header_wire_layout_is_the_documented_one() -> None:
    """docs/drivers.md: int64 intended ns, uint16 producer, uint16 seq high bits, uint32 seq low bits (LE)."""
    raw = encode_header(0x0102030405060708, 0x0A0B, (0x0C0D << 32) | 0x0E0F1011)
    assert raw == bytes([8, 7, 6, 5, 4, 3, 2, 1, 0x0B, 0x0A, 0x0D, 0x0C, 0x11, 0x10, 0x0F, 0x0E])
    assert decode_header(raw + b"body") == (0x0102030405060708, 0x0A0B, (0x0C0D << 32) | 0x0E0F1011)
