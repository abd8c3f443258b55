"""Build the Java load driver (``bench/drivers/java``) into the kbench cache, and check Java client configs.

The driver is compiled with ``javac --release 11`` against the ``kafka-clients`` jar of one Kafka version
(from :func:`bench.brokers.artifacts.kafka_lib_dir`) and HdrHistogram (fetched from Maven Central into
``<cache>/maven``, sha256-checked). A build lives in ``<cache>/drivers/java/<kafka version>/<key>/``, where
the key hashes every input: the sources, the jars on the class path, the javac version and the release
flag. A build whose inputs are unchanged is reused; a changed source builds a new one.

Right after compiling, the built driver is asked for its client's property names (``--list-configs``:
``ProducerConfig.configNames()`` / ``ConsumerConfig.configNames()``); they are kept beside the classes so
:func:`check_java_config` can refuse an unknown key before any process starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench._paths import cache_dir
from bench.errors import ArtifactError, ConfigError

__all__ = [
    "BARE_MAIN",
    "HDRHISTOGRAM_VERSION",
    "MAIN",
    "JavaDriver",
    "JavaDriverStatus",
    "build_java_driver",
    "check_java_config",
    "hdrhistogram_jar",
    "java_driver_status",
]

MAIN = "kbench.driver.Main"
BARE_MAIN = "kbench.bare.BareProduce"
HDRHISTOGRAM_VERSION = "2.2.2"
_HDR_COORD = f"org.hdrhistogram:HdrHistogram:{HDRHISTOGRAM_VERSION}"
_HDR_SHA256 = "22d1d4316c4ec13a68b559e98c8256d69071593731da96136640f864fa14fad8"
_RELEASE = "11"
_SRC = Path(__file__).parent / "java" / "src"
#: kafka-clients and its run-time dependencies, by file-name prefix (no logging back end: slf4j-api alone
#: is a no-op logger, and nothing else can write to the protocol's stdout)
_RUNTIME_PREFIXES = ("kafka-clients-", "lz4-java-", "snappy-java-", "zstd-jni-", "slf4j-api-")
_INSTALL = "install a JDK 11 or newer (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)"

Role = Literal["producer", "consumer"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class JavaDriver:
    """A built Java driver: what to run and what its client accepts."""

    kafka_version: str          # the Kafka version whose kafka-clients it was built against
    client_version: str         # what kafka-clients reports (AppInfoParser.getVersion())
    build_dir: Path
    classpath: tuple[Path, ...]
    java: str
    producer_configs: frozenset[str]
    consumer_configs: frozenset[str]

    def command(self, main: str = MAIN) -> list[str]:
        """The argv that starts one worker (``main``: another class of the build, e.g. :data:`BARE_MAIN`)."""
        cp = os.pathsep.join(str(p) for p in (self.build_dir / "classes", *self.classpath))
        return [self.java, "-cp", cp, main]

    def config_names(self, role: Role) -> frozenset[str]:
        return self.producer_configs if role == "producer" else self.consumer_configs


@dataclass(frozen=True)
class JavaDriverStatus:
    """For ``kbench driver list``: whether the driver is built for a Kafka version, and where."""

    name: str
    kafka_version: str
    built: bool
    client_version: str | None
    path: Path | None
    detail: str


def _tools() -> tuple[str, str]:
    java, javac = shutil.which("java"), shutil.which("javac")
    if not javac or not java:
        missing = " and ".join(n for n, p in (("java", java), ("javac", javac)) if not p)
        raise ConfigError(f"the Java load driver needs {missing} on PATH: {_INSTALL}")
    return java, javac


def _javac_version(javac: str) -> str:
    proc = subprocess.run([javac, "-version"], capture_output=True, text=True, timeout=60, check=False)
    text = (proc.stdout + proc.stderr).strip()
    m = re.search(r"javac (\d+)(?:\.(\d+))?", text)
    if proc.returncode != 0 or not m:
        raise ConfigError(f"'{javac} -version' did not answer as javac does ({text[:200]!r}): {_INSTALL}")
    major = int(m.group(1)) if m.group(1) != "1" else int(m.group(2) or 0)
    if major < int(_RELEASE):
        raise ConfigError(f"the Java load driver needs javac {_RELEASE} or newer, found {text!r}: {_INSTALL}")
    return text


def hdrhistogram_jar(*, progress: Progress | None = None) -> Path:
    """HdrHistogram's jar in ``<cache>/maven``, fetched from Maven (``mvn``) or ``KBENCH_MAVEN_REPO`` once."""
    target = cache_dir() / "maven" / f"HdrHistogram-{HDRHISTOGRAM_VERSION}.jar"
    if target.exists() and _sha256(target) == _HDR_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="kbench-hdr-", dir=target.parent) as tmp:
        got = Path(tmp) / target.name
        if shutil.which("mvn"):
            say(f"fetching {_HDR_COORD} with Maven (first use only)…")
            cmd = ["mvn", "-B", "-q", "dependency:copy", f"-Dartifact={_HDR_COORD}", f"-DoutputDirectory={tmp}"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
            if proc.returncode != 0 or not got.exists():
                tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-6:])
                raise ArtifactError(f"Maven could not fetch {_HDR_COORD} (exit {proc.returncode}):\n{tail}")
        elif os.environ.get("KBENCH_MAVEN_REPO"):
            repo = os.environ["KBENCH_MAVEN_REPO"].rstrip("/")
            url = f"{repo}/org/hdrhistogram/HdrHistogram/{HDRHISTOGRAM_VERSION}/{target.name}"
            say(f"downloading {url}…")
            try:
                with urllib.request.urlopen(url, timeout=60) as resp:
                    got.write_bytes(resp.read())
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise ArtifactError(f"could not download {_HDR_COORD} from {url}: {exc}") from exc
        else:
            raise ArtifactError(f"cannot fetch {_HDR_COORD}: Maven ('mvn') is not on PATH and KBENCH_MAVEN_REPO "
                                "is not set (install Maven, or set KBENCH_MAVEN_REPO to a Maven repository URL)")
        digest = _sha256(got)
        if digest != _HDR_SHA256:
            raise ArtifactError(f"checksum mismatch for {_HDR_COORD}: got {digest}, expected {_HDR_SHA256}")
        os.replace(got, target)
    return target


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _runtime_jars(lib: Path, kafka_version: str) -> list[Path]:
    jars = sorted(p for p in lib.glob("*.jar") if p.name.startswith(_RUNTIME_PREFIXES))
    if not any(p.name.startswith("kafka-clients-") for p in jars):
        raise ArtifactError(f"no kafka-clients jar for Apache Kafka {kafka_version} in {lib}")
    return jars


