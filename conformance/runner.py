"""Entry points for ``kbench conformance …`` (the CLI calls these; nothing here exits).

:func:`run` runs pytest on the suite in a child process. A client library can crash the process
(e.g. librdkafka segfaulting on an odd broker answer): the plugin writes every verdict to
``progress.jsonl`` as it goes, so the runner marks the check that was running as ERROR (a client
crash blames the client, not the broker: "the test process died with SIGSEGV") and starts pytest
again with ``--resume``, deselecting the checks that already have a verdict. An embedded broker is
started here (not in the child), so it survives those restarts; the child attaches to it by name
(``--broker-attach``). A check that blocks where pytest-timeout cannot interrupt it, or a child that
cannot exit after writing its report, is killed by the child's watchdog (:mod:`conformance.child`): the
stuck check is ERROR and the run resumes after it. :func:`repeat` runs the suite N times and writes the
verdict stability.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from bench.errors import RunAborted
from conformance.child import SESSION_TIMEOUT_S, Child, read_progress, stuck_result
from conformance.lanes import Lane, merge_docs, merge_timings, plan_lanes
from conformance.plugin import PROGRESS_FILE
from conformance.report import matrix as _matrix
from conformance.report import new_run_dir, write_report
from conformance.verdicts import EXIT_FAIL, EXIT_HARNESS_ERROR, EXIT_OK, exit_code

__all__ = ["CONFORMANCE_DIR", "matrix", "repeat", "run"]

CONFORMANCE_DIR = Path(__file__).resolve().parent
MAX_RESTARTS = 8
#: environment variable giving a lane's child its lane number (appended to its run id: names stay apart)
LANE_ENV = "KBENCH_CONFORMANCE_LANE"


def _option(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _record_crash(run_dir: Path, start: dict[str, Any], returncode: int) -> None:
    try:
        sig = signal.Signals(-returncode).name
    except ValueError:
        sig = f"signal {-returncode}"
    result: dict[str, Any] = {
        "id": start.get("id", "?"), "title": start.get("title", ""), "verdict": "ERROR",
        "detail": f"ERROR: the test process died with {sig} during this check (client library "
                  "crash); the remaining checks ran in a new process",
        "case": start.get("case", ""), "nodeid": start["nodeid"], "duration_s": 0.0,
        "observed": {"crash": sig}}
    _append_result(run_dir, result)


def _append_result(run_dir: Path, result: dict[str, Any]) -> None:
    with (run_dir / PROGRESS_FILE).open("a") as fh:
        fh.write(json.dumps({"event": "result", "result": result}) + "\n")


def run(bootstrap: str | None, broker: str | None, report_dir: Path | None,
        pytest_args: Sequence[str] = (), jobs: int = 1, echo: Callable[[str], Any] = print) -> int:
    """Run the conformance suite; returns 0 (all PASS/N/A/RECORD), 1 (some FAIL), 3 (some harness
    ERROR, no FAIL: :func:`conformance.verdicts.exit_code`) or pytest's own code (5: nothing selected).

    ``bootstrap`` selects an external broker, ``broker`` ("kafka"/"tansu") an embedded one started
    for the run and stopped after it; with neither, ``KBENCH_BOOTSTRAP`` is used. ``report_dir``
    must not exist or be empty (default ``reports/conformance-<broker>-<UTC stamp>/``).
    ``pytest_args`` pass through (e.g. ``["-k", "P1 or K2", "--broker-name", "redpanda"]``).
    ``jobs`` > 1 with ``--client``s in them: client lanes (:mod:`conformance.lanes`), at most ``jobs`` at a
    time, against the one broker, merged into ``report_dir`` (:func:`_run_lanes`; ``echo`` prints their
    progress and the summary).
    """
    args = list(pytest_args)
    handle = None
    if broker and not bootstrap:
        from bench.brokers import start_broker

        handle = start_broker(broker, nodes=1, port=0, name=f"conformance-{broker}-{os.getpid()}")
        bootstrap = handle.bootstrap
        args += ["--broker-attach", handle.name, "--broker-name", handle.kind,
                 "--broker-version", handle.version]
    lanes = plan_lanes(args, jobs)   # after --broker-attach: every lane attaches to the one broker
    try:
        if lanes is not None:
            return _run_lanes(bootstrap, broker, report_dir, args, lanes, jobs, echo)
        return _run_children(bootstrap, broker, report_dir, args)
    finally:
        if handle is not None:
            from bench.brokers import get_broker

            # the suite's children restart nodes (O8) through their own handle, which records the new
            # pids in the broker's state file: stop what the state says now, not what it said at start
            (get_broker(handle.name) or handle).stop()


def _default_run_dir(bootstrap: str | None, broker: str | None, args: Sequence[str]) -> Path:
    boot = bootstrap or os.environ.get("KBENCH_BOOTSTRAP") or "broker"
    label = _option(args, "--broker-name") or broker or ("external-" + boot.split(",")[0])
    return new_run_dir(Path(_option(args, "--report-root") or "reports"), label,
                       time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))


def _run_children(bootstrap: str | None, broker: str | None, report_dir: Path | None,
                  args: list[str], suite: Path = CONFORMANCE_DIR, control: Child | None = None) -> int:
    """pytest on the suite in child processes until it ends (a crashed child: its check ERROR, then
    ``--resume``). ``control`` (a lane of :func:`_run_lanes`) runs the children with its output file and
    environment, and can stop them."""
    if report_dir is None:
        report_dir = _default_run_dir(bootstrap, broker, args)
    # test paths / node ids among the pass-through args replace the whole suite
    picked = [a for a in args if not a.startswith("-") and ("::" in a or a.endswith(".py"))]
    base = [sys.executable, "-m", "pytest", *([] if picked else [str(suite)]), "-p", "no:cacheprovider",
            "--rootdir", str(suite.parent), "--report-dir", str(report_dir)]
    if bootstrap:
        base += ["--bootstrap", bootstrap]
    code = 0
    child = control or Child()
    for attempt in range(MAX_RESTARTS + 1):
        cmd = base + (["--resume"] if attempt else []) + args
        for nodeid in sorted(read_progress(report_dir).done):
            cmd += ["--deselect", nodeid]
        try:
            code = child.call(cmd, SESSION_TIMEOUT_S, report_dir)
        except subprocess.TimeoutExpired as exc:
            raise RunAborted(f"conformance run exceeded {SESSION_TIMEOUT_S:.0f} s; partial "
                             f"verdicts in {report_dir / PROGRESS_FILE}") from exc
        if code >= 0:
            break
        if child.stopped:   # stopped (the lane pool, a Ctrl-C): no restart
            raise RunAborted(f"run stopped ({code}); partial verdicts in {report_dir / PROGRESS_FILE}")
        running = read_progress(report_dir).running
        if running is None:
            raise RunAborted(f"the conformance process died ({code}) outside a check; partial "
                             f"verdicts in {report_dir / PROGRESS_FILE}")
        if child.killed == "stuck":
            _append_result(report_dir, stuck_result(running, report_dir))
        else:
            _record_crash(report_dir, running, code)
    else:
        raise RunAborted(f"the conformance process crashed {MAX_RESTARTS + 1} times; partial "
                         f"verdicts in {report_dir / PROGRESS_FILE}")
    report = report_dir / "report.json"
    if code == 5 and report.exists():  # the last session had nothing left to run
        code = 0
    if report.exists() and code in (EXIT_OK, EXIT_FAIL, EXIT_HARNESS_ERROR):
        return exit_code(json.loads(report.read_text()).get("counts", {}))
    return code


def _lane_checks(lane_dir: Path, doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A lane's verdicts: those of its progress.jsonl (every verdict, also of a lane that ended without a
    report), else its report's; one per node id."""
    path = lane_dir / PROGRESS_FILE
    if not path.exists():
        return list((doc or {}).get("checks", []))
    by_id: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:   # a line cut short by a killed child
            continue
        if event.get("event") == "result":
            by_id[str(event["result"].get("nodeid"))] = event["result"]
    return list(by_id.values())


