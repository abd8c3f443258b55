"""A consumer-group member in a child process, so that a check can kill it for real (SIGKILL/SIGSTOP).

Parent side: :class:`ChildMember` starts ``python -m conformance._member`` (127.0.0.1 only), reads its
events (JSON lines on stdout) on a thread and sends it commands (JSON lines on stdin)::

    m = ChildMember(bootstrap, group, topic, conf={"session.timeout.ms": 6000})
    m.wait_event(lambda e: e["ev"] == "assign" and e["partitions"], 15, "child assignment")
    m.send({"cmd": "commit", "offsets": {"0": 5}}); m.wait_event(...); m.kill()

Child events: ``assign``/``revoke``/``lost`` (partitions), ``rec`` (p, o, v), ``commit`` (ok, code,
name, offsets), ``error`` (code, name, fatal, text), ``closed``. Commands: ``commit`` with ``offsets``
``{partition: offset}`` (synchronous, explicit offsets) or without (commit the consumed positions),
``member`` (emits ``member``: the member id and librdkafka's serialized group metadata, hex, which
:func:`group_metadata` reads the generation from), ``close`` (graceful close, then exit). The child
exits by itself when stdin closes or after ``--max-seconds``, so it never outlives a crashed parent.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["ChildMember", "Event", "GroupMetadata", "group_metadata"]

Event = dict[str, Any]
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GroupMetadata:
    """A member's view of its group: what librdkafka would stamp on a commit now."""

    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None


_CGMD_MAGIC = b"CGMDv2:"


def group_metadata(raw: bytes) -> GroupMetadata:
    """Read ``Consumer.consumer_group_metadata()`` (librdkafka's ``rd_kafka_consumer_group_metadata_write``):
    ``"CGMDv2:"``, the generation id (int32, host byte order), the group id and the member id (each
    NUL-terminated), a byte saying whether the group instance id is null (1), else the id NUL-terminated.

    librdkafka calls the format private (it may change between its versions), so a caller must check
    the result against the broker: G8 commits with it first and expects that commit to be accepted.
    ValueError when the bytes are not in this format."""
    if not raw.startswith(_CGMD_MAGIC) or len(raw) < len(_CGMD_MAGIC) + 4 + 3:
        raise ValueError(f"librdkafka group metadata not in the CGMDv2 format this reader knows: {raw[:16]!r}")
    pos = len(_CGMD_MAGIC)
    (generation,) = struct.unpack_from("=i", raw, pos)
    pos += 4
    fields: list[str] = []
    for _ in range(2):
        end = raw.find(b"\0", pos)
        if end < 0:
            raise ValueError(f"librdkafka group metadata: unterminated string at byte {pos}: {raw!r}")
        fields.append(raw[pos:end].decode())
        pos = end + 1
    if pos >= len(raw) or raw[pos] not in (0, 1):
        raise ValueError(f"librdkafka group metadata: no group-instance-id flag at byte {pos}: {raw!r}")
    instance: str | None = None
    if raw[pos] == 0:
        end = raw.find(b"\0", pos + 1)
        if end < 0:
            raise ValueError(f"librdkafka group metadata: unterminated group instance id: {raw!r}")
        instance, pos = raw[pos + 1:end].decode(), end
    if pos + 1 != len(raw):
        raise ValueError(f"librdkafka group metadata: {len(raw) - pos - 1} unexpected trailing bytes: {raw!r}")
    return GroupMetadata(fields[0], generation, fields[1], instance)


