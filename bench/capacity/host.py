"""CPU contention on the host during each search step.

The knee of a shared box moves with other people's work. For every step the probe records how many
cores were busy, split into kbench's own processes (coordinator and its reaped workers, from
``os.times``), the embedded broker's processes (by pid) and everything else (``other_cores``). With an
external broker on this host, its process is found by its listening port
(:func:`local_broker_pids`); if it cannot be, contention is not tracked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import psutil

__all__ = ["HostProbe", "contention_note", "local_broker_pids"]

_LOOPBACK = ("localhost", "::1", "0.0.0.0", "")


def _busy(t: Any) -> float:
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def _own() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class HostProbe:
    """Call :meth:`reset` before a step and :meth:`sample` after it (workers joined)."""

    def __init__(self, broker_pids: Sequence[int] = ()) -> None:
        self.cpus = psutil.cpu_count() or 1
        self._procs = []
        for pid in broker_pids:
            try:
                self._procs.append(psutil.Process(pid))
            except psutil.Error:
                continue
        self.reset()

    def _broker(self) -> float:
        total = 0.0
        for p in self._procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def reset(self) -> None:
        self._t, self._sys, self._own, self._brk = time.monotonic(), psutil.cpu_times(), _own(), self._broker()

    def sample(self) -> dict[str, float]:
        wall = max(1e-6, time.monotonic() - self._t)
        now = psutil.cpu_times()
        busy = _busy(now) - _busy(self._sys)
        total = busy + (now.idle - self._sys.idle) + (getattr(now, "iowait", 0.0) - getattr(self._sys, "iowait", 0.0))
        own, brk = _own() - self._own, self._broker() - self._brk
        self.reset()
        return {"cpus": self.cpus, "cpu_busy_pct": round(100.0 * busy / total, 1) if total > 0 else 0.0,
                "own_cores": round(own / wall, 2), "broker_cores": round(brk / wall, 2),
                "other_cores": round(max(0.0, busy - own - brk) / wall, 2),
                "load_avg_1m": round(os.getloadavg()[0], 2)}

    def wait_quiet(self, limit_cores: float, max_wait_s: float, interval_s: float = 1.0) -> tuple[float, float]:
        """Sample until other processes use at most ``limit_cores`` (or ``max_wait_s`` passed); return the
        seconds waited and the last reading of other cores."""
        t0 = time.monotonic()
        while True:
            self.reset()
            time.sleep(interval_s)
            other = self.sample()["other_cores"]
            waited = time.monotonic() - t0
            if other <= limit_cores or waited >= max_wait_s:
                return waited, other


def local_broker_pids(bootstrap: str) -> list[int] | None:
    """PIDs listening on the bootstrap's loopback ports: ``[]`` if the broker is on another host (its CPU is
    not ours to count), ``None`` if it is on this host but cannot be identified (no permission, proxied)."""
    ports = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        host = host.strip("[]").lower()
        if (host in _LOOPBACK or host.startswith("127.")) and port.isdigit():
            ports.append(int(port))
    if not ports:
        return []
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    pids = {c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports and c.pid}
    return sorted(pids) or None


def contention_note(steps: Sequence[dict[str, Any]]) -> str | None:
    """A note naming the steps during which other processes loaded the host (``contended`` steps)."""
    hot = [s for s in steps if s.get("host") and s.get("contended")]
    if not hot:
        return None
    worst = max(s["host"]["other_cores"] for s in hot)
    return (f"other processes competed for the CPUs during step(s) {', '.join(str(s['index']) for s in hot)} "
            f"(up to {worst:g} of {hot[0]['host']['cpus']} cores busy outside kbench and its broker): these "
            "steps measured that contention as much as the broker")
