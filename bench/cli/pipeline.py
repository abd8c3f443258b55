"""What ``kbench run`` and ``kbench locust`` share after parsing: run a prepared scenario through the one
pipeline (:func:`bench.run.session.run_prepared`, with the command's driver in the session), with the
progress display as an observer, then print the summary and the outcome and judge the thresholds."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bench.cli.options import err, out, print_outcome, progress_line, report_thresholds, report_verification

if TYPE_CHECKING:
    from bench.run.prepare import PreparedRun
    from bench.run.session import Session

__all__ = ["run_and_report"]


def run_and_report(prepared: PreparedRun, session: Session, *, progress: bool = True) -> int:
    """The command's exit code: 1 when a threshold missed, a cell failed ``--verify`` or the run is
    incomplete, else 0 (an interrupted
    or aborted run raises :class:`~bench.errors.RunAborted` after writing what it measured)."""
    from bench.cli.progress import RunProgress
    from bench.cli.summary import print_summary
    from bench.run.session import run_prepared

    display = RunProgress(enabled=progress)
    session = dataclasses.replace(session, observers=[*session.observers, display])
    try:
        outcome = run_prepared(prepared, session, say=lambda m: err.print(m, markup=False),
                               broker_progress=progress_line)
    finally:
        display.close()
    print_summary(outcome.document, out)
    print_outcome(outcome)
    missed = report_thresholds(outcome, prepared.scenario.thresholds)
    return report_verification(outcome) or missed or (0 if outcome.complete else 1)
