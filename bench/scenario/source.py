"""YAML plumbing for :mod:`bench.scenario.model` (private).

* :func:`compose` parses text with ``yaml.SafeLoader`` and keeps, for every key path, the line it was
  written on (:class:`Origin`), so errors read ``smoke.yaml:14: workload.rate: expected …``.
* :class:`Ctx` turns a key path into a :class:`~bench.errors.ScenarioError` naming file, line and
  dotted key, and holds the small type checkers the validators share.
* :func:`apply_overrides` applies ``--set key=value``; :func:`check_plain`, :func:`freeze` and
  :func:`to_plain` guard, freeze and un-freeze the raw document.
* OpenMessaging Benchmark workloads are translated in :mod:`bench.scenario.omb`.

A key path is a tuple of mapping keys (str) and list indices (int). Client-config keys keep their dots:
``producer.linger.ms`` is ``("producer", "linger.ms")`` (see :func:`split_key`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from types import MappingProxyType

import yaml

from bench.errors import ScenarioError

KeyPath = tuple[str | int, ...]

MAX_DEPTH = 32
MAX_VALUES = 100_000
MAX_DURATION_S = 86_400.0
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_FLOAT_RE = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")
_PROP_RE = re.compile(r"[A-Za-z0-9._-]{1,255}")
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Origin:
    """Where a key path came from: a file and line, or ``--set`` (``note`` is appended to messages)."""

    file: str
    line: int | None
    note: str | None = None


Origins = dict[KeyPath, Origin]


def format_path(path: KeyPath) -> str:
    """``("thresholds", 0, "max")`` -> ``"thresholds[0].max"``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def split_key(dotted: str) -> tuple[str, ...]:
    """Split a dotted key; the rest after ``producer.``/``consumer.``/``topic.config.``/``matrix.`` is one key."""
    for prefix in ("producer.", "consumer.", "matrix."):
        if dotted.startswith(prefix):
            return (prefix[:-1], dotted[len(prefix):])
    if dotted.startswith("topic.config."):
        return ("topic", "config", dotted[len("topic.config."):])
    return tuple(dotted.split("."))


