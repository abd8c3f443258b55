"""The pytest plugin of the conformance suite: verdicts, report files, terminal summary.

Registered by ``conformance/conftest.py``. It turns each test's pytest outcome plus its
:class:`~conformance.verdicts.CheckContext` into a :class:`~conformance.report.CheckResult`
(see :mod:`conformance.verdicts` for the rules) and, at session end, writes the run directory.
"""

from __future__ import annotations

import datetime as dt
import faulthandler
import json
import os
import platform
import secrets
import sys
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pytest

from bench.kafka.protocol import ApiVersionsResult
from conformance.report import (
    DEFAULT_CLIENT,
    CheckResult,
    build_doc,
    count_verdicts,
    new_run_dir,
    write_report,
)
from conformance.timings import Timings
from conformance.verdicts import (
    CheckContext,
    HarnessError,
    NotApplicable,
    Verdict,
    exit_code,
    is_harness_error,
)

__all__ = ["CTX_KEY", "PLUGIN_NAME", "PROGRESS_FILE", "STACKS_AFTER_S", "STACKS_FILE", "BrokerInfo",
           "ConformancePlugin"]

PLUGIN_NAME = "kbench-conformance"
CTX_KEY = pytest.StashKey[CheckContext]()
CONFORMANCE_DIR = Path(__file__).resolve().parent
#: one JSON event per line: session / start (nodeid, its time limit and CLOCK_MONOTONIC start) / result (a
#: CheckResult) / finished (the report is written; the exit status), written as the run goes, so a crashed
#: or stuck test process leaves the verdicts so far and the check it was in (see conformance.runner)
PROGRESS_FILE = "progress.jsonl"
#: the Python stacks of every thread of a check still running STACKS_AFTER_S past its time limit (written by
#: faulthandler's own C thread, so also while the main thread is blocked in a C call); the runner quotes it
#: in the ERROR of a check it kills as stuck
STACKS_FILE = "stuck-stacks.txt"
STACKS_AFTER_S = float(os.environ.get("KBENCH_CONFORMANCE_STACKS_AFTER_S", "30"))   # the env: for tests


def _limit(item: pytest.Item) -> float | None:
    """The check's pytest-timeout limit in seconds (setup, call and teardown), if it has one."""
    marker = item.get_closest_marker("timeout")
    return float(marker.args[0]) if marker and marker.args else None


@dataclass
class BrokerInfo:
    """What the suite knows about the broker under test."""

    bootstrap: str
    implementation: str | None = None
    version: str | None = None
    embedded: bool = False
    cluster_id: str | None = None
    controller_id: int | None = None
    brokers: list[dict[str, Any]] = field(default_factory=list)
    api: ApiVersionsResult | None = None

    def as_json(self) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap, "implementation": self.implementation,
                "version": self.version, "embedded": self.embedded, "cluster_id": self.cluster_id,
                "controller_id": self.controller_id, "brokers": self.brokers,
                "api_versions_request_version": self.api.request_version if self.api else None,
                "api_versions": self.api.as_json() if self.api else None}


def _first(version: Any) -> str:
    return str(version[0] if isinstance(version, tuple) else version)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _client_case(item: pytest.Item) -> tuple[str, str]:
    """(client, case): a through-client check's ``client`` parameter is its client, not part of its case."""
    callspec = getattr(item, "callspec", None)
    case = str(getattr(callspec, "id", ""))
    client = callspec.params.get("client") if callspec is not None else None
    if not isinstance(client, str):
        return DEFAULT_CLIENT, case
    parts = case.split("-")
    drop = client.split("-")
    for k in range(len(parts) - len(drop) + 1):   # the id is "<client>" or "<client>-<case>" or "<case>-<client>"
        if parts[k:k + len(drop)] == drop:
            return client, "-".join(parts[:k] + parts[k + len(drop):])
    return client, case


def _failure_verdict(call: pytest.CallInfo[None]) -> Verdict:
    """FAIL (the broker is blamed) or ERROR (kbench is: see :func:`is_harness_error`)."""
    exc = call.excinfo
    return Verdict.ERROR if exc is not None and is_harness_error(exc.value) else Verdict.FAIL


def _failure_detail(call: pytest.CallInfo[None], phase: str) -> str:
    exc = call.excinfo
    if exc is None:
        return f"ERROR in {phase}"
    if exc.errisinstance(HarnessError):
        where = "" if phase == "call" else f" in {phase}"
        return f"harness ERROR{where}: {str(exc.value).strip()[:600]}"
    if exc.errisinstance(AssertionError):
        lines = [ln for ln in str(exc.value).splitlines() if ln.strip()]
        text = " / ".join(lines[:4]) or "assertion failed"
        return text if phase == "call" else f"ERROR in {phase}: {text}"
    where = "" if phase == "call" else f" in {phase}"
    return f"ERROR{where}: {exc.typename}: {str(exc.value).strip()[:600]}"