class ChildMember:
    """Parent-side handle of one child consumer process (see the module docstring)."""

    def __init__(self, bootstrap: str, group: str, topic: str, conf: Mapping[str, Any] | None = None,
                 max_seconds: float = 90.0, name: str = "child") -> None:
        self.name = name
        self.events: list[Event] = []
        self._queue: queue.Queue[Event] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=40)
        self._lock = threading.Lock()
        cmd = [sys.executable, "-m", "conformance._member", "--bootstrap", bootstrap, "--group", group,
               "--topic", topic, "--max-seconds", str(max_seconds),
               "--conf", json.dumps(dict(conf or {}))]
        self.started_ns = time.perf_counter_ns()
        self.proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     bufsize=1)
        self._threads = [threading.Thread(target=self._read_events, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()

    # ---------------------------------------------------------------- reading
    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                self._stderr.append("stdout: " + line.rstrip())
                continue
            ev["t_ns"] = time.perf_counter_ns()
            with self._lock:
                self.events.append(ev)
            self._queue.put(ev)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip())

    def stderr_tail(self, lines: int = 8) -> str:
        return " | ".join(list(self._stderr)[-lines:])

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def wait_event(self, predicate: Callable[[Event], bool], timeout: float, what: str,
                   since: int = 0) -> Event:
        """The first event (at index >= ``since`` in :attr:`events`) matching ``predicate``.

        Raises TimeoutError naming ``what`` (with the child's last events and stderr) at the deadline.
        """
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                for ev in self.events[since:]:
                    if predicate(ev):
                        return ev
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                self._queue.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self._queue.empty():
                    time.sleep(0.05)  # let the reader thread drain the last lines
                    with self._lock:
                        if not any(predicate(ev) for ev in self.events[since:]):
                            break
        with self._lock:
            last = [{k: v for k, v in ev.items() if k != "t_ns"} for ev in self.events[-4:]]
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        raise TimeoutError(f"{self.name}: {what} not seen within {timeout:g} s ({state}; "
                           f"last events {last}; stderr: {self.stderr_tail(4)})")

    def assignment(self) -> set[int]:
        """The child's current assignment, from its assign/revoke/lost events (partition numbers)."""
        current: set[int] = set()
        for ev in self.snapshot():
            if ev["ev"] == "assign":
                current |= set(ev["partitions"])
            elif ev["ev"] in ("revoke", "lost"):
                current -= set(ev["partitions"])
        return current

    # ---------------------------------------------------------------- control
    def send(self, command: Mapping[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(dict(command)) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL the child (no LeaveGroup, no commit) and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Make sure the child is gone: ask it to exit, then SIGKILL it after a short grace."""
        if self.proc.poll() is None:
            try:
                self.resume()
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        for t in self._threads:
            t.join(timeout=1)


# ==================================================================== child side
def _emit(out: IO[str], **event: Any) -> None:
    out.write(json.dumps(event) + "\n")
    out.flush()


def _run(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    out = sys.stdout
    conf: dict[str, Any] = {"bootstrap.servers": args.bootstrap, "group.id": args.group,
                            "auto.offset.reset": "earliest", "enable.auto.commit": False,
                            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                            "socket.timeout.ms": 10_000, "fetch.wait.max.ms": 100}
    if os.environ.get("KBENCH_CONFORMANCE_CLIENT_CONFIG"):  # SASL/TLS of --client-config-file (conftest)
        from bench.brokers.security import load_properties

        conf.update(load_properties(os.environ["KBENCH_CONFORMANCE_CLIENT_CONFIG"]))
    conf.update(json.loads(args.conf))
    consumer = Consumer(conf)

    def parts(ps: list[Any]) -> list[int]:
        return sorted(int(tp.partition) for tp in ps)

    consumer.subscribe([args.topic],
                       on_assign=lambda _c, ps: _emit(out, ev="assign", partitions=parts(ps)),
                       on_revoke=lambda _c, ps: _emit(out, ev="revoke", partitions=parts(ps)),
                       on_lost=lambda _c, ps: _emit(out, ev="lost", partitions=parts(ps)))
    _emit(out, ev="ready", pid=os.getpid())
    end = time.monotonic() + args.max_seconds
    pending = b""
    commands: list[str] = []
    while time.monotonic() < end:
        msg = consumer.poll(0.05)
        if msg is not None:
            err = msg.error()
            if err is None:
                value = msg.value()
                _emit(out, ev="rec", p=msg.partition(), o=msg.offset(),
                      v=None if value is None else value.decode("utf-8", "backslashreplace"))
            elif err.code() != KafkaError._PARTITION_EOF:
                _emit(out, ev="error", code=err.code(), name=err.name(), fatal=err.fatal(),
                      text=err.str())
        if not commands:
            ready, _, _ = select.select([sys.stdin], [], [], 0)
            if not ready:
                continue
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                break  # parent closed stdin: leave
            pending += chunk
            *lines, pending = pending.split(b"\n")
            commands.extend(ln.decode() for ln in lines if ln.strip())
            if not commands:
                continue
        line = commands.pop(0)
        cmd = json.loads(line)
        if cmd.get("cmd") == "close":
            break
        if cmd.get("cmd") == "member":
            _emit(out, ev="member", member_id=consumer.memberid(), metadata=consumer.consumer_group_metadata().hex())
        if cmd.get("cmd") == "commit":
            offsets = cmd.get("offsets")
            tps = ([TopicPartition(args.topic, int(p), int(o)) for p, o in offsets.items()]
                   if offsets is not None else None)
            t0 = time.perf_counter_ns()
            try:
                res = (consumer.commit(offsets=tps, asynchronous=False) if tps is not None
                       else consumer.commit(asynchronous=False))
                bad = [tp for tp in res or [] if tp.error is not None]
                if bad:
                    e = bad[0].error
                    assert e is not None
                    _emit(out, ev="commit", ok=False, code=e.code(), name=e.name(), text=e.str())
                else:
                    _emit(out, ev="commit", ok=True, us=(time.perf_counter_ns() - t0) / 1000,
                          offsets={str(tp.partition): tp.offset for tp in res or []})
            except KafkaException as exc:
                e = exc.args[0]
                _emit(out, ev="commit", ok=False, code=e.code(), name=e.name(), text=e.str())
    consumer.close()
    _emit(out, ev="closed")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance._member")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--conf", default="{}", help="JSON object of consumer config overrides")
    ap.add_argument("--max-seconds", type=float, default=90.0)
    return _run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
