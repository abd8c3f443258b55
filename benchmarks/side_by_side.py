"""What the side-by-side benchmarks share: the broker both sides run against, and the ratios of paired rounds.

Each benchmark alternates its contenders round by round against one broker (the machine is noisy: compare
within a run, not across runs) and reports both the median of the rounds' ratios (each round's pair ran
back to back) and the ratio of the medians.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Paired", "broker", "paired"]


@contextmanager
def broker(bootstrap: str | None, name: str) -> Iterator[str]:
    """``bootstrap``, or an embedded Apache Kafka broker started for the benchmark (and stopped after it)."""
    if bootstrap:
        yield bootstrap
        return
    from bench.brokers import start_broker

    handle = start_broker("kafka", port=0, name=f"{name}-{uuid.uuid4().hex[:4]}")
    try:
        yield handle.bootstrap
    finally:
        handle.stop()


@dataclass(frozen=True)
class Paired:
    """``ours`` against ``base`` over the same rounds."""

    median_ours: float
    median_base: float
    median_of_ratios: float          # median over rounds of ours[i] / base[i]

    @property
    def ratio_of_medians(self) -> float:
        return self.median_ours / self.median_base


def paired(ours: Sequence[float], base: Sequence[float]) -> Paired:
    return Paired(statistics.median(ours), statistics.median(base),
                  statistics.median(o / b for o, b in zip(ours, base, strict=True)))
