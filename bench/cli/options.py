"""What the ``kbench`` subcommands share: the two consoles, the progress line, ``KEY=VALUE`` parsing,
the client-config options and the argument group of every command that runs a scenario.

It sits below :mod:`bench.cli.main` and the subcommand modules (``bench/*/commands.py``), which import it;
it imports neither, so the command line has no import cycle (``tests/test_imports.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.run.execute import RunOutcome
    from bench.run.prepare import Command, PreparedRun
    from bench.scenario.model import Threshold

__all__ = ["add_scenario_run_args", "client_config_from_args", "err", "out", "parse_kv", "prepare_from_args",
           "progress_line", "report_thresholds"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def progress_line(msg: str) -> None:
    err.print(f"[dim]{msg}[/dim]")


def parse_kv(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        result[key.strip()] = value.strip()
    return result


def client_config_from_args(args: argparse.Namespace) -> dict[str, str]:
    conf: dict[str, str] = {}
    if args.client_config_file:
        from pathlib import Path

        path = Path(args.client_config_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"--client-config-file {path}: cannot read ({exc.strerror})") from exc
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ConfigError(f"{path}:{n}: expected key=value (librdkafka client property), got {line!r}")
            conf[key.strip()] = value.strip()
    conf.update(parse_kv(args.client_config, "--client-config"))
    return conf


def add_scenario_run_args(p: argparse.ArgumentParser, *, what: str = "run") -> None:
    """The options every command that runs a scenario shares: target broker, overrides, output, client
    properties, drain timeout (used by run, locust and search)."""
    from bench.brokers import kind_names

    target = p.add_mutually_exclusive_group()
    target.add_argument("--bootstrap", help="HOST:PORT of any Kafka-compatible broker")
    target.add_argument("--broker", choices=list(kind_names()), help=f"start an embedded broker for the {what}")
    p.add_argument("--nodes", type=int, default=1, choices=[1, 3], help="embedded broker nodes")
    p.add_argument("--runtime", choices=["process", "docker"], default=None,
                   help="how the embedded broker runs: local processes (default) or containers of locally built "
                        "images on a Docker engine (docs/brokers.md)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a scenario value")
    p.add_argument("--out", help="run directory (must not exist or be empty)")
    p.add_argument("--reports-dir", default="reports", help="root for run directories (default: reports)")
    p.add_argument("--client-config", action="append", metavar="KEY=VALUE",
                   help="librdkafka property for every client (SASL/TLS…); secrets are redacted in results")
    p.add_argument("--client-config-file", help="file of librdkafka key=value lines for every client")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="seconds consumers may take to catch up")


def prepare_from_args(command: Command, args: argparse.Namespace, **extra: Any) -> PreparedRun:
    """:func:`bench.run.prepare.prepare` over the options of :func:`add_scenario_run_args` (plus ``extra``):
    the first thing run, search and locust do, before any broker or process starts."""
    from bench.run.prepare import PrepareRequest, prepare

    return prepare(PrepareRequest(command=command, scenario_path=args.scenario, overrides=tuple(args.set or ()),
                                  out=args.out, reports_dir=args.reports_dir,
                                  client_config=client_config_from_args(args), bootstrap=args.bootstrap,
                                  broker=args.broker, runtime=args.runtime, **extra))


def print_outcome(outcome: RunOutcome) -> None:
    """Where the result is, and why it is incomplete if it is (after the command's own summary)."""
    out.print(f"result: {outcome.run_dir / 'result.json'}")
    if not outcome.complete:
        err.print(f"[yellow]incomplete:[/yellow] {outcome.document.get('incomplete_reason')}")


def report_verification(outcome: RunOutcome) -> int:
    """1 when a cell run with ``--verify`` failed its verification (lost, unseen, duplicated… writes), and
    print which; else 0. A failed history check fails the command, as a missed threshold does."""
    failed = [cell.get("label") or str(cell.get("index")) for cell in outcome.document["cells"]
              if isinstance(cell.get("verification"), dict) and cell["verification"].get("ok") is False]
    if failed:
        err.print(f"[red]verification FAILED in {len(failed)} cell(s):[/red] ", end="")
        err.print(", ".join(failed), markup=False)
        return 1
    return 0


def report_thresholds(outcome: RunOutcome, thresholds: Sequence[Threshold]) -> int:
    """Judge ``thresholds`` in every cell of a finished run, keep the verdicts in its result document
    (``thresholds``, rewritten atomically) and print the misses: 1 when any missed, else 0."""
    from bench.results.store import write_result
    from bench.run.thresholds import evaluate, verdicts

    doc = outcome.document
    doc["thresholds"] = verdicts(doc["cells"], thresholds)
    write_result(outcome.run_dir, doc)
    misses = evaluate(doc["cells"], thresholds)
    if misses:
        err.print(f"[red]{len(misses)} threshold miss(es):[/red]")
        for m in misses:
            err.print(f"  {m}", markup=False)
        return 1
    if thresholds:
        out.print(f"all {len(thresholds)} threshold(s) met in every cell")
    return 0
