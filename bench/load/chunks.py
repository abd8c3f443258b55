"""Chunks of message values built at once with numpy, and the ``map()``-based sender.

Both are the per-message hot path of every Python producer (the process generator and the Locust users):
no Python bytecode runs per message, neither to build values nor to hand them to librdkafka.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np

from bench.load.payload import HEADER_DTYPE, HEADER_SIZE, PayloadPool
from bench.scenario.model import MessageSize, Payload

__all__ = ["CHUNK", "CHUNK_BYTES", "ChunkBuilder", "chunk_max", "send_chunk"]

CHUNK = 512               # messages per chunk, at most
CHUNK_BYTES = 1 << 20     # value bytes per chunk, at most


def chunk_max(max_size: int) -> int:
    """Messages per chunk for values up to ``max_size`` bytes."""
    return max(1, min(CHUNK, CHUNK_BYTES // max(1, max_size)))


class ChunkBuilder:
    """Builds a chunk of message values at once with numpy: bodies are consecutive slices of the payload
    pool, each overwritten with its 16-byte header (intended ns, producer, seq)."""

    def __init__(self, pool: PayloadPool, sizes: MessageSize, producer: int, rng: np.random.Generator) -> None:
        self.pool = np.frombuffer(pool.data, dtype=np.uint8)
        self.limit = pool.pool_size
        self.sizes = sizes
        self.fixed = sizes.value if sizes.distribution == "fixed" else None
        self.producer = producer
        self.rng = rng
        self.pos = 0
        self._cols = np.arange(HEADER_SIZE, dtype=np.int64)
        self.last_lens: np.ndarray = np.zeros(0, dtype=np.int64)   # value sizes of the last chunk built
        self._rows: np.dtype | None = None
        self._arange = np.arange(CHUNK, dtype=np.int64)

    @classmethod
    def for_workload(cls, size: MessageSize, payload: Payload, *, producer: int, seed: int) -> ChunkBuilder:
        """Values of ``size`` from a payload pool of ``payload``'s kind, large enough for two chunks of the
        largest size; header producer index ``producer``."""
        max_size = max(size.max or 1, HEADER_SIZE)
        pool = PayloadPool(compressibility=payload.compressibility, file=payload.file, max_size=max_size,
                           pool_size=max(4 << 20, 2 * chunk_max(max_size) * max_size), seed=seed)
        return cls(pool, size, producer, np.random.default_rng(seed))

    def build(self, intended: np.ndarray, seq0: int) -> list[bytes]:
        """The chunk's values: consecutive slices of the payload pool, each starting with its header."""
        n = intended.size
        if self._arange.size < n:
            self._arange = np.arange(n, dtype=np.int64)
        seqs = seq0 + self._arange[:n]
        hi = (seqs >> 32) if seq0 + n > 0xFFFFFFFF else 0
        if self.fixed is not None:  # one record per row: header fields written in place, one bytes per row
            size = max(self.fixed, HEADER_SIZE)
            if self.last_lens.size != n:
                self.last_lens = np.full(n, size, dtype=np.int64)
            rows = self._take(n * size).view(self._row_dtype(size))
            rows["t"], rows["producer"], rows["hi"], rows["lo"] = intended, self.producer, hi, seqs
            values: list[bytes] = rows.view(f"V{size}").tolist()
            return values
        lens = np.maximum(self.sizes.sample(n, self.rng), HEADER_SIZE)
        self.last_lens = lens
        buf = self._take(int(lens.sum()))
        head = np.empty(n, dtype=HEADER_DTYPE)
        head["t"], head["producer"], head["hi"], head["lo"] = intended, self.producer, hi, seqs
        ends = np.cumsum(lens)
        starts = ends - lens
        buf[starts[:, None] + self._cols] = head.view(np.uint8).reshape(n, HEADER_SIZE)
        raw = buf.tobytes()
        return [raw[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def _take(self, total: int) -> np.ndarray:
        """A private copy of the next ``total`` bytes of the pool (wrapping to its start)."""
        if self.pos + total > self.limit:
            self.pos = 0
        buf = self.pool[self.pos:self.pos + total].copy()
        self.pos += total
        return buf

    def _row_dtype(self, size: int) -> np.dtype:
        if self._rows is None or self._rows.itemsize != size:
            # the header's fields, then the body: one row per message
            self._rows = np.dtype([*HEADER_DTYPE.descr, ("body", f"V{size - HEADER_SIZE}")])
        return self._rows


def send_chunk(producer: Any, topic: str, values: list[bytes], keys: list[bytes | None] | None, *,
               on_queue_full: Callable[[], None], on_failed: Callable[[bytes, Any], None],
               callback: Callable[[Any, Any], None] | None = None) -> int:
    """``produce()`` every value (with its key, and ``callback`` if given) through ``map``: no Python
    bytecode runs per message. When the client's queue is full, call ``on_queue_full()`` (poll) and resume
    at the refused message; a message refused for good (too large, …) goes to ``on_failed(value, error)``
    and is skipped. Returns how many messages were queued."""
    produce = partial(producer.produce, callback=callback) if callback is not None else producer.produce
    queued = start = 0
    n = len(values)
    while start < n:
        vals = values[start:] if start else values
        it = iter(vals)
        try:
            if keys is None:
                deque(map(partial(produce, topic), it), maxlen=0)
            else:
                deque(map(produce, repeat(topic), it, keys[start:] if start else keys), maxlen=0)
            return queued + len(vals)
        except Exception as exc:  # BufferError, or confluent_kafka.KafkaException (imported lazily, here only)
            from confluent_kafka import KafkaException

            if not isinstance(exc, BufferError | KafkaException):
                raise
            done = len(vals) - operator.length_hint(it) - 1   # map had taken the refused value from `it`
            queued += done
            if isinstance(exc, BufferError):  # the queue is full: wait, then offer the same value again
                start += done
                on_queue_full()
            else:                             # refused for good: skip it
                on_failed(vals[done], exc.args[0])
                start += done + 1
    return queued
