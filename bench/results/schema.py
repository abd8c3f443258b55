"""The JSON Schema (draft 2020-12) of a result document, and the checks :func:`bench.results.store.load_result` runs.

The schema is written here by hand, as Python data, and published as ``schemas/result.schema.json``
(``python -m bench.results.schema > schemas/result.schema.json``; tests/test_result_schema.py fails when the
committed file differs). See docs/result-format.md for the fields and the versioning rule.

On top of the schema, :func:`check_result` checks what a schema cannot express: every HDR blob decodes and
the columns of a per-interval series have equal lengths. Both raise :class:`~bench.errors.ResultError`
naming the file and the JSON path of the field (``cells[0].produce.msgs_per_s``) and what was expected.
"""

from __future__ import annotations

import binascii
import json
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from bench.errors import ResultError

__all__ = ["RESULT_SCHEMA", "check_result", "json_path"]

_NONNEG_INT: dict[str, Any] = {"type": "integer", "minimum": 0}
_NONNEG: dict[str, Any] = {"type": "number", "minimum": 0}
_OPT_NONNEG: dict[str, Any] = {"type": ["number", "null"], "minimum": 0}
_OPT_STR: dict[str, Any] = {"type": ["string", "null"]}
_COUNTS: dict[str, Any] = {"type": "object", "additionalProperties": _NONNEG_INT,
                           "description": "error counts by error name"}

_LATENCY_SUMMARY: dict[str, Any] = {
    "type": "object",
    "description": "summary of one latency histogram; the *_us / *_ms statistics are views of `hdr`",
    "properties": {
        "count": _NONNEG_INT,
        "hdr": {"type": "string", "minLength": 1,
                "description": "HdrHistogram V2 compressed, base64 (hdrh's HdrHistogram.decode); values in µs"},
    },
    "patternProperties": {"_(us|ms)$": _OPT_NONNEG},
}

_LATENCY: dict[str, Any] = {
    "type": "object",
    "description": "publish, service, send_delay (optional), e2e; null when no worker measured it",
    "properties": {name: {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/latency_summary"}]}
                   for name in ("publish", "service", "send_delay", "e2e")},
    "additionalProperties": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/latency_summary"}]},
}

_PER_SECOND: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "spread of the per-second message counts of the full seconds of the window",
    "properties": {
        "samples": _NONNEG_INT, "mean": _OPT_NONNEG, "stdev": _OPT_NONNEG, "min": _OPT_NONNEG,
        "max": _OPT_NONNEG, "values": {"type": "array", "items": _NONNEG},
    },
}

_SIDE_PROPS: dict[str, Any] = {
    "messages": _NONNEG_INT, "bytes": _NONNEG_INT, "msgs_per_s": _NONNEG, "mb_per_s": _NONNEG,
    "errors": _COUNTS, "error_total": _NONNEG_INT, "per_second": {"$ref": "#/$defs/per_second"},
}

_PRODUCE: dict[str, Any] = {
    "type": "object",
    "description": "producer totals over the measurement window (acked messages)",
    "required": ["messages", "msgs_per_s"],
    "properties": {
        **_SIDE_PROPS,
        "acked_total": _NONNEG_INT, "sent_total": _NONNEG_INT, "unacked_at_end": _NONNEG_INT,
        "queue_full_events": _NONNEG_INT,
        "latency_sample": {"type": "integer", "minimum": 1,
                           "description": "1 in N messages timed (additive in v1; absent means 1)"},
        "errors_estimated": {"type": "boolean",
                             "description": "errors among untimed messages estimated (additive in v1)"},
    },
}

_CONSUME: dict[str, Any] = {
    "type": "object",
    "description": "consumer totals over the measurement window (all groups)",
    "required": ["msgs_per_s"],
    "properties": {
        **_SIDE_PROPS,
        "groups": _NONNEG_INT,
        "join_s": {"type": "array", "items": _OPT_NONNEG},
    },
}

SERIES_COLUMNS = ("t", "count", "bytes", "errors", "p50_us", "p99_us", "max_us")

