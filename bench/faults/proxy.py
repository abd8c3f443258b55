"""Latency, jitter, bandwidth and stalls between clients and brokers, through Shopify's toxiproxy (issue 16).

This kernel has no ``netem``, so delay is added in user space: a toxiproxy server (Go, built on first use
from the Go module proxy into ``~/.cache/kbench/toxiproxy/<version>/``) runs for the length of a run; it has
one proxy per broker node, listening on :data:`PROXY_HOST` (``127.0.0.2``, the same loopback interface,
another address) at the node's client port and forwarding to ``127.0.0.1`` at that port. The broker
advertises ``127.0.0.2`` (``start_broker(advertised_host=...)``), so every client connection after the
bootstrap one goes through a proxy; the run's bootstrap address is the proxy's too. Toxics (``latency``,
``bandwidth``, ``timeout``, ``reset_peer``) are added and removed through its HTTP API while load runs.

>>> with ClientProxy.start(nodes=[(1, 9092)]) as proxy:     # node id, client port
...     proxy.add("lat", "latency", {"latency": 50, "jitter": 10})
...     proxy.remove("lat")

Kafka nodes here have a single listener, also used between brokers, so with several nodes the replication
traffic crosses the proxies as well (a toxic slows replication too). The controller listener does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.errors import BrokerError

__all__ = ["PROXY_HOST", "TOXICS", "TOXIPROXY_MODULE", "TOXIPROXY_VERSION", "ClientProxy", "ProxyError",
           "ensure_toxiproxy", "proxy_processes"]

TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "v2.5.0"
PROXY_HOST = "127.0.0.2"                  # loopback: 127.0.0.0/8 is all local on Linux
UPSTREAM_HOST = "127.0.0.1"
TOXICS = ("latency", "bandwidth", "timeout", "reset_peer")
BUILD_TIMEOUT_S = 300.0
START_TIMEOUT_S = 10.0
API_TIMEOUT_S = 5.0
BINARY_NAME = "toxiproxy-server"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # the API is local: no http_proxy


class ProxyError(BrokerError):
    """The proxy could not be built, started or controlled."""


def _cache_root() -> Path:
    from bench._paths import cache_dir

    return cache_dir() / "toxiproxy" / TOXIPROXY_VERSION


def ensure_toxiproxy() -> Path:
    """The toxiproxy server binary, built with ``go build`` from the module proxy on first use."""
    target = _cache_root() / BINARY_NAME
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        raise ProxyError("latency faults need toxiproxy, built with Go on first use: 'go' is not on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kbench-toxiproxy-") as tmp:
        Path(tmp, "go.mod").write_text(f"module kbench/toxiproxy\n\ngo 1.22\n\nrequire {TOXIPROXY_MODULE} "
                                       f"{TOXIPROXY_VERSION}\n")
        out = Path(tmp) / BINARY_NAME
        env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"}
        try:
            proc = subprocess.run([go, "build", "-o", str(out), f"{TOXIPROXY_MODULE}/cmd/server"], cwd=tmp, env=env,
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProxyError(f"building toxiproxy {TOXIPROXY_VERSION} failed: {exc}") from exc
        if proc.returncode != 0:
            raise ProxyError(f"building toxiproxy {TOXIPROXY_VERSION} failed (exit {proc.returncode}):\n"
                             + "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:]))
        os.replace(out, target)  # atomic: a concurrent build leaves one whole binary
    return target


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: SIGTERM when kbench dies (PR_SET_PDEATHSIG), so a crashed run leaves no proxy."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)   # PR_SET_PDEATHSIG, SIGTERM


def proxy_processes() -> list[int]:
    """Pids of running toxiproxy servers started from kbench's cache (what a test checks is gone)."""
    import psutil

    binary = str(_cache_root() / BINARY_NAME)
    pids: list[int] = []
    for p in psutil.process_iter(["pid", "exe", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = p.info.get("cmdline") or []
            if p.info.get("exe") == binary or (cmd and cmd[0] == binary):
                pids.append(int(p.info["pid"]))
    return pids


@dataclass
class ClientProxy(contextlib.AbstractContextManager["ClientProxy", None]):
    """A running toxiproxy server with one proxy per broker node; ``stop()`` (or ``with``) ends it."""

    api: str                                            # "http://127.0.0.1:PORT"
    process: subprocess.Popen[bytes]
    listen: dict[int, str]                              # node id -> "127.0.0.2:port" (what brokers advertise)
    toxics: dict[str, list[str]] = field(default_factory=dict)   # fault name -> proxies it is on

    @classmethod
    def start(cls, nodes: Sequence[tuple[int, int]], *, host: str = PROXY_HOST,
              upstream_host: str = UPSTREAM_HOST) -> ClientProxy:
        """Start the server and create a proxy ``host:port`` -> ``upstream_host:port`` for each (node id, port)."""
        binary = ensure_toxiproxy()
        port = _free_port("127.0.0.1")
        try:
            proc = subprocess.Popen([str(binary), "-host", "127.0.0.1", "-port", str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent)
        except OSError as exc:
            raise ProxyError(f"cannot start {binary}: {exc}") from exc
        self = cls(api=f"http://127.0.0.1:{port}", process=proc, listen={})
        try:
            self._wait_ready()
            for node_id, node_port in nodes:
                self._call("POST", "/proxies", {"name": f"node{node_id}", "listen": f"{host}:{node_port}",
                                                "upstream": f"{upstream_host}:{node_port}", "enabled": True})
                self.listen[node_id] = f"{host}:{node_port}"
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def bootstrap(self) -> str:
        return ",".join(self.listen[n] for n in sorted(self.listen))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise ProxyError(f"toxiproxy exited at start (code {self.process.returncode})")
            try:
                self._call("GET", "/version")
                return
            except ProxyError:
                if time.monotonic() >= deadline:
                    raise ProxyError(f"toxiproxy did not answer at {self.api} within {START_TIMEOUT_S:g} s") from None
                time.sleep(0.05)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(req, timeout=API_TIMEOUT_S) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ProxyError(f"toxiproxy {method} {path}: HTTP {exc.code} {exc.read().decode(errors='replace')[:200]}"
                             ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ProxyError(f"toxiproxy {method} {path}: {exc}") from exc
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            return raw.decode(errors="replace")   # GET /version answers plain text

    def add(self, name: str, toxic: str, attributes: Mapping[str, int], *, nodes: Sequence[int] | None = None,
            streams: Sequence[str] = ("downstream",)) -> list[str]:
        """Add toxic ``toxic`` as ``name`` on the proxies of ``nodes`` (None: all), on each of ``streams``
        (downstream: broker to client, upstream: client to broker); returns the proxies it is on."""
        if toxic not in TOXICS:
            raise ProxyError(f"unknown toxic {toxic!r} (expected one of {', '.join(TOXICS)})")
        if name in self.toxics:
            raise ProxyError(f"toxic {name!r} is already on")
        unknown = [n for n in nodes or () if n not in self.listen]
        if unknown:
            raise ProxyError(f"no proxy for node(s) {unknown} (proxied: {sorted(self.listen)})")
        done: list[str] = []
        self.toxics[name] = done   # recorded first: a partial add is still removed by remove()
        for n in sorted(self.listen) if nodes is None else nodes:
            for stream in streams:
                path = f"/proxies/node{n}/toxics"
                self._call("POST", path, {"name": f"{name}-{stream}", "type": toxic, "stream": stream,
                                          "toxicity": 1.0, "attributes": dict(attributes)})
                done.append(f"node{n}/toxics/{name}-{stream}")
        return sorted({d.split("/")[0] for d in done})

    def remove(self, name: str) -> None:
        """Remove toxic ``name`` from every proxy it is on (a no-op if it is not on)."""
        for toxic in self.toxics.pop(name, []):
            self._call("DELETE", f"/proxies/{toxic}")

    def active(self) -> dict[str, list[str]]:
        """The toxics on each proxy, as the server reports them."""
        out: dict[str, list[str]] = {}
        for name, doc in (self._call("GET", "/proxies") or {}).items():
            out[name] = [t["name"] for t in doc.get("toxics", [])]
        return out

    def clear(self) -> None:
        """Remove every toxic (POST /reset also re-enables proxies)."""
        self.toxics.clear()
        self._call("POST", "/reset")

    def stop(self, grace_s: float = 3.0) -> None:
        """End the server (idempotent); its proxies and their connections go with it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.toxics.clear()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
