"""OpenMessaging Benchmark (OMB) workloads: recognise one and map it onto a kbench document (private).

Every kbench key written from an OMB key keeps that key's line, with a ``from OMB key ...`` note, so
errors in a translated workload still point at the OMB file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

from bench.scenario.source import Ctx, Origin, Origins

__all__ = ["OMB_KEYS", "OMB_PASSTHROUGH", "OMB_UNSUPPORTED", "is_omb", "omb_to_kbench"]

OMB_KEYS = ("name", "topics", "partitionsPerTopic", "messageSize", "producersPerTopic",
            "consumerPerSubscription", "subscriptionsPerTopic", "producerRate", "testDurationMinutes",
            "warmupDurationMinutes", "keyDistributor", "payloadFile", "consumerBacklogSizeGB",
            "useRandomizedPayloads", "randomBytesRatio", "randomizedPayloadPoolSize")
OMB_UNSUPPORTED = ("backlogDrainRatio", "producerStartRate", "acceptableBacklog", "producerIncrementRate",
                   "producerIncrementSeconds", "messageRateReceivedForSubscription",
                   "producerPauseBeforeDrain", "producerPauseDuringDrain", "logIntervalMillis",
                   "existingTopicList", "drainProducerRate", "sampleRateMillis")
OMB_PASSTHROUGH = ("description", "broker", "producer", "consumer", "thresholds", "faults", "search",
                   "matrix")
_OMB_KEYS_TO_KBENCH: dict[str, dict[str, object]] = {"NO_KEY": {"kind": "none"},
                       "KEY_ROUND_ROBIN": {"kind": "round_robin", "count": 10_000},
                       "RANDOM_NANO": {"kind": "uniform", "count": 10_000}}


def is_omb(doc: Mapping[object, object]) -> bool:
    """An OMB workload has an OMB key besides ``name`` and no kbench ``topic``/``workload`` section."""
    return "topic" not in doc and "workload" not in doc and any(
        k in doc for k in (*OMB_KEYS[1:], *OMB_UNSUPPORTED))


def omb_to_kbench(ctx: Ctx, doc: dict[str, object], base_dir: Path) -> tuple[dict[str, object], Origins]:
    """Map an OpenMessaging Benchmark workload onto a kbench document (plus its origins)."""
    for key in doc:
        if key in OMB_UNSUPPORTED:
            raise ctx.error((key,), "this OpenMessaging Benchmark setting is not supported by kbench")
    ctx.mapping(doc, (), (*OMB_KEYS, *OMB_PASSTHROUGH))
    out: dict[str, object] = {k: doc[k] for k in OMB_PASSTHROUGH if k in doc}
    origins: Origins = {p: o for p, o in ctx.origins.items() if not p or p[0] in OMB_PASSTHROUGH}
    topic: dict[str, object] = {}
    work: dict[str, object] = {}

    def put(section: dict[str, object], name: str, key: str, value: object, note: str = "") -> None:
        section[key] = value
        src = ctx.origins.get((name,)) or ctx.origins[()]
        origins[("topic" if section is topic else "workload", key)] = Origin(
            src.file, src.line, f"from OMB key {name}{note}")

    if ctx.integer(doc.get("topics", 1), ("topics",), 0, 1_000_000) != 1:
        raise ctx.error(("topics",), "kbench runs one topic per benchmark cell; only topics: 1 is "
                                     "supported (use partitionsPerTopic to spread the load)")
    if "partitionsPerTopic" in doc:
        put(topic, "partitionsPerTopic", "partitions", doc["partitionsPerTopic"])
    size = ctx.integer(doc.get("messageSize", 1024), ("messageSize",), 1, 100 * 1024 * 1024)
    put(work, "messageSize", "message_size", size)
    for name, key in (("producersPerTopic", "producers"), ("subscriptionsPerTopic", "consumer_groups"),
                      ("consumerPerSubscription", "consumers_per_group")):
        if name in doc:
            put(work, name, key, doc[name])
    if work.get("consumer_groups") == 0 and work.get("consumers_per_group") == 0:
        work["consumers_per_group"] = 1
    rate = ctx.number(doc.get("producerRate", 0), ("producerRate",), 0, 1e12,
                      what="a number of messages per second >= 0 (0 = as fast as possible)")
    put(work, "producerRate", "rate", rate if rate > 0 else "max")
    if "testDurationMinutes" not in doc:
        raise ctx.error(("testDurationMinutes",), "required in an OpenMessaging Benchmark workload")
    minutes = ctx.number(doc["testDurationMinutes"], ("testDurationMinutes",), 0, 1e6)
    put(work, "testDurationMinutes", "duration", minutes * 60)
    warm = ctx.number(doc.get("warmupDurationMinutes", 1), ("warmupDurationMinutes",), 0, 1e6)
    put(work, "warmupDurationMinutes", "warmup", warm * 60)
    dist = ctx.choice(doc.get("keyDistributor", "NO_KEY"), ("keyDistributor",), list(_OMB_KEYS_TO_KBENCH))
    put(work, "keyDistributor", "keys", dict(_OMB_KEYS_TO_KBENCH[dist]))
    if ctx.boolean(doc.get("useRandomizedPayloads", False), ("useRandomizedPayloads",)):
        ratio = ctx.number(doc.get("randomBytesRatio", 0.0), ("randomBytesRatio",), 0, 1)
        put(work, "randomBytesRatio", "payload", {"kind": "random", "compressibility": 1.0 - ratio})
        ctx.integer(doc.get("randomizedPayloadPoolSize", 0), ("randomizedPayloadPoolSize",), 0, 10**9)
    elif doc.get("payloadFile") is not None:
        rel = ctx.string(doc["payloadFile"], ("payloadFile",), max_len=4096)
        found = next((c for c in (base_dir / rel, base_dir.parent / rel) if c.is_file()), None)
        put(work, "payloadFile", "payload", {"kind": "file", "file": str(found or rel)},
            "; OMB resolves it from its checkout: copy the file next to the workload, or set "
            "useRandomizedPayloads: true")
    gib = ctx.number(doc.get("consumerBacklogSizeGB", 0), ("consumerBacklogSizeGB",), 0, 1e6)
    if gib > 0:
        put(work, "consumerBacklogSizeGB", "backlog", {"messages": math.ceil(gib * 2**30 / size)})
    if isinstance(doc.get("name"), str):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(doc["name"])).strip("-.")[:100]
        if slug:
            out["name"] = slug
        out.setdefault("description", doc["name"])
    elif doc.get("name") is not None:
        ctx.string(doc["name"], ("name",))
    out["topic"] = topic
    out["workload"] = work
    return out, origins
