"""Validation of the scenario's sections (topic, workload and its parts, thresholds) into the typed model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.scenario.source import Ctx, KeyPath, show
from bench.scenario.types import (
    _DIST_KEYS,
    _TOPIC_RE,
    MAX_MESSAGE_SIZE,
    MAX_RATE,
    MAX_TXN_MESSAGES,
    SUB_KEYS,
    TOPIC_KEYS,
    WORKLOAD_KEYS,
    Backlog,
    Keys,
    MessageSize,
    Payload,
    Threshold,
    TopicSpec,
    Transactions,
    Workload,
)

#: the one client that runs transactional workloads (its in-process producer and consumer workers)
TXN_CLIENT = "librdkafka"


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


def _transactions(ctx: Ctx, value: object, path: KeyPath) -> Transactions | None:
    if value is None:
        return None
    d = ctx.mapping(value, path, SUB_KEYS["transactions"], what="{messages: N, abort_ratio: r}")
    if "messages" not in d:
        raise ctx.error((*path, "messages"), "required: records per transaction (an integer >= 1)")
    return Transactions(
        messages=ctx.integer(d["messages"], (*path, "messages"), 1, MAX_TXN_MESSAGES,
                             what=f"records per transaction, an integer from 1 to {MAX_TXN_MESSAGES}"),
        abort_ratio=ctx.number(d.get("abort_ratio", 0.0), (*path, "abort_ratio"), 0, 1,
                               what="the fraction of transactions aborted, a number from 0 to 1"))


def check_transactions(ctx: Ctx, work: Workload, producer: Mapping[str, str], consumer: Mapping[str, str],
                       clients: tuple[str, str]) -> None:
    """A transactional workload's cell: librdkafka clients, producers, acks=all, idempotence on, and the
    properties kbench sets itself (``transactional.id``, the consumers' ``isolation.level``) left alone."""
    if work.transactions is None:
        return
    at: KeyPath = ("workload", "transactions")
    for key, client in zip(("client", "consumer_client"), clients, strict=True):
        if client != TXN_CLIENT:
            raise ctx.error((key,), f"workload.transactions runs on the {TXN_CLIENT} workers only; got {client} "
                                    "(the external drivers do not take transactions yet)")
    if work.producers == 0:
        raise ctx.error((*at[:1], "producers"), "workload.transactions needs producers >= 1")
    acks = producer.get("acks", producer.get("request.required.acks"))
    if acks is not None and acks.lower() not in ("all", "-1"):
        raise ctx.error(("producer", "acks"), f"a transactional producer needs acks: all, got {acks}")
    if producer.get("enable.idempotence", "true").lower() != "true":
        raise ctx.error(("producer", "enable.idempotence"), "a transactional producer is idempotent: "
                        "expected true (or unset)")
    if "transactional.id" in producer:
        raise ctx.error(("producer", "transactional.id"), "set by kbench with workload.transactions (one per "
                        "run, cell and producer); remove it")
    iso = consumer.get("isolation.level")
    if iso is not None and iso != "read_committed":
        raise ctx.error(("consumer", "isolation.level"), f"consumers of a transactional workload read "
                        f"read_committed (kbench sets it); got {iso}")


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
        transactions=_transactions(ctx, d.get("transactions"), at("transactions")),
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
