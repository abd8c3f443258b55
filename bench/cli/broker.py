"""``kbench broker up|status|logs|down|fetch``: start, inspect and stop brokers of any kind and runtime."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from bench.cli.options import out, parse_kv, progress_line
from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.brokers import Service

__all__ = ["register"]


def cmd_broker_up(args: argparse.Namespace) -> int:
    from bench.brokers import start_broker

    if args.netns and (args.bind_host != "127.0.0.1" or args.advertise_host):
        raise ConfigError("--netns binds and advertises each node's own address: drop --bind-host/--advertise-host")
    t0 = time.monotonic()
    handle = start_broker(args.kind, nodes=args.nodes, port=args.port, version=args.version, name=args.name,
                          configs=parse_kv(args.config, "--config"), options=_options(args),
                          binary=args.binary, bind_host=args.bind_host, advertised_host=args.advertise_host,
                          runtime=args.runtime, timeout=args.timeout, progress=progress_line, netns=args.netns)
    elapsed = time.monotonic() - t0
    brokers = handle.state.brokers or len(handle.nodes)
    out.print(f"{handle.kind} {handle.version} up: {brokers} broker(s), name {handle.name!r}, "
              f"ready in {elapsed:.2f} s", markup=False)
    topo = handle.state.netns
    for n in [*handle.state.aux, *handle.nodes]:
        where = f", {n.host} in namespace {topo.prefix}-{topo.names[n.node_id - 1]}" if topo and n.host else ""
        out.print(f"  {n.role} {n.node_id}: pid {n.pid}, port {n.port}{where}, log {n.log_file}", markup=False)
    print(f"bootstrap: {handle.bootstrap}")
    if args.security:
        from bench.brokers.security import client_properties_path

        print(f"client properties: {client_properties_path(handle.state.base_dir)}")
    return 0


def _options(args: argparse.Namespace) -> dict[str, str]:
    """--option KEY=VALUE pairs, plus --image (the docker runtime's ``image`` option)."""
    options = parse_kv(args.option, "--option")
    if args.security:
        if args.kind != "kafka" or args.runtime not in (None, "process"):
            raise ConfigError(f"--security applies to kafka run as processes (not {args.kind}"
                              f"{'' if args.runtime in (None, 'process') else ' --runtime ' + args.runtime})")
        options["security"] = args.security
    if args.image:
        if args.runtime != "docker":
            raise ConfigError("--image applies to --runtime docker")
        options["image"] = args.image
    return options


def cmd_broker_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bench.brokers import list_brokers, probe_cluster
    from bench.errors import BrokerUnreachableError

    brokers = list_brokers()
    if not brokers:
        out.print("no embedded brokers (start one with `kbench broker up kafka`)")
        return 0
    table = Table("name", "kind", "version", "runtime", "nodes alive", "bootstrap", "metadata")
    for h in brokers:
        alive = h.alive_nodes()
        try:
            extra = h.probe_config() if hasattr(h, "probe_config") else None
            info = probe_cluster(h.bootstrap, timeout=2.0, extra=extra) if alive else None
            brokers_seen = info["brokers"] if info else {}
            assert isinstance(brokers_seen, dict)
            meta = f"{len(brokers_seen)} broker(s), cluster {info['cluster_id']}" if info else "down"
        except BrokerUnreachableError:
            meta = "not answering"
        table.add_row(h.name, h.kind, h.version, h.state.runtime, f"{len(alive)}/{len(h.nodes)}", h.bootstrap,
                      meta)
    out.print(table)
    return 0


def _named(name: str | None) -> list[Service]:
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
    for h in _named(args.name):
        for log in h.logs(args.lines):
            out.print(f"[bold]== {h.name} {log.role} node {log.node_id}: {log.path}[/bold]")
            print(log.text)
    return 0


def cmd_broker_down(args: argparse.Namespace) -> int:
    from bench.brokers import list_brokers

    brokers = list_brokers() if args.all else _named(args.name)
    if not brokers:
        out.print("no embedded brokers running")
    for h in brokers:
        h.stop(keep_data=args.keep_data)
        out.print(f"{h.name} ({h.kind}) stopped")
    if args.all:
        from bench.brokers.netns_nodes import sweep_orphans

        for prefix in sweep_orphans():   # topologies of crashed --netns runs
            out.print(f"removed the orphaned network namespaces {prefix}-*", markup=False)
    return 0


def cmd_broker_fetch(args: argparse.Namespace) -> int:
    from bench.brokers import fetch_broker

    t0 = time.monotonic()
    line = fetch_broker(args.kind, version=args.version, binary=args.binary, runtime=args.runtime,
                        progress=progress_line)
    out.print(f"{line} ({time.monotonic() - t0:.1f} s)", markup=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from bench.brokers import RUNTIMES, kind_names

    kinds = list(kind_names())
    p = sub.add_parser("broker", help=f"start/stop embedded brokers ({', '.join(kinds)})")
    bsub = p.add_subparsers(dest="broker_cmd", required=True)
    up = bsub.add_parser("up", help="start a broker and wait until it answers")
    up.add_argument("kind", choices=kinds)
    up.add_argument("--nodes", type=int, default=1, help="brokers (kafka, kafka-zk: 1 or 3; kfake: 1-5)")
    up.add_argument("--port", type=int, default=None,
                    help="client port of node 1 (default per kind: kafka 9092, kafka-zk 9292, tansu 9192, "
                         "kfake 9392; 0 = free ports)")
    up.add_argument("--version", default=None,
                    help="Apache Kafka release (kafka: 3.3-4.x, default 4.3.1; kafka-zk: 2.8-3.9, default 3.9.2)")
    up.add_argument("--name", default=None, help="name to remember it by (default: the kind)")
    up.add_argument("--config", action="append", metavar="KEY=VALUE", help="broker config override")
    up.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="kind option (kfake: as-version, seed-topics, partitions, data-dir, sync, log-level, "
                         "cluster-id; tansu: storage)")
    up.add_argument("--binary", default=None, help="tansu or kbench-kfake binary to use instead of the default")
    up.add_argument("--bind-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--advertise-host", default=None, help="host advertised in metadata (default: bind host)")
    up.add_argument("--runtime", default=None, choices=list(RUNTIMES), help="where to run it (default: process)")
    up.add_argument("--image", default=None, metavar="REF",
                    help="--runtime docker: the image to run (it must be in the engine: kbench never pulls)")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    up.add_argument("--netns", action="store_true",
                    help="kafka, as root: each node in its own network namespace on its own 198.18.x address "
                         "(what partition faults need); removed by `kbench broker down`")
    up.add_argument("--security", default=None, choices=["sasl-plain", "sasl-scram", "tls", "mtls"],
                    help="kafka: SASL over TLS, TLS or mutual TLS, with ACLs (StandardAuthorizer); prints the "
                         "client-properties file for --client-config-file")
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
    fe = bsub.add_parser("fetch", help="fetch/build a broker's artifacts into the cache (no start), for CI")
    fe.add_argument("kind", choices=kinds)
    fe.add_argument("--version", default=None)
    fe.add_argument("--binary", default=None)
    fe.add_argument("--runtime", default=None, choices=list(RUNTIMES))
    fe.set_defaults(func=cmd_broker_fetch)
