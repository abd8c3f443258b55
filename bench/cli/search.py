"""``kbench search`` and ``kbench plan``: registered into the CLI by :func:`register`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.options import add_scenario_run_args, err, out, prepare_from_args, print_outcome, progress_line
from bench.results.model import RunDocument

__all__ = ["cmd_plan", "cmd_search", "register"]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _print_search(doc: RunDocument, console: Any) -> None:
    from rich.table import Table

    record = doc.get("search") or {}
    spec = record.get("spec") or {}
    table = Table(title=f"knee search of {record.get('cell', {}).get('label')} "
                        f"({spec.get('metric')} p99 <= {spec.get('p99_ms')} ms)", title_justify="left")
    cols = ("step", "phase", "offered msg/s", "achieved msg/s", "95% low", "MB/s", "p99 ms", "other cores", "verdict")
    for col in cols:
        table.add_column(col, justify="left" if col in ("phase", "verdict") else "right")
    for s in record.get("steps") or []:
        p99 = s["p99_ms"].get(spec.get("metric"))
        lcb = s.get("achieved_lcb")
        table.add_row(str(s["index"]), s["phase"], f"{s['rate']:,.0f}", f"{s['achieved_msgs_per_s']:,.0f}",
                      "–" if lcb is None else f"{lcb:,.0f}", f"{s['mb_per_s']:.2f}",
                      "–" if p99 is None else f"{p99:,.2f}",
                      f"{s['host']['other_cores']:.1f}" if s.get("host") else "–",
                      "good" if s["good"] else "bad: " + "; ".join(s["reasons"]))
    console.print(table)
    knee = record.get("knee")
    if knee:
        upper = f", first bad {knee['upper']:,.0f} (resolution {knee['resolution_pct']:.1f}%)" \
            if knee.get("upper") is not None else ""
        noise = f", per-second noise {knee['noise_pct']:.1f}%" if knee.get("noise_pct") is not None else ""
        console.print(f"knee ({record.get('status')}): {knee['rate']:,.0f} msg/s offered, "
                      f"{knee['achieved_msgs_per_s']:,.0f} msg/s = {knee['mb_per_s']:.2f} MB/s achieved "
                      f"over {len(knee['runs'])} run(s){upper}{noise}")
        nr = knee.get("noise_range")
        if nr:
            console.print(f"measured noise: p99 varies ±{nr['p99_noise_pct']:.0f}% between runs at one rate; the SLO "
                          f"crossing is at {nr['estimate']:,.0f} msg/s, within 2 sd anywhere in "
                          f"[{nr['range'][0]:,.0f}, {nr['range'][1]:,.0f}] msg/s")
    else:
        console.print(f"no knee ({record.get('status')})")
    for note in record.get("notes") or []:
        console.print(f"note: {note}", markup=False)


def cmd_search(args: argparse.Namespace) -> int:
    """``kbench search SCENARIO``: the knee of one cell; a normal result document (cells = steps)."""
    from bench.capacity.host import local_broker_pids
    from bench.capacity.search import run_search
    from bench.cli.progress import RunProgress
    from bench.run.events import RunEvents
    from bench.run.execute import RunOptions
    from bench.run.target import open_target

    prepared = prepare_from_args("search", args, cell=args.cell)  # before any side effect
    scenario, cell, spec = prepared.scenario, prepared.search_cell, prepared.search_spec
    assert cell is not None and spec is not None  # prepare("search") parsed them or raised
    client_conf = dict(prepared.client_config)
    with open_target(args.bootstrap, args.broker or scenario.broker, nodes=args.nodes,
                     client_config=client_conf, progress=progress_line, runtime=prepared.runtime) as target:
        err.print(f"{scenario.name}: knee search of cell {cell.index} ({cell.label()}), at most "
                  f"{spec.max_steps} step(s) of {spec.warmup_s:g}+{spec.step_duration_s:g} s, against "
                  f"{target.describe()}", markup=False)
        opts = RunOptions(bootstrap=target.bootstrap, broker=target.info, reports_root=prepared.reports_root,
                          out=prepared.out, client_config=client_conf, drain_timeout_s=args.drain_timeout)
        progress = RunProgress(enabled=not args.no_progress)
        events = RunEvents(observers=[progress], broker_alive=target.alive)
        pids = [n.pid for n in target.handle.nodes if n.pid] if target.handle is not None \
            else local_broker_pids(target.bootstrap)
        try:
            outcome = run_search(scenario, opts, spec, cell, events, broker_pids=pids)
        finally:
            progress.close()
    _print_search(outcome.document, out)
    print_outcome(outcome)
    status = (outcome.document.get("search") or {}).get("status")
    return 0 if outcome.complete and status in ("converged", "above max_rate") else 1


def cmd_plan(args: argparse.Namespace) -> int:
    """``kbench plan RESULT --target-mbps X --p99-ms Y``: brokers and partitions for a target load."""
    from bench.capacity.plan import compute_plan, parse_headroom
    from bench.capacity.render import write_plan
    from bench.results.store import load_result

    doc = load_result(args.result)
    plan = compute_plan(doc, args.target_mbps, args.p99_ms, parse_headroom(args.headroom), args.cell)
    files = write_plan(plan, doc, Path(doc["_path"]))
    print(plan.headline())
    for line in plan.extrapolation:
        err.print(f"extrapolation: {line}", markup=False)
    out.print(f"plan: {files.markdown}  {files.html}  {files.png}", markup=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``kbench search`` and ``kbench plan``."""
    s = sub.add_parser("search", help="find the knee: the highest open-loop rate one cell sustains within a p99 SLO",
                       description="Step the offered rate of one cell (the scenario's `search:` section), "
                                   "refine between the last good and first bad rate, confirm the knee. "
                                   "See docs/capacity.md.")
    s.add_argument("scenario", help="scenario YAML with a search: section")
    add_scenario_run_args(s, what="search")
    s.add_argument("--cell", type=int, default=None, help="matrix cell to search (default: the first, 0)")
    s.add_argument("--no-progress", action="store_true", help="no live progress display")
    s.set_defaults(func=cmd_search)

    p = sub.add_parser("plan", help="capacity plan: brokers and partitions for a target MB/s at a p99 SLO",
                       description="Read a knee search (kbench search) or a sweep (kbench run over partitions, "
                                   "producers, message size) and write plan/plan.{md,html,png} next to it.")
    p.add_argument("result", help="run directory or result.json")
    p.add_argument("--target-mbps", type=_positive, required=True, help="produce throughput to carry, MB/s (1e6 B)")
    p.add_argument("--p99-ms", type=_positive, required=True, help="latency SLO: p99 in milliseconds")
    p.add_argument("--headroom", default="30%", help="spare capacity to keep (default 30%%: run at <= 70%%)")
    p.add_argument("--cell", type=int, default=None, help="plan for the configuration of this cell (sweeps)")
    p.set_defaults(func=cmd_plan)