_INTERVALS: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "per-interval columns (equal lengths), t from the end of warm-up",
    "properties": {
        "interval_s": {"type": "number", "exclusiveMinimum": 0},
        "t": {"type": "array", "items": {"type": "number"}},
        "count": {"type": "array", "items": _NONNEG},
        "bytes": {"type": "array", "items": _NONNEG},
        "errors": {"type": "array", "items": _NONNEG},
        "p50_us": {"type": "array", "items": _OPT_NONNEG},
        "p99_us": {"type": "array", "items": _OPT_NONNEG},
        "max_us": {"type": "array", "items": _OPT_NONNEG},
        "run_starts": {"type": "array", "items": _NONNEG_INT,
                       "description": "repeats: the interval index where each run starts"},
    },
}

_SERIES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "produce": {"$ref": "#/$defs/intervals"},
        "consume": {"$ref": "#/$defs/intervals"},
        "lag": {"type": "array", "description": "[t, lag] samples, t from the start of load",
                "items": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}],
                          "minItems": 2}},
    },
}

_STEADY: dict[str, Any] = {
    "type": "object",
    "description": "trend tests over the window (bench/metrics/steady.py)",
    "properties": {
        "steady": {"type": ["boolean", "null"]}, "warning": _OPT_STR, "method": _OPT_STR,
        "tests": {"type": "array", "items": {"type": "object"}},
    },
}

_TOPIC: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["string", "null"]}}],
                 "description": "a list with one name per run when the cell was repeated"},
        "created": {"type": "boolean"},
        "partitions": {"type": "integer", "minimum": 1},
        "replication_factor": {"type": "integer", "minimum": 1},
        "config": {"type": "object"},
    },
}

_TIMING: dict[str, Any] = {
    "type": "object",
    "properties": {
        "warmup_s": _NONNEG, "duration_s": _NONNEG, "window_s": _NONNEG, "elapsed_s": _NONNEG,
        "runs": {"type": "integer", "minimum": 1}, "windows_s": {"type": "array", "items": _OPT_NONNEG},
    },
}

_OPT_INT: dict[str, Any] = {"type": ["integer", "null"]}
_LOST_LOOKUP: dict[str, Any] = {
    "type": "object",
    "description": "lost and unseen writes looked up in the embedded nodes' log segments: on_disk (on some "
                   "replica's disk, not served), gone, unknown (additive in v1; docs/faults.md)",
    "required": ["status", "looked_up", "on_disk", "gone", "unknown"],
    "properties": {
        "status": {"enum": ["done", "incomplete", "skipped"]},
        "note": _OPT_STR,
        **{k: _NONNEG_INT for k in ("looked_up", "not_looked_up", "on_disk", "gone", "unknown")},
        "elapsed_s": _NONNEG,
        "scans": {"type": "array", "items": {
            "type": "object", "required": ["node", "partition", "complete"],
            "properties": {
                **{k: _NONNEG_INT for k in ("node", "partition", "files", "bytes", "batches", "records",
                                            "undecodable_batches", "found")},
                "truncated_tail": {"type": "boolean"}, "complete": {"type": "boolean"},
                "errors": {"type": "array", "items": {"type": "string"}}}}},
        "examples": {"type": "array", "items": {
            "type": "object", "required": ["value", "status"],
            "properties": {
                "value": {"type": "string"}, "producer": {"type": "string"}, "seq": _NONNEG_INT,
                "partition": _OPT_INT, "acked_offset": _OPT_INT, "kind": {"enum": ["lost-write", "unseen"]},
                "status": {"enum": ["on_disk", "gone", "unknown"]},
                "locations": {"type": "array", "items": {
                    "type": "object", "required": ["node", "offset", "beyond_high_watermark"],
                    "properties": {"node": _NONNEG_INT, "offset": _NONNEG_INT,
                                   "beyond_high_watermark": {"type": "boolean"}}}}}}},
    },
}

