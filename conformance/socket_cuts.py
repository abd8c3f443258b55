"""Cut a driver process's TCP connections to the broker with ``ss -K`` (fault injection for C18).

:class:`conformance.netfault.ConnectionCutter` cuts this process's own sockets (P2, P3: librdkafka runs
in the test process); a client's driver is another process, whose sockets kbench cannot shut down from
here. The kernel can destroy them: ``ss -K`` sends SOCK_DESTROY (``CONFIG_INET_DIAG_DESTROY``, root
only), the socket is aborted (the driver's next read or write fails ECONNABORTED) and the broker gets a
reset. Exactly the driver's connections are cut, never the harness's or the broker's own: the driver's
socket inodes come from ``/proc/PID/fd`` (links ``socket:[INODE]``, of the driver and its descendants),
their addresses from ``/proc/PID/net/tcp`` and ``tcp6``, and each ESTABLISHED one whose remote port is a
broker port is destroyed by its full 4-tuple (``ss -K src L:lport dst R:rport``).

``ss`` ignores SOCK_DESTROY's EOPNOTSUPP silently (exit 0, nothing printed) and prints only the sockets
it destroyed, so a cut is counted from its output, and :func:`probe` first destroys a loopback socket of
its own and checks that it was aborted: without root or without the kernel option the check says so.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["ESTABLISHED", "SocketCutter", "TcpSocket", "connections_of", "destroy", "local_ports",
           "parse_proc_net_tcp", "pending_at_cuts", "probe", "process_tree", "socket_inodes"]

#: ``st`` of an ESTABLISHED socket in /proc/net/tcp (include/net/tcp_states.h)
ESTABLISHED = 0x01
_SS_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TcpSocket:
    """One row of /proc/net/tcp or tcp6: addresses as text ("127.0.0.1", "::1"), state, inode."""

    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    state: int
    inode: int


def _hex_ip(text: str) -> str:
    """A /proc/net/tcp address: IPv4 as one host-order 32-bit word, IPv6 as four (little-endian hosts)."""
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    if len(raw) == 16:
        swapped = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        return socket.inet_ntop(socket.AF_INET6, swapped)    # a v4-mapped one stays "::ffff:a.b.c.d"
    raise ValueError(f"not a /proc/net/tcp address: {text!r}")


def parse_proc_net_tcp(text: str) -> list[TcpSocket]:
    """The sockets of a /proc/net/tcp or /proc/net/tcp6 text (the header line and blank lines skipped)."""
    out: list[TcpSocket] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or not fields[0].endswith(":") or not fields[0][:-1].isdigit():
            continue
        (lip, lport), (rip, rport) = (f.split(":") for f in fields[1:3])
        out.append(TcpSocket(_hex_ip(lip), int(lport, 16), _hex_ip(rip), int(rport, 16), int(fields[3], 16),
                             int(fields[9])))
    return out


def local_ports(text: str, inodes: Collection[int], remote_ports: Collection[int]) -> dict[int, int]:
    """inode -> local port of the ESTABLISHED sockets among ``inodes`` whose remote port is one of
    ``remote_ports``, from a /proc/net/tcp(6) text."""
    return {s.inode: s.local_port for s in connections_of(parse_proc_net_tcp(text), inodes, remote_ports)}


def connections_of(sockets: Iterable[TcpSocket], inodes: Collection[int],
                   remote_ports: Collection[int]) -> list[TcpSocket]:
    """The ESTABLISHED ``sockets`` among ``inodes`` (inode 0 is a socket no process holds) with a remote
    port in ``remote_ports``."""
    return [s for s in sockets if s.inode and s.inode in inodes and s.state == ESTABLISHED
            and s.remote_port in remote_ports]


def pending_at_cuts(t0_ns: int, acks: Iterable[Sequence[Any]], cut_ns: Sequence[int], rate: float) -> list[int]:
    """Per cut time: how many of one paced producer's acked records were due (record ``seq`` at
    ``t0_ns + seq / rate``) and not yet acked then: queued or in flight, what a cut can make the client resend.
    ``acks`` are verify-mode acks ``(partition, offset, producer, seq, ack_ns)``; all 0 without a t0."""
    if not t0_ns:
        return [0 for _ in cut_ns]
    spans = [(t0_ns + int(int(a[3]) * 1e9 / rate), int(a[4])) for a in acks]
    return [sum(1 for due, acked in spans if due <= t < acked) for t in cut_ns]


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds (``/proc/PID/fd/* -> socket:[INODE]``); empty
    if it is gone."""
    out: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue      # closed meanwhile
        if link.startswith("socket:[") and link.endswith("]"):
            out.add(int(link[8:-1]))
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a driver started through a wrapper holds its sockets in a child)."""
    try:
        proc = psutil.Process(pid)
        return [pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.Error:
        return []


def driver_sockets(pids: Iterable[int], remote_ports: Collection[int]) -> list[TcpSocket]:
    """The ESTABLISHED TCP sockets of ``pids`` (and their descendants) to ``remote_ports``."""
    found: dict[int, TcpSocket] = {}
    for top in pids:
        for pid in process_tree(top):
            inodes = socket_inodes(pid)
            if not inodes:
                continue
            for name in ("tcp", "tcp6"):
                try:
                    text = Path(f"/proc/{pid}/net/{name}").read_text(encoding="ascii")
                except OSError:
                    continue
                for s in connections_of(parse_proc_net_tcp(text), inodes, remote_ports):
                    found[s.inode] = s
    return list(found.values())


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def destroy(sock: TcpSocket) -> int:
    """Destroy ``sock`` (by its 4-tuple) with ``ss -K``; returns how many sockets ss says it destroyed
    (0: gone meanwhile, or SOCK_DESTROY not supported). OSError if ss fails."""
    argv = ["ss", "-K", "-H", "-n", "-t", "src", _endpoint(sock.local_ip, sock.local_port),
            "dst", _endpoint(sock.remote_ip, sock.remote_port)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=_SS_TIMEOUT_S, check=False)
    if res.returncode != 0:
        raise OSError(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr.strip()[:200]}")
    return sum(1 for line in res.stdout.splitlines() if line.strip())


def probe() -> str | None:
    """None if ``ss -K`` destroys a socket here, else why not (no ss, not root, no CAP_NET_ADMIN, no
    SOCK_DESTROY: ss prints nothing and exits 0 when the kernel refuses, so the probe's own socket is checked)."""
    if shutil.which("ss") is None:
        return "ss (iproute2) not installed"
    if os.geteuid() != 0:
        return f"ss -K needs root (euid {os.geteuid()})"
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname(), timeout=5.0) as cli:
            peer, _ = srv.accept()
            with peer:
                lip, lport = cli.getsockname()[:2]
                rip, rport = srv.getsockname()[:2]
                try:
                    n = destroy(TcpSocket(lip, lport, rip, rport, ESTABLISHED, 0))
                except (OSError, subprocess.SubprocessError) as exc:
                    return f"ss -K failed: {exc}"
                err = cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if n != 1 or err != errno.ECONNABORTED:
                    return (f"ss -K destroyed no socket (printed {n}, the socket's error {err}, expected "
                            f"ECONNABORTED): no CAP_NET_ADMIN, or a kernel without SOCK_DESTROY "
                            f"(CONFIG_INET_DIAG_DESTROY)")
    return None


