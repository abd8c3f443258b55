"""One pytest child of the conformance runner, and the watchdog that keeps it bounded.

pytest-timeout (``signal`` method) ends a check at its limit by raising in the main thread, which only works
while that thread runs Python. A call into a client library's C code can block for good (librdkafka's
``consumer.close()`` waiting on a group that never settles: confluentinc/librdkafka#3740, #4527), and
the interpreter's exit can block in such a library's destructor. Either would stall the run until
:data:`SESSION_TIMEOUT_S`. So the runner reads the child's ``progress.jsonl`` while it waits:

- a check still running :data:`STUCK_GRACE_S` after its own limit is **stuck**: the child is killed and
  the check's verdict is ERROR (:func:`stuck_result`); the runner then resumes with the checks after it;
- a child still alive :data:`EXIT_GRACE_S` after its ``finished`` event (report written) is killed, and
  its exit status is the one that event recorded: nothing is lost.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import RunAborted
from conformance.plugin import PROGRESS_FILE, STACKS_AFTER_S, STACKS_FILE

__all__ = ["EXIT_GRACE_S", "SESSION_TIMEOUT_S", "STOP_GRACE_S", "STUCK_GRACE_S", "Child", "Progress",
           "blocked_at", "read_progress", "stuck_result"]

SESSION_TIMEOUT_S = 1800.0
#: a stopped lane's pytest has this long after its SIGINT to end its checks and write its report
STOP_GRACE_S = 60.0
#: a check running this long past its pytest-timeout limit is stuck where SIGALRM cannot reach it (after
#: the plugin's stack dump, at STACKS_AFTER_S past the limit)
STUCK_GRACE_S = 60.0
assert STUCK_GRACE_S > STACKS_AFTER_S
#: a child alive this long after writing its report is blocked in its exit: killed, its status kept
EXIT_GRACE_S = 30.0
#: how often the watchdog reads progress.jsonl
WATCH_EVERY_S = 2.0


@dataclass
class Progress:
    """What a run directory's ``progress.jsonl`` says: the checks with a verdict, the check running (its
    ``start`` event, if it has no verdict yet) and the ``finished`` event of the last session, if any."""

    done: set[str]
    running: dict[str, Any] | None
    finished: dict[str, Any] | None


def read_progress(run_dir: Path) -> Progress:
    done: set[str] = set()
    running: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None
    path = run_dir / PROGRESS_FILE
    if not path.exists():
        return Progress(done, None, None)
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:   # a line cut short by a killed child
            continue
        kind = event.get("event")
        if kind == "start":
            running, finished = event, None
        elif kind == "result":
            done.add(event["result"]["nodeid"])
        elif kind == "session":
            finished = None
        elif kind == "finished":
            finished = event
    return Progress(done, running if running and running["nodeid"] not in done else None, finished)


def _is_stuck(running: dict[str, Any]) -> bool:
    """The running check is past its limit plus :data:`STUCK_GRACE_S`."""
    if running.get("timeout_s") is None or running.get("at_monotonic") is None:
        return False
    return time.monotonic() - float(running["at_monotonic"]) > float(running["timeout_s"]) + STUCK_GRACE_S


def blocked_at(run_dir: Path, nodeid: str, frames: int = 4) -> list[str]:
    """The innermost ``frames`` of the pytest thread's stack in the plugin's dump for ``nodeid`` (empty
    when there is none): where the check was blocked, as ``file:line in function``."""
    path = run_dir / STACKS_FILE
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    if not text.startswith(f"== {nodeid}\n"):
        return []
    for section in text.split("\n\n"):
        lines = [ln.strip() for ln in section.splitlines() if ln.strip().startswith("File ")]
        if any("/_pytest/" in ln for ln in lines):   # the main thread: it runs pytest
            ours = [ln for ln in lines if "/_pytest/" not in ln and "/pluggy/" not in ln]
            return [re.sub(r'^File "(?:[^"]*/)?([^"/]+/[^"/]+)", line (\d+) in ', r"\1:\2 in ", ln)
                    for ln in ours[:frames]]
    return []


def stuck_result(start: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The ERROR verdict of a check the watchdog killed (its ``start`` event), with where it was blocked."""
    limit = float(start.get("timeout_s") or 0.0)
    where = blocked_at(run_dir, start["nodeid"])
    return {
        "id": start.get("id", "?"), "title": start.get("title", ""), "verdict": "ERROR",
        "detail": f"ERROR: the check was still running {limit + STUCK_GRACE_S:.0f} s after it began (its "
                  f"limit {limit:.0f} s + {STUCK_GRACE_S:.0f} s), blocked where pytest-timeout cannot "
                  "interrupt it (a client library call in C)"
                  + (f" at {' < '.join(where)}" if where else "")
                  + "; the test process was killed and the remaining checks ran in a new process",
        "case": start.get("case", ""), "nodeid": start["nodeid"], "duration_s": 0.0,
        "observed": {"stuck_after_s": round(limit + STUCK_GRACE_S, 1), "blocked_at": where}}


