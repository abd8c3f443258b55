"""Cut this process's TCP connections to a broker mid-stream (fault injection for P2/P3).

Why not a proxy: a loopback proxy only sees the *bootstrap* connection. The broker advertises its
own address in Metadata and librdkafka then connects there directly (it has no address rewrite and
no resolve/connect hook in confluent-kafka), so produce traffic would bypass the proxy unless the
broker advertised the proxy's address, which an external broker does not. Instead
:class:`ConnectionCutter` finds the client's own sockets (psutil: fd, local and remote address) and
calls ``shutdown(SHUT_RDWR)`` on a duplicate of each fd: the kernel sends FIN to the broker, the
client's next read returns EOF, exactly what a dropped connection looks like to both ends. Nothing
on the wire is rewritten, no privileges are needed, and only sockets of this process that were
opened after :meth:`ConnectionCutter.arm` are touched (so other clients in the test are spared).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import psutil

__all__ = ["ConnectionCutter"]


@dataclass(frozen=True)
class _Conn:
    fd: int
    lport: int


class ConnectionCutter:
    """Cut ESTABLISHED connections of this process to ``host:port`` opened after :meth:`arm`."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.cuts = 0
        self._excluded: set[_Conn] = set()
        self._first_seen: dict[_Conn, float] = {}

    def _established(self) -> list[_Conn]:
        proc = psutil.Process()
        lister = getattr(proc, "net_connections", None) or proc.connections
        out = []
        for c in lister(kind="tcp"):
            if (c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == self.port
                    and c.raddr.ip == self.host and c.fd >= 0):
                out.append(_Conn(c.fd, c.laddr.port))
        return out

    def arm(self) -> None:
        """Spare every connection open now; later ones may be cut."""
        self._excluded = set(self._established())
        self._first_seen.clear()

    def _shutdown(self, conn: _Conn) -> bool:
        try:
            fd = os.dup(conn.fd)
        except OSError:
            return False  # closed meanwhile
        sock = socket.socket(fileno=fd)
        try:
            # the fd number may have been reused since psutil listed it: check it is still ours
            if sock.getsockname()[1] != conn.lport or sock.getpeername()[1] != self.port:
                return False
            sock.shutdown(socket.SHUT_RDWR)
            return True
        except OSError:
            return False
        finally:
            sock.close()  # closes only the duplicate

    def cut(self, min_age: float = 0.1) -> int:
        """Cut connections that have been up for at least ``min_age`` s; returns how many."""
        now = time.monotonic()
        n = 0
        for conn in self._established():
            if conn in self._excluded:
                continue
            if now - self._first_seen.setdefault(conn, now) < min_age:
                continue
            if self._shutdown(conn):
                n += 1
        self.cuts += n
        return n
