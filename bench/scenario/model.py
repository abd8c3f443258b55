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
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

from bench.errors import ScenarioError
from bench.scenario import omb as _omb
from bench.scenario import source as _yaml
from bench.scenario.sections import _thresholds, _topic, _workload, check_transactions
from bench.scenario.source import Ctx, KeyPath, parse_duration, show, split_key, to_plain
from bench.scenario.types import (
    _NAME_RE,
    CLIENT_KEYS,
    MAX_CELLS,
    MAX_MESSAGE_SIZE,
    MAX_RATE,
    MAX_REPEAT,
    SUB_KEYS,
    TOP_KEYS,
    TOPIC_KEYS,
    WORKLOAD_KEYS,
    Backlog,
    Cell,
    Keys,
    MessageSize,
    Payload,
    Scenario,
    Threshold,
    TopicSpec,
    Transactions,
    Workload,
    latency_sample_every,
)

_VERSION_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")

__all__ = ["CLIENT_KEYS", "MAX_CELLS", "MAX_MESSAGE_SIZE", "MAX_RATE", "MAX_REPEAT", "SUB_KEYS", "TOPIC_KEYS",
           "TOP_KEYS", "WORKLOAD_KEYS",
           "Backlog", "Cell", "Keys", "MessageSize", "Payload", "Scenario", "Threshold", "TopicSpec", "Transactions",
           "Workload",
           "latency_sample_every", "load_scenario", "load_scenario_text", "parse_duration", "to_plain"]

# --------------------------------------------------------------------------------------------- matrix
def _matrix_target(ctx: Ctx, key: str) -> tuple[str, ...]:
    target = split_key(key)
    head, rest = target[0], target[1:]
    ok = all(target) and (
        (head in CLIENT_KEYS and not rest)
        or (head in ("producer", "consumer") and len(rest) == 1)
        or (head == "topic" and len(rest) == 1 and rest[0] in TOPIC_KEYS)
        or (head == "topic" and len(rest) == 2 and rest[0] == "config")
        or (head == "workload" and len(rest) == 1 and rest[0] in WORKLOAD_KEYS)
        or (head == "workload" and len(rest) == 2 and rest[1] in SUB_KEYS.get(rest[0], ())))
    if not ok:
        raise ctx.error(("matrix", key), "unknown matrix key; expected topic.<key>, topic.config.<property>, "
                                         "workload.<key>[.<subkey>], producer.<property>, consumer.<property>, "
                                         "client, consumer_client or client_version")
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
        client, consumer_client, client_version = _clients(cctx, cell_doc)
        cell = Cell(
            index=index,
            params=MappingProxyType({k: _yaml.freeze(v) for k, (_, v) in zip(keys, combo, strict=True)}),
            topic=topic,
            workload=_workload(cctx, cell_doc.get("workload"), topic, base_dir),
            producer=cctx.properties(cell_doc.get("producer"), ("producer",)),
            consumer=cctx.properties(cell_doc.get("consumer"), ("consumer",)),
            client=client, consumer_client=consumer_client, client_version=client_version,
        )
        check_transactions(cctx, cell.workload, cell.producer, cell.consumer, (client, consumer_client))
        cells.append(cell)
    return tuple(cells)


def _broker_kinds() -> tuple[str, ...]:
    from bench.brokers import KINDS

    return tuple(KINDS)


def _clients(ctx: Ctx, doc: dict[str, object]) -> tuple[str, str, str | None]:
    """``client`` / ``consumer_client`` (default: ``client``) / ``client_version`` of one cell."""
    from bench.drivers.registry import CLIENTS, DEFAULT_CLIENT

    client = DEFAULT_CLIENT if doc.get("client") is None else ctx.choice(doc["client"], ("client",), CLIENTS)
    consumer = client if doc.get("consumer_client") is None else ctx.choice(
        doc["consumer_client"], ("consumer_client",), CLIENTS)
    version = None if doc.get("client_version") is None else ctx.string(
        str(doc["client_version"]), ("client_version",), pattern=_VERSION_RE, max_len=40,
        what="a Kafka release such as 3.9.2 (the java client's kafka-clients version)")
    if version is not None and "java" not in (client, consumer):
        raise ctx.error(("client_version",), f"applies to the java client only; this cell's clients are {client} "
                                             f"and {consumer}")
    return client, consumer, version


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
    broker = None if doc.get("broker") is None else ctx.choice(doc["broker"], ("broker",), _broker_kinds())
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