# what one run of a cell measured: a cell, and each entry of a repeated cell's `repeats`
_RUN_PROPS: dict[str, Any] = {
    "complete": {"type": "boolean"},
    "incomplete_reason": _OPT_STR,
    "status": {"enum": ["ok", "incomplete", "failed"],
               "description": "failed: the driver could not finish the cell (see failure); its numbers are partial "
                              "(additive in v1; absent in older results: read complete)"},
    "failure": {"type": ["object", "null"], "required": ["reason", "phase", "stops_run"],
                "properties": {"reason": {"type": "string"}, "phase": _OPT_STR, "stops_run": {"type": "boolean"}},
                "description": "why the cell failed (additive in v1)"},
    "topic": _TOPIC,
    "timing": _TIMING,
    "produce": _PRODUCE,
    "consume": _CONSUME,
    "errors": {"type": "object", "properties": {"total": _NONNEG_INT}},
    "latency": {"$ref": "#/$defs/latency"},
    "series": _SERIES,
    "check": {"type": "object", "properties": {"acked_total": _NONNEG_INT,
                                               "broker_offsets": {"type": ["object", "null"]}}},
    "backlog": {"type": ["object", "null"]},
    "warnings": {"type": "array", "items": {"type": "string"}},
    "steady_state": {"$ref": "#/$defs/steady_state"},
    "faults": {"type": "object", "description": "fault actions and plan (additive in v1; docs/faults.md)"},
    "verification": {"type": "object", "description": "delivery verification (additive in v1; docs/faults.md)",
                     "properties": {"lost_lookup": {"$ref": "#/$defs/lost_lookup"}}},
    "locust": {"type": "object", "description": "Locust run details (additive in v1; docs/locust.md)"},
    "driver": {"type": ["string", "object"], "description": "the load driver (additive in v1)"},
    "clients": {"type": "object", "description": "the producer and consumer clients (additive in v1; docs/drivers.md)",
                "properties": {role: {"type": "object", "required": ["name", "version"],
                                      "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                                     "protocol": {"type": ["integer", "null"]}}}
                               for role in ("producer", "consumer")}},
}
_RUN_REQUIRED = ["complete", "produce", "consume", "latency"]

_RUN: dict[str, Any] = {
    "type": "object",
    "required": _RUN_REQUIRED,
    "properties": {**_RUN_PROPS, "repeat": _NONNEG_INT},
}

_CELL: dict[str, Any] = {
    "type": "object",
    "description": "one matrix cell: its parameters and what its run(s) measured",
    "required": ["index", "label", *_RUN_REQUIRED],
    "properties": {
        "index": _NONNEG_INT,
        "label": {"type": "string"},
        "params": {"type": "object"},
        "workload": {"type": "object"},
        "producer_config": {"type": "object"},
        "consumer_config": {"type": "object"},
        **_RUN_PROPS,
        "repeats": {"type": "array", "items": {"$ref": "#/$defs/run"},
                    "description": "each run of a repeated cell (additive in v1; absent when run once)"},
    },
}

_SEARCH: dict[str, Any] = {
    "type": "object",
    "description": "knee search record (kbench search; additive in v1; docs/capacity.md)",
    "properties": {
        "status": {"type": "string"},
        "spec": {"type": "object"},
        "cell": {"type": "object"},
        "steps": {"type": "array", "items": {"type": "object"}},
        "knee": {"type": ["object", "null"]},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}

RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/kbench/kbench/schemas/result.schema.json",
    "title": "kbench result document (result.json), schema_version 1",
    "description": "Unknown fields are allowed: fields are added within a schema_version (docs/result-format.md).",
    "type": "object",
    "required": ["schema_version", "kind", "cells"],
    "properties": {
        "schema_version": {"const": 1},
        "kind": {"const": "kbench.run"},
        "run_id": {"type": "string"},
        "complete": {"type": "boolean"},
        "incomplete_reason": _OPT_STR,
        "started_at": {"type": "string", "description": "UTC ISO 8601"},
        "ended_at": _OPT_STR,
        "scenario": {"type": "object", "required": ["name"],
                     "properties": {"name": {"type": "string"}, "description": _OPT_STR, "path": _OPT_STR,
                                    "sha256": _OPT_STR, "source_format": _OPT_STR,
                                    "document": {"type": "object"}}},
        "environment": {"type": "object",
                        "properties": {"host": {"type": "object"}, "broker": {"type": ["object", "null"]},
                                       "clock": {"type": "string"}}},
        "cells": {"type": "array", "items": {"$ref": "#/$defs/cell"}},
        "failed_cells": {"type": "array",
                         "description": "the cells that failed, in the order they ran (additive in v1)",
                         "items": {"type": "object", "required": ["index", "label", "reason"],
                                   "properties": {"index": _NONNEG_INT, "label": {"type": "string"},
                                                  "reason": {"type": "string"}}}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "repeat": _NONNEG_INT,
        "priming": {"type": ["object", "null"], "description": "--prime warm-up before the cells, in rounds until "
                    "settled (additive in v1; docs/measurement.md)"},
        "search": _SEARCH,
        "driver": {"type": ["string", "object"], "description": "the load driver (additive in v1)"},
        "locust": {"type": "object", "description": "Locust run details (additive in v1)"},
        "faults": {"type": "object", "description": "fault plan (additive in v1)"},
        "verification": {"type": "object", "description": "delivery verification (additive in v1)"},
        "thresholds": {"type": ["object", "array"], "description": "threshold verdicts (additive in v1)"},
    },
    "$defs": {
        "cell": _CELL, "run": _RUN, "latency": _LATENCY, "latency_summary": _LATENCY_SUMMARY,
        "per_second": _PER_SECOND, "intervals": _INTERVALS, "steady_state": _STEADY, "lost_lookup": _LOST_LOOKUP,
    },
}


def json_path(parts: Iterable[str | int]) -> str:
    """``("cells", 0, "produce")`` -> ``cells[0].produce`` (``$`` for the root)."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(RESULT_SCHEMA)
    return Draft202012Validator(RESULT_SCHEMA)


def _schema_error(doc: dict[str, Any]) -> tuple[str, str] | None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(doc))
    if error is None:
        return None
    return json_path(error.absolute_path), error.message


def _runs(doc: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    for i, cell in enumerate(doc["cells"]):
        yield ("cells", i), cell
        for k, run in enumerate(cell.get("repeats") or []):
            yield ("cells", i, "repeats", k), run


_HDR_ERRORS: tuple[type[BaseException], ...] = (binascii.Error, zlib.error, struct.error, ValueError,
                                                TypeError, IndexError, OverflowError)


def _hdr_errors() -> tuple[type[BaseException], ...]:
    from hdrh import codec

    return (*_HDR_ERRORS, codec.HdrCookieException, codec.HdrLengthException, codec.HdrHistogramSettingsException)


def _qualname(exc: BaseException) -> str:
    module = type(exc).__module__
    return type(exc).__name__ if module == "builtins" else f"{module}.{type(exc).__name__}"


def _semantic_error(doc: dict[str, Any]) -> tuple[str, str] | None:
    from bench.metrics.hdr import decode_histogram

    caught = _hdr_errors()
    for where, run in _runs(doc):
        for name, summary in (run.get("latency") or {}).items():
            if summary is None or "hdr" not in summary:
                continue
            try:
                hist = decode_histogram(summary["hdr"])
            except caught as exc:
                return (json_path((*where, "latency", name, "hdr")),
                        f"expected an HdrHistogram V2 blob (compressed, base64), got one that does not decode "
                        f"({_qualname(exc)}: {exc})")
            if "count" in summary and int(hist.total_count) != summary["count"]:
                return (json_path((*where, "latency", name, "count")),
                        f"expected the histogram's count {int(hist.total_count)}, got {summary['count']}")
        for side in ("produce", "consume"):
            columns = (run.get("series") or {}).get(side)
            if not columns:
                continue
            lengths = {c: len(columns[c]) for c in SERIES_COLUMNS if c in columns}
            if len(set(lengths.values())) > 1:
                return (json_path((*where, "series", side)),
                        "expected columns of equal length, got " + ", ".join(f"{c}: {n}" for c, n in lengths.items()))
    return None


def check_result(doc: Any, source: str) -> None:
    """Raise :class:`ResultError` (exit 2) when ``doc`` is not a valid v1 result document."""
    problem = _schema_error(doc) or _semantic_error(doc)
    if problem is not None:
        path, message = problem
        raise ResultError(f"{source}: {path}: {message} (see docs/result-format.md)")


def main(argv: list[str] | None = None) -> int:
    """Print the schema as JSON (``python -m bench.results.schema > schemas/result.schema.json``)."""
    sys.stdout.write(json.dumps(RESULT_SCHEMA, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
