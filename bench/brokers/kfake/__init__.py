"""franz-go's kfake (an in-memory Kafka cluster in Go) built on first use from the Go module proxy.

The tiny main next to this file (``main.go``, ``go.mod``, ``go.sum``) pins
``github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c`` with franz-go v1.22.3 (the
v1.21.7 that this kfake declares does not build: ``vs.EachSupportedFeature undefined``).
:func:`build_kfake` builds a static binary (``CGO_ENABLED=0``) into
``<cache>/kfake/<hash of the inputs and the Go version>/kbench-kfake`` and reuses it while the inputs are
unchanged.

All brokers of a cluster live in one process, so kill/pause/restart act on the whole cluster; its state is
in memory (a restart loses it) unless ``--option data-dir=auto`` persists it. The process also serves
a loopback control API (``main.go``) that removes or re-adds single brokers
(:meth:`KfakeBroker.remove_broker`, :meth:`KfakeBroker.add_broker`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from bench._paths import cache_dir
from bench.brokers.base import BrokerState, NodeState, port_free
from bench.brokers.process import ProcessBroker, ProcessKind, alive
from bench.brokers.service import FetchRequest, Prepared, Progress, StartRequest
from bench.errors import ArtifactError, BrokerError, ConfigError

__all__ = ["KFAKE_MODULE", "KFAKE_VERSION", "Kfake", "KfakeBroker", "build_kfake"]

KFAKE_MODULE = "github.com/twmb/franz-go/pkg/kfake"
KFAKE_VERSION = "v0.0.0-20260918054303-01f206a7e32c"
CONTROL_OFFSET = 1000
_SOURCE = Path(__file__).resolve().parent
_INPUTS = ("main.go", "go.mod", "go.sum")
_BUILD_TIMEOUT_S = 900.0
# --option KEY=VALUE -> kbench-kfake flag. data-dir: "none" (the default) keeps everything in memory, so a
# restart loses it; "auto" persists under the broker's directory. Not the default: kfake accepts topic names
# over 255 bytes, cannot persist them ("file name too long") and then fails to reload at restart (exit 2),
# which a conformance run (A3 creates such a topic, O8 restarts) turned into a dead broker
_OPTIONS = {"as-version": "-as-version", "seed-topics": "-seed-topics", "partitions": "-partitions",
            "data-dir": "-data-dir", "sync": "-sync", "log-level": "-log-level", "cluster-id": "-cluster-id"}
# as for Kafka (bench/brokers/kafka.py): housekeeping every second instead of kfake's hourly default, so
# compaction and retention are observable within a conformance check; --config overrides it
_DEFAULT_CONFIGS = {"log.cleaner.backoff.ms": "1000"}


def find_go() -> str:
    """The ``go`` command: ``$KBENCH_GO``, else ``go`` on PATH; else an ArtifactError saying what to install."""
    for cand in (os.environ.get("KBENCH_GO"), shutil.which("go")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    raise ArtifactError("Go not found: kfake is built from source on first use and needs Go 1.26 or newer "
                        "('go' is not on PATH; install it from https://go.dev/dl or your package manager, "
                        "set KBENCH_GO, or pass --binary with a built kbench-kfake)")


def _go_version(go: str) -> str:
    try:
        proc = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArtifactError(f"could not run '{go} env GOVERSION': {exc}") from exc
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ArtifactError(f"'{go} env GOVERSION' failed: {proc.stderr.strip()[:300]}")
    return proc.stdout.strip()


def _inputs_hash(go_version: str) -> str:
    h = hashlib.sha256()
    for name in _INPUTS:
        h.update(name.encode() + b"\0" + (_SOURCE / name).read_bytes() + b"\0")
    h.update(f"{go_version} {platform.system()} {platform.machine()} cgo=0".encode())
    return h.hexdigest()[:16]


def build_kfake(*, progress: Progress | None = None) -> Path:
    """Path of a built ``kbench-kfake``: reused when main.go, go.mod, go.sum and the Go version are
    unchanged, else built (about 26 s cold, modules from the Go module proxy; static, CGO_ENABLED=0)."""
    go = find_go()
    target_dir = cache_dir() / "kfake" / _inputs_hash(_go_version(go))
    exe = target_dir / "kbench-kfake"
    if exe.is_file():
        return exe
    (progress or (lambda _m: None))(f"building kfake {KFAKE_VERSION} with Go (first use only, ~30 s)…")
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kfake-build-", dir=target_dir.parent))
    try:
        for name in _INPUTS:
            shutil.copy(_SOURCE / name, work / name)
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
        cmd = [go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(work / "kbench-kfake"), "."]
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                                  timeout=_BUILD_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ArtifactError(f"building kfake did not finish in {_BUILD_TIMEOUT_S:.0f} s") from exc
        if proc.returncode != 0:
            raise ArtifactError(f"building kfake ({KFAKE_MODULE}@{KFAKE_VERSION}) failed (exit {proc.returncode}):\n"
                                + "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:]))
        staged = work / "out"
        staged.mkdir()
        (work / "kbench-kfake").rename(staged / "kbench-kfake")
        try:
            staged.rename(target_dir)
        except OSError:
            if not exe.is_file():   # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return exe


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KfakeBroker(ProcessBroker):
    """A kfake cluster (one process) plus its control API for single-broker faults."""

    def _control(self, path: str) -> None:
        port = (self.state.nodes[0].extra or {}).get("control-port") if self.state.nodes else None
        if not port:
            raise BrokerError(f"kfake broker {self.name!r} has no control API")
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            raise BrokerError(f"kfake {path}: {exc.read().decode(errors='replace').strip()}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BrokerError(f"kfake control API on 127.0.0.1:{port} did not answer: {exc}") from exc

    def restart_node(self, index: int, timeout: float = 90.0) -> None:
        """As :meth:`ProcessBroker.restart_node`, but when the control port was taken while the cluster
        was down (by another process's listener: ports are only checked free at the first start), the
        control API moves to a free port: clients never see it, and the data ports stay."""
        node = self.state.nodes[index]
        if alive(node):
            self._stop_process(node, 20.0)
        port = (node.extra or {}).get("control-port")
        if port and not port_free(int(port)):
            new = _free_loopback_port()
            node.cmd = [f"127.0.0.1:{new}" if a == f"127.0.0.1:{port}" else a for a in node.cmd]
            node.extra = {**(node.extra or {}), "control-port": str(new)}
            self.state.save()
        super().restart_node(index, timeout)

    def remove_broker(self, broker_id: int) -> None:
        """Close broker ``broker_id``'s listener and drop it from metadata (its partitions move)."""
        self._control(f"/remove?node={broker_id}")

    def add_broker(self, broker_id: int, port: int) -> None:
        """Bring broker ``broker_id`` back, listening on ``port``."""
        self._control(f"/add?node={broker_id}&port={port}")
        self.wait_ready(30.0)

    def shuffle_leaders(self) -> None:
        self._control("/shuffle-leaders")


class Kfake(ProcessKind):
    """``kfake``: franz-go's in-memory Kafka (1-5 brokers in one process)."""

    name = "kfake"
    default_port = 9392
    node_counts = (1, 2, 3, 4, 5)
    summary = f"franz-go kfake {KFAKE_VERSION} (Go, in memory), built on first use"

    def ports_needed(self, port: int, nodes: int) -> list[int]:
        return [port + i for i in range(nodes)] + [port + CONTROL_OFFSET]

    def _flags(self, request: StartRequest, base: Path) -> list[str]:
        unknown = sorted(set(request.options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(f"kfake: unknown --option {', '.join(unknown)} (known: {', '.join(_OPTIONS)})")
        if request.version:
            raise ConfigError("kfake: --version is not a kfake option; cap the API versions with "
                              "--option as-version=3.5 (any Kafka release franz-go knows)")
        flags: list[str] = []
        for key, value in request.options.items():
            if key == "sync":
                if value.lower() in ("1", "true", "yes"):
                    flags.append("-sync")
                continue
            if key == "data-dir" and value in ("none", ""):
                continue
            if key == "data-dir" and value == "auto":
                value = str(base / "data")
            if key == "partitions" and not (value.isdigit() and int(value) >= 1):
                raise ConfigError(f"kfake: --option partitions={value}: expected a whole number >= 1")
            flags += [_OPTIONS[key], value]
        for key, value in {**_DEFAULT_CONFIGS, **request.configs}.items():
            flags += ["-c", f"{key}={value}"]
        return flags

    def prepare(self, base: Path, request: StartRequest) -> Prepared:
        flags = self._flags(request, base)
        exe = request.binary or str(build_kfake(progress=request.progress))
        if not (Path(exe).is_file() and os.access(exe, os.X_OK)):
            raise ArtifactError(f"kfake binary {exe} does not exist or is not executable")
        ports = [request.port + i for i in range(request.nodes)]
        control = request.port + CONTROL_OFFSET
        ndir = base / "node-1"
        ndir.mkdir(parents=True)
        cmd = [exe, "-ports", ",".join(map(str, ports)), "-bind", request.bind_host,
               "-advertise", request.advertise, "-control", f"127.0.0.1:{control}", *flags]
        node = NodeState(node_id=0, port=ports[0], cmd=cmd, data_dir=str(ndir), log_file=str(ndir / "kfake.log"),
                         role="cluster", extra={"ports": ",".join(map(str, ports)), "control-port": str(control)})
        bootstrap = ",".join(f"{request.advertise}:{p}" for p in ports)
        return Prepared(version=KFAKE_VERSION, nodes=[node], brokers=request.nodes, bootstrap=bootstrap)

    def service(self, state: BrokerState) -> ProcessBroker:
        return KfakeBroker(state)

    def fetch(self, request: FetchRequest) -> str:
        exe = request.binary or str(build_kfake(progress=request.progress))
        return f"kfake {KFAKE_VERSION} at {exe}"
