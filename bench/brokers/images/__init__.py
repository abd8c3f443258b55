"""Images kbench builds locally (no registry is needed, or reachable on some machines).

Two images, each tagged by a hash of its content, so a rebuild is skipped when the engine has it and CI
can cache what goes into it (the kfake binary, keyed by its sources' hash, in the kbench cache):

``kbench/kfake:<hash>``
    ``FROM scratch`` plus the static ``kbench-kfake`` binary (``CGO_ENABLED=0``) that
    :func:`bench.brokers.kfake.build_kfake` builds from ``bench/brokers/kfake/main.go``, as
    ``/kbench-kfake``. About 10 MB.
``kbench/host-jre:<hash>``
    The host's Java runtime (``$JAVA_HOME`` or the ``java`` on PATH, without jmods/src/man) plus every
    shared library ``ldd`` lists for it, at the host's paths; ``/usr/bin/java`` links to it. Commands
    kbench would run as local processes (Kafka, ZooKeeper) run in it unchanged, with the broker's state
    directory and the kbench cache (jars) bind-mounted at the same paths. The tag hashes the file list
    with sizes and modification times (the JRE is a package: it changes when it is upgraded).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import BrokerError

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["KFAKE_BIN", "BuiltImage", "host_jre_image", "image_present", "kfake_image"]

Progress = Callable[[str], None]
KFAKE_BIN = "/kbench-kfake"
_JRE_SKIP = ("jmods", "src.zip", "man", "demo", "sample", "include", "legal")


@dataclass(frozen=True)
class BuiltImage:
    """A local image: its tag, whether this call built it, seconds taken, size in bytes."""

    tag: str
    built: bool
    seconds: float
    size: int


def image_present(client: DockerClient, ref: str) -> bool:
    """True when the engine has ``ref`` locally (never pulls)."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
    except ImageNotFound:
        return False
    return True


def _build(client: DockerClient, tag: str, dockerfile: str, files: Iterable[tuple[str, Path]],
           progress: Progress | None) -> BuiltImage:
    """Build ``tag`` from ``FROM scratch`` + ``files`` (context name, host path) unless it exists."""
    from docker.errors import BuildError, DockerException

    t0 = time.monotonic()
    if image_present(client, tag):
        return BuiltImage(tag, False, time.monotonic() - t0, int(client.images.get(tag).attrs.get("Size", 0)))
    if progress:
        progress(f"building image {tag} (first use only)…")
    with tempfile.TemporaryFile() as ctx:
        with tarfile.open(fileobj=ctx, mode="w") as tf:
            data = dockerfile.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size, info.mtime = len(data), int(time.time())
            tf.addfile(info, io.BytesIO(data))
            for name, path in files:
                tf.add(str(path), arcname=name, recursive=False)
        ctx.seek(0)
        try:
            image, _logs = client.images.build(fileobj=ctx, custom_context=True, tag=tag, rm=True, forcerm=True,
                                               labels={"kbench": "1"})
        except (BuildError, DockerException) as exc:
            raise BrokerError(f"building image {tag} failed: {exc}") from exc
    return BuiltImage(tag, True, time.monotonic() - t0, int(image.attrs.get("Size", 0)))


# -- kfake ---------------------------------------------------------------------------------------
def kfake_image(client: DockerClient, progress: Progress | None = None) -> BuiltImage:
    """``kbench/kfake:<hash of binary and Dockerfile>`` around :func:`bench.brokers.kfake.build_kfake`'s
    static binary, built if the engine lacks it."""
    from bench.brokers.kfake import build_kfake

    binary = build_kfake(progress=progress)
    dockerfile = f'FROM scratch\nCOPY kbench-kfake {KFAKE_BIN}\nENTRYPOINT ["{KFAKE_BIN}"]\n'
    digest = hashlib.sha256(binary.read_bytes() + dockerfile.encode()).hexdigest()[:16]
    return _build(client, f"kbench/kfake:{digest}", dockerfile, [("kbench-kfake", binary)], progress)


# -- host JRE ------------------------------------------------------------------------------------
def _java_home() -> Path:
    from bench.brokers.kafka import find_java

    return Path(os.path.realpath(find_java())).parent.parent


def _ldd(paths: Iterable[Path]) -> set[Path]:
    """Every library (and the loader) the ELF files in ``paths`` resolve to, outside the JRE."""
    libs: set[Path] = set()
    for path in paths:
        proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30, check=False)
        for line in proc.stdout.splitlines():
            parts = line.split()
            target = parts[2] if len(parts) >= 3 and parts[1] == "=>" else parts[0] if parts else ""
            if target.startswith("/"):
                libs.add(Path(target))
    return libs


def _jre_files(home: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(home):
        dirnames[:] = [d for d in dirnames if d not in _JRE_SKIP]
        for f in filenames:
            p = Path(dirpath) / f
            if f not in _JRE_SKIP and p.exists():      # broken links (optional files) are skipped
                files.append(p)
    return sorted(files)


def host_jre_image(client: DockerClient, progress: Progress | None = None) -> BuiltImage:
    """``kbench/host-jre:<hash>``: the host's JRE and its libraries at the host's paths."""
    home = _java_home()
    files = _jre_files(home)
    elves = [p for p in files if p.suffix == ".so" or p.parent.name == "bin"]
    libs = sorted(_ldd(elves) - set(files))
    h = hashlib.sha256(str(home).encode())
    for p in [*files, *libs]:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    dockerfile = ("FROM scratch\nCOPY rootfs/ /\n"
                  f"ENV JAVA_HOME={home} PATH=/usr/bin:/bin:{home}/bin\nWORKDIR /tmp\n")
    ctx: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory() as extra:
        links = Path(extra) / "usr" / "bin"
        links.mkdir(parents=True)
        (links / "java").symlink_to(home / "bin" / "java")
        (Path(extra) / "tmp").mkdir(mode=0o1777)
        os.chmod(Path(extra) / "tmp", 0o1777)
        ctx += [("rootfs/usr/bin/java", links / "java"), ("rootfs/tmp", Path(extra) / "tmp")]
        ctx += [(f"rootfs{p}", p.resolve()) for p in [*files, *libs]]
        return _build(client, f"kbench/host-jre:{h.hexdigest()[:16]}", dockerfile, ctx, progress)
