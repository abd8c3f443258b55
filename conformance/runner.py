"""Entry points for ``kbench conformance …`` (the CLI calls these; nothing here exits).

:func:`run` runs pytest on the suite in a child process. A client library can crash the process
(e.g. librdkafka segfaulting on an odd broker answer): the plugin writes every verdict to
``progress.jsonl`` as it goes, so the runner marks the check that was running as ERROR (a client
crash blames the client, not the broker: "the test process died with SIGSEGV") and starts pytest
again with ``--resume``, deselecting the checks that already have a verdict. An embedded broker is
started here (not in the child), so it survives those restarts; the child attaches to it by name
(``--broker-attach``). :func:`repeat` runs the suite N times and writes the verdict stability.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import RunAborted
from conformance.plugin import PROGRESS_FILE
from conformance.report import matrix as _matrix
from conformance.report import new_run_dir
from conformance.verdicts import EXIT_FAIL, EXIT_HARNESS_ERROR, EXIT_OK, exit_code

__all__ = ["CONFORMANCE_DIR", "matrix", "repeat", "run"]

CONFORMANCE_DIR = Path(__file__).resolve().parent
MAX_RESTARTS = 8
SESSION_TIMEOUT_S = 1800.0


def _option(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _progress(run_dir: Path) -> tuple[set[str], dict[str, Any] | None]:
    """(nodeids with a verdict, the start event of the check running when the process died)."""
    done: set[str] = set()
    running: dict[str, Any] | None = None
    path = run_dir / PROGRESS_FILE
    if not path.exists():
        return done, None
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "start":
            running = event
        elif event["event"] == "result":
            done.add(event["result"]["nodeid"])
    return done, (running if running and running["nodeid"] not in done else None)


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
    with (run_dir / PROGRESS_FILE).open("a") as fh:
        fh.write(json.dumps({"event": "result", "result": result}) + "\n")


def run(bootstrap: str | None, broker: str | None, report_dir: Path | None,
        pytest_args: Sequence[str] = ()) -> int:
    """Run the conformance suite; returns 0 (all PASS/N/A/RECORD), 1 (some FAIL), 3 (some harness
    ERROR, no FAIL: :func:`conformance.verdicts.exit_code`) or pytest's own code (5: nothing selected).

    ``bootstrap`` selects an external broker, ``broker`` ("kafka"/"tansu") an embedded one started
    for the run and stopped after it; with neither, ``KBENCH_BOOTSTRAP`` is used. ``report_dir``
    must not exist or be empty (default ``reports/conformance-<broker>-<UTC stamp>/``).
    ``pytest_args`` pass through (e.g. ``["-k", "P1 or K2", "--broker-name", "redpanda"]``).
    """
    args = list(pytest_args)
    handle = None
    if broker and not bootstrap:
        from bench.brokers import start_broker

        handle = start_broker(broker, nodes=1, port=0, name=f"conformance-{broker}-{os.getpid()}")
        bootstrap = handle.bootstrap
        args += ["--broker-attach", handle.name, "--broker-name", handle.kind,
                 "--broker-version", handle.version]
    try:
        return _run_children(bootstrap, broker, report_dir, args)
    finally:
        if handle is not None:
            from bench.brokers import get_broker

            # the suite's children restart nodes (O8) through their own handle, which records the new
            # pids in the broker's state file: stop what the state says now, not what it said at start
            (get_broker(handle.name) or handle).stop()


def _run_children(bootstrap: str | None, broker: str | None, report_dir: Path | None,
                  args: list[str], suite: Path = CONFORMANCE_DIR) -> int:
    boot = bootstrap or os.environ.get("KBENCH_BOOTSTRAP") or "broker"
    if report_dir is None:
        label = _option(args, "--broker-name") or broker or ("external-" + boot.split(",")[0])
        report_dir = new_run_dir(Path(_option(args, "--report-root") or "reports"), label,
                                 time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    # test paths / node ids among the pass-through args replace the whole suite
    picked = [a for a in args if not a.startswith("-") and ("::" in a or a.endswith(".py"))]
    base = [sys.executable, "-m", "pytest", *([] if picked else [str(suite)]), "-p", "no:cacheprovider",
            "--rootdir", str(suite.parent), "--report-dir", str(report_dir)]
    if bootstrap:
        base += ["--bootstrap", bootstrap]
    code = 0
    for attempt in range(MAX_RESTARTS + 1):
        done, _ = _progress(report_dir)
        cmd = base + (["--resume"] if attempt else []) + args
        for nodeid in sorted(done):
            cmd += ["--deselect", nodeid]
        try:
            code = subprocess.run(cmd, check=False, timeout=SESSION_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired as exc:
            raise RunAborted(f"conformance run exceeded {SESSION_TIMEOUT_S:.0f} s; partial "
                             f"verdicts in {report_dir / PROGRESS_FILE}") from exc
        if code >= 0:
            break
        _, running = _progress(report_dir)
        if running is None:
            raise RunAborted(f"the conformance process died ({code}) outside a check; partial "
                             f"verdicts in {report_dir / PROGRESS_FILE}")
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


def repeat(bootstrap: str | None, broker: str | None, root: Path | None, runs: int,
           pytest_args: Sequence[str] = (), echo: Any = print) -> tuple[int, dict[str, Any]]:
    """Run the suite ``runs`` times (each like :func:`run`, an embedded broker started afresh per
    run) into ``root/run-01`` …; after every run write ``root/stability.json`` and ``stability.md``
    (:mod:`conformance.stability`). Returns (exit code over all runs: 1 if any run had a FAIL, else
    3 if any had an ERROR, else 0 — or the first other code; the stability summary).
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
        code = run(bootstrap, broker, run_dir, args)
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
