"""``kbench driver list`` and ``kbench driver build [NAME]``: the load drivers of each client, built on
first use into the kbench cache (the Java driver per Kafka version, the Go drivers per Go toolchain)."""

from __future__ import annotations

import argparse
import time

from rich.table import Table

from bench.cli.options import err, out, progress_line
from bench.errors import ConfigError

__all__ = ["register"]


def _kafka_version(args: argparse.Namespace) -> str:
    from bench.brokers.kafka import DEFAULT_VERSION

    return str(args.kafka_version or DEFAULT_VERSION)


def cmd_driver_list(args: argparse.Namespace) -> int:
    import confluent_kafka

    from bench.drivers.gobuild import go_driver_status
    from bench.drivers.javabuild import java_driver_status
    from bench.drivers.registry import GO_CLIENT_NAMES

    table = Table(title="load drivers", title_justify="left")
    for col in ("client", "driver", "version", "built", "detail"):
        table.add_column(col)
    table.add_row("librdkafka", "process (confluent-kafka-python)", confluent_kafka.libversion()[0], "yes (in-process)",
                  f"confluent-kafka {confluent_kafka.version()}")
    java = java_driver_status(_kafka_version(args))
    table.add_row("java", f"external, kafka-clients {java.kafka_version}", java.client_version or java.kafka_version,
                  "yes" if java.built else "no", java.detail)
    for name in GO_CLIENT_NAMES:
        go = go_driver_status(name)
        table.add_row(name, f"external, {go.module}", go.version, "yes" if go.built else "no", go.detail)
    out.print(table)
    return 0


def cmd_driver_build(args: argparse.Namespace) -> int:
    from bench.drivers.gobuild import build_go_driver
    from bench.drivers.javabuild import build_java_driver
    from bench.drivers.registry import CLIENTS, GO_CLIENT_NAMES

    names = [args.name] if args.name else [c for c in CLIENTS if c != "librdkafka"]
    if args.name and args.name not in CLIENTS:
        raise ConfigError(f"kbench driver build {args.name}: expected one of {', '.join(CLIENTS)}")
    for name in names:
        t0 = time.perf_counter()
        if name == "librdkafka":
            err.print("librdkafka: nothing to build (in-process, confluent-kafka-python)", markup=False)
            continue
        if name == "java":
            where = " ".join(build_java_driver(_kafka_version(args), progress=progress_line).command()[:3])
        else:
            assert name in GO_CLIENT_NAMES
            where = str(build_go_driver(name, progress=progress_line))
        out.print(f"{name}: ready in {time.perf_counter() - t0:.1f} s ({where} …)", markup=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("driver", help="the load drivers of the clients (java, franz-go, sarama, …)")
    dsub = p.add_subparsers(dest="driver_cmd", required=True)
    ls = dsub.add_parser("list", help="each client's driver, its version, and whether it is built")
    ls.add_argument("--kafka-version", default=None, help="the Java driver's kafka-clients version (default: "
                                                          "the embedded broker's)")
    ls.set_defaults(func=cmd_driver_list)
    b = dsub.add_parser("build", help="build one driver (or all) into the kbench cache")
    b.add_argument("name", nargs="?", default=None, help="java, franz-go, sarama, kafka-go or confluent-kafka-go")
    b.add_argument("--kafka-version", default=None, help="the Java driver's kafka-clients version")
    b.set_defaults(func=cmd_driver_build)