def _run_lanes(bootstrap: str | None, broker: str | None, report_dir: Path | None, args: list[str],
               lanes: Sequence[Lane], jobs: int, echo: Callable[[str], Any], suite: Path = CONFORMANCE_DIR) -> int:
    """Run the lanes (at most ``jobs`` at a time, then the exclusive one alone), each a :func:`_run_children`
    into ``report_dir/lanes/<name>``; merge their reports into ``report_dir``. A lane that aborts or a
    Ctrl-C stops the others (SIGINT: they end incomplete); the merged report is then written, marked
    incomplete, and :class:`RunAborted` raised."""
    if report_dir is None:
        report_dir = _default_run_dir(bootstrap, broker, args)
    elif report_dir.exists() and (not report_dir.is_dir() or any(report_dir.iterdir())):
        raise RunAborted(f"--report-dir {report_dir} exists and is not empty: never overwritten")
    report_dir.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    controls = {lane.name: Child(report_dir / "lanes" / f"{lane.name}.log",
                                  {**os.environ, LANE_ENV: str(i)}) for i, lane in enumerate(lanes)}
    info: dict[str, dict[str, Any]] = {
        lane.name: {"name": lane.name, "clients": list(lane.clients), "exclusive": lane.exclusive,
                    "wall_s": None, "exit": None} for lane in lanes}
    failure: list[str] = []
    interrupted = False
    echo = _whole_lines(echo)

    def work(lane: Lane) -> int:
        lane_dir = report_dir / "lanes" / lane.name
        lane_dir.mkdir(parents=True, exist_ok=True)
        echo(f"lane {lane.name}: started ({' '.join(lane.args)}), log {controls[lane.name].log}")
        t = time.monotonic()
        try:
            code = _run_children(bootstrap, broker, lane_dir, list(lane.args), suite, controls[lane.name])
        except RunAborted as exc:
            info[lane.name]["aborted"] = str(exc)
            raise
        finally:
            info[lane.name]["wall_s"] = round(time.monotonic() - t, 1)
        info[lane.name]["exit"] = code
        return code

    def stop_all() -> None:
        for c in controls.values():
            c.stop()

    def pool(group: Sequence[Lane], width: int) -> None:
        nonlocal interrupted
        if not group or failure or interrupted:
            return
        ex = ThreadPoolExecutor(max_workers=width, thread_name_prefix="lane")
        futures: dict[Future[int], Lane] = {ex.submit(work, lane): lane for lane in group}
        pending = set(futures)
        try:
            while pending:
                # a timeout: a Ctrl-C is handled within 0.5 s, also while every lane still runs
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in done:
                    lane = futures[f]
                    exc = f.exception()
                    if exc is not None:
                        failure.append(f"lane {lane.name}: {exc}")
                    else:
                        counts = _counts_of(report_dir / "lanes" / lane.name)
                        echo(f"lane {lane.name}: exit {f.result()}, {counts}, {info[lane.name]['wall_s']} s")
                if failure and pending:
                    stop_all()
                    for f in pending:
                        f.cancel()
        except KeyboardInterrupt:
            interrupted = True
            echo("interrupted: stopping the lanes (each writes the verdicts it has)")
            stop_all()
            for f in pending:
                f.cancel()
        finally:
            while True:
                try:
                    ex.shutdown(wait=True, cancel_futures=True)
                    break
                except KeyboardInterrupt:   # a second Ctrl-C: do not wait for the grace period
                    interrupted = True
                    for c in controls.values():
                        c.stop()
                        proc = c._proc
                        if proc is not None:
                            Child._kill(proc)

    pool([lane for lane in lanes if not lane.exclusive], jobs)
    # checks that must run alone (O8 restarts the broker): after every concurrent lane
    pool([lane for lane in lanes if lane.exclusive], 1)
    wall = time.monotonic() - t0
    return _merge_lanes(report_dir, lanes, info, started, wall, failure, interrupted, bootstrap, echo)


