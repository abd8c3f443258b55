"""Client lanes: ``kbench conformance --jobs N`` runs parts of the suite concurrently. Pure: no process here.

:func:`plan_lanes` splits one run's pytest arguments into lanes: ``broker`` (the suite's own checks, through
librdkafka: ``-m "not through_client and not exclusive"``), one lane per ``--client`` (only its through-client
checks: ``-m "through_client and not exclusive" --client NAME``) and, last, ``exclusive`` (the checks marked
``@pytest.mark.exclusive``, e.g. O8, which restarts the embedded broker's node: they run alone, after every
other lane ended, for every client). A user ``-m EXPR`` is and-ed into each lane's; ``-k`` and test paths pass
through unchanged. :func:`merge_docs` makes one report.json document of the lanes' documents, as a sequential
run would have written it (:func:`conformance.report.build_doc` orders the checks), plus ``lanes``: each lane's
name, clients, wall time and exit.

What is safe to run concurrently (docs/conformance.md, "Client lanes in parallel"): every lane is its own pytest
process with its own run id, so its topics, groups and transactional ids (``kbc-<run id>-…``) are its own; no
check alters broker-wide configuration or lists the cluster expecting only its own objects; the only check
that touches the broker itself (O8: ``broker_control.restart_node(0)``) is ``exclusive``. A check whose timing
does not survive the other lanes' load is to be marked ``exclusive`` too, not loosened (none is, on Kafka 4.3
at ``--jobs 3`` on 2 cores: C12-C15 passed with their bounds, their timings as in a sequential run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.report import CheckResult, build_doc

__all__ = ["BROKER_LANE", "EXCLUSIVE_LANE", "EXCLUSIVE_MARK", "Lane", "merge_docs", "merge_timings",
           "plan_lanes", "split_args"]

BROKER_LANE = "broker"
EXCLUSIVE_LANE = "exclusive"
#: pytest marker of the checks that must not run while another lane runs (conformance/conftest.py registers it)
EXCLUSIVE_MARK = "exclusive"
THROUGH_CLIENT_MARK = "through_client"
#: relative length of a client's through-client lane (seconds on Kafka 4.3, 2 cores): the pool starts the
#: longest lanes first, so that a short one fills the end (unknown clients: 100)
LANE_WEIGHT: dict[str, float] = {"java": 148, "sarama": 115, "franz-go": 88, "confluent-kafka-go": 87,
                                 "kafka-go": 72, "librdkafka": 25}
BROKER_LANE_WEIGHT = 200.0


@dataclass(frozen=True)
class Lane:
    """One child pytest of a parallel run: its name (sub directory ``lanes/<name>``), the clients whose
    through-client checks it runs, and its pytest arguments (those of the run, -m and --client replaced)."""

    name: str
    clients: tuple[str, ...]
    args: tuple[str, ...]
    #: runs alone, after the concurrent lanes
    exclusive: bool = False
    #: the lane's place in a sequential run: broker 0, the clients 1.. in ``--client`` order, exclusive last
    rank: int = 0
    weight: float = field(default=100.0, compare=False)


def split_args(args: Sequence[str]) -> tuple[list[str], str | None, list[str]]:
    """(the arguments without -m and --client/--clients, the -m expression (the last one, as pytest
    takes it) or None, the clients in order, once each)."""
    rest: list[str] = []
    mark: str | None = None
    clients: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-m" and i + 1 < len(args):
            mark, i = args[i + 1], i + 2
            continue
        if arg.startswith("-m") and not arg.startswith("--") and len(arg) > 2:
            mark, i = arg[2:].removeprefix("="), i + 1
            continue
        if arg in ("--client", "--clients") and i + 1 < len(args):
            clients += [n.strip() for n in args[i + 1].split(",") if n.strip()]
            i += 2
            continue
        if arg.startswith(("--client=", "--clients=")):
            clients += [n.strip() for n in arg.split("=", 1)[1].split(",") if n.strip()]
            i += 1
            continue
        rest.append(arg)
        i += 1
    return rest, mark, list(dict.fromkeys(clients))


def _and(user: str | None, lane: str) -> str:
    return f"({user}) and ({lane})" if user and user.strip() else lane


def plan_lanes(args: Sequence[str], jobs: int) -> list[Lane] | None:
    """The lanes of a run with these pytest arguments, or None for one sequential run (``jobs`` <= 1 or no
    ``--client``: nothing to run beside the broker checks). Concurrent lanes come longest first (the pool's
    start order); the ``exclusive`` lane is last."""
    if jobs <= 1:
        return None
    rest, mark, clients = split_args(args)
    if not clients:
        return None
    client_opts = [a for c in clients for a in ("--client", c)]
    lanes = [Lane(BROKER_LANE, (), (*rest, "-m", _and(mark, f"not {THROUGH_CLIENT_MARK} and not {EXCLUSIVE_MARK}")),
                  weight=BROKER_LANE_WEIGHT)]
    lanes += [Lane(c, (c,), (*rest, "-m", _and(mark, f"{THROUGH_CLIENT_MARK} and not {EXCLUSIVE_MARK}"),
                             "--client", c), rank=n, weight=LANE_WEIGHT.get(c, 100.0))
              for n, c in enumerate(clients, 1)]
    lanes.sort(key=lambda lane: -lane.weight)      # stable: equal weights keep the --client order
    lanes.append(Lane(EXCLUSIVE_LANE, tuple(clients), (*rest, "-m", _and(mark, EXCLUSIVE_MARK), *client_opts),
                      exclusive=True, rank=len(clients) + 1))
    return lanes


def merge_timings(summaries: Sequence[Mapping[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The lanes' ``timings`` added up per operation (exact: their HDR histograms are merged):
    (report.json ``timings`` without ``hgrm``, the merged histograms by name)."""
    from bench.metrics.hdr import encode_histogram, merge_encoded, value_at_percentiles

    encoded: dict[str, list[str]] = {}
    for timings in summaries:
        for name, t in (timings or {}).items():
            if t.get("hdr"):
                encoded.setdefault(name, []).append(str(t["hdr"]))
    out: dict[str, Any] = {}
    hists: dict[str, Any] = {}
    for name in sorted(encoded):
        h = merge_encoded(encoded[name])
        if not h.total_count:
            continue
        p50, p90, p99 = value_at_percentiles(h, (50.0, 90.0, 99.0))
        out[name] = {"count": int(h.total_count), "min_us": int(h.get_min_value()), "p50_us": p50,
                     "p90_us": p90, "p99_us": p99, "max_us": int(h.get_max_value()), "hdr": encode_histogram(h)}
        hists[name] = h
    return out, hists


