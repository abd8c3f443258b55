"""Build the Go load drivers (``bench/drivers/go``) into the kbench cache, and check Go client configs.

One Go module (``go.mod``/``go.sum`` pin the client versions) holds a shared core package (protocol,
clock, header, schedule, histograms, series) and one small ``main`` per client, ``cmd/<client>``; each
client is its own binary, so a client that needs cgo (confluent-kafka-go, with its bundled static
librdkafka) never makes the pure-Go ones need gcc, and each binary's version is one module's.
``cmd/bare/<client>`` are bare produce loops for ``benchmarks/bench_go_clients.py``.

A build lives in ``<cache>/drivers/go/<program>-<key>/<program>``, where the key hashes every input: the
go.mod/go.sum, the core sources, the program's own sources, ``go version`` and CGO_ENABLED. A build
whose inputs are unchanged is reused; the first build downloads the modules through the Go module proxy
(``GOPROXY``) into Go's own module cache.

:func:`check_client_config` is pure: it refuses, before any process starts, a ``client_config`` key that a
Go client cannot honour (the drivers refuse the same keys at spec time, with exit 2).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench._paths import cache_dir
from bench.errors import ArtifactError, ConfigError

__all__ = [
    "GO_CLIENTS",
    "GoClient",
    "GoDriverStatus",
    "build_go_driver",
    "check_client_config",
    "go_driver_status",
]

Progress = Callable[[str], None]

MODULE_DIR = Path(__file__).parent / "go"
_MIN_GO = (1, 26)   # franz-go v1.22.3, sarama v1.61.1 and golang.org/x/sys v0.50.0 declare go 1.26
_INSTALL_GO = ("install Go 1.26 or newer (https://go.dev/dl/, or Debian/Ubuntu: apt-get install golang-go) "
               "and put `go` on PATH")
_INSTALL_GCC = "install gcc (Debian/Ubuntu: apt-get install gcc), which cgo needs"
_BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class GoClient:
    """One Go client: its module, pinned version (go.mod), whether it needs cgo, and its mapped knobs."""

    name: str
    module: str
    version: str
    cgo: bool
    partitioners: tuple[str, ...]    # empty: native properties (librdkafka) pass through
    unsupported: Mapping[str, str]   # knob (or knob=value) -> why the client cannot honour it


GO_CLIENTS: dict[str, GoClient] = {
    "franz-go": GoClient("franz-go", "github.com/twmb/franz-go", "v1.22.3", False,
                         ("sticky", "uniform-bytes", "round-robin", "hash"),
                         {"batch.num.messages": "kgo batches by bytes only (batch.size)"}),
    "sarama": GoClient("sarama", "github.com/IBM/sarama", "v1.61.1", False,
                       ("hash", "random", "roundrobin"), {}),
    "kafka-go": GoClient("kafka-go", "github.com/segmentio/kafka-go", "v0.4.51", False,
                         ("hash", "roundrobin", "leastbytes", "crc32"),
                         {"enable.idempotence=true": "kafka-go has no idempotent producer",
                          "max.in.flight": "kafka-go has no in-flight request limit"}),
    "confluent-kafka-go": GoClient("confluent-kafka-go", "github.com/confluentinc/confluent-kafka-go/v2",
                                   "v2.11.1", True, (), {}),
}

#: the knobs the clients without native properties take (docs/drivers.md, "Client configuration")
KNOBS = ("acks", "linger.ms", "batch.size", "batch.num.messages", "compression.type", "partitioner",
         "enable.idempotence", "max.in.flight")
_COMPRESSION = ("none", "gzip", "snappy", "lz4", "zstd")
#: librdkafka properties the confluent-kafka-go driver sets itself (as cmd/confluent-kafka-go refuses them)
_CONFLUENT_RESERVED = {"bootstrap.servers": "the spec's bootstrap", "group.id": "the spec's group",
                       "go.delivery.reports": "the driver needs every delivery report",
                       "go.delivery.report.fields": "the driver reads each delivered record's header from its value"}


@dataclass(frozen=True)
class GoDriverStatus:
    """For ``kbench driver list``: whether a Go driver is built for the current inputs, and where."""

    name: str
    module: str
    version: str
    built: bool
    path: Path | None
    detail: str


def _client(name: str) -> GoClient:
    try:
        return GO_CLIENTS[name]
    except KeyError:
        raise ConfigError(f"unknown Go client {name!r}: expected one of {', '.join(GO_CLIENTS)}") from None


# ---- config check ------------------------------------------------------------------------------------

def _positive_int(value: str) -> bool:
    try:
        return int(value) > 0
    except ValueError:
        return False


def _check_knob(c: GoClient, key: str, value: str) -> str | None:
    """What is wrong with ``key=value`` for client ``c``, or None."""
    v = value.strip()
    why = c.unsupported.get(f"{key}={v}") or c.unsupported.get(key)
    if why:
        return f"{key}{'=' + v if f'{key}={v}' in c.unsupported else ''}: not supported ({why})"
    if key == "acks":
        return None if v.lower() in ("0", "1", "-1", "all") else f"acks: expected 0, 1, all or -1, got {value!r}"
    if key == "linger.ms":
        try:
            ok = float(v) >= 0 and math.isfinite(float(v))
        except ValueError:
            ok = False
        return None if ok else f"linger.ms: expected a number >= 0, got {value!r}"
    if key in ("batch.size", "batch.num.messages", "max.in.flight"):
        return None if _positive_int(v) else f"{key}: expected a positive integer, got {value!r}"
    if key == "compression.type":
        return None if v.lower() in _COMPRESSION else \
            f"compression.type: expected {', '.join(_COMPRESSION)}, got {value!r}"
    if key == "partitioner":
        return None if v in c.partitioners else \
            f"partitioner: expected one of {', '.join(c.partitioners)}, got {value!r}"
    if key == "enable.idempotence":
        return None if v.lower() in ("true", "false") else f"enable.idempotence: expected true or false, got {value!r}"
    return f"{key}: unknown key (this client takes only {', '.join(KNOBS)})"


def check_client_config(name: str, role: str, config: Mapping[str, str]) -> None:
    """ConfigError naming the client and the key if Go client ``name`` cannot honour a key of ``config``.

    confluent-kafka-go passes librdkafka properties through (librdkafka refuses unknown ones when the
    driver builds its client, before ``hello``). The others take the mapped knobs only; a consumer takes
    the same keys (they configure producers), so one ``client_config`` serves a whole cell."""
    c = _client(name)
    if role not in ("producer", "consumer"):
        raise ConfigError(f"{name}: role: expected 'producer' or 'consumer', got {role!r}")
    if not c.partitioners:
        for key in sorted(set(config) & set(_CONFLUENT_RESERVED)):
            raise ConfigError(f"{name}: client_config {key}: set by the driver ({_CONFLUENT_RESERVED[key]})")
        return
    for key in sorted(config):
        problem = _check_knob(c, key, str(config[key]))
        if problem:
            raise ConfigError(f"{name}: client_config {problem}")
    idem = str(config.get("enable.idempotence", "")).strip().lower()
    acks = str(config.get("acks", "all")).strip().lower()
    if name == "franz-go" and idem == "true" and acks not in ("all", "-1"):
        raise ConfigError(f"{name}: client_config enable.idempotence=true needs acks=all, got acks={acks}")


# ---- build -------------------------------------------------------------------------------------------

def _go() -> str:
    go = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if os.access(p, os.X_OK)), None)
    if not go:
        raise ConfigError(f"the Go load drivers need the Go toolchain: {_INSTALL_GO}")
    return go


def _go_version(go: str) -> str:
    proc = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60, check=False,
                          env=_env(cgo=False))
    text = (proc.stdout + proc.stderr).strip()
    m = re.match(r"go version go(\d+)\.(\d+)", text)
    if proc.returncode != 0 or not m:
        raise ConfigError(f"'{go} version' did not answer as Go does ({text[:200]!r}): {_INSTALL_GO}")
    if (int(m.group(1)), int(m.group(2))) < _MIN_GO:
        raise ConfigError(f"the Go load drivers need Go {_MIN_GO[0]}.{_MIN_GO[1]} or newer, found {text!r}: "
                          f"{_INSTALL_GO}")
    return text


def _env(*, cgo: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "1" if cgo else "0"
    env["GOTOOLCHAIN"] = "local"   # never download another toolchain behind the user's back
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    return env


def _program(name: str, bare: bool) -> tuple[str, str]:
    """(cache name, package path) of a client's driver or bare loop."""
    return (f"bare-{name}", f"./cmd/bare/{name}") if bare else (name, f"./cmd/{name}")


