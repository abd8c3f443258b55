"""A Docker engine to talk to: the user's (``DOCKER_HOST`` or the default socket), or a private ``dockerd``.

:func:`docker_client` connects to an engine and fails with a :class:`~bench.errors.BrokerError` naming
what to install or start. :class:`PrivateEngine` starts and stops a ``dockerd`` of its own under one
directory (tests, CI, machines without a running engine)::

    engine = PrivateEngine(Path("/tmp/kbd"))
    engine.start()                 # dockerd --data-root /tmp/kbd/data --exec-root /tmp/kbd/exec ...
    os.environ["DOCKER_HOST"] = engine.host
    ...
    engine.stop()                  # containers, dockerd, containerd, shims, mounts; leftovers() == []

The private engine runs with ``--bridge=none --iptables=false --ip-forward=false``: containers use host
networking on loopback (kbench brokers listen on 127.0.0.1 anyway), so dockerd creates no ``docker0``,
no iptables chains and no NAT, and changes no sysctl: a stopped engine leaves only what this module
unmounts (the ``netns/default`` nsfs mount under the exec root, the data root's bind mount).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from bench.errors import BrokerError, ConfigError

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["PrivateEngine", "docker_client", "engine_host", "install_docker_io"]

INSTALL_HINT = ("install an engine (Debian/Ubuntu: `apt-get install -y --no-install-recommends docker.io`) "
                "and start it, or set DOCKER_HOST to a running one")


def engine_host() -> str | None:
    """The engine address the Docker SDK will use: ``$DOCKER_HOST``, or None for its default socket."""
    return os.environ.get("DOCKER_HOST") or None


def docker_client(host: str | None = None, timeout: float = 60.0) -> DockerClient:
    """A client of the engine at ``host`` (default: :func:`engine_host`) that answered a ping."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise ConfigError("the Docker runtime needs the Docker SDK: pip install 'kbench[docker]' "
                          "(the `docker` package, 7.x)") from exc
    host = host or engine_host()
    try:
        client = docker.DockerClient(base_url=host, timeout=int(timeout)) if host else \
            docker.from_env(timeout=int(timeout))
        client.ping()
    except DockerException as exc:
        where = host or "the default socket (unix:///var/run/docker.sock)"
        raise BrokerError(f"no Docker engine answers at {where}: {exc}; {INSTALL_HINT}") from exc
    return client


def install_docker_io(timeout: float = 300.0) -> None:
    """``apt-get install -y --no-install-recommends docker.io`` (root, Debian); BrokerError on failure."""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BrokerError(f"dockerd not found and cannot be installed here (needs root and apt-get); {INSTALL_HINT}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = [apt, "install", "-y", "--no-install-recommends", "docker.io"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if proc.returncode != 0:   # a stale package list: update once, then try again
        subprocess.run([apt, "update"], capture_output=True, timeout=timeout, env=env, check=False)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if proc.returncode != 0 or shutil.which("dockerd") is None:
        raise BrokerError(f"apt-get install docker.io failed (exit {proc.returncode}):\n"
                          + "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:]))


@dataclass(frozen=True)
class PrivateEngine:
    """A ``dockerd`` owned by kbench, everything under ``root`` (keep the path short: a unix socket's
    path is limited to 107 bytes). ``start``/``stop`` may be called from different processes."""

    root: Path
    shutdown_timeout: int = 5    # seconds dockerd gives running containers on its own shutdown

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"

    def command(self, dockerd: str) -> list[str]:
        return [dockerd, "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "-H", self.host, "--pidfile", str(self.pidfile), "--bridge=none", "--iptables=false",
                "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
                f"--shutdown-timeout={self.shutdown_timeout}", "--log-level=warn"]

    # -- start ----------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> float:
        """Start dockerd and return the seconds until its API answered (BrokerError with its log tail if
        it does not; :func:`install_docker_io` first where dockerd is missing)."""
        if len(str(self.socket)) > 100:
            raise ConfigError(f"engine directory {self.root} is too long for a unix socket path; use a shorter one")
        if self.pid() is not None:
            raise BrokerError(f"a private dockerd already runs for {self.root} (pid {self.pid()})")
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise BrokerError(f"dockerd not found; {INSTALL_HINT}")
        self.root.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(self.command(dockerd), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._cleanup()
                raise BrokerError(f"dockerd exited at start (code {proc.returncode}); {self.log_file}:\n"
                                  + self._log_tail())
            if self.socket.exists() and self._ping():
                return time.monotonic() - t0
            time.sleep(0.1)
        self.stop()
        raise BrokerError(f"dockerd did not answer within {timeout:g} s; {self.log_file}:\n{self._log_tail()}")

    def _ping(self) -> bool:
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            try:
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return b" 200 " in s.recv(256)
            except OSError:
                return False

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- stop -----------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of this engine's dockerd if it runs (checked against its command line), else None."""
        try:
            pid = int(self.pidfile.read_text().strip())
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or str(self.socket) not in " ".join(proc.cmdline()):
                return None
        except (OSError, ValueError, psutil.Error):
            return None
        return pid

    def _processes(self) -> list[psutil.Process]:
        """dockerd, containerd and shims of this engine (their command lines name its root)."""
        mine = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(self.root) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE \
                    and proc.pid != os.getpid():
                mine.append(proc)
        return mine

    def stop(self, timeout: float = 30.0, *, keep_root: bool = False) -> None:
        """Remove every container, stop dockerd (SIGTERM, then SIGKILL), kill what it left (containerd,
        shims), unmount everything under the root and delete it (unless ``keep_root``)."""
        if self.pid() is not None and self._ping():
            from docker.errors import DockerException

            with contextlib.suppress(BrokerError, DockerException):
                client = docker_client(self.host, timeout=20)
                for c in client.containers.list(all=True):
                    with contextlib.suppress(DockerException):
                        c.remove(force=True)
                client.close()
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_gone([pid], timeout)
        procs = self._processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        _wait_gone([p.pid for p in procs], 10.0)
        self._cleanup()
        if not keep_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _mounts(self) -> list[str]:
        """Mount points at or below the root, deepest first."""
        points: list[str] = []
        with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == str(self.root) or point.startswith(f"{self.root}/"):
                    points.append(point)
        return sorted(set(points), key=len, reverse=True)

    def _cleanup(self) -> None:
        for point in self._mounts():
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def leftovers(self) -> list[str]:
        """What of this engine is still there (processes, mounts, its root, docker0, DOCKER iptables
        chains): [] after a clean :meth:`stop`."""
        found = [f"process {p.pid}: {' '.join(p.cmdline())[:120]}" for p in self._processes()]
        found += [f"mount {m}" for m in self._mounts()]
        if self.root.exists():
            found.append(f"directory {self.root}")
        if Path("/sys/class/net/docker0").exists():
            found.append("network interface docker0")
        iptables = shutil.which("iptables")
        if iptables:
            rules = subprocess.run([iptables, "-S"], capture_output=True, text=True, check=False).stdout
            rules += subprocess.run([iptables, "-t", "nat", "-S"], capture_output=True, text=True,
                                    check=False).stdout
            found += [f"iptables {r}" for r in rules.splitlines() if r.startswith("-N DOCKER")]
        return found


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait until ``pids`` have exited (reaping our own children); SIGKILL whatever remains."""
    deadline = time.monotonic() + timeout
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    pending.discard(pid)
            except psutil.Error:
                pending.discard(pid)
        time.sleep(0.1)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)
