"""Scenario files: YAML -> validated, frozen, typed :class:`Scenario`, expanded into matrix :class:`Cell`\\ s.

A scenario is a kbench document (``name``, ``topic``, ``workload``, ``producer``, ``consumer``,
``matrix``, ``thresholds``, ``faults``, ``search``; see the README's scenario reference) or an
OpenMessaging Benchmark workload (detected by its keys). ``--set key=value`` overrides are applied
before validation (to the kbench form of an OMB workload). Every problem is a
:class:`~bench.errors.ScenarioError` naming file, line, dotted key and what was expected. Each matrix
cell is validated on its own; an error in a matrix value names ``matrix.<key>[i]``.

All mappings in the result are read-only; :func:`to_plain` turns ``Scenario.raw``/``faults``/``search``
back into plain dicts and lists for JSON.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from bench.errors import ScenarioError
from bench.scenario import omb as _omb
from bench.scenario import source as _yaml
from bench.scenario.source import Ctx, KeyPath, parse_duration, show, split_key, to_plain

__all__ = ["Backlog", "Cell", "Keys", "MessageSize", "Payload", "Scenario", "Threshold", "TopicSpec",
           "Workload", "load_scenario", "load_scenario_text", "parse_duration", "to_plain"]

MAX_MESSAGE_SIZE = 100 * 1024 * 1024
MAX_RATE = 1e8
MAX_CELLS = 256
TOP_KEYS = ("name", "description", "broker", "topic", "workload", "producer", "consumer", "matrix",
            "thresholds", "faults", "search", "repeat")
MAX_REPEAT = 100
TOPIC_KEYS = ("name", "partitions", "replication_factor", "config")
WORKLOAD_KEYS = ("message_size", "payload", "keys", "producers", "consumer_groups", "consumers_per_group",
                 "rate", "warmup", "duration", "backlog", "end_to_end", "latency_sample")
SUB_KEYS = {"message_size": ("distribution", "value", "min", "max", "mean", "stddev", "values", "weights"),
            "payload": ("kind", "compressibility", "file"), "keys": ("kind", "count", "zipf_s"),
            "backlog": ("messages", "duration")}
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


# ------------------------------------------------------------------------------------------- sections
def _message_size(ctx: Ctx, value: object, path: KeyPath) -> MessageSize:
    if not isinstance(value, dict):
        n = ctx.integer(value, path, 1, MAX_MESSAGE_SIZE, what=f"a size in bytes from 1 to {MAX_MESSAGE_SIZE}"
                        " or a mapping {distribution: fixed|uniform|normal|choice, ...}")
        return MessageSize("fixed", value=n, min=n, max=n)
    d = ctx.mapping(value, path, SUB_KEYS["message_size"])
    dist = ctx.choice(d.get("distribution"), (*path, "distribution"), list(_DIST_KEYS))
    for key in d:
        if key != "distribution" and key not in _DIST_KEYS[dist]:
            raise ctx.error((*path, key), f"does not apply to distribution {dist} "
                                          f"(its keys: {', '.join(_DIST_KEYS[dist])})")

    def get(key: str, default: object = None) -> object:
        if key not in d and default is None:
            raise ctx.error((*path, key), f"required for distribution {dist}")
        return d.get(key, default)

    def size(key: str, default: object = None) -> int:
        return ctx.integer(get(key, default), (*path, key), 1, MAX_MESSAGE_SIZE)

    if dist == "fixed":
        n = size("value")
        return MessageSize("fixed", value=n, min=n, max=n)
    if dist == "choice":
        raw_values = get("values")
        if not isinstance(raw_values, list) or not 1 <= len(raw_values) <= 1000:
            raise ctx.error((*path, "values"), f"expected a list of 1 to 1000 sizes, got {show(raw_values)}")
        values = tuple(ctx.integer(v, (*path, "values", i), 1, MAX_MESSAGE_SIZE)
                       for i, v in enumerate(raw_values))
        raw_weights = d.get("weights", [1.0] * len(values))
        if not isinstance(raw_weights, list) or len(raw_weights) != len(values):
            raise ctx.error((*path, "weights"), f"expected a list of {len(values)} weights (one per value)"
                                                f", got {show(raw_weights)}")
        weights = tuple(ctx.number(w, (*path, "weights", i), 0, 1e12) for i, w in enumerate(raw_weights))
        if sum(weights) <= 0:
            raise ctx.error((*path, "weights"), "expected at least one weight > 0")
        return MessageSize("choice", min=min(values), max=max(values), values=values,
                           weights=tuple(w / sum(weights) for w in weights))
    if dist == "uniform":
        lo, hi = size("min"), size("max")
    else:
        mean = ctx.number(get("mean"), (*path, "mean"), 1, MAX_MESSAGE_SIZE)
        stddev = ctx.number(get("stddev"), (*path, "stddev"), 0, MAX_MESSAGE_SIZE)
        lo, hi = size("min", 1), size("max", MAX_MESSAGE_SIZE)
    if lo > hi:
        raise ctx.error((*path, "max"), f"expected max >= min ({lo}), got {hi}")
    if dist == "uniform":
        return MessageSize("uniform", min=lo, max=hi)
    return MessageSize("normal", min=lo, max=hi, mean=mean, stddev=stddev)


def _payload(ctx: Ctx, value: object, path: KeyPath, base_dir: Path) -> Payload:
    d = ctx.mapping(value, path, SUB_KEYS["payload"])
    kind = ctx.choice(d.get("kind", "random"), (*path, "kind"), ("random", "file"))
    if kind == "random":
        if "file" in d:
            raise ctx.error((*path, "file"), "only for kind: file")
        return Payload("random", ctx.number(d.get("compressibility", 0.0), (*path, "compressibility"), 0, 1),
                       None)
    if "compressibility" in d:
        raise ctx.error((*path, "compressibility"), "only for kind: random")
    rel = ctx.string(d.get("file"), (*path, "file"), max_len=4096, what="a file path (relative to the "
                     "scenario file)")
    try:
        file = (base_dir / rel).resolve()
        ok = file.is_file() and file.stat().st_size > 0
    except (OSError, ValueError, RuntimeError):
        ok = False
    if not ok:
        raise ctx.error((*path, "file"), f"expected an existing, non-empty file, got {show(rel)} "
                                         f"(looked in {base_dir})")
    return Payload("file", 0.0, file)


def _keys(ctx: Ctx, value: object, path: KeyPath) -> Keys:
    if isinstance(value, str):
        value = {"kind": value}
    d = ctx.mapping(value, path, SUB_KEYS["keys"], what="a mapping {kind: ..., count: ...} or 'none'")
    kind = ctx.choice(d.get("kind", "none"), (*path, "kind"), ("none", "round_robin", "uniform", "zipf"))
    if kind == "none":
        if "count" in d:
            raise ctx.error((*path, "count"), "does not apply to kind: none")
        count = None
    elif "count" not in d:
        raise ctx.error((*path, "count"), f"required for kind: {kind} (number of distinct keys)")
    else:
        count = ctx.integer(d["count"], (*path, "count"), 1, 10_000_000)
    if "zipf_s" in d and kind != "zipf":
        raise ctx.error((*path, "zipf_s"), "only for kind: zipf")
    zipf_s = ctx.number(d.get("zipf_s", 1.2), (*path, "zipf_s"), 1, 100, lo_open=True)
    return Keys(kind, count, zipf_s)


def _backlog(ctx: Ctx, value: object, path: KeyPath) -> Backlog | None:
    if value is None:
        return None
    d = ctx.mapping(value, path, SUB_KEYS["backlog"], what="{messages: N} or {duration: 10s}")
    if len(d) != 1:
        raise ctx.error(path, f"expected exactly one of messages or duration, got {len(d)} keys")
    if "messages" in d:
        return Backlog(ctx.integer(d["messages"], (*path, "messages"), 1, 10**12), None)
    return Backlog(None, ctx.duration(d["duration"], (*path, "duration"), positive=True))


def _rate(ctx: Ctx, value: object, path: KeyPath) -> float | None:
    if isinstance(value, str) and value.strip().lower() == "max":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > MAX_RATE:
        raise ctx.error(path, f"expected at most {MAX_RATE:g} msgs/s or 'max', got {show(value)}")
    return ctx.number(value, path, 0, MAX_RATE, lo_open=True, what="a positive number or 'max'")


def _latency_sample(ctx: Ctx, value: object, path: KeyPath) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    return ctx.integer(value, path, 1, 1024, what="'auto' or an integer 1..1024 (time 1 in N messages)")


def _workload(ctx: Ctx, value: object, topic: TopicSpec, base_dir: Path) -> Workload:
    path: KeyPath = ("workload",)
    d = ctx.mapping(value, path, WORKLOAD_KEYS)

    def at(key: str) -> KeyPath:
        return (*path, key)

    work = Workload(
        message_size=_message_size(ctx, d.get("message_size", 1024), at("message_size")),
        payload=_payload(ctx, d.get("payload"), at("payload"), base_dir),
        keys=_keys(ctx, d.get("keys"), at("keys")),
        producers=ctx.integer(d.get("producers", 1), at("producers"), 0, 64),
        consumer_groups=ctx.integer(d.get("consumer_groups", 1), at("consumer_groups"), 0, 16),
        consumers_per_group=ctx.integer(d.get("consumers_per_group", 1), at("consumers_per_group"), 1, 64),
        rate=_rate(ctx, d.get("rate", 1000), at("rate")),
        warmup_s=ctx.duration(d.get("warmup", 5.0), at("warmup"), positive=False),
        duration_s=ctx.duration(d.get("duration", 20.0), at("duration"), positive=True),
        backlog=_backlog(ctx, d.get("backlog"), at("backlog")),
        end_to_end=ctx.boolean(d.get("end_to_end", True), at("end_to_end")),
        latency_sample=_latency_sample(ctx, d.get("latency_sample", "auto"), at("latency_sample")),
    )
    if work.latency_sample not in (None, 1) and work.rate is not None:
        raise ctx.error(at("latency_sample"), "sampling applies to rate: max only (a rate-limited run times "
                        f"every message, from its intended send time); got {work.latency_sample} with a rate")
    if work.producers == 0 and work.consumer_groups == 0:
        raise ctx.error(at("producers"), "nothing to run: producers and consumer_groups are both 0")
    if work.producers == 0 and topic.name is None:
        raise ctx.error(at("producers"), "0 producers (consume-only) needs an existing topic: set topic.name")
    if work.backlog is not None and (work.producers == 0 or work.consumer_groups == 0):
        raise ctx.error(at("backlog"), "a backlog needs producers >= 1 and consumer_groups >= 1")
    return work


def _topic(ctx: Ctx, value: object) -> TopicSpec:
    d = ctx.mapping(value, ("topic",), TOPIC_KEYS)
    name = d.get("name")
    if name is not None:
        name = ctx.string(name, ("topic", "name"), pattern=_TOPIC_RE,
                          what="a topic name (1-249 of [A-Za-z0-9._-]) or null")
        if name in (".", ".."):
            raise ctx.error(("topic", "name"), f"'{name}' is not a valid topic name")
    return TopicSpec(
        name=name,
        partitions=ctx.integer(d.get("partitions", 1), ("topic", "partitions"), 1, 10_000),
        replication_factor=ctx.integer(d.get("replication_factor", 1), ("topic", "replication_factor"), 1, 10),
        config=ctx.properties(d.get("config"), ("topic", "config")),
    )


def _thresholds(ctx: Ctx, value: object) -> tuple[Threshold, ...]:
    if value is None:
        return ()
    what = "a list of {metric: name, max: number} or {metric: name, min: number}"
    if not isinstance(value, list) or len(value) > 1000:
        raise ctx.error(("thresholds",), f"expected {what}, got {show(value)}")
    out = []
    for i, item in enumerate(value):
        path: KeyPath = ("thresholds", i)
        d = ctx.mapping(item, path, ("metric", "max", "min"), what="{metric: name, max|min: number}",
                        null_ok=False)
        metric = ctx.string(d.get("metric"), (*path, "metric"), max_len=200, what="a metric name")
        hi = None if d.get("max") is None else ctx.number(d["max"], (*path, "max"), -1e300, 1e300)
        lo = None if d.get("min") is None else ctx.number(d["min"], (*path, "min"), -1e300, 1e300)
        if hi is None and lo is None:
            raise ctx.error(path, "expected max or min (or both)")
        if hi is not None and lo is not None and lo > hi:
            raise ctx.error((*path, "min"), f"expected min <= max ({hi:g}), got {lo:g}")
        out.append(Threshold(metric, hi, lo))
    return tuple(out)


# --------------------------------------------------------------------------------------------- matrix
def _matrix_target(ctx: Ctx, key: str) -> tuple[str, ...]:
    target = split_key(key)
    head, rest = target[0], target[1:]
    ok = all(target) and (
        (head in ("producer", "consumer") and len(rest) == 1)
        or (head == "topic" and len(rest) == 1 and rest[0] in TOPIC_KEYS)
        or (head == "topic" and len(rest) == 2 and rest[0] == "config")
        or (head == "workload" and len(rest) == 1 and rest[0] in WORKLOAD_KEYS)
        or (head == "workload" and len(rest) == 2 and rest[1] in SUB_KEYS.get(rest[0], ())))
    if not ok:
        raise ctx.error(("matrix", key), "unknown matrix key; expected topic.<key>, topic.config.<property>, "
                                         "workload.<key>[.<subkey>], producer.<property> or consumer.<property>")
    return target


def _matrix(ctx: Ctx, value: object) -> dict[str, tuple[tuple[str, ...], list[object]]]:
    d = ctx.mapping(value, ("matrix",), None, what="a mapping of dotted key -> list of values")
    out: dict[str, tuple[tuple[str, ...], list[object]]] = {}
    for key, values in d.items():
        target = _matrix_target(ctx, key)
        if not isinstance(values, list) or not values:
            raise ctx.error(("matrix", key), f"expected a non-empty list of values, got {show(values)}")
        for other, (other_target, _) in out.items():
            n = min(len(target), len(other_target))
            if target[:n] == other_target[:n]:
                raise ctx.error(("matrix", key), f"overlaps matrix key {other}")
        out[key] = (target, values)
    cells = math.prod(len(v) for _, v in out.values())
    if cells > MAX_CELLS:
        raise ctx.error(("matrix",), f"expands to {cells} cells; the limit is {MAX_CELLS}")
    return out


def _cells(ctx: Ctx, doc: dict[str, object], matrix: dict[str, tuple[tuple[str, ...], list[object]]],
           base_dir: Path) -> tuple[Cell, ...]:
    base = {k: v for k, v in doc.items() if k != "matrix"}
    keys = list(matrix)
    cells = []
    for index, combo in enumerate(itertools.product(*(list(enumerate(matrix[k][1])) for k in keys))):
        cell_doc = dict(base)
        aliases: list[tuple[KeyPath, KeyPath]] = []
        for key, (i, value) in zip(keys, combo, strict=True):
            target = matrix[key][0]
            bad = _yaml.set_path(cell_doc, target, value)
            if bad is not None:
                raise ctx.error(("matrix", key), f"cannot set {key}: {_yaml.format_path(bad)} is not a mapping")
            aliases.append((target, ("matrix", key, i)))
        cctx = ctx.with_aliases(aliases)
        topic = _topic(cctx, cell_doc.get("topic"))
        cells.append(Cell(
            index=index,
            params=MappingProxyType({k: _yaml.freeze(v) for k, (_, v) in zip(keys, combo, strict=True)}),
            topic=topic,
            workload=_workload(cctx, cell_doc.get("workload"), topic, base_dir),
            producer=cctx.properties(cell_doc.get("producer"), ("producer",)),
            consumer=cctx.properties(cell_doc.get("consumer"), ("consumer",)),
        ))
    return tuple(cells)


# ---------------------------------------------------------------------------------------------- load
def _build(text: str, *, filename: str, overrides: Sequence[str], base_dir: Path, path: Path | None,
           sha256: str) -> Scenario:
    data, origins = _yaml.compose(text, filename)
    ctx = Ctx(filename, origins)
    if not isinstance(data, dict):
        raise ctx.error((), f"expected a mapping of scenario keys at the top level, got {show(data)}")
    source_format = "kbench"
    if _omb.is_omb(data):
        ctx.mapping(data, (), None)
        data, origins = _omb.omb_to_kbench(ctx, data, base_dir)
        ctx = Ctx(filename, origins)
        source_format = "omb"
    doc = _yaml.apply_overrides(data, origins, overrides)
    _yaml.check_plain(ctx, doc)
    ctx.mapping(doc, (), TOP_KEYS)
    if doc.get("name") is None:
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(filename).stem).strip("-.")[:100] or "scenario"
    else:
        name = ctx.string(doc["name"], ("name",), pattern=_NAME_RE, max_len=100,
                          what="a name of 1-100 characters [A-Za-z0-9._-]")
    description = "" if doc.get("description") is None else ctx.string(
        doc["description"], ("description",), what="a string")
    broker = None if doc.get("broker") is None else ctx.choice(doc["broker"], ("broker",), ("kafka", "tansu"))
    for key in ("faults", "search"):
        if doc.get(key) is not None and not isinstance(doc[key], dict | list):
            raise ctx.error((key,), f"expected a mapping or a list, got {show(doc[key])}")
    repeat = ctx.integer(1 if doc.get("repeat") is None else doc["repeat"], ("repeat",), 1, MAX_REPEAT,
                         what=f"a number of runs per cell from 1 to {MAX_REPEAT}")
    matrix = _matrix(ctx, doc.get("matrix"))
    thresholds = _thresholds(ctx, doc.get("thresholds"))
    cells = _cells(ctx, doc, matrix, base_dir)
    return Scenario(
        name=name, description=description, path=path, sha256=sha256, broker=broker, cells=cells,
        matrix=MappingProxyType({k: tuple(_yaml.freeze(x) for x in v) for k, (_, v) in matrix.items()}),
        thresholds=thresholds, faults=_yaml.freeze(doc.get("faults")), search=_yaml.freeze(doc.get("search")),
        source_format=source_format, raw=MappingProxyType({k: _yaml.freeze(v) for k, v in doc.items()}),
        repeat=repeat,
    )


def load_scenario(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Scenario:
    """Load and validate a scenario file (kbench or OpenMessaging Benchmark workload YAML)."""
    file = Path(path)
    filename = str(path)
    try:
        if file.stat().st_size > _yaml.MAX_FILE_BYTES:
            raise ScenarioError(f"file is larger than {_yaml.MAX_FILE_BYTES} bytes; not a scenario?", file=filename)
        data = file.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario file: {exc.strerror or exc}", file=filename) from None
    text = _yaml.decode(data, filename)
    return _build(text, filename=filename, overrides=overrides, base_dir=file.resolve().parent,
                  path=file.resolve(), sha256=hashlib.sha256(data).hexdigest())


def load_scenario_text(text: str, *, filename: str = "<string>", overrides: Sequence[str] = (),
                       base_dir: Path | None = None) -> Scenario:
    """Validate scenario text; relative payload files resolve against ``base_dir`` (default: cwd)."""
    if isinstance(text, bytes | bytearray):
        raw = bytes(text)
        text = _yaml.decode(raw, filename)
    else:
        raw = text.encode("utf-8", "surrogatepass")
        if len(raw) > _yaml.MAX_FILE_BYTES:
            raise ScenarioError(f"text is larger than {_yaml.MAX_FILE_BYTES} bytes; not a scenario?", file=filename)
    return _build(text, filename=filename, overrides=overrides, base_dir=Path(base_dir or Path.cwd()),
                  path=None, sha256=hashlib.sha256(raw).hexdigest())