def _sources() -> list[Path]:
    return sorted(_SRC.rglob("*.java"))


def _build_key(sources: list[Path], classpath: list[Path], javac_version: str) -> str:
    h = hashlib.sha256()
    h.update(f"release={_RELEASE}\n{javac_version}\n".encode())
    for src in sources:
        h.update(f"src {src.relative_to(_SRC)}\n".encode())
        h.update(src.read_bytes())
    for jar in classpath:
        h.update(f"jar {jar.name} {_sha256(jar)}\n".encode())
    return h.hexdigest()[:16]


def build_java_driver(kafka_version: str, *, progress: Progress | None = None) -> JavaDriver:
    """The Java driver built against kafka-clients ``kafka_version``: reused if its inputs are unchanged,
    else compiled now (about 2 s; the first use also fetches the Kafka jars and HdrHistogram)."""
    from bench.brokers.artifacts import kafka_lib_dir

    java, javac = _tools()
    javac_version = _javac_version(javac)
    classpath = [*_runtime_jars(kafka_lib_dir(kafka_version, progress=progress), kafka_version),
                 hdrhistogram_jar(progress=progress)]
    sources = _sources()
    out = cache_dir() / "drivers" / "java" / kafka_version / _build_key(sources, classpath, javac_version)
    if not (out / ".complete").exists():
        if progress:
            progress(f"compiling the Java load driver against kafka-clients {kafka_version}…")
        _compile(out, javac, java, sources, classpath)
    return _load(out, kafka_version, java, tuple(classpath))