def _check(raw: Mapping[str, Any]) -> CheckResult:
    known = CheckResult.__dataclass_fields__
    return CheckResult(**{k: v for k, v in raw.items() if k in known})


def merge_docs(parts: Sequence[tuple[Lane, Mapping[str, Any] | None, Sequence[Mapping[str, Any]]]],
               lanes: Sequence[Mapping[str, Any]], *, started_at: str, finished_at: str, wall_seconds: float,
               complete: bool, exit_status: int, fallback_broker: Mapping[str, Any] | None = None,
               timings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One report.json document from the lanes' parts: (lane, its report.json document or None, its checks —
    the document's, or those of its progress.jsonl when the lane ended without a report). Checks come in the
    order of a sequential run (build_doc: by check, then case; equal ones in lane order, which is the
    ``--client`` order: the broker lane first, then the clients), counts are recomputed; broker, client and
    host come from the first lane with a document (the broker lane's, unless it has none)."""
    ordered = sorted(parts, key=lambda p: p[0].rank)
    checks = [_check(c) for _, _, cs in ordered for c in cs]
    docs = [d for _, d, _ in ordered if d]
    first: Mapping[str, Any] = docs[0] if docs else {}
    broker = dict(first.get("broker") or fallback_broker or {})
    run_id = str(first.get("run_id", ""))
    return build_doc(checks, run_id=run_id, started_at=started_at, finished_at=finished_at,
                     wall_seconds=wall_seconds, complete=complete, exit_status=exit_status, broker=broker,
                     client=dict(first.get("client") or {}), host=dict(first.get("host") or {}),
                     timings=dict(timings or {}), lanes=[dict(x) for x in lanes])