class Child:
    """The pytest children of one run or lane, one at a time, their output appended to ``log`` (None: the
    terminal's). Each child gets its own session: the runner, not the terminal, sends the one SIGINT that
    stops it (a second one could cut pytest's report writing short), and a kill reaches the drivers and
    group members it started. :meth:`stop` ends the running child and prevents restarts."""

    def __init__(self, log: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.env = env
        self.stopped = False
        #: set by :meth:`call` when it killed its child: "stuck" (a check) or "exit" (after its report)
        self.killed: str | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        with self._lock:
            first, self.stopped = not self.stopped, True
            proc = self._proc
        if first and proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)   # pytest: INTERRUPTED, the verdicts so far written, incomplete

    def call(self, cmd: list[str], timeout: float, run_dir: Path) -> int:
        """Run ``cmd`` to its end, its watchdog reading ``run_dir``'s progress; its exit code (for a child
        killed after its report: the status that report recorded; killed stuck: -SIGKILL)."""
        self.killed = None
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab") if self.log is not None else None
        try:
            with self._lock:
                if self.stopped:
                    raise RunAborted("lane stopped before its child started")
                proc = self._proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT if out else None, env=self.env,
                    start_new_session=True)
            try:
                return self._wait(proc, cmd, timeout, run_dir)
            finally:
                if proc.poll() is None:   # an exception here (a KeyboardInterrupt reaching a worker)
                    self._kill(proc)
                with self._lock:
                    self._proc = None
        finally:
            if out is not None:
                out.close()

    def _wait(self, proc: subprocess.Popen[bytes], cmd: list[str], timeout: float, run_dir: Path) -> int:
        deadline, grace, next_watch = time.monotonic() + timeout, None, 0.0
        while True:
            try:
                return self._wait_once(proc)
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if self.stopped and grace is None:
                grace = now + STOP_GRACE_S
            if now > deadline or (grace is not None and now > grace):
                self._kill(proc)
                if now > deadline:
                    raise subprocess.TimeoutExpired(cmd, timeout)
            if now >= next_watch:
                next_watch = now + WATCH_EVERY_S
                code = self._watch(proc, run_dir)
                if code is not None:
                    return code

    def _wait_once(self, proc: subprocess.Popen[bytes]) -> int:
        try:
            return proc.wait(timeout=0.5)
        except KeyboardInterrupt:
            # a Ctrl-C of the plain run (the child is in its own session: it gets exactly one SIGINT, from
            # here); it ends its check and writes its report, marked incomplete
            self.stop()
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):   # a second Ctrl-C: no more waiting
                self._kill(proc)
            raise

    def _watch(self, proc: subprocess.Popen[bytes], run_dir: Path) -> int | None:
        """Kill a stuck check's child, or a child that outlived its report; its exit code, else None."""
        progress = read_progress(run_dir)
        if progress.finished is not None:
            if time.monotonic() - float(progress.finished.get("at_monotonic", 0.0)) > EXIT_GRACE_S:
                self.killed = "exit"
                self._kill(proc)
                self._say(f"kbench: the test process was still alive {EXIT_GRACE_S:.0f} s after writing its "
                          "report (blocked in its exit, e.g. a client library's destructor): killed; "
                          "its verdicts and exit status are kept")
                return int(progress.finished.get("exitstatus", 0))
        elif progress.running is not None and _is_stuck(progress.running):
            self.killed = "stuck"
            self._kill(proc)
            self._say(f"kbench: {progress.running['nodeid']} outlived its time limit by "
                      f"{STUCK_GRACE_S:.0f} s (blocked where pytest-timeout cannot interrupt it): "
                      "the test process was killed; the check is ERROR and the run goes on")
            return -signal.SIGKILL
        return None

    def _say(self, line: str) -> None:
        if self.log is None:
            print(line, file=sys.stderr, flush=True)
            return
        with self.log.open("a") as fh:
            fh.write(line + "\n")

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # pytest and the drivers / members it started
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()
