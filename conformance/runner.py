"""Entry points for ``kbench conformance …`` (the CLI calls these; nothing here exits)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from conformance.report import matrix as _matrix

__all__ = ["CONFORMANCE_DIR", "matrix", "run"]

CONFORMANCE_DIR = Path(__file__).resolve().parent


def run(bootstrap: str | None, broker: str | None, report_dir: Path | None,
        pytest_args: Sequence[str] = ()) -> int:
    """Run the conformance suite with pytest; returns pytest's exit code (0 = no FAIL).

    ``bootstrap`` selects an external broker, ``broker`` ("kafka"/"tansu") an embedded one; with
    neither, ``KBENCH_BOOTSTRAP`` is used. ``report_dir`` must not exist or be empty (default:
    ``reports/conformance-<broker>-<UTC stamp>/``). ``pytest_args`` are passed through
    (e.g. ``["-k", "P1 or K2", "--broker-name", "redpanda"]``).
    """
    args = [str(CONFORMANCE_DIR), "-p", "no:cacheprovider", "--rootdir", str(CONFORMANCE_DIR.parent)]
    if bootstrap:
        args += ["--bootstrap", bootstrap]
    if broker:
        args += ["--broker", broker]
    if report_dir is not None:
        args += ["--report-dir", str(report_dir)]
    return int(pytest.main([*args, *pytest_args]))


def matrix(report_dirs: Sequence[Path]) -> str:
    """Markdown broker × check table from several run directories (or report.json files)."""
    return _matrix([Path(p) for p in report_dirs])
