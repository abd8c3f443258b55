"""`kbench` command line: one small function per subcommand. The only place that prints errors and exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bench import __version__
from bench.cli.options import add_scenario_run_args, err, prepare_from_args
from bench.errors import ConfigError, KbenchError

Handler = Callable[[argparse.Namespace], int]


# -- broker ---------------------------------------------------------------------------------------
def _add_broker(sub: argparse._SubParsersAction) -> None:
    from bench.cli.broker import register

    register(sub)


# -- run --------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from bench.cli.pipeline import run_and_report
    from bench.run.session import Session

    prepared = prepare_from_args("run", args, repeat=args.repeat, prime_s=args.prime,  # before any side effect
                                 netns=args.netns)
    session = Session(bootstrap=args.bootstrap, broker=args.broker, nodes=args.nodes, netns=args.netns,
                      verify=args.verify, keep_topics=args.keep_topics, drain_timeout_s=args.drain_timeout,
                      prime_s=args.prime, fail_fast=args.fail_fast)
    return run_and_report(prepared, session, progress=not args.no_progress)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a scenario file (a matrix of cells) and write a result")
    p.add_argument("scenario", help="scenario YAML (kbench or OpenMessaging Benchmark workload)")
    p.add_argument("--prime", type=float, default=8.0, metavar="SECONDS",
                   help="with --broker: run the first cell, uncounted, before measuring, so a cold broker is "
                        "not measured: rounds of SECONDS/2 until its publish p99 stops falling by more than 20%% "
                        "(at least SECONDS, at most 4x; default 8; 0 skips)")
    add_scenario_run_args(p)
    p.add_argument("--netns", action="store_true",
                   help="with --broker kafka, as root: each node in its own network namespace on its own 198.18.x "
                        "address (needed by action: partition faults); removed at the end of the run")
    p.add_argument("--verify", action="store_true", help="keep every ack and read for the history checker")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the topics kbench created")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop the run at the first failed cell (a driver died, a worker never became ready, a "
                        "consumer never joined); default: mark it failed, run the other cells, exit 1")
    p.add_argument("--repeat", type=int, default=None, metavar="N",
                   help="run every cell N times, each on a fresh topic (overrides the scenario's repeat:); "
                        "kbench compare judges run-level values and needs repeats to be conclusive")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.set_defaults(func=cmd_run)


# -- conformance ------------------------------------------------------------------------------------
def cmd_conformance(args: argparse.Namespace) -> int:
    from pathlib import Path

    from conformance.runner import matrix, run

    if args.action == "matrix":
        rest = list(args.pytest_args or [])
        if rest[:1] == ["--html"] and len(rest) > 1:   # `matrix DIR... --html FILE`: argparse's remainder took it
            args.html, rest = rest[1], rest[2:]
        args.dirs = [*args.dirs, *rest]
        if not args.dirs:
            raise ConfigError("kbench conformance matrix DIR...: name one or more conformance report directories")
        missing = [d for d in args.dirs if not Path(d).exists()]
        if missing:
            raise ConfigError(f"no such report directory: {', '.join(missing)}")
        print(matrix([Path(d) for d in args.dirs]))
        if args.html:
            from conformance.matrix_html import matrix_html

            Path(args.html).write_text(matrix_html([Path(d) for d in args.dirs]))
        return 0
    if args.action is not None or args.dirs:
        raise ConfigError(f"unknown conformance action {args.action!r} (expected: matrix, or options only)")
    if not args.bootstrap and not args.broker:
        raise ConfigError("kbench conformance: pass --bootstrap HOST:PORT (any broker) or --broker KIND")
    if args.bootstrap:
        from bench.brokers import probe_cluster

        security = None
        if args.client_config_file:
            from bench.brokers.security import load_properties

            security = load_properties(args.client_config_file)
        probe_cluster(args.bootstrap, timeout=8.0, extra=security)  # fail fast, with a message, if nothing answers
    extra = list(args.pytest_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    if args.client_config_file:  # the path only: secrets stay in the file
        extra = ["--client-config-file", str(Path(args.client_config_file).resolve()), *extra]
    if args.k:
        extra = ["-k", args.k, *extra]
    for name in _conformance_clients(args):  # the through-client checks (conformance/test_client_checks.py)
        extra = [*extra, "--client", name]
    if args.broker_name:
        extra = ["--broker-name", args.broker_name, *extra]
    report_dir = Path(args.report_dir) if args.report_dir else None
    if args.jobs < 1:
        raise ConfigError("kbench conformance --jobs N: N must be >= 1")
    if args.repeat is not None:
        if args.repeat < 1:
            raise ConfigError("kbench conformance --repeat N: N must be >= 1")
        from conformance.runner import repeat
        from conformance.stability import render_markdown

        code, summary = repeat(args.bootstrap, args.broker, report_dir, args.repeat, extra, jobs=args.jobs)
        print(render_markdown(summary), end="")
        print(f"stability report: {summary['report_dir']}/stability.md (and stability.json)")
    else:
        code = run(args.bootstrap, args.broker, report_dir, extra, jobs=args.jobs)
    if code == 5:
        raise ConfigError("the conformance selection matched no check (pytest exit 5)")
    # 0 all PASS/N/A/RECORD · 1 some FAIL · 3 some harness ERROR (kbench, not the broker), no FAIL
    return {0: 0, 1: 1, 3: 3}.get(code, 2)


def _conformance_clients(args: argparse.Namespace) -> list[str]:
    from bench.drivers.registry import CLIENTS

    names = [n.strip() for opt in (args.client or []) for n in opt.split(",") if n.strip()]
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        raise ConfigError(f"kbench conformance --client {', '.join(unknown)}: expected one of {', '.join(CLIENTS)}")
    return list(dict.fromkeys(names))


def _add_conformance(sub: argparse._SubParsersAction) -> None:
    from bench.brokers import kind_names

    p = sub.add_parser("conformance", help="check a broker's Kafka semantics; write a compatibility report",
                       description="Run the conformance suite (or `kbench conformance matrix DIR...` to pivot "
                                   "several reports into one broker x check table).")
    p.add_argument("action", nargs="?", help="'matrix' to combine reports")
    p.add_argument("dirs", nargs="*", help="report directories (with 'matrix')")
    p.add_argument("--html", metavar="FILE", help="with 'matrix': also write it as a self-contained HTML page")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--bootstrap", help="HOST:PORT of the broker to check")
    target.add_argument("--broker", choices=list(kind_names()), help="start an embedded broker to check")
    p.add_argument("--broker-name", help="implementation name to record for an external broker (e.g. redpanda)")
    p.add_argument("--report-dir", help="report directory (default reports/conformance-<broker>-<UTC>)")
    p.add_argument("-k", help="pytest -k expression selecting checks, e.g. 'P1 or G3'")
    p.add_argument("--client-config-file", help="librdkafka key=value lines (SASL/TLS) for every client of the "
                                                "suite, its admin and ApiVersions probe")
    p.add_argument("--client", "--clients", dest="client", action="append", metavar="NAME[,NAME]",
                   help="also run the through-client checks (C1-C18, C20-C27) with this client's driver: librdkafka, "
                        "java, franz-go, sarama, kafka-go, confluent-kafka-go (repeatable, or comma-separated)")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="run the suite N times (run-01..run-NN under --report-dir) and print/write each "
                        "check's verdict stability (stability.md, stability.json)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="with --client: run the broker checks and each client's through-client checks as "
                        "concurrent lanes against the one broker, at most N at a time (default 1: one "
                        "sequential run); checks marked exclusive (O8 restarts the broker) run alone after them")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: extra pytest arguments")
    p.set_defaults(func=cmd_conformance)


def _add_report(sub: argparse._SubParsersAction) -> None:
    from bench.cli.report import register

    register(sub)


def _add_locust(sub: argparse._SubParsersAction) -> None:
    from bench.cli.locust import register

    register(sub)


def _add_capacity(sub: argparse._SubParsersAction) -> None:
    from bench.cli.search import register

    register(sub)


def _add_driver(sub: argparse._SubParsersAction) -> None:
    from bench.cli.driver import register

    register(sub)


_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_broker, _add_run, _add_conformance, _add_report, _add_locust, _add_capacity, _add_driver,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbench",
        description="Benchmark and conformance harness for Apache Kafka and Kafka-compatible brokers. "
                    "Start with `kbench run scenarios/smoke.yaml --broker kafka`.")
    parser.add_argument("--version", action="version", version=f"kbench {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for add in _EXTENSIONS:
        add(sub)
    return parser


def _split_pytest_tail(argv: list[str]) -> tuple[list[str], list[str]]:
    """`kbench conformance ... -- PYTEST ARGS`: the part after `--`, kept from argparse.

    argparse hands a `--` tail to the first free positional (`action`), so `-- -m through_client` read as
    action '-m'; the tail is split off here and becomes ``pytest_args``.
    """
    if argv[:1] == ["conformance"] and "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    head, tail = _split_pytest_tail(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(head)
    if tail:
        args.pytest_args = [*(getattr(args, "pytest_args", None) or []), *tail]
    try:
        return int(args.func(args))
    except KbenchError as exc:
        err.print("[red]kbench: error:[/red] ", end="")
        err.print(str(exc), markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("kbench: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
