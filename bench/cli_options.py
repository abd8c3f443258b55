"""What the ``kbench`` subcommands share: the two consoles, the progress line, ``KEY=VALUE`` parsing,
the client-config options and the argument group of every command that runs a scenario.

It sits below :mod:`bench.cli` and the subcommand modules (``bench/*/commands.py``), which import it;
it imports neither, so the command line has no import cycle (``tests/test_imports.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from bench.errors import ConfigError

__all__ = ["add_scenario_run_args", "client_config_from_args", "err", "out", "parse_kv", "progress_line"]

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
    target = p.add_mutually_exclusive_group()
    target.add_argument("--bootstrap", help="HOST:PORT of any Kafka-compatible broker")
    target.add_argument("--broker", choices=["kafka", "tansu"], help=f"start an embedded broker for the {what}")
    p.add_argument("--nodes", type=int, default=1, choices=[1, 3], help="embedded broker nodes")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a scenario value")
    p.add_argument("--out", help="run directory (must not exist or be empty)")
    p.add_argument("--reports-dir", default="reports", help="root for run directories (default: reports)")
    p.add_argument("--client-config", action="append", metavar="KEY=VALUE",
                   help="librdkafka property for every client (SASL/TLS…); secrets are redacted in results")
    p.add_argument("--client-config-file", help="file of librdkafka key=value lines for every client")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="seconds consumers may take to catch up")
