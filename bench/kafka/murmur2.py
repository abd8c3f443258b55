"""Java-compatible murmur2 — the hash of Kafka's default partitioner for keyed records.

``partition_for(key, n) == toPositive(Utils.murmur2(key)) % n`` as in Apache Kafka's Java client
and librdkafka's ``murmur2``/``murmur2_random`` partitioners (librdkafka's default,
``consistent_random``, uses CRC32 instead).
"""

from __future__ import annotations

__all__ = ["murmur2", "partition_for", "to_positive"]

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """32-bit murmur2 of ``data`` with Kafka's seed, as a *signed* int like Java's ``int``."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit."""
    return n & 0x7FFFFFFF


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for a non-null ``key``."""
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, got {partitions}")
    return to_positive(murmur2(key)) % partitions