def _compile(out: Path, javac: str, java: str, sources: list[Path], classpath: list[Path]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + "-", dir=out.parent))
    try:
        cp = os.pathsep.join(map(str, classpath))
        cmd = [javac, "--release", _RELEASE, "-encoding", "UTF-8", "-nowarn", "-d", str(tmp / "classes"),
               "-cp", cp, *map(str, sources)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise ConfigError("javac could not compile the Java load driver against "
                              f"{classpath[0].name}:\n" + "\n".join((proc.stdout + proc.stderr).splitlines()[:20]))
        listing = subprocess.run([java, "-cp", os.pathsep.join([str(tmp / "classes"), cp]), MAIN, "--list-configs"],
                                 capture_output=True, text=True, timeout=120, check=False)
        lines = [ln for ln in listing.stdout.splitlines() if ln.startswith("{")]
        if listing.returncode != 0 or not lines:
            raise ConfigError(f"the built Java driver did not list its configs (exit {listing.returncode}):\n"
                              + listing.stderr[-2000:])
        (tmp / "configs.json").write_text(lines[-1] + "\n", encoding="utf-8")
        (tmp / ".complete").write_text("ok\n")
        try:
            tmp.rename(out)
        except OSError:  # another build of the same inputs finished first: use that one
            if not (out / ".complete").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load(out: Path, kafka_version: str, java: str, classpath: tuple[Path, ...]) -> JavaDriver:
    try:
        doc = json.loads((out / "configs.json").read_text(encoding="utf-8"))
        return JavaDriver(kafka_version=kafka_version, client_version=str(doc["client"]["version"]), build_dir=out,
                          classpath=classpath, java=java, producer_configs=frozenset(doc["producer"]),
                          consumer_configs=frozenset(doc["consumer"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the Java driver build in {out} is damaged ({exc}); delete that directory") from exc


def java_driver_status(kafka_version: str) -> JavaDriverStatus:
    """Whether a build for ``kafka_version`` with today's sources exists; fetches and compiles nothing."""
    def status(built: bool, detail: str, client: str | None = None, path: Path | None = None) -> JavaDriverStatus:
        return JavaDriverStatus("java", kafka_version, built, client, path, detail)

    java, javac = shutil.which("java"), shutil.which("javac")
    if not java or not javac:
        return status(False, f"java/javac not on PATH: {_INSTALL}")
    lib = cache_dir() / "kafka" / kafka_version / "lib"
    hdr = cache_dir() / "maven" / f"HdrHistogram-{HDRHISTOGRAM_VERSION}.jar"
    if not (lib / ".complete").exists() or not hdr.exists():
        return status(False, "not built (the Kafka jars or HdrHistogram are not fetched yet)")
    try:
        classpath = [*_runtime_jars(lib, kafka_version), hdr]
        out = cache_dir() / "drivers" / "java" / kafka_version / _build_key(_sources(), classpath,
                                                                            _javac_version(javac))
    except (ConfigError, ArtifactError) as exc:
        return status(False, str(exc))
    if not (out / ".complete").exists():
        return status(False, "not built for the current sources")
    driver = _load(out, kafka_version, java, tuple(classpath))
    return status(True, "built", driver.client_version, out)


def check_java_config(role: Role, config: dict[str, str], kafka_version: str, *,
                      progress: Progress | None = None) -> None:
    """Refuse a ``client_config`` key the Java ``role`` does not know, naming the client and the key(s).

    A pure check against the built driver's list of property names; the driver is built first if it is
    not (a run with ``client: java`` needs it anyway)."""
    driver = build_java_driver(kafka_version, progress=progress)
    unknown = sorted(set(config) - driver.config_names(role))
    if unknown:
        keys = ", ".join(repr(k) for k in unknown)
        raise ConfigError(f"client java: {role} config {keys}: not a property of the Java {role} (kafka-clients "
                          f"{driver.client_version}; the {'Producer' if role == 'producer' else 'Consumer'}Config "
                          "names are the accepted keys)")
