"""An external driver process as one worker: the coordinator side of the driver protocol (docs/drivers.md).

The process gets the worker's spec as its first stdin line and answers with JSON lines on stdout; a reader
thread turns them into the same queue messages a Python worker sends (``ready``, ``stat``, ``result``,
``error``), so the process driver coordinates both alike. ``start`` / ``consume`` / ``stop`` go to its
stdin; closing stdin is a stop too, so a driver never outlives kbench.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections import deque
from dataclasses import asdict
from typing import IO, Any

from bench.drivers.events import EVENT_TYPES, PROTOCOL_V1, PROTOCOL_V2, EventError, GroupOptions, parse_event
from bench.drivers.records import RECORDS, ExplicitRecord, records_spec
from bench.drivers.txn_events import ISOLATION_LEVELS, TXN_EVENT_TYPES, TxnOptions, parse_txn_event
from bench.errors import ConfigError
from bench.load.worker import WorkerSpec

__all__ = [
    "GROUP_OPTIONS",
    "ISOLATION",
    "PROTOCOLS",
    "PROTOCOL_VERSION",
    "RECORDS",
    "TRANSACTIONS",
    "ExternalWorker",
    "spec_line",
    "spec_protocol",
    "worker_command",
]

#: the newest driver protocol kbench speaks; it accepts drivers of every version in PROTOCOLS
PROTOCOL_VERSION = PROTOCOL_V2
PROTOCOLS = (PROTOCOL_V1, PROTOCOL_V2)
#: ``WorkerSpec.extra`` key of a consumer's :class:`~bench.drivers.events.GroupOptions` (protocol v2)
GROUP_OPTIONS = "group_options"
#: ``WorkerSpec.extra`` keys of protocol v2's transactional mode: a producer's
#: :class:`~bench.drivers.txn_events.TxnOptions`, a consumer's isolation level
TRANSACTIONS = "transactions"
ISOLATION = "isolation_level"
_STDERR_LINES = 30


def spec_protocol(spec: WorkerSpec) -> int:
    """The version a worker's spec is written in: 2 for a consumer with group options or an isolation
    level, for a transactional producer and for an explicit-records producer, else 1 (so a v1-only driver
    still runs every v1 spec)."""
    v2 = (isinstance(spec.extra.get(GROUP_OPTIONS), GroupOptions) or isinstance(spec.extra.get(TRANSACTIONS),
          TxnOptions) or spec.extra.get(ISOLATION) is not None or spec.extra.get(RECORDS) is not None)
    return PROTOCOL_V2 if v2 else PROTOCOL_V1


def spec_line(spec: WorkerSpec) -> dict[str, Any]:
    """The ``spec`` object of docs/drivers.md for one worker (protocol v2 adds ``group_options``,
    ``transactions``, ``isolation_level`` and ``records``)."""
    line = _spec_v1(spec)
    opts = spec.extra.get(GROUP_OPTIONS)
    if isinstance(opts, GroupOptions):
        line["protocol"] = PROTOCOL_V2
        line["group_options"] = opts.to_spec()
    txn = spec.extra.get(TRANSACTIONS)
    if isinstance(txn, TxnOptions):
        line["protocol"] = PROTOCOL_V2
        line["transactions"] = txn.to_spec()
    isolation = spec.extra.get(ISOLATION)
    if isolation is not None:
        if isolation not in ISOLATION_LEVELS:
            raise ConfigError(f"isolation_level {isolation!r}: expected one of {', '.join(ISOLATION_LEVELS)}")
        line["protocol"] = PROTOCOL_V2
        line["isolation_level"] = isolation
    records = spec.extra.get(RECORDS)
    if records is not None:
        if spec.role != "producer" or not all(isinstance(r, ExplicitRecord) for r in records):
            raise ConfigError("records: a producer's sequence of ExplicitRecord")
        line["protocol"] = PROTOCOL_V2
        line["records"] = records_spec(list(records))
    return line


def _spec_v1(spec: WorkerSpec) -> dict[str, Any]:
    return {
        "type": "spec", "protocol": PROTOCOL_V1, "role": spec.role, "index": spec.index,
        "producers": int(spec.extra.get("producers", 1)), "bootstrap": spec.bootstrap, "topic": spec.topic,
        "client_config": dict(spec.client_config), "warmup_ns": spec.warmup_ns, "duration_ns": spec.duration_ns,
        "rate": spec.rate, "message_size": {k: (list(v) if isinstance(v, tuple) else v)
                                            for k, v in asdict(spec.message_size).items()},
        "payload": {"kind": spec.payload.kind, "compressibility": spec.payload.compressibility},
        "keys": {"kind": spec.keys.kind, "count": spec.keys.count, "zipf_s": spec.keys.zipf_s},
        "group": spec.group, "wait_for_consume": bool(spec.extra.get("wait_for_consume", False)),
        "seed": spec.seed, "verify": spec.verify, "flush_timeout_s": spec.flush_timeout_s,
    }


def worker_command(client: str, kafka_version: str | None) -> list[str]:
    """The argv that starts one worker of ``client`` (built on first use into the kbench cache)."""
    from bench.drivers.registry import driver_command

    return driver_command(client, kafka_version)


class ExternalWorker:
    """One worker process speaking the driver protocol; a ``multiprocessing.Process``-like surface."""

    def __init__(self, spec: WorkerSpec, client: str, argv: list[str], out: Any) -> None:
        self.spec, self.client, self.argv, self.out = spec, client, argv, out
        self.role = spec.role
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._lock = threading.Lock()
        self._sent_result = False
        self._threads: list[threading.Thread] = []
        self._spec_sent_ns = 0
        self.protocol = spec_protocol(spec)   # the version the spec asks for; hello and ready must match

    # -- process surface ---------------------------------------------------------------------------
    def start(self) -> None:
        self._spec_sent_ns = time.monotonic_ns()   # the lower bound of the driver's hello clock
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, bufsize=1)
        except OSError as exc:
            raise ConfigError(f"could not start the {self.client} driver ({self.argv[0]}): {exc.strerror}") from None
        self._send(spec_line(self.spec))
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for target, stream in ((self._read_stdout, self._proc.stdout), (self._read_stderr, self._proc.stderr)):
            t = threading.Thread(target=target, args=(stream,), daemon=True, name=f"{self.client}-{self.role}")
            t.start()
            self._threads.append(t)

    @property
    def exitcode(self) -> int | None:
        if self._proc is None:
            return None
        code = self._proc.poll()
        if code is not None and any(t.is_alive() for t in self._threads):
            return None          # exited, but its last lines (stdout, stderr) are still being read
        return code

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def join(self, timeout: float | None = None) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
        for t in self._threads:
            t.join(timeout=1.0)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    # -- commands ----------------------------------------------------------------------------------
    def send_start(self, t0_ns: int) -> None:
        self._send({"type": "start", "t0_ns": t0_ns})

    def send_consume(self) -> None:
        if self.role == "consumer":
            self._send({"type": "consume"})

    def send_stop(self) -> None:
        self._send({"type": "stop"})
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self._proc.stdin.close()

    def _send(self, obj: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.closed:
            return
        with self._lock, contextlib.suppress(OSError, ValueError):
            proc.stdin.write(json.dumps(obj) + "\n")
            proc.stdin.flush()

    # -- reading -----------------------------------------------------------------------------------
    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip("\n"))

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                self._error(f"not a JSON line: {line.strip()[:200]!r}")
                continue
            if not isinstance(msg, dict):
                self._error(f"not a JSON object: {line.strip()[:200]!r}")
                continue
            self._dispatch(msg)
        if self._sent_result or self._proc is None:
            return
        code = self._proc.wait()
        if code == 0:   # a clean exit without a result: a protocol error, the cell goes on without this worker
            self._error("exited (code 0) without a result line")
            self._put("result", {"failed": f"the {self.client} driver exited without a result"})
        # a non-zero exit is a crash: the coordinator's health check fails the cell with the stderr tail

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "hello":
            self._check_hello(msg)
        elif kind == "ready":
            self._check_ready(msg)
            self._put("ready", msg.get("detail"))
        elif kind in EVENT_TYPES and self.protocol >= PROTOCOL_V2:
            try:
                self._put("event", parse_event(msg))
            except EventError as exc:
                self._error(f"bad {kind} line: {exc}")
        elif kind in TXN_EVENT_TYPES and self.protocol >= PROTOCOL_V2:
            try:
                self._put("event", parse_txn_event(msg))
            except EventError as exc:
                self._error(f"bad {kind} line: {exc}")
        elif kind == "stat":
            self.out.put(("stat", self.role, self.spec.index, float(msg.get("t_s", 0.0)), int(msg.get("count", 0)),
                          msg.get("p99_us"), int(msg.get("total", 0))))
        elif kind == "result":
            result = {k: v for k, v in msg.items() if k != "type"}
            result.setdefault("client", {"name": self.client, "version": "unknown"})
            result.setdefault("protocol", self.protocol)
            self._sent_result = True
            self._put("result", result)
        elif kind == "error":
            self._error(str(msg.get("message", "")))
        else:
            self._error(f"unknown line type {kind!r}")

    def _check_hello(self, msg: dict[str, Any]) -> None:
        now = time.monotonic_ns()
        protocol, clock = msg.get("protocol"), msg.get("now_ns")
        if protocol not in PROTOCOLS or protocol != self.protocol:
            self._error(f"answers in driver protocol {protocol!r}; its spec asked for {self.protocol} "
                        f"(kbench speaks {', '.join(map(str, PROTOCOLS))})")
            self.kill()
        elif not isinstance(clock, int) or not self._spec_sent_ns <= clock <= now:
            self._error(f"its clock is not this host's CLOCK_MONOTONIC (hello now_ns {clock!r} is outside "
                        f"[{self._spec_sent_ns}, {now}])")
            self.kill()

    def _check_ready(self, msg: dict[str, Any]) -> None:
        """Protocol v2: ``ready`` repeats the version, and says whether group events will follow."""
        if self.protocol >= PROTOCOL_V2 and msg.get("protocol") != self.protocol:
            self._error(f"ready says protocol {msg.get('protocol')!r}; its spec asked for {self.protocol}")
        grouped = isinstance(self.spec.extra.get(GROUP_OPTIONS), GroupOptions)
        if self.protocol >= PROTOCOL_V2 and self.role == "consumer" and self.spec.verify and grouped \
                and msg.get("group_events") is not True:
            self._error("a v2 verify-mode consumer with group options must report group events "
                        "(ready.group_events true)")

    def _error(self, text: str) -> None:
        self._put("error", f"{self.client} driver: {text}")

    def _put(self, kind: str, payload: Any) -> None:
        self.out.put((kind, self.role, self.spec.index, payload))