def _sources(package: str) -> list[Path]:
    files = [MODULE_DIR / "go.mod", MODULE_DIR / "go.sum"]
    subs = ["core", package.removeprefix("./")] + (["barecore"] if "/bare/" in package else [])
    for sub in subs:
        files += sorted(p for p in (MODULE_DIR / sub).glob("*") if p.is_file() and p.suffix in (".go", ".s"))
    return files


def _build_key(package: str, go_version: str, cgo: bool) -> str:
    h = hashlib.sha256(f"{go_version}\ncgo={int(cgo)}\n{package}\n".encode())
    for src in _sources(package):
        h.update(f"src {src.relative_to(MODULE_DIR)}\n".encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def _target(name: str, bare: bool, go: str) -> Path:
    c = _client(name)
    program, package = _program(name, bare)
    key = _build_key(package, _go_version(go), c.cgo)
    return cache_dir() / "drivers" / "go" / f"{program}-{key}" / program


def build_go_driver(name: str, *, progress: Progress | None = None, bare: bool = False) -> Path:
    """The driver binary of Go client ``name`` (``bare``: its bare produce loop): reused if its inputs are
    unchanged, else built now (2-20 s; the first build also downloads the modules)."""
    c = _client(name)
    go = _go()
    if c.cgo and not shutil.which("gcc") and not shutil.which("cc"):
        raise ConfigError(f"the {name} load driver needs a C compiler for cgo: {_INSTALL_GCC}")
    target = _target(name, bare, go)
    if target.exists():
        return target
    program, package = _program(name, bare)
    if progress:
        progress(f"building the {name} {'bare loop' if bare else 'load driver'} ({c.module} {c.version})…")
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.parent.name + ".tmp-", dir=target.parent.parent))
    try:
        cmd = [go, "build", "-trimpath", "-o", str(tmp / program), package]
        try:
            proc = subprocess.run(cmd, cwd=MODULE_DIR, capture_output=True, text=True, env=_env(cgo=c.cgo),
                                  timeout=_BUILD_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ArtifactError(f"building the {name} driver took more than {_BUILD_TIMEOUT_S} s "
                                f"({' '.join(cmd)} in {MODULE_DIR})") from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
            raise ArtifactError(f"could not build the {name} driver ({' '.join(cmd)} in {MODULE_DIR}, "
                                f"exit {proc.returncode}); if modules failed to download, check GOPROXY "
                                f"(now {os.environ.get('GOPROXY', 'the default')}):\n{tail}")
        try:
            os.rename(tmp, target.parent)
        except OSError:
            if not target.exists():   # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def go_driver_status(name: str) -> GoDriverStatus:
    """Whether ``name``'s driver is built for the current sources and Go; never builds anything."""
    c = _client(name)
    try:
        target = _target(name, False, _go())
    except ConfigError as exc:
        return GoDriverStatus(name, c.module, c.version, False, None, str(exc))
    if target.exists():
        return GoDriverStatus(name, c.module, c.version, True, target, "built")
    return GoDriverStatus(name, c.module, c.version, False, None, "not built (built on first use)")