def _whole_lines(echo: Callable[[str], Any]) -> Callable[[str], None]:
    """``echo`` for several threads: one line at a time."""
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            echo(line)
    return say


def _counts_of(lane_dir: Path) -> str:
    path = lane_dir / "report.json"
    if not path.exists():
        return "no report"
    counts = json.loads(path.read_text()).get("counts", {})
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _merge_lanes(report_dir: Path, lanes: Sequence[Lane], info: dict[str, dict[str, Any]],
                 started: dt.datetime, wall: float, failure: list[str], interrupted: bool,
                 bootstrap: str | None, echo: Callable[[str], Any]) -> int:
    from bench.metrics.files import write_hgrm

    parts: list[tuple[Lane, dict[str, Any] | None, list[dict[str, Any]]]] = []
    complete = not failure and not interrupted
    codes: list[int] = []
    for lane in lanes:
        lane_dir = report_dir / "lanes" / lane.name
        entry = info[lane.name]
        if not lane_dir.exists():          # never started (the run was stopped first)
            entry["exit"] = "not run"
            complete = False
            continue
        path = lane_dir / "report.json"
        doc = json.loads(path.read_text()) if path.exists() else None
        if doc is not None and not doc.get("complete", True):
            complete = False
        if isinstance(entry["exit"], int):
            codes.append(entry["exit"])
        elif entry["exit"] is None:
            entry["exit"] = "aborted" if "aborted" in entry else "stopped"
            complete = False
        parts.append((lane, doc, _lane_checks(lane_dir, doc)))
    timings, hists = merge_timings([(d or {}).get("timings") or {} for _, d, _ in parts])
    odd = [c for c in codes if c not in (EXIT_OK, EXIT_FAIL, EXIT_HARNESS_ERROR, 5)]
    doc = merge_docs(parts, [info[lane.name] for lane in lanes], started_at=started.isoformat(),
                     finished_at=dt.datetime.now(dt.UTC).isoformat(), wall_seconds=round(wall, 3),
                     complete=complete, exit_status=0, fallback_broker={"bootstrap": bootstrap},
                     timings=timings)
    if interrupted:
        code = 2            # pytest's INTERRUPTED
    elif failure:
        code = 1            # RunAborted's exit code
    else:
        code = odd[0] if odd else (exit_code(doc["counts"]) if doc["checks"] else 5)
    doc["exit_status"] = code

    def hgrm(directory: Path) -> list[Path]:
        out = []
        for name, h in hists.items():
            write_hgrm(h, directory / f"{name}.hgrm")
            out.append(directory / f"{name}.hgrm")
        return out

    write_report(report_dir, doc, hgrm)
    _print_summary(doc, report_dir, echo)
    if interrupted:
        raise RunAborted(f"interrupted; the lanes' verdicts so far in {report_dir / 'report.json'} "
                         "(incomplete)", interrupted=True)
    if failure:
        raise RunAborted("; ".join(failure) + f"; the other lanes were stopped; partial verdicts in "
                         f"{report_dir / 'report.json'} (incomplete)")
    return code


