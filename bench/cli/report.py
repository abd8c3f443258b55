"""`kbench report` and `kbench compare` subcommands; :func:`register` adds them to the CLI parser.

Handlers return the exit code and raise :mod:`bench.errors` exceptions for unusable input (the CLI
prints those and exits 2): ``compare`` exits 1 on a significant regression beyond the threshold, 3 when
the comparison is inconclusive (too few runs for the run-level test to reach alpha; 0 with
``--allow-inconclusive``), 0 otherwise, and 2 for incomparable results unless ``--force``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.errors import ConfigError, ResultError

__all__ = ["cmd_compare", "cmd_report", "register"]


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report.writer import write_report

    files = write_report(args.result, args.out)
    print(f"report written to {files.out_dir}/")
    for path in files.all():
        print(f"  {path.name}")
    for note in files.notes:
        print(f"  note: {note}")
    return 0


def _append(path: Path, text: str, what: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write ({exc.strerror})") from exc


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.report.compare import compare_results, parse_threshold
    from bench.results.store import load_result

    threshold = parse_threshold(args.threshold)
    baseline = load_result(args.baseline)
    current = load_result(args.current)
    comp = compare_results(baseline, current, threshold=threshold, alpha=args.alpha, force=args.force,
                           allow_inconclusive=args.allow_inconclusive)
    text = comp.markdown()
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.markdown:
        md = Path(args.markdown)
        try:
            md.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--markdown {md}: cannot write ({exc.strerror})") from exc
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        _append(Path(summary), text, "$GITHUB_STEP_SUMMARY")
    if comp.incomparable and not args.force:
        fields = "; ".join(str(d) for d in comp.incomparable)
        raise ResultError(f"results are not comparable ({fields}); pass --force to compare anyway")
    if not comp.cells:
        raise ResultError("no matrix cell of the current result has the parameters of a baseline cell: "
                          "nothing to compare")
    code = comp.exit_code()
    if comp.inconclusive and not comp.regressions:
        what = "accepted (--allow-inconclusive): exit 0" if args.allow_inconclusive else "exit 3"
        sys.stderr.write(f"kbench compare: INCONCLUSIVE ({what}): too few runs per cell for the run-level test "
                         f"to reach alpha {args.alpha:g}; repeat the runs (kbench run --repeat N)\n")
    return code


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` and ``compare`` subcommands to the ``kbench`` parser."""
    p = sub.add_parser("report", help="write markdown, HTML, CSV/Parquet and charts for a result (RUN/report/)")
    p.add_argument("result", help="run directory or result.json")
    p.add_argument("--out", help="output folder (default: report/ next to the result); kbench overwrites only "
                                 "files it wrote there itself")
    p.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare two results cell by cell; exit 1 on a significant regression",
                       description="Exit status: 0 no significant regression (conclusive), 1 significant "
                                   "regression beyond the threshold, 2 unusable or incomparable input, 3 "
                                   "inconclusive: too few runs for the run-level test to reach alpha (repeat the "
                                   "runs; --allow-inconclusive maps it to 0).")
    c.add_argument("baseline", help="baseline run directory or result.json")
    c.add_argument("current", help="current run directory or result.json")
    c.add_argument("--threshold", default="10%",
                   help="smallest change that counts as a regression: 10%%, 1.1x or 0.1 (default 10%%)")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level of the test (default 0.05)")
    c.add_argument("--force", action="store_true",
                   help="compare even when scenario, broker kind or workload differ")
    c.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 instead of 3 when the runs are too few to conclude (a note says so)")
    c.add_argument("--markdown", metavar="FILE", help="also write the markdown summary to FILE")
    c.set_defaults(func=cmd_compare)
