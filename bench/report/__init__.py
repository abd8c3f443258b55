"""Reports and comparisons built from result documents only (nothing here talks to a broker).

Public API (imported lazily, so ``kbench --help`` does not load pandas/matplotlib)::

    write_report(result, out_dir=None) -> ReportFiles      markdown, HTML, CSV/Parquet, PNG charts
    compare_results(baseline_doc, current_doc, *, threshold=0.10, alpha=0.05, force=False,
                    allow_inconclusive=False) -> Comparison     run-level test; .exit_code() 0/1/2/3
    parse_threshold("10%") -> 0.1
    mann_whitney_u(x, y, alternative="two-sided") -> MannWhitney   exact for small samples; or one-sided
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.report.compare import Comparison, compare_results, parse_threshold
    from bench.report.stats import MannWhitney, mann_whitney_u
    from bench.report.writer import ReportFiles, write_report

__all__ = ["Comparison", "MannWhitney", "ReportFiles", "compare_results", "mann_whitney_u", "parse_threshold",
           "write_report"]

_WHERE = {"Comparison": "compare", "compare_results": "compare", "parse_threshold": "compare",
          "MannWhitney": "stats", "mann_whitney_u": "stats", "ReportFiles": "writer", "write_report": "writer"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"bench.report.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'bench.report' has no attribute {name!r}")