class ConformancePlugin:
    """Collects verdicts; writes ``report.json``/``report.md``/``junit.xml``/``*.hgrm`` at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._started_session = False
        # a lane of ``--jobs N`` (conformance.runner) appends its number: lanes started in the same second
        # never share a run id, hence never a topic, group or transactional id (conformance.clients.Names)
        lane = "".join(ch for ch in os.environ.get("KBENCH_CONFORMANCE_LANE", "") if ch.isalnum())
        self.run_id = _utc_now().strftime("%H%M%S") + secrets.token_hex(2) + (f"l{lane}" if lane else "")
        self.started = _utc_now()
        self.started_ns = time.monotonic_ns()
        self.timings = Timings()
        self.broker: BrokerInfo | None = None
        self.results: dict[str, CheckResult] = {}
        self.report_dir: Path | None = None
        self.write_enabled = not config.getoption("no_report")
        self._stacks: TextIO | None = None
        explicit = config.getoption("report_dir")
        resume = bool(config.getoption("resume"))
        if resume and explicit is None:
            raise pytest.UsageError("--resume needs --report-dir (the run directory to continue)")
        if explicit is not None and self.write_enabled:
            path = Path(explicit)
            if resume:
                self._load_progress(path)
            elif path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise pytest.UsageError(f"--report-dir {path} exists and is not empty: never overwritten")
            self.report_dir = path

    # ------------------------------------------------------------------ progress (crash safety)
    def _load_progress(self, run_dir: Path) -> None:
        """Resume: take the verdicts already in ``run_dir/progress.jsonl`` (see runner.run)."""
        path = run_dir / PROGRESS_FILE
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "session" and event.get("first"):
                self.started = dt.datetime.fromisoformat(event["started_at"])
                self.run_id = event["run_id"]
            elif event.get("event") == "result":
                res = CheckResult(**event["result"])
                self.results[res.nodeid] = res

    def _progress(self, event: dict[str, Any]) -> None:
        if not self.write_enabled:
            return
        run_dir = self._run_dir()
        with (run_dir / PROGRESS_FILE).open("a") as fh:
            fh.write(json.dumps(event, default=str) + "\n")

    def _run_dir(self) -> Path:
        if self.report_dir is None:
            root = Path(self.config.getoption("report_root"))
            self.report_dir = new_run_dir(root, self.broker_label(), self.started.strftime("%Y%m%dT%H%M%SZ"))
        self.report_dir.mkdir(parents=True, exist_ok=True)
        return self.report_dir

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if not self._started_session:
            self._started_session = True
            self._progress({"event": "session", "first": not self.results, "run_id": self.run_id,
                            "started_at": self.started.isoformat()})
        marker = item.get_closest_marker("check")
        self._progress({"event": "start", "nodeid": item.nodeid,
                        "id": str(marker.args[0]) if marker else "?",
                        "title": str(marker.args[1]) if marker and len(marker.args) > 1 else "",
                        "case": getattr(getattr(item, "callspec", None), "id", ""),
                        # pytest-timeout's limit (setup, call and teardown) and when the check began: the
                        # runner kills a check that outlives it (a call into C that SIGALRM cannot reach)
                        "timeout_s": _limit(item),
                        "at_monotonic": time.monotonic()})

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
        """Arm a dump of every thread's stack for a check that outlives its limit by STACKS_AFTER_S."""
        limit = _limit(item)
        if limit is None or not self.write_enabled:
            yield
            return
        if self._stacks is None:
            self._stacks = (self._run_dir() / STACKS_FILE).open("w")
        self._stacks.seek(0)
        self._stacks.truncate()
        self._stacks.write(f"== {item.nodeid}\n")
        self._stacks.flush()
        faulthandler.dump_traceback_later(limit + STACKS_AFTER_S, file=self._stacks)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()

    def _close_stacks(self) -> None:
        """Close the stacks file; removed when no dump was written into it (only the header line)."""
        if self._stacks is None:
            return
        self._stacks.close()
        path = Path(self._stacks.name)
        self._stacks = None
        if len(path.read_text().splitlines()) <= 1:
            path.unlink()

    # ------------------------------------------------------------------ collection
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        default_timeout = float(self.config.getoption("check_timeout"))
        missing = []
        if not self.config.getoption("client", None):  # through-client checks need a --client
            dropped = [i for i in items if i.get_closest_marker("through_client") is not None]
            if dropped:
                items[:] = [i for i in items if i.get_closest_marker("through_client") is None]
                self.config.hook.pytest_deselected(items=dropped)
        for item in items:
            if CONFORMANCE_DIR not in Path(str(item.path)).resolve().parents:
                continue
            marker = item.get_closest_marker("check")
            if marker is None or len(marker.args) < 2:
                missing.append(item.nodeid)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(default_timeout))
        if missing:
            raise pytest.UsageError("conformance tests without @pytest.mark.check(ID, title): "
                                    + ", ".join(missing))

    # ------------------------------------------------------------------ verdicts
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, Any, None]:
        outcome = yield
        rep: pytest.TestReport = outcome.get_result()
        marker = item.get_closest_marker("check")
        if marker is None:
            return
        res = self.results.get(item.nodeid)
        if res is None:
            client, case = _client_case(item)
            res = CheckResult(id=str(marker.args[0]), title=str(marker.args[1]), verdict="",
                              case=case, nodeid=item.nodeid, client=client)
            self.results[item.nodeid] = res
        res.duration_s += rep.duration
        ctx = item.stash.get(CTX_KEY, None)
        na = call.excinfo is not None and call.excinfo.errisinstance(NotApplicable)
        if rep.when in ("setup", "call"):
            if rep.skipped:
                if na and call.excinfo is not None:
                    res.verdict, res.detail = Verdict.NA, str(getattr(call.excinfo.value, "msg", ""))
                else:
                    res.verdict = Verdict.FAIL
                    res.detail = f"skipped without an ApiVersions reason: {rep.longrepr}"
            elif rep.failed:
                res.verdict, res.detail = _failure_verdict(call), _failure_detail(call, rep.when)
            elif rep.when == "call":
                res.verdict = Verdict.RECORD if ctx is not None and ctx.recorded else Verdict.PASS
        else:  # teardown: add context, catch errors in cleanup
            if rep.failed:
                prev = f"{res.verdict}: {res.detail}; " if res.verdict and res.detail else ""
                # a FAIL already found stays FAIL; otherwise the cleanup error decides
                res.verdict = (Verdict.FAIL if res.verdict == Verdict.FAIL
                               else _failure_verdict(call))
                res.detail = prev + _failure_detail(call, "teardown")
            if not res.verdict:
                res.verdict = Verdict.FAIL
                res.detail = res.detail or "did not run to a verdict"
            if ctx is not None:
                extra = ctx.detail()
                if extra:
                    res.detail = f"{res.detail}; {extra}" if res.detail else extra
                res.observed = dict(ctx.observed)
            res.verdict = str(res.verdict)
            self._progress({"event": "result", "result": asdict(res)})
        res.verdict = str(res.verdict)

    # ------------------------------------------------------------------ end of session
    def broker_label(self) -> str:
        opt = self.config.getoption
        if self.broker is not None and self.broker.implementation:
            return self.broker.implementation
        if opt("broker_name") or opt("broker"):
            return str(opt("broker_name") or opt("broker"))
        boot = self.broker.bootstrap if self.broker else (opt("bootstrap") or os.environ.get(
            "KBENCH_BOOTSTRAP") or "broker")
        return "external-" + boot.split(",")[0]

    def document(self, exitstatus: int) -> dict[str, Any]:
        import confluent_kafka

        from bench import __version__ as kbench_version

        finished = _utc_now()
        broker = self.broker or BrokerInfo(bootstrap=str(self.config.getoption("bootstrap")))
        timings = self.timings.summary()
        return build_doc(
            list(self.results.values()),
            run_id=self.run_id, started_at=self.started.isoformat(), finished_at=finished.isoformat(),
            wall_seconds=(time.monotonic_ns() - self.started_ns) / 1e9,
            complete=exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR),
            exit_status=int(exitstatus), broker=broker.as_json(),
            client={"kbench": kbench_version, "confluent_kafka": _first(confluent_kafka.version()),
                    "librdkafka": confluent_kafka.libversion()[0], "python": sys.version.split()[0]},
            host={"hostname": platform.node(), "platform": platform.platform(),
                  "cpus": os.cpu_count()},
            timings=timings)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._close_stacks()
        if not self.results:
            return
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # 0 / 1 (FAIL) / 3 (harness ERROR, no FAIL): see conformance.verdicts.exit_code
            session.exitstatus = exit_code(count_verdicts(list(self.results.values())))
        if not self.write_enabled:
            return
        doc = self.document(exitstatus)
        write_report(self._run_dir(), doc, self.timings.write_hgrm)
        # every verdict is on disk: a process that then cannot exit (a client library's destructor blocking
        # the interpreter's shutdown) is killed by the runner without losing anything
        self._progress({"event": "finished", "exitstatus": int(session.exitstatus),
                        "at_monotonic": time.monotonic()})

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        checks = list(self.results.values())
        counts = count_verdicts(checks)
        b = self.broker
        who = (f"{b.implementation or 'unknown'} {b.version or ''} @ {b.bootstrap}".replace("  ", " ")
               if b else "broker not reached")
        tr = terminalreporter
        tr.section("kbench conformance")
        tr.write_line(f"{who}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for c in sorted(checks, key=lambda c: c.nodeid):
            if c.verdict in (Verdict.FAIL, Verdict.ERROR, Verdict.RECORD, Verdict.NA):
                tr.write_line(f"  {c.verdict:<6} {c.label:<8} {c.detail[:160]}")
        if self.report_dir is not None:
            tr.write_line(f"report: {self.report_dir}")
