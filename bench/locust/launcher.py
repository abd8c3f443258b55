"""Start and stop the Locust processes of a run: a master (or one local process) and N local workers.

Everything runs ``python -m locust -f LOCUSTFILE`` in its own session (so a terminal's Ctrl-C reaches
only ``kbench``, which then asks the master to stop gracefully with SIGUSR1 — see
:mod:`bench.locust.plugin`), with its output in ``locust-master.log`` / ``locust-worker-N.log`` in the
run directory. Nothing here imports Locust.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.errors import ConfigError

__all__ = ["LOCUSTFILE", "WILDCARD_HOSTS", "LaunchSpec", "LocustProcesses", "free_port", "worker_argv"]

LOCUSTFILE = str(Path(__file__).with_name("locustfile.py"))
WILDCARD_HOSTS = ("*", "0.0.0.0", "::", "")   # bind addresses that are not an address to connect to


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def worker_argv(master_host: str, master_port: int, *, python: str | None = None,
                locustfile: str = LOCUSTFILE) -> list[str]:
    """The command line of one Locust worker connecting to ``master_host:master_port``, wherever it runs
    (a local worker, another machine, a network namespace: ``ip netns exec NS`` + this)."""
    if master_host in WILDCARD_HOSTS:
        raise ConfigError(f"workers need the master's address, not the wildcard bind address {master_host!r}")
    if not 0 < master_port < 65536:
        raise ConfigError(f"master port {master_port}: expected 1..65535")
    return [python or sys.executable, "-m", "locust", "-f", locustfile, "--worker", "--master-host", master_host,
            "--master-port", str(master_port), "--loglevel", "INFO"]


@dataclass
class LaunchSpec:
    run_dir: Path
    plan_path: Path
    user_classes: list[str]
    users: int                     # Locust -u: producer users + consumer users
    spawn_rate: float
    workers: int = 0               # local worker processes (0 and expect_workers 0: one local process)
    expect_workers: int = 0        # workers the master waits for (local + remote)
    headless: bool = True
    master_bind_host: str = "127.0.0.1"   # where the master listens ("0.0.0.0": every address of its host)
    worker_master_host: str | None = None  # where local workers connect; default the bind host (loopback if wildcard)
    master_port: int = 0           # 0: a free port
    web_host: str = "127.0.0.1"
    web_port: int = 8089
    time_limit_s: float | None = None   # Locust's own --run-time, a safety net behind kbench's control
    extra_args: list[str] = field(default_factory=list)

    @property
    def distributed(self) -> bool:
        return self.expect_workers > 0


class LocustProcesses:
    """The run's Locust processes (started by :meth:`start`, always reaped by :meth:`stop`)."""

    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec
        self.master: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        if spec.distributed and not spec.master_port:
            bind = spec.master_bind_host
            spec.master_port = free_port("0.0.0.0" if bind in WILDCARD_HOSTS else bind)

    @property
    def master_log(self) -> Path:
        return self.spec.run_dir / "locust-master.log"

    def master_command(self) -> list[str]:
        s = self.spec
        cmd = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--kbench-plan", str(s.plan_path),
               "-u", str(s.users), "-r", f"{s.spawn_rate:g}", "--stop-timeout", "0",
               "--csv", str(s.run_dir / "locust"), "--html", str(s.run_dir / "locust.html"), "--loglevel", "INFO"]
        if s.distributed:
            cmd += ["--master", "--master-bind-host", s.master_bind_host, "--master-bind-port", str(s.master_port),
                    "--expect-workers", str(s.expect_workers), "--expect-workers-max-wait", "120"]
        if s.headless:
            cmd += ["--headless"]
            if s.time_limit_s:
                cmd += ["--run-time", f"{int(s.time_limit_s) + 1}s"]
        else:
            cmd += ["--web-host", s.web_host, "--web-port", str(s.web_port)]
        return [*cmd, *s.extra_args, *s.user_classes]

    def worker_command(self) -> list[str]:
        s = self.spec
        host = s.worker_master_host or ("127.0.0.1" if s.master_bind_host in WILDCARD_HOSTS else s.master_bind_host)
        return worker_argv(host, s.master_port)

    def remote_worker_command(self, master_host: str) -> str:
        return (f'locust -f "$(python -c \'import bench.locust; print(bench.locust.LOCUSTFILE)\')" --worker '
                f"--master-host {master_host} --master-port {self.spec.master_port}")

    def _popen(self, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        f = log.open("wb")
        self._logs.append(f)
        try:
            return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.spec.run_dir, start_new_session=True)
        except OSError as exc:
            raise ConfigError(f"cannot start Locust ({cmd[0]} -m locust): {exc}") from exc

    def start(self) -> None:
        self.master = self._popen(self.master_command(), self.master_log)
        for i in range(self.spec.workers):
            self.workers.append(self._popen(self.worker_command(), self.spec.run_dir / f"locust-worker-{i}.log"))

    def wait(self, timeout_s: float | None) -> int | None:
        """The master's exit code, or None if it is still running after ``timeout_s`` (None: wait forever)."""
        assert self.master is not None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            code = self.master.poll()
            if code is not None:
                return code
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.2)

    def request_stop(self) -> None:
        """Ask the master to end the test gracefully (results are still collected and written)."""
        if self.master is not None and self.master.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.master.send_signal(signal.SIGUSR1)

    def stop(self, grace_s: float = 10.0) -> None:
        """Make sure every process has exited: SIGTERM, then SIGKILL after ``grace_s``."""
        procs = [p for p in [self.master, *self.workers] if p is not None]
        deadline = time.monotonic() + grace_s
        for p in procs:  # workers quit on their own when the master tells them to
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(timeout=5)
        for f in self._logs:
            f.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.master_log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])
