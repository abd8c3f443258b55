"""``kbench report``: write every report file of a result into a ``report/`` folder next to it.

kbench never overwrites a file it did not write. The folder carries a manifest (:data:`MANIFEST`) with
the SHA-256 of every file kbench generated there; a later ``kbench report`` replaces only files whose
content still matches the manifest. A folder without a manifest that is not empty, or a file that is
not in the manifest or was edited since, makes the command refuse (:class:`~bench.errors.ConfigError`)
and name the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import __version__
from bench.errors import ConfigError, ResultError
from bench.report.charts import CHARTS, write_charts
from bench.report.html import render_html
from bench.report.tables import cell_frame, markdown_summary
from bench.results.model import RunDocument
from bench.results.store import load_result, result_path

__all__ = ["MANIFEST", "ReportFiles", "write_report"]

MANIFEST = ".kbench-report.json"
SUMMARY_MD = "summary.md"
REPORT_HTML = "report.html"
CELLS_CSV = "cells.csv"
CELLS_PARQUET = "cells.parquet"


@dataclass
class ReportFiles:
    """What ``write_report`` wrote: the folder, and every file by role."""

    out_dir: Path
    markdown: Path
    html: Path
    csv: Path
    parquet: Path | None
    charts: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def all(self) -> list[Path]:
        return [self.markdown, self.html, self.csv, *([self.parquet] if self.parquet else []), *self.charts]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_manifest(out_dir: Path) -> dict[str, str]:
    path = out_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
        files = doc["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable report manifest ({exc}); remove the folder or use --out") from exc
    return {str(k): str(v) for k, v in files.items()}


def _check_writable(out_dir: Path, names: list[str]) -> dict[str, str]:
    """The manifest of ``out_dir`` after checking that every file in ``names`` may be (over)written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a directory; kbench will not replace it")
    if not out_dir.exists():
        return {}
    manifest = _read_manifest(out_dir)
    if not manifest and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir}: exists, is not empty and was not written by `kbench report`; "
                          "refusing to overwrite (move it away or pass --out DIR)")
    for name in names:
        path = out_dir / name
        if not path.exists():
            continue
        if name not in manifest:
            raise ConfigError(f"{path}: not written by kbench; refusing to overwrite it (move it away or "
                              "pass --out DIR)")
        if _sha(path) != manifest[name]:
            raise ConfigError(f"{path}: changed since kbench wrote it; refusing to overwrite it (move it away "
                              "or pass --out DIR)")
    return manifest


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_report(result: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None) -> ReportFiles:
    """Load a result (run directory or result.json) and write summary.md, report.html, cells.csv
    (+ cells.parquet when pyarrow is importable) and the PNG charts into ``out_dir`` (default:
    ``report/`` next to the result). Raises ResultError for an unusable result, ConfigError when a file
    in the way was not written by kbench."""
    doc: RunDocument = load_result(result)
    if not isinstance(doc.get("cells"), list):
        raise ResultError(f"{result}: no cells in the result")
    out = Path(out_dir) if out_dir is not None else result_path(result).parent / "report"
    parquet = _parquet_available()
    names = [SUMMARY_MD, REPORT_HTML, CELLS_CSV, *([CELLS_PARQUET] if parquet else []),
             *(name for _, name in CHARTS)]
    manifest = _check_writable(out, names)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}

    with tempfile.TemporaryDirectory(prefix="kbench-charts-") as tmp:
        charts = write_charts(doc, Path(tmp))
        chart_paths: list[Path] = []
        for _title, path in charts:
            _write_atomic(out / path.name, path.read_bytes())
            chart_paths.append(out / path.name)
        html = render_html(doc, charts)
    md = markdown_summary(doc, [(title, path.name) for title, path in charts])
    _write_atomic(out / SUMMARY_MD, md.encode())
    _write_atomic(out / REPORT_HTML, html.encode())
    frame = cell_frame(doc)
    _write_atomic(out / CELLS_CSV, frame.to_csv(index=False).encode())
    notes: list[str] = []
    parquet_path: Path | None = None
    if parquet:
        frame.to_parquet(out / CELLS_PARQUET, index=False)
        parquet_path = out / CELLS_PARQUET
    else:
        notes.append("pyarrow is not importable: no cells.parquet")
    files = ReportFiles(out, out / SUMMARY_MD, out / REPORT_HTML, out / CELLS_CSV, parquet_path, chart_paths, notes)
    for path in files.all():
        written[path.name] = _sha(path)
    # files kbench wrote earlier and did not write now (e.g. parquet, when pyarrow went away): drop them
    for name, digest in manifest.items():
        stale = out / name
        if name not in written and stale.exists() and _sha(stale) == digest:
            stale.unlink()
    doc_manifest = {"generator": f"kbench {__version__} report", "result": str(result_path(result).resolve()),
                    "files": written}
    _write_atomic(out / MANIFEST, (json.dumps(doc_manifest, indent=1) + "\n").encode())
    return files
