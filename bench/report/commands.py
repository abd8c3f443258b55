"""`kbench report` and `kbench compare` subcommands; ``register`` adds them to the CLI."""

from __future__ import annotations

import argparse

from bench.errors import ConfigError

__all__ = ["cmd_compare", "cmd_report", "register"]


def cmd_report(args: argparse.Namespace) -> int:
    from bench.results import load_result

    load_result(args.result)
    raise ConfigError("kbench report: not implemented yet")


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.results import load_result

    load_result(args.baseline)
    load_result(args.current)
    raise ConfigError("kbench compare: not implemented yet")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` and ``compare`` subcommands to the ``kbench`` parser."""
    p = sub.add_parser("report", help="write markdown/HTML/CSV/charts for a result (into RUN/report/)")
    p.add_argument("result", help="run directory or result.json")
    p.set_defaults(func=cmd_report)
    c = sub.add_parser("compare", help="compare two results cell by cell; exit 1 on a significant regression")
    c.add_argument("baseline", help="baseline run directory or result.json")
    c.add_argument("current", help="current run directory or result.json")
    c.add_argument("--threshold", default="10%", help="smallest change that counts (default 10%%)")
    c.set_defaults(func=cmd_compare)
