"""The typed scenario model: frozen dataclasses of a validated scenario and its matrix cells, and the
key names of the scenario format. Built by :mod:`bench.scenario.model` (the loader)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.scenario.source import split_key

MAX_MESSAGE_SIZE = 100 * 1024 * 1024
MAX_RATE = 1e8
MAX_CELLS = 256
TOP_KEYS = ("name", "description", "broker", "client", "consumer_client", "client_version", "topic", "workload",
            "producer", "consumer", "matrix", "thresholds", "faults", "search", "repeat")
#: top-level keys that are also matrix axes on their own (``matrix: {client: [librdkafka, java]}``)
CLIENT_KEYS = ("client", "consumer_client", "client_version")
MAX_REPEAT = 100
TOPIC_KEYS = ("name", "partitions", "replication_factor", "config")
WORKLOAD_KEYS = ("message_size", "payload", "keys", "producers", "consumer_groups", "consumers_per_group",
                 "rate", "warmup", "duration", "backlog", "end_to_end", "latency_sample", "transactions")
SUB_KEYS = {"message_size": ("distribution", "value", "min", "max", "mean", "stddev", "values", "weights"),
            "payload": ("kind", "compressibility", "file"), "keys": ("kind", "count", "zipf_s"),
            "backlog": ("messages", "duration"), "transactions": ("messages", "abort_ratio")}
MAX_TXN_MESSAGES = 100_000
_DIST_KEYS = {"fixed": ("value",), "uniform": ("min", "max"), "normal": ("mean", "stddev", "min", "max"),
              "choice": ("values", "weights")}
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class MessageSize:
    """Message sizes in bytes. ``min``/``max`` are set for every distribution (fixed: both = value)."""

    distribution: str
    value: int | None = None
    min: int | None = None
    max: int | None = None
    mean: float | None = None
    stddev: float | None = None
    values: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` sizes (int64, >= 1); normal sizes are rounded and clipped to [min, max]."""
        lo, hi = self.min or 1, self.max or MAX_MESSAGE_SIZE
        if self.distribution == "fixed":
            out = np.full(n, self.value or 1, dtype=np.int64)
        elif self.distribution == "uniform":
            out = rng.integers(lo, hi, size=n, endpoint=True, dtype=np.int64)
        elif self.distribution == "normal":
            draws = np.rint(rng.normal(self.mean or 0.0, self.stddev or 0.0, size=n))
            out = np.clip(draws, lo, hi).astype(np.int64)
        else:
            p = np.asarray(self.weights, dtype=np.float64)
            out = rng.choice(np.asarray(self.values, dtype=np.int64), size=n, p=p / p.sum())
        return np.maximum(out, 1)

    def mean_bytes(self) -> float:
        """Expected size (for a normal: the mean of the clipped distribution)."""
        if self.distribution == "fixed":
            return float(self.value or 1)
        lo, hi = float(self.min or 1), float(self.max or MAX_MESSAGE_SIZE)
        if self.distribution == "uniform":
            return (lo + hi) / 2
        if self.distribution == "choice":
            total = sum(self.weights)
            return sum(v * w for v, w in zip(self.values, self.weights, strict=True)) / total
        mu, sigma = self.mean or 0.0, self.stddev or 0.0
        if sigma == 0:
            return min(max(mu, lo), hi)
        a, b = (lo - mu) / sigma, (hi - mu) / sigma
        cdf_a, cdf_b = (0.5 * (1 + math.erf(z / math.sqrt(2))) for z in (a, b))
        pdf_a, pdf_b = (math.exp(-z * z / 2) / math.sqrt(2 * math.pi) for z in (a, b))
        return lo * cdf_a + hi * (1 - cdf_b) + mu * (cdf_b - cdf_a) + sigma * (pdf_a - pdf_b)


@dataclass(frozen=True)
class Payload:
    """``random`` bytes (``compressibility`` 0 = incompressible .. 1) or the content of ``file``."""

    kind: str
    compressibility: float
    file: Path | None


@dataclass(frozen=True)
class Keys:
    """Message keys: ``none``, ``round_robin``/``uniform``/``zipf`` over ``count`` distinct keys."""

    kind: str
    count: int | None
    zipf_s: float


@dataclass(frozen=True)
class Backlog:
    """Consumers paused until ``messages`` are produced or ``duration_s`` passed, then drained."""

    messages: int | None
    duration_s: float | None


@dataclass(frozen=True)
class Transactions:
    """Each producer sends in transactions of ``messages`` records, aborting a seeded ``abort_ratio`` of them
    (librdkafka producers only; consumers and the final read use read_committed)."""

    messages: int
    abort_ratio: float


@dataclass(frozen=True)
class TopicSpec:
    """The topic: an existing one (``name``) or one kbench creates per cell."""

    name: str | None
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class Workload:
    """What the load generators do in one cell; ``rate`` None means as fast as possible."""

    message_size: MessageSize
    payload: Payload
    keys: Keys
    producers: int
    consumer_groups: int
    consumers_per_group: int
    rate: float | None
    warmup_s: float
    duration_s: float
    backlog: Backlog | None
    end_to_end: bool
    latency_sample: int | None = None   # max rate: 1 in N messages timed (None: auto); 1 when rate-limited
    transactions: Transactions | None = None


def latency_sample_every(work: Workload, *, verify: bool = False) -> int:
    """How many messages per timed one: 1 for rate-limited runs and ``--verify`` (every ack is needed),
    ``workload.latency_sample`` when set, else 0: *auto*, chosen by each producer from its warm-up rate
    (:func:`bench.load.producer.auto_latency_sample`)."""
    if work.rate is not None or verify:
        return 1
    return work.latency_sample or 0


@dataclass(frozen=True)
class Threshold:
    """An SLO on a result metric (names are checked by the run)."""

    metric: str
    max: float | None
    min: float | None


def _label_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_label_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_label_value(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class Cell:
    """One point of the matrix (index 0 and empty ``params`` when there is no matrix)."""

    index: int
    params: Mapping[str, object]
    topic: TopicSpec
    workload: Workload
    producer: Mapping[str, str]
    consumer: Mapping[str, str]
    client: str = "librdkafka"             # the producers' client (bench.drivers.registry.CLIENTS)
    consumer_client: str = "librdkafka"    # the consumers' client (default: ``client``)
    client_version: str | None = None      # java: the kafka-clients version (default: the broker's)

    def label(self) -> str:
        """``acks=all,message_size=100``: last key segment (full key when ambiguous); ``base`` if none."""
        if not self.params:
            return "base"
        shorts = [split_key(k)[-1] for k in self.params]
        names = [s if shorts.count(s) == 1 else k for s, k in zip(shorts, self.params, strict=True)]
        return ",".join(f"{n}={_label_value(v)}" for n, v in zip(names, self.params.values(), strict=True))


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; ``raw`` is the document after overrides (kbench form for OMB)."""

    name: str
    description: str
    path: Path | None
    sha256: str
    broker: str | None
    cells: tuple[Cell, ...]
    matrix: Mapping[str, tuple[object, ...]]
    thresholds: tuple[Threshold, ...]
    faults: object | None
    search: object | None
    source_format: str
    raw: Mapping[str, object]
    repeat: int = 1           # runs of every cell, each on a fresh topic (``repeat:``, ``kbench run --repeat``)
