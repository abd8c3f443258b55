"""The ``kbench locust`` subcommand (registered by :mod:`bench.cli.main` through ``register``): the run
pipeline of ``kbench run`` with the Locust driver (:class:`bench.locust.driver.LocustDriver`)."""

from __future__ import annotations

import argparse
import dataclasses

from bench.cli.options import add_scenario_run_args, prepare_from_args, progress_line
from bench.errors import ConfigError

__all__ = ["cmd_locust", "register"]


def cmd_locust(args: argparse.Namespace) -> int:
    from bench.cli.pipeline import run_and_report
    from bench.locust.driver import LocustDriver, LocustOptions, setup_locust
    from bench.run.session import Session

    prepared = prepare_from_args("locust", args, cell=args.cell)  # before any side effect
    if not 0 < args.web_port < 65536 or args.master_port > 65535:
        raise ConfigError("--web-port / --master-port: expected a TCP port (1..65535)")
    options = LocustOptions(
        cell=args.cell, workers=args.workers, expect_workers=args.expect_workers, headless=not args.web,
        master_host=args.master_host, master_port=args.master_port, users=args.users, spawn_rate=args.spawn_rate,
        web_port=args.web_port, embedded=not args.bootstrap)
    scenario, setup = setup_locust(prepared.scenario, options)  # before a broker is started
    session = Session(bootstrap=args.bootstrap, broker=args.broker, nodes=args.nodes, keep_topics=args.keep_topics,
                      drain_timeout_s=args.drain_timeout, driver=LocustDriver(setup, say=progress_line))
    return run_and_report(dataclasses.replace(prepared, scenario=scenario), session, progress=not args.no_progress)


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
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.set_defaults(func=cmd_locust)