@dataclass
class SocketCutter:
    """A thread that, every ``interval_s`` until :meth:`stop` or ``duration_s`` after :meth:`start`,
    destroys every ESTABLISHED TCP connection of the given processes to ``broker_ports`` that it first saw
    at least ``min_age_s`` before (a new connection gets that long to carry traffic before it is cut)."""

    broker_ports: frozenset[int]
    interval_s: float = 0.25
    duration_s: float = 2.0
    min_age_s: float = 0.0
    cuts: int = 0
    rounds: int = 0
    cut_ns: list[int] = field(default_factory=list)          # CLOCK_MONOTONIC of each round that cut
    errors: list[str] = field(default_factory=list)
    _first_seen: dict[int, float] = field(default_factory=dict, init=False, repr=False)   # inode -> time
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self, pids: Collection[int]) -> None:
        """Start cutting the connections of ``pids`` (and their descendants)."""
        if self._thread is not None:
            raise RuntimeError("SocketCutter started twice")
        self._thread = threading.Thread(target=self._run, args=(list(pids),), daemon=True,
                                        name="socket-cutter")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def _run(self, pids: list[int]) -> None:
        end = time.monotonic() + self.duration_s
        while not self._stop.wait(self.interval_s) and time.monotonic() < end:
            self.rounds += 1
            n = 0
            now = time.monotonic()
            for sock in driver_sockets(pids, self.broker_ports):
                if now - self._first_seen.setdefault(sock.inode, now) < self.min_age_s:
                    continue
                try:
                    n += destroy(sock)
                except (OSError, subprocess.SubprocessError) as exc:
                    self.errors.append(str(exc))
                    return
            if n:
                self.cuts += n
                self.cut_ns.append(time.monotonic_ns())