def show(value: object) -> str:
    """A short rendering of a bad value for 'got …'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) > 10**30:
        return "a very large integer"
    if isinstance(value, int | float | str):
        text = repr(value)
        text = text if len(text) <= 60 else text[:57] + "..."
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value):
            text += " (a string: YAML 1.1 needs a dot and a signed exponent, e.g. 1.0e+6)"
        return text
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _duration_seconds(value: object, positive: bool, maximum: float) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not -1 <= value <= maximum:  # also rejects nan; exact for huge ints
            return None
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.fullmatch(value)):
        seconds = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    else:
        return None
    if seconds is None or seconds < 0 or seconds > maximum or (positive and seconds <= 0):
        return None
    return seconds


def duration_message(positive: bool, maximum: float) -> str:
    bound = "> 0" if positive else ">= 0"
    return (f"expected a duration {bound} and at most {maximum:g}s (seconds, or a string like "
            f"'500ms', '5s', '2m', '1h')")


def parse_duration(value: object, *, key: str = "duration", file: str | None = None,
                   line: int | None = None, positive: bool = False,
                   maximum: float = MAX_DURATION_S) -> float:
    """Seconds from a number of seconds or a string ``"500ms" | "5s" | "2m" | "1h"``; else ScenarioError."""
    seconds = _duration_seconds(value, positive, maximum)
    if seconds is None:
        raise ScenarioError(f"{duration_message(positive, maximum)}, got {show(value)}",
                            file=file, line=line, key=key)
    return seconds


class Ctx:
    """Error factory and type checkers for one document (``aliases`` re-home matrix-cell paths)."""

    def __init__(self, filename: str, origins: Origins,
                 aliases: Sequence[tuple[KeyPath, KeyPath]] = ()) -> None:
        self.filename = filename
        self.origins = origins
        self.aliases = tuple(aliases)

    def with_aliases(self, aliases: Sequence[tuple[KeyPath, KeyPath]]) -> Ctx:
        return Ctx(self.filename, self.origins, aliases)

    def error(self, path: KeyPath, message: str) -> ScenarioError:
        src = path
        for doc_prefix, src_prefix in self.aliases:
            if path[:len(doc_prefix)] == doc_prefix:
                src = src_prefix + path[len(doc_prefix):]
                break
        origin = None
        for cut in range(len(src), -1, -1):
            origin = self.origins.get(src[:cut])
            if origin is not None:
                break
        key = format_path(src) or None
        if origin is None:
            return ScenarioError(message, file=self.filename, key=key)
        if origin.note:
            message += f" ({origin.note})"
        return ScenarioError(message, file=origin.file, line=origin.line, key=key)

    def mapping(self, value: object, path: KeyPath, allowed: Collection[str] | None, *,
                what: str = "a mapping", null_ok: bool = True) -> dict[str, object]:
        if value is None and null_ok:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected {what}, got {show(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.error(path, f"keys must be strings, got {show(key)}")
            if allowed is not None and key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise self.error((*path, key), f"unknown key; {hint}expected one of: {', '.join(allowed)}")
        return value

    def integer(self, value: object, path: KeyPath, lo: int, hi: int, *, what: str | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(path, f"expected {what or f'an integer from {lo} to {hi}'}, got {show(value)}")
        return value

    def number(self, value: object, path: KeyPath, lo: float, hi: float, *, lo_open: bool = False,
               what: str | None = None) -> float:
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and (isinstance(value, int) or math.isfinite(value))
              and (value > lo if lo_open else value >= lo) and value <= hi)
        if not ok:
            bounds = f"{'>' if lo_open else '>='} {lo:g} and <= {hi:g}"
            raise self.error(path, f"expected {what or f'a number {bounds}'}, got {show(value)}")
        assert isinstance(value, int | float)
        return float(value)

    def string(self, value: object, path: KeyPath, *, pattern: re.Pattern[str] | None = None,
               max_len: int = 10_000, what: str = "a string") -> str:
        if (not isinstance(value, str) or not value or len(value) > max_len
                or (pattern is not None and not pattern.fullmatch(value))):
            raise self.error(path, f"expected {what}, got {show(value)}")
        return value

    def boolean(self, value: object, path: KeyPath) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {show(value)}")
        return value

    def choice(self, value: object, path: KeyPath, options: Sequence[str]) -> str:
        if value is None:
            raise self.error(path, f"required: one of {', '.join(options)}")
        if not isinstance(value, str) or value not in options:
            raise self.error(path, f"expected one of {', '.join(options)}, got {show(value)}")
        return value

    def properties(self, value: object, path: KeyPath) -> Mapping[str, str]:
        """Client/topic configuration: property name -> scalar, stringified ("true", "5", "all")."""
        d = self.mapping(value, path, None, what="a mapping of configuration properties")
        out: dict[str, str] = {}
        for key, v in d.items():
            if not _PROP_RE.fullmatch(key):
                raise self.error((*path, key), "expected a configuration property name ([A-Za-z0-9._-]+)")
            if isinstance(v, bool):
                out[key] = "true" if v else "false"
            elif (isinstance(v, int) and abs(v) < 2**63) or (isinstance(v, float) and math.isfinite(v)):
                out[key] = str(v)
            elif isinstance(v, str) and len(v) <= 10_000:
                out[key] = v
            else:
                raise self.error((*path, key), f"expected a string, number or boolean, got {show(v)}")
        return MappingProxyType(out)

    def duration(self, value: object, path: KeyPath, *, positive: bool,
                 maximum: float = MAX_DURATION_S) -> float:
        seconds = _duration_seconds(value, positive, maximum)
        if seconds is None:
            raise self.error(path, f"{duration_message(positive, maximum)}, got {show(value)}")
        return seconds


# ---------------------------------------------------------------------------------------------- parsing
def _walk(node: yaml.Node, path: KeyPath, origins: Origins, filename: str, seen: set[int],
          depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ScenarioError(f"nested more than {MAX_DEPTH} levels deep", file=filename,
                            line=node.start_mark.line + 1, key=format_path(path) or None)
    if id(node) in seen:  # an alias: walk each node once (keeps aliased documents linear)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            line = key_node.start_mark.line + 1
            sub = (*path, key_node.value)
            ident = (key_node.tag, key_node.value)
            if ident in first:
                raise ScenarioError(f"duplicate key (first written on line {first[ident]})",
                                    file=filename, line=line, key=format_path(sub))
            first[ident] = line
            origins.setdefault(sub, Origin(filename, line))
            _walk(value_node, sub, origins, filename, seen, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            origins.setdefault((*path, index), Origin(filename, item.start_mark.line + 1))
            _walk(item, (*path, index), origins, filename, seen, depth + 1)


def compose(text: str, filename: str) -> tuple[object, Origins]:
    """Parse one YAML document; returns the data and the line of every key path."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError("the file is empty; expected a mapping of scenario keys", file=filename)
        origins: Origins = {(): Origin(filename, node.start_mark.line + 1)}
        _walk(node, (), origins, filename, set(), 0)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc).splitlines()[0]
        context = f" ({exc.context})" if exc.context else ""
        raise ScenarioError(f"invalid YAML: {problem}{context}", file=filename,
                            line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise ScenarioError(f"invalid YAML: {str(exc).splitlines()[0]} (is this a text file?)",
                            file=filename, line=line) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"invalid YAML: {str(exc).splitlines()[0]}", file=filename) from None
    except (ValueError, TypeError, OverflowError, AttributeError, LookupError) as exc:
        # PyYAML's constructors fail like this on e.g. "2021-13-45" or "!!timestamp x"
        raise ScenarioError(f"invalid YAML value: {exc}", file=filename) from None
    except RecursionError:
        raise ScenarioError("invalid YAML: nested too deeply", file=filename) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, origins


