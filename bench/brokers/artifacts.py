"""Fetch Apache Kafka's runtime jars from a Maven repository into the user's cache.

Two ways, tried in this order:

1. **Maven** (``mvn`` on PATH): a throw-away POM depending on ``org.apache.kafka:kafka_2.13:<version>``
   (plus the log4j slf4j binding) and ``dependency:copy-dependencies``. Any Kafka version works, and the
   user's ``settings.xml`` mirrors are honoured.
2. **Direct download** (no Maven, Java only): for versions with a lock file shipped in this package
   (``kafka-<version>.lock``: coordinates + sha256), each jar is fetched from the Maven repository whose
   base URL is given by ``KBENCH_MAVEN_REPO`` (``https://…`` or ``file://…``), and its sha256 verified.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench._paths import cache_dir
from bench.errors import ArtifactError, ConfigError

__all__ = ["LOG4J_VERSION", "check_kafka_version", "kafka_lib_dir", "locked_versions"]

_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")

LOG4J_VERSION = "2.25.4"
_LOCK_DIR = Path(__file__).parent
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>kbench</groupId><artifactId>kafka-runtime</artifactId><version>1</version><packaging>pom</packaging>
<dependencies>
<dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version>
<exclusions><exclusion><groupId>ch.qos.logback</groupId><artifactId>*</artifactId></exclusion>
<exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId></exclusion>
<exclusion><groupId>org.slf4j</groupId><artifactId>slf4j-log4j12</artifactId></exclusion></exclusions></dependency>
<dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
</dependencies></project>
"""


def check_kafka_version(version: str, *, kraft: bool) -> str:
    """``version`` if it names an Apache Kafka release kbench can run in that mode, else a ConfigError.

    KRaft (kind ``kafka``) is production-ready from 3.3; ZooKeeper mode (``kafka-zk``) exists up to 3.9
    (4.0 removed it) and kbench runs it from 2.8. Whether the release exists is Maven's answer, asked on
    first use (an ArtifactError saying so)."""
    m = _RELEASE.match(version)
    if not m:
        raise ConfigError(f"--version {version!r}: expected an Apache Kafka release number such as 3.9.2 or 4.3.1")
    major_minor = (int(m.group(1)), int(m.group(2)))
    if kraft and major_minor < (3, 3):
        raise ConfigError(f"Apache Kafka {version} predates production KRaft (3.3): the kafka kind runs 3.3-4.x; "
                          "use kafka-zk for 2.8-3.9 in ZooKeeper mode")
    if not kraft and not (2, 8) <= major_minor <= (3, 9):
        raise ConfigError(f"kafka-zk runs Apache Kafka 2.8-3.9 (ZooKeeper mode was removed in 4.0), got "
                          f"{version}; use the kafka kind (KRaft) for 3.3-4.x")
    return version


def locked_versions() -> list[str]:
    """Kafka versions whose jar list ships with kbench (downloadable without Maven)."""
    return sorted(p.name[len("kafka-"):-len(".lock")] for p in _LOCK_DIR.glob("kafka-*.lock"))


def kafka_lib_dir(version: str, *, progress: Callable[[str], None] | None = None) -> Path:
    """Return a directory holding every runtime jar of Kafka ``version``, fetching them if needed."""
    target = cache_dir() / "kafka" / version / "lib"
    marker = target / ".complete"
    if marker.exists():
        return target
    say = progress or (lambda _msg: None)
    tmp = Path(tempfile.mkdtemp(prefix=f"kafka-{version}-", dir=_ensure(target.parent)))
    try:
        if shutil.which("mvn"):
            say(f"resolving Apache Kafka {version} jars with Maven (first use only)…")
            _fetch_with_maven(version, tmp)
        elif os.environ.get("KBENCH_MAVEN_REPO"):
            say(f"downloading Apache Kafka {version} jars from {os.environ['KBENCH_MAVEN_REPO']}…")
            _fetch_direct(version, os.environ["KBENCH_MAVEN_REPO"], tmp, say)
        else:
            raise ArtifactError(
                f"cannot fetch Apache Kafka {version}: Maven ('mvn') is not on PATH and KBENCH_MAVEN_REPO "
                "is not set. Install Maven, or set KBENCH_MAVEN_REPO to a Maven repository base URL "
                "(e.g. Maven Central's) to download the pinned jars directly."
            )
        if not any(tmp.glob("kafka_2.13-*.jar")):
            raise ArtifactError(f"resolution of Apache Kafka {version} produced no kafka_2.13 jar")
        (tmp / ".complete").write_text(version + "\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fetch_with_maven(version: str, out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="kbench-mvn-"))
    try:
        (work / "pom.xml").write_text(_POM.format(version=version, log4j=LOG4J_VERSION))
        cmd = ["mvn", "-B", "-q", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
               f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ArtifactError(f"Maven did not resolve org.apache.kafka:kafka_2.13:{version} in 15 min") from exc
        if proc.returncode != 0:
            text = proc.stdout + proc.stderr
            missing = f"org.apache.kafka:kafka_2.13:jar:{version}"
            if f"Could not find artifact {missing}" in text or f"{missing} was not found" in text:
                raise ArtifactError(
                    f"Apache Kafka {version} does not exist: Maven found no org.apache.kafka:kafka_2.13:{version} "
                    "(releases look like 3.7.2, 3.9.2, 4.3.1; see https://kafka.apache.org/downloads)")
            lines = [ln for ln in text.splitlines() if "ERROR" in ln][:8]
            raise ArtifactError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} (exit {proc.returncode}):\n"
                + "\n".join(lines or (proc.stdout + proc.stderr).splitlines()[-8:])
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch_direct(version: str, repo: str, out: Path, say: Callable[[str], None]) -> None:
    lock = _LOCK_DIR / f"kafka-{version}.lock"
    if not lock.exists():
        raise ArtifactError(
            f"no pinned jar list for Apache Kafka {version} (have: {', '.join(locked_versions())}); "
            "install Maven to resolve other versions"
        )
    entries = [ln.split() for ln in lock.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    for i, (coord, sha) in enumerate(entries, 1):
        group, artifact, ver = coord.split(":")
        name = f"{artifact}-{ver}.jar"
        url = f"{repo.rstrip('/')}/{group.replace('.', '/')}/{artifact}/{ver}/{name}"
        say(f"  [{i}/{len(entries)}] {coord}")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                data = resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ArtifactError(f"could not download {coord} from {url}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha:
            raise ArtifactError(f"checksum mismatch for {coord} from {url}: got {digest}, expected {sha}")
        (out / name).write_bytes(data)
