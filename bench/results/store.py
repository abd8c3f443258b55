"""The versioned result document of a run: written atomically, loaded with version dispatch.

Layout of ``result.json`` (``schema_version`` 1)::

    {schema_version, kind: "kbench.run", run_id, complete, incomplete_reason,
     started_at, ended_at (UTC ISO),
     scenario: {name, path, sha256, source_format, document (redacted)},
     environment: {kbench, python, confluent_kafka, librdkafka, hdrhistogram, host: {...},
                   broker: {kind, version, bootstrap, embedded, nodes, cluster_id, brokers}},
     cells: [ {index, label, params, complete, topic: {...}, workload: {...}, producer_config,
               consumer_config, timing: {warmup_s, duration_s, window_s},
               produce: {...}, consume: {...}, latency: {publish|service|send_delay|e2e: {summary, hdr}},
               series: {produce, consume, lag}, check: {...}, backlog: {...} } ]}

The JSON Schema is ``schemas/result.schema.json`` (written in :mod:`bench.results.schema`; fields in
docs/result-format.md); :func:`load_result` validates every document against it.

Histograms are HdrHistogram V2 (compressed, base64), decodable with ``hdrh``'s ``HdrHistogram.decode``;
percentiles in ``summary`` are computed from them when the document is written.

Time bases: ``series.produce`` / ``series.consume`` intervals count from the start of the measurement
window (``t`` = 0 is the end of warm-up); ``series.lag`` samples ``[t, lag]`` count from the start of load
(t0, the start of warm-up); fault and verification times (``faults``, ``verification``) are from t0 too.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

from bench.errors import ConfigError, ResultError
from bench.results.model import RunDocument
from bench.results.redact import redact

__all__ = ["SCHEMA_VERSION", "load_result", "new_run_dir", "result_path", "safe_name", "utc_stamp",
           "write_json_atomic", "write_result", "write_text_atomic"]

SCHEMA_VERSION: Final = 1
RESULT_FILE = "result.json"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_stamp() -> str:
    """Now, UTC, as used in run directory names: ``20260102T030405Z``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def safe_name(name: str, default: str = "run") -> str:
    """``name`` made safe for a directory name: each run of other characters than ``A-Za-z0-9._-``
    becomes one ``_``, leading/trailing ``_`` are dropped; ``default`` if nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or default


def new_run_dir(root: Path, name: str, out: Path | None = None, *, stamp: str | None = None) -> Path:
    """Create a new run directory and return it; an existing run is never written into.

    * ``out`` given (``--out``, ``--report-dir``): it must not exist or be an empty directory
      (ConfigError otherwise); it is created with its parents.
    * otherwise ``root/<safe name>-<stamp>`` (``stamp`` defaults to :func:`utc_stamp`), and if that is
      taken ``…-2``, ``…-3`` …: ``mkdir`` is the atomic claim, so two runs started in the same second
      (even in two processes) get two directories.
    """
    if out is not None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(f"--out {out}: already exists and is not empty; kbench never overwrites a run")
        out.mkdir(parents=True, exist_ok=True)
        return out
    base = f"{safe_name(name)}-{stamp or utc_stamp()}"
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (base + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"could not create a new run directory {base}[-N] under {root}: 999 taken")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so that a reader or a crash sees the old or the new file,
    never a torn one: a temp file in the same directory, fsync, rename over ``path``, fsync of the
    directory (so the rename itself is durable). A new file gets mode 0644; an existing one keeps its mode.
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json_atomic(path: Path, doc: Any) -> None:
    """``doc`` as JSON (indent 1, no NaN/Infinity, numpy arrays as lists) via :func:`write_text_atomic`.

    Serialisation happens first, so a document that cannot be written leaves ``path`` untouched."""
    write_text_atomic(path, json.dumps(doc, indent=1, allow_nan=False, default=_default) + "\n")


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_result(run_dir: Path, doc: RunDocument) -> Path:
    """Redact secrets and write ``run_dir/result.json`` atomically (called after every cell)."""
    doc = redact(doc)
    doc["schema_version"] = SCHEMA_VERSION
    path = run_dir / RESULT_FILE
    write_json_atomic(path, doc)
    return path


def result_path(path: str | os.PathLike[str]) -> Path:
    """Accept a run directory or a result.json path."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULT_FILE
    return p


def load_result(path: str | os.PathLike[str]) -> RunDocument:
    """Load a result document (run directory or file), dispatching on its schema version.

    A document is checked against its version's schema (:mod:`bench.results.schema`) before anyone reads it: a
    corrupt field is a :class:`ResultError` (exit 2) naming the file, the JSON path and what was expected.
    """
    p = result_path(path)
    if not p.exists():
        raise ResultError(f"{p}: no such result (expected a run directory or a result.json)")
    try:
        doc = json.loads(p.read_text(), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ResultError(f"{p}: not a readable JSON result document ({exc})") from exc
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise ResultError(f"{p}: not a kbench result (no schema_version)")
    version = doc["schema_version"]
    loader = _LOADERS.get(version) if type(version) is int else None
    if loader is None:
        raise ResultError(f"{p}: schema_version: {version!r} is not supported by this kbench "
                          f"(supported: {', '.join(map(str, sorted(_LOADERS)))}); upgrade kbench")
    doc = loader(doc, str(p))
    doc["_path"] = str(p)
    return cast(RunDocument, doc)   # checked against its version's schema by the loader


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a result may hold")


def _load_v1(doc: dict[str, Any], source: str) -> dict[str, Any]:
    from bench.results.schema import check_result

    check_result(doc, source)
    return doc


_LOADERS: dict[int, Callable[[dict[str, Any], str], dict[str, Any]]] = {1: _load_v1}
