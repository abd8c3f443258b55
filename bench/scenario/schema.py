"""The JSON Schema (draft 2020-12) of a kbench scenario file, for editors and as a published contract.

Written here by hand, as Python data, from what :mod:`bench.scenario.model` (and, for ``faults:`` and ``search:``,
:mod:`bench.faults.plan` and :mod:`bench.capacity.spec`) accept, and published as ``schemas/scenario.schema.json``
(``python -m bench.scenario.schema > schemas/scenario.schema.json``; tests/test_scenario_schema.py fails when
the committed file differs, or when a shipped scenario does not validate). Scenario files point editors at it
with a first line ``# yaml-language-server: $schema=../schemas/scenario.schema.json``.

The loader stays the source of truth and gives the line-accurate errors; the schema is deliberately
permissive where the loader checks combinations a schema cannot express well (matrix cell count, a
duration string's range, a payload file's existence, min <= max, the fault times against the run length).
OpenMessaging Benchmark workloads, which the loader also accepts, are not described here.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.brokers import KINDS
from bench.capacity.spec import METRICS, SEARCH_KEYS
from bench.drivers.registry import CLIENTS
from bench.faults.plan import (
    ACTIONS,
    FAULT_KEYS,
    MAX_FAULT_S,
    MAX_LATENCY_S,
    MAX_NODE_ID,
    MAX_RATE_KBS,
    MODES,
    NET_ACTIONS,
    NODE_ACTIONS,
    PROXY_ACTIONS,
    SHAPES,
)
from bench.scenario.source import MAX_DURATION_S
from bench.scenario.types import (
    MAX_MESSAGE_SIZE,
    MAX_RATE,
    MAX_REPEAT,
    MAX_TXN_MESSAGES,
    SUB_KEYS,
    TOP_KEYS,
    TOPIC_KEYS,
    WORKLOAD_KEYS,
)

__all__ = ["SCENARIO_SCHEMA", "main"]

_NULL: dict[str, Any] = {"type": "null"}
_DURATION_STRING = r"^\s*(\d+(\.\d*)?|\.\d+)\s*([mM][sS]|[sS]|[mM]|[hH])?\s*$"


def _int(lo: int, hi: int, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi}
    if description:
        out["description"] = description
    return out


def _num(lo: float, hi: float, *, lo_open: bool = False, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "number", ("exclusiveMinimum" if lo_open else "minimum"): lo, "maximum": hi}
    if description:
        out["description"] = description
    return out


def _duration(*, positive: bool, maximum: float = MAX_DURATION_S, description: str = "") -> dict[str, Any]:
    """Seconds (a number) or a string like '500ms', '5s', '2m', '1h' (its range is checked by the loader)."""
    bound = "> 0" if positive else ">= 0"
    return {
        "description": (f"{description}{' ' if description else ''}a duration {bound}, at most {maximum:g} s: "
                        "seconds, or a string like '500ms', '5s', '2m', '1h'"),
        "anyOf": [_num(0, maximum, lo_open=positive), {"type": "string", "pattern": _DURATION_STRING}],
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [_NULL, schema]}


def _obj(keys: tuple[str, ...], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    assert set(properties) == set(keys), (sorted(properties), sorted(keys))
    return {"type": "object", "properties": {k: properties[k] for k in keys}, "additionalProperties": False,
            **extra}


_SIZE = _int(1, MAX_MESSAGE_SIZE)

_MESSAGE_SIZE: dict[str, Any] = {
    "description": "bytes per message: a size, or a distribution {distribution: fixed|uniform|normal|choice, ...}",
    "anyOf": [
        _SIZE,
        {"type": "object", "required": ["distribution", "value"], "additionalProperties": False,
         "properties": {"distribution": {"const": "fixed"}, "value": _SIZE}},
        {"type": "object", "required": ["distribution", "min", "max"], "additionalProperties": False,
         "properties": {"distribution": {"const": "uniform"}, "min": _SIZE, "max": _SIZE}},
        {"type": "object", "required": ["distribution", "mean", "stddev"], "additionalProperties": False,
         "description": "normal sizes, rounded and clipped to [min, max] (default 1 .. the maximum size)",
         "properties": {"distribution": {"const": "normal"}, "mean": _num(1, MAX_MESSAGE_SIZE),
                        "stddev": _num(0, MAX_MESSAGE_SIZE), "min": _SIZE, "max": _SIZE}},
        {"type": "object", "required": ["distribution", "values"], "additionalProperties": False,
         "properties": {"distribution": {"const": "choice"},
                        "values": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _SIZE},
                        "weights": {"type": "array", "maxItems": 1000, "items": _num(0, 1e12),
                                    "description": "one weight per value (default: equal); at least one > 0"}}},
    ],
}
assert {k for branch in _MESSAGE_SIZE["anyOf"][1:] for k in branch["properties"]} == \
    {"distribution", *SUB_KEYS["message_size"]}

_PAYLOAD: dict[str, Any] = _nullable(_obj(SUB_KEYS["payload"], {
    "kind": {"enum": ["random", "file"], "default": "random"},
    "compressibility": _num(0, 1, description="kind random: 0 = incompressible .. 1 (default 0)"),
    "file": {"type": "string", "minLength": 1, "maxLength": 4096,
             "description": "kind file: an existing, non-empty file, relative to the scenario file"},
}, allOf=[{"if": {"required": ["kind"], "properties": {"kind": {"const": "file"}}},
           "then": {"required": ["file"], "not": {"required": ["compressibility"]}},
           "else": {"not": {"required": ["file"]}}}]))

_KEY_KINDS = ["none", "round_robin", "uniform", "zipf"]
_KEYS: dict[str, Any] = {
    "description": "message keys: 'none', or {kind: round_robin|uniform|zipf, count: N distinct keys}",
    "anyOf": [_NULL, {"const": "none"}, _obj(SUB_KEYS["keys"], {
        "kind": {"enum": _KEY_KINDS, "default": "none"},
        "count": _int(1, 10_000_000, "number of distinct keys (required unless kind is none)"),
        "zipf_s": _num(1, 100, lo_open=True, description="kind zipf: the exponent (default 1.2)"),
    }, allOf=[
        {"if": {"required": ["kind"], "properties": {"kind": {"enum": _KEY_KINDS[1:]}}},
         "then": {"required": ["count"]}, "else": {"not": {"required": ["count"]}}},
        {"if": {"not": {"required": ["kind"], "properties": {"kind": {"const": "zipf"}}}},
         "then": {"not": {"required": ["zipf_s"]}}},
    ])],
}

_BACKLOG: dict[str, Any] = _nullable(_obj(SUB_KEYS["backlog"], {
    "messages": _int(1, 10**12),
    "duration": _duration(positive=True),
}, minProperties=1, maxProperties=1,
   description="consumers stay paused until this many messages are produced or this time passed; exactly one key"))

_RATE: dict[str, Any] = {
    "description": "offered load in messages/s (open loop), or 'max' (closed loop, as fast as possible)",
    "anyOf": [_num(0, MAX_RATE, lo_open=True), {"type": "string", "pattern": r"^\s*[mM][aA][xX]\s*$"}],
}

_LATENCY_SAMPLE: dict[str, Any] = {
    "description": "rate max only: time 1 in N messages, or 'auto' (the default); a rate-limited run times all",
    "anyOf": [_int(1, 1024), {"type": "string", "pattern": r"^\s*[aA][uU][tT][oO]\s*$"}],
}

_TRANSACTIONS: dict[str, Any] = _nullable(_obj(SUB_KEYS["transactions"], {
    "messages": _int(1, MAX_TXN_MESSAGES, "records per transaction"),
    "abort_ratio": _num(0, 1, description="the fraction of transactions aborted, chosen per producer from a "
                        "seeded random stream (default 0)"),
}, required=["messages"], description="each producer sends in transactions (librdkafka clients only; acks all, "
   "idempotent; consumers and the final read use read_committed)"))

_WORKLOAD: dict[str, Any] = _nullable(_obj(WORKLOAD_KEYS, {
    "message_size": _MESSAGE_SIZE,
    "payload": _PAYLOAD,
    "keys": _KEYS,
    "producers": _int(0, 64, "producer processes (0: consume-only, needs topic.name)"),
    "consumer_groups": _int(0, 16),
    "consumers_per_group": _int(1, 64),
    "rate": _RATE,
    "warmup": _duration(positive=False, description="unmeasured time before the window (default 5 s):"),
    "duration": _duration(positive=True, description="the measurement window (default 20 s):"),
    "backlog": _BACKLOG,
    "end_to_end": {"type": "boolean"},
    "latency_sample": _LATENCY_SAMPLE,
    "transactions": _TRANSACTIONS,
}))

_PROPERTIES: dict[str, Any] = _nullable({
    "type": "object",
    "description": "configuration properties (librdkafka or topic configs): name -> string, number or boolean",
    "propertyNames": {"pattern": r"^[A-Za-z0-9._-]{1,255}$"},
    "additionalProperties": {"anyOf": [{"type": "string", "maxLength": 10_000}, {"type": "number"},
                                       {"type": "boolean"}]},
})

_TOPIC: dict[str, Any] = _nullable(_obj(TOPIC_KEYS, {
    "name": _nullable({"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,249}$", "not": {"enum": [".", ".."]},
                       "description": "an existing topic to use; absent or null: kbench creates one per cell"}),
    "partitions": _int(1, 10_000),
    "replication_factor": _int(1, 10),
    "config": _PROPERTIES,
}))

_SUB = "|".join(f"{k}(\\.({'|'.join(v)}))?" if k in SUB_KEYS else k for k, v in
                ((k, SUB_KEYS.get(k, ())) for k in WORKLOAD_KEYS))
_MATRIX: dict[str, Any] = _nullable({
    "type": "object",
    "description": "dotted key -> non-empty list of values; the cells are the cross product (at most 256)",
    "propertyNames": {"pattern": f"^(topic\\.({'|'.join(TOPIC_KEYS)})|topic\\.config\\..+|workload\\.({_SUB})"
                                 r"|producer\..+|consumer\..+|client|consumer_client|client_version)$"},
    "additionalProperties": {"type": "array", "minItems": 1},
})

_THRESHOLDS: dict[str, Any] = _nullable({
    "type": "array", "maxItems": 1000,
    "items": _obj(("metric", "max", "min"), {
        "metric": {"type": "string", "minLength": 1, "maxLength": 200},
        "max": _nullable({"type": "number"}),
        "min": _nullable({"type": "number"}),
    }, required=["metric"],
       anyOf=[{"required": ["max"], "properties": {"max": {"type": "number"}}},
              {"required": ["min"], "properties": {"min": {"type": "number"}}}]),
})

_FAULTS: dict[str, Any] = _nullable({
    "type": "array",
    "description": "fault actions during the load (needs an embedded broker); see docs/faults.md",
    "items": _obj(FAULT_KEYS, {
        "action": {"enum": list(ACTIONS)},
        "node": {"anyOf": [{"enum": ["leader", "all"]}, _int(1, MAX_NODE_ID)],
                 "description": "a node id, or 'leader' (of `partition`); network actions: also 'all' (default)"},
        "partition": _int(0, 10_000, "node leader: whose leader (default 0)"),
        "at": _duration(positive=False, maximum=MAX_FAULT_S, description="from load start (default: `every`):"),
        "every": _duration(positive=True, maximum=MAX_FAULT_S, description="repeat (at least 1 s):"),
        "until": _duration(positive=True, maximum=MAX_FAULT_S, description="with `every`: last time:"),
        "duration": _duration(positive=True, maximum=MAX_FAULT_S, description="how long the node stays down "
                              "(network actions: how long the toxic stays on; absent: until the end of load):"),
        "latency": _duration(positive=True, maximum=MAX_LATENCY_S, description="action latency: added per round "
                             "trip (at least 1 ms):"),
        "jitter": _duration(positive=False, maximum=MAX_LATENCY_S, description="action latency: ± (at most "
                            "`latency`):"),
        "rate": _int(1, MAX_RATE_KBS, "action bandwidth: the limit in KB/s, each direction"),
        "shape": {"enum": list(SHAPES), "default": "isolate",
                  "description": "action partition: both ways, or only the node's packets out / in"},
        "mode": {"enum": list(MODES), "default": "drop", "description": "action partition: time out or refuse"},
        "clients": {"type": "boolean", "default": False,
                    "description": "action partition: cut the clients from the node too"},
    }, required=["action"],
       anyOf=[{"required": ["at"]}, {"required": ["every"]}],
       dependentRequired={"until": ["every"]},
       dependentSchemas={"partition": {"properties": {"node": {"const": "leader"}}}},
       allOf=[{"if": {"properties": {"action": {"const": "pause"}}}, "then": {"required": ["duration"]}},
              {"if": {"properties": {"action": {"enum": list(NET_ACTIONS)}}},
               "then": {"required": ["node"], "properties": {"node": {"not": {"const": "all"}}}},
               "else": {"properties": {"shape": False, "mode": False, "clients": False}}},
              {"if": {"properties": {"action": {"enum": list(NODE_ACTIONS)}}},
               "then": {"required": ["node"], "properties": {"node": {"not": {"const": "all"}}}}},
              {"if": {"properties": {"action": {"const": "latency"}}}, "then": {"required": ["latency"]},
               "else": {"properties": {"latency": False, "jitter": False}}},
              {"if": {"properties": {"action": {"const": "bandwidth"}}}, "then": {"required": ["rate"]},
               "else": {"properties": {"rate": False}}},
              {"if": {"properties": {"action": {"enum": [*PROXY_ACTIONS, *NET_ACTIONS]}}, "required": ["every"]},
               "then": {"required": ["duration"]}}]),
})

_SEARCH_RATE = _num(1, MAX_RATE, description="messages/s")
_SEARCH: dict[str, Any] = _nullable(_obj(SEARCH_KEYS, {
    "metric": {"enum": list(METRICS), "default": "publish"},
    "p99_ms": _num(0, 3_600_000, lo_open=True, description="the latency SLO (p99, milliseconds)"),
    "start_rate": _SEARCH_RATE,
    "max_rate": _SEARCH_RATE,
    "min_rate": _SEARCH_RATE,
    "step": _obj(("factor", "add"), {"factor": _num(1.01, 100), "add": _SEARCH_RATE},
                 minProperties=1, maxProperties=1, description="{factor: F} (multiply) or {add: N} (messages/s)"),
    "refine": _int(0, 20),
    "confirm": _int(0, 5),
    "max_steps": _int(1, 100),
    "achieved_ratio": _num(0, 1, lo_open=True),
    "noise_check": {"type": "boolean"},
    "retry_transient": {"type": "boolean"},
    "cooldown": _duration(positive=False, maximum=600),
    "prime": {"type": "boolean"},
    "max_other_cpu_pct": _num(0, 100),
    "quiet_wait": _duration(positive=False, maximum=3600),
    "step_duration": _duration(positive=True, maximum=3600),
    "warmup": _duration(positive=False, maximum=3600),
}, required=["p99_ms"], description="the knee search of `kbench search`; see docs/capacity.md"))

SCENARIO_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/kbench/kbench/schemas/scenario.schema.json",
    "title": "kbench scenario file",
    "description": ("A kbench scenario (see the README's scenario reference). The loader (bench/scenario/model.py) is "
                    "the source of truth and also checks what this schema does not (matrix size, payload files, "
                    "min <= max, fault times vs the run length). OpenMessaging Benchmark workloads (source_format "
                    "omb), which kbench also loads, are not described by this schema."),
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": _nullable({"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,100}$",
                           "description": "default: from the file name"}),
        "description": _nullable({"type": "string", "minLength": 1}),
        "broker": _nullable({"enum": list(KINDS), "description": "the embedded broker to start"}),
        "client": _nullable({"enum": list(CLIENTS), "description": "the producers' client (default librdkafka)"}),
        "consumer_client": _nullable({"enum": list(CLIENTS), "description": "the consumers' client (default: client)"}),
        "client_version": _nullable({"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+$",
                                     "description": "java: the kafka-clients version (default: the broker's)"}),
        "topic": _TOPIC,
        "workload": _WORKLOAD,
        "producer": _PROPERTIES,
        "consumer": _PROPERTIES,
        "matrix": _MATRIX,
        "thresholds": _THRESHOLDS,
        "faults": _FAULTS,
        "search": _SEARCH,
        "repeat": _nullable(_int(1, MAX_REPEAT, "runs of every cell, each on a fresh topic")),
    },
}
assert set(SCENARIO_SCHEMA["properties"]) == set(TOP_KEYS)


def main(argv: list[str] | None = None) -> int:
    """Print the schema as JSON (``python -m bench.scenario.schema > schemas/scenario.schema.json``)."""
    sys.stdout.write(json.dumps(SCENARIO_SCHEMA, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
