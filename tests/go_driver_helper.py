"""A minimal coordinator for one external driver process (docs/drivers.md), for tests and benchmarks:
write the spec, read JSON lines with a deadline, send start/consume/stop. Replaceable by
bench.drivers.external once that lands."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.driver_process import DriverStdin

__all__ = ["DriverProc", "spec"]


def spec(role: str, bootstrap: str, topic: str, **over: Any) -> dict[str, Any]:
    """A protocol v1 spec line with defaults: 100 B fixed, random payload, no keys, 0 s warm-up, 3 s."""
    doc: dict[str, Any] = {
        "type": "spec", "protocol": 1, "role": role, "index": 0, "producers": 1, "bootstrap": bootstrap,
        "topic": topic, "client_config": {}, "warmup_ns": 0, "duration_ns": 3_000_000_000, "rate": None,
        "message_size": {"distribution": "fixed", "value": 100, "min": 100, "max": 100, "mean": None,
                         "stddev": None, "values": [], "weights": []},
        "payload": {"kind": "random", "compressibility": 0.0},
        "keys": {"kind": "none", "count": None, "zipf_s": 1.2},
        "group": None, "wait_for_consume": False, "seed": 1, "verify": False, "flush_timeout_s": 10.0,
    }
    doc.update(over)
    return doc


@dataclass
class DriverProc(DriverStdin):
    """One driver process; ``lines`` keeps every JSON line it wrote, in order (``send`` and
    ``close_stdin`` from DriverStdin)."""

    argv: list[str]
    env: dict[str, str] | None = None      # added to this process's environment
    proc: subprocess.Popen[str] = field(init=False)
    lines: list[dict[str, Any]] = field(default_factory=list)
    spawned_ns: int = 0
    _q: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.spawned_ns = time.monotonic_ns()
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(json.loads(line))
        self._q.put(None)

    def wait_for(self, kind: str, timeout: float) -> dict[str, Any]:
        """The next line of type ``kind`` (lines before it are kept in ``lines``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind!r} line within {timeout} s; got {self.lines[-5:]}")
            try:
                msg = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if msg is None:
                raise EOFError(f"driver exited (rc {self.proc.wait()}) before a {kind!r} line; got "
                               f"{self.lines[-5:]}; stderr: {self.stderr_tail()}")
            self.lines.append(msg)
            if msg["type"] == kind:
                return msg

    def drain(self) -> list[dict[str, Any]]:
        """The lines written by now and not read yet, without waiting (kept in ``lines`` too)."""
        got: list[dict[str, Any]] = []
        while True:
            try:
                msg = self._q.get_nowait()
            except queue.Empty:
                break
            if msg is None:          # EOF: left for wait_for to report
                self._q.put(None)
                break
            got.append(msg)
        self.lines += got
        return got

    def stderr_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()[-2000:]

    def finish(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_driver(binary: Path, doc: dict[str, Any], *, start_delay_s: float = 0.05,
               timeout: float = 60) -> tuple[DriverProc, dict[str, Any]]:
    """Spawn, send the spec, wait for ready, start at now + ``start_delay_s``, return the result line."""
    d = DriverProc([str(binary)])
    try:
        d.send(doc)
        d.wait_for("ready", timeout)
        d.send({"type": "start", "t0_ns": time.monotonic_ns() + int(start_delay_s * 1e9)})
        result = d.wait_for("result", timeout)
        d.finish()
        return d, result
    finally:
        d.kill()