def decode(data: bytes, filename: str) -> str:
    """UTF-8 (BOM allowed) text of a scenario file, or ScenarioError."""
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(f"{len(data)} bytes; a scenario is at most {MAX_FILE_BYTES}", file=filename)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"not UTF-8 text (bad byte at offset {exc.start}); is this a YAML file?",
                            file=filename, line=data.count(b"\n", 0, exc.start) + 1) from None


def parse_value(text: str, *, file: str, key: str | None) -> object:
    """One YAML scalar or flow value (for ``--set``)."""
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, AttributeError, LookupError,
            RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScenarioError(f"invalid YAML value {text!r}: {first}", file=file, key=key) from None


def set_path(doc: dict[str, object], path: Sequence[str], value: object) -> tuple[str, ...] | None:
    """Set ``doc[path] = value``, copying the mappings on the way (so aliased parts stay untouched).

    Returns the prefix that is not a mapping when the path cannot be set, else None.
    """
    cur = doc
    for i, seg in enumerate(path[:-1]):
        nxt = cur.get(seg)
        if nxt is None:
            nxt = {}
        elif isinstance(nxt, dict):
            nxt = dict(nxt)
        else:
            return tuple(path[:i + 1])
        cur[seg] = nxt
        cur = nxt
    cur[path[-1]] = value
    return None


def apply_overrides(doc: dict[str, object], origins: Origins, overrides: Sequence[str]) -> dict[str, object]:
    """Apply ``key=value`` overrides to a copy of ``doc``; ``origins`` is updated in place."""
    doc = dict(doc)
    for text in overrides:
        if not isinstance(text, str) or "=" not in text:
            raise ScenarioError(f"expected key=value, got {show(text)}", file="--set")
        key, _, raw = text.partition("=")
        key = key.strip()
        path = split_key(key)
        if not key or not all(path) or any(p != p.strip() for p in path):
            raise ScenarioError(f"expected a dotted key like workload.rate, got {key!r}", file="--set")
        value = parse_value(raw, file="--set", key=key)
        bad = set_path(doc, path, value)
        if bad is not None:
            raise ScenarioError(f"cannot set {key}: {'.'.join(bad)} is not a mapping",
                                file="--set", key=key)
        for old in [p for p in origins if p[:len(path)] == path]:
            del origins[old]
        origins[path] = Origin("--set", None, f"from --set {text}")
    return doc


# ------------------------------------------------------------------------------------------ raw values
def check_plain(ctx: Ctx, value: object, path: KeyPath = ()) -> None:
    """Only JSON-like data (str, int, float, bool, null, lists, string-keyed mappings), finite, acyclic."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def visit(v: object, p: KeyPath, depth: int) -> int:
        if v is None or isinstance(v, str | bool | int | float):
            return 1
        if not isinstance(v, dict | list):
            raise ctx.error(p, f"expected plain YAML data (string, number, boolean, null, list or "
                               f"mapping), got {show(v)}; quote it if you meant a string")
        if id(v) in sizes:
            return sizes[id(v)]
        if id(v) in active:
            raise ctx.error(p, "recursive YAML alias (a structure that contains itself)")
        if depth > MAX_DEPTH:
            raise ctx.error(p, f"nested more than {MAX_DEPTH} levels deep")
        active.add(id(v))
        total = 1
        items: list[tuple[str | int, object]] = []
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    raise ctx.error(p, f"mapping keys must be strings, got {show(k)}")
                items.append((k, x))
        else:
            items.extend(enumerate(v))
        for k, x in items:
            total += visit(x, (*p, k), depth + 1)
            if total > MAX_VALUES:
                raise ctx.error(p, f"expands to more than {MAX_VALUES} values (aliases?)")
        active.discard(id(v))
        sizes[id(v)] = total
        return total

    visit(value, path, 0)


def freeze(value: object) -> object:
    """Deep read-only copy: mappings -> MappingProxyType, lists -> tuples (input passed check_plain)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def to_plain(value: object) -> object:
    """Undo :func:`freeze`: plain dicts and lists (paths as strings), ready for ``json.dumps``."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value