def _print_summary(doc: dict[str, Any], report_dir: Path, echo: Callable[[str], Any]) -> None:
    """What the plugin prints at the end of a sequential run, for the merged report, and the lanes."""
    b = doc.get("broker") or {}
    who = f"{b.get('implementation') or 'unknown'} {b.get('version') or ''} @ {b.get('bootstrap')}".replace("  ", " ")
    echo(f"kbench conformance, {len(doc.get('lanes', []))} lanes, {doc.get('wall_seconds', 0):.1f} s wall"
         + ("" if doc.get("complete", True) else " (INCOMPLETE)"))
    echo(f"{who}: " + ", ".join(f"{k} {v}" for k, v in doc.get("counts", {}).items()))
    for c in sorted(doc.get("checks", []), key=lambda c: str(c.get("nodeid"))):
        if c["verdict"] != "PASS":
            label = f"{c['id']}[{c['case']}]" if c.get("case") else c["id"]
            if c.get("client", "librdkafka") != "librdkafka":
                label += f"@{c['client']}"
            echo(f"  {c['verdict']:<6} {label:<8} {str(c.get('detail', ''))[:160]}")
    for lane in doc.get("lanes", []):
        echo(f"  lane {lane['name']:<20} {lane.get('wall_s')} s, exit {lane.get('exit')}")
    echo(f"report: {report_dir}")



def repeat(bootstrap: str | None, broker: str | None, root: Path | None, runs: int,
           pytest_args: Sequence[str] = (), echo: Any = print, jobs: int = 1) -> tuple[int, dict[str, Any]]:
    """Run the suite ``runs`` times (each like :func:`run`, an embedded broker started afresh per
    run) into ``root/run-01`` …; after every run write ``root/stability.json`` and ``stability.md``
    (:mod:`conformance.stability`); ``jobs``: client lanes per run, as :func:`run`. Returns (exit code over
    all runs: 1 if any run had a FAIL, else 3 if any had an ERROR, else 0 — or the first other code; the
    stability summary).
    """
    from conformance.report import load_report
    from conformance.stability import render_markdown, summarize

    if runs < 1:
        raise ValueError("repeat: runs must be >= 1")
    args = list(pytest_args)
    if root is None:
        label = _option(args, "--broker-name") or broker or (
            "external-" + (bootstrap or os.environ.get("KBENCH_BOOTSTRAP") or "broker").split(",")[0])
        root = new_run_dir(Path(_option(args, "--report-root") or "reports"), f"stability-{label}",
                           time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise RunAborted(f"--report-dir {root} exists and is not empty: never overwritten")
    root.mkdir(parents=True, exist_ok=True)
    docs: list[dict[str, Any]] = []
    dirs: list[str] = []
    elapsed: list[float | None] = []
    codes: list[int] = []
    summary: dict[str, Any] = {}
    for i in range(1, runs + 1):
        run_dir = root / f"run-{i:02d}"
        t0 = time.monotonic()
        code = run(bootstrap, broker, run_dir, args, jobs=jobs, echo=echo)
        took = time.monotonic() - t0
        codes.append(code)
        if (run_dir / "report.json").exists():
            docs.append(load_report(run_dir))
            dirs.append(run_dir.name)
            elapsed.append(took)
        summary = summarize(docs, dirs, elapsed)
        summary["exit_codes"] = codes
        (root / "stability.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (root / "stability.md").write_text(render_markdown(summary))
        counts = docs[-1]["counts"] if docs and dirs[-1] == run_dir.name else {}
        echo(f"run {i}/{runs}: exit {code}, " + ", ".join(f"{k} {v}" for k, v in counts.items())
             + f", {took:.1f} s ({run_dir})")
    summary["report_dir"] = str(root)
    if any(c == EXIT_FAIL for c in codes):
        return EXIT_FAIL, summary
    if any(c == EXIT_HARNESS_ERROR for c in codes):
        return EXIT_HARNESS_ERROR, summary
    return next((c for c in codes if c != EXIT_OK), EXIT_OK), summary


def matrix(report_dirs: Sequence[Path]) -> str:
    """Markdown broker × check table from several run directories (or report.json files)."""
    return _matrix([Path(p) for p in report_dirs])
