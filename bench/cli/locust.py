"""The ``kbench locust`` subcommand (registered by :mod:`bench.cli.main` through ``register``)."""

from __future__ import annotations

import argparse

from bench.cli.options import (
    add_scenario_run_args,
    err,
    out,
    prepare_from_args,
    print_outcome,
    progress_line,
    report_thresholds,
)
from bench.errors import ConfigError

__all__ = ["cmd_locust", "register"]


def cmd_locust(args: argparse.Namespace) -> int:
    from bench.cli.summary import print_summary
    from bench.locust.run import LocustOptions, check_options, run_locust
    from bench.run.target import open_target

    prepared = prepare_from_args("locust", args, cell=args.cell)  # before any side effect
    scenario, client_conf = prepared.scenario, dict(prepared.client_config)
    if not 0 < args.web_port < 65536 or args.master_port > 65535:
        raise ConfigError("--web-port / --master-port: expected a TCP port (1..65535)")
    opts = LocustOptions(
        bootstrap="", broker={}, cell=args.cell, workers=args.workers, expect_workers=args.expect_workers,
        headless=not args.web, master_host=args.master_host, master_port=args.master_port, users=args.users,
        spawn_rate=args.spawn_rate, web_port=args.web_port, reports_root=prepared.reports_root,
        out=prepared.out, client_config=client_conf, drain_timeout_s=args.drain_timeout,
        keep_topics=args.keep_topics, embedded=not args.bootstrap, progress=progress_line)
    check_options(scenario, opts)  # before a broker is started
    with open_target(args.bootstrap, args.broker or scenario.broker, nodes=args.nodes,
                     client_config=client_conf, progress=progress_line) as target:
        err.print(f"[bold]{scenario.name}[/bold] cell {args.cell} through Locust against {target.describe()}")
        opts.bootstrap, opts.broker, opts.embedded = target.bootstrap, target.info, target.handle is not None
        outcome = run_locust(scenario, opts)
    doc = outcome.document
    if doc["cells"]:
        print_summary(doc, out)
    print_outcome(outcome)
    return report_thresholds(outcome, scenario.thresholds) or (0 if outcome.complete else 1)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``kbench locust`` to the ``kbench`` subcommands."""
    p = sub.add_parser(
        "locust", help="drive one scenario cell with Locust users (distributed load, web UI), same result document",
        description="Run one matrix cell of a scenario with Locust users built on confluent-kafka: a local "
                    "Locust process, or a master and N local worker processes (--workers), or workers on other "
                    "machines (--master-host). Writes the same result.json as `kbench run` (environment.driver: "
                    "locust) beside Locust's own CSV and HTML reports. See docs/locust.md.")
    p.add_argument("scenario", help="scenario YAML (kbench or OpenMessaging Benchmark workload)")
    add_scenario_run_args(p)
    p.add_argument("--cell", type=_positive_int, default=0, help="matrix cell index to run (default 0)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--headless", action="store_true", help="run without the web UI (the default)")
    mode.add_argument("--web", action="store_true", help="serve Locust's web UI on 127.0.0.1 and start from there")
    p.add_argument("--workers", type=_positive_int, default=0,
                   help="local Locust worker processes behind a local master (default 0: one Locust process)")
    p.add_argument("--expect-workers", type=_positive_int, default=None,
                   help="workers the master waits for, local ones included (default --workers)")
    p.add_argument("--master-host", default=None,
                   help="address the master binds for workers on other machines (default 127.0.0.1)")
    p.add_argument("--master-port", type=_positive_int, default=0, help="master port (default: a free port)")
    p.add_argument("--users", type=_positive_int, default=None,
                   help="producer users sharing the scenario's rate (default: workload.producers); consumer "
                        "users are always the scenario's consumers")
    p.add_argument("--spawn-rate", type=float, default=None, help="users started per second (default: all at once)")
    p.add_argument("--web-port", type=_positive_int, default=8089, help="web UI port with --web (default 8089)")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the topic kbench created")
    p.set_defaults(func=cmd_locust)
