"""The producer's pure parts: chunk values and headers, the map()-based sender's recovery, auto sampling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from confluent_kafka import KafkaError, KafkaException

from bench.load.payload import PayloadPool, decode_header
from bench.load.producer import ChunkBuilder, auto_latency_sample, send_chunk
from bench.scenario.model import MessageSize


class FakeProducer:
    """Records produce() calls; refuses with BufferError on chosen call numbers (the queue is full: the same
    value must be offered again) and with KafkaException for values listed in ``too_large``."""

    def __init__(self, full_at: set[int], too_large: set[bytes] = frozenset()) -> None:  # type: ignore[assignment]
        self.calls = 0
        self.full_at = full_at
        self.too_large = too_large
        self.sent: list[tuple[str, bytes, bytes | None, Any]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None = None, callback: Any = None) -> None:
        self.calls += 1
        if self.calls in self.full_at:
            raise BufferError("Local: Queue full")
        if value in self.too_large:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.sent.append((topic, value, key, callback))


@pytest.mark.parametrize("keyed", [False, True])
def test_send_chunk_resumes_after_queue_full_and_skips_refused(keyed: bool) -> None:
    values = [f"v{i}".encode() for i in range(20)]
    keys: list[bytes | None] | None = [f"k{i}".encode() for i in range(20)] if keyed else None
    fake = FakeProducer(full_at={1, 6, 7, 15}, too_large={b"v9", b"v19"})
    waits: list[int] = []
    refused: list[tuple[bytes, str]] = []
    queued = send_chunk(fake, "t", values, keys, on_queue_full=lambda: waits.append(len(fake.sent)),
                        on_failed=lambda v, e: refused.append((v, e.name())))
    expected = [v for v in values if v not in (b"v9", b"v19")]
    assert [v for _t, v, _k, _c in fake.sent] == expected       # each once, in order
    assert queued == len(expected) == 18
    assert refused == [(b"v9", "MSG_SIZE_TOO_LARGE"), (b"v19", "MSG_SIZE_TOO_LARGE")]
    assert len(waits) == 4                                      # one wait per refusal for a full queue
    if keyed:
        assert all(k == b"k" + v[1:] for _t, v, k, _c in fake.sent)
    assert {t for t, *_ in fake.sent} == {"t"}


def test_send_chunk_passes_the_callback_to_every_message() -> None:
    def cb(err: Any, msg: Any) -> None:
        pass

    fake = FakeProducer(full_at={2})
    assert send_chunk(fake, "t", [b"a", b"b", b"c"], None, on_queue_full=lambda: None,
                      on_failed=lambda v, e: None, callback=cb) == 3
    assert [c for *_x, c in fake.sent] == [cb, cb, cb]


def test_send_chunk_other_errors_propagate() -> None:
    class Broken(FakeProducer):
        def produce(self, topic: str, value: bytes, key: bytes | None = None, callback: Any = None) -> None:
            raise TypeError("bad value")

    with pytest.raises(TypeError):
        send_chunk(Broken(set()), "t", [b"a"], None, on_queue_full=lambda: None, on_failed=lambda v, e: None)


@pytest.mark.parametrize("size", [MessageSize(distribution="fixed", value=100, min=100, max=100),
                                  MessageSize(distribution="fixed", value=4, min=4, max=4),
                                  MessageSize(distribution="uniform", value=None, min=20, max=300)])
@pytest.mark.parametrize("seq0", [0, (1 << 32) - 100, (1 << 33) + 5])
def test_chunk_values_carry_intended_time_producer_and_sequence(size: MessageSize, seq0: int) -> None:
    pool = PayloadPool(compressibility=0.3, file=None, max_size=300, pool_size=4 << 20, seed=1)
    chunks = ChunkBuilder(pool, size, 7, np.random.default_rng(1))
    for rep in range(3):
        intended = np.arange(512, dtype=np.int64) + (1 << 40) + rep
        values = chunks.build(intended, seq0 + 512 * rep)
        assert len(values) == 512 and all(isinstance(v, bytes) for v in values)
        assert [len(v) for v in values] == chunks.last_lens.tolist()
        for i, v in enumerate(values):
            assert decode_header(v) == ((1 << 40) + rep + i, 7, seq0 + 512 * rep + i)
        if size.distribution == "fixed":
            assert set(chunks.last_lens.tolist()) == {max(16, size.value or 0)}
        else:
            assert min(chunks.last_lens) >= 20 and max(chunks.last_lens) <= 300
        assert len(set(values)) == 512   # distinct bodies: compression sees a real stream, not one message


@pytest.mark.parametrize(("rate", "n"), [(0, 1), (39_000, 1), (40_000, 2), (500_000, 16), (1_000_000, 32),
                                         (1_300_000, 64), (50_000_000, 64)])
def test_auto_latency_sample(rate: float, n: int) -> None:
    assert auto_latency_sample(rate) == n
