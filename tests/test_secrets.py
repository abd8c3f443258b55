"""No secret in anything kbench writes: a scenario run, a Locust run, part of the conformance suite and a
report against ``kbench broker up kafka --security sasl-scram``, then every file written (results, HDR
files, Locust CSVs/HTML/logs, conformance JSON/markdown/JUnit/HTML, the report, the broker's state dir
and logs except its own secret store ``security/``) and every command's output is searched for kbench's
SASL password, the brokers' password and lines of each PEM private key. None may appear.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.brokers.security import client_properties_path, load_properties

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")]
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Secured:
    bootstrap: str
    properties: Path
    base: Path
    name: str


@pytest.fixture(scope="module")
def scram_broker(_kbench_home: Path) -> Iterator[Secured]:
    from bench.brokers import start_broker

    h = start_broker("kafka", port=0, name=f"secrets-{os.getpid()}", options={"security": "sasl-scram"})
    try:
        yield Secured(h.bootstrap, client_properties_path(h.state.base_dir), Path(h.state.base_dir), h.name)
    finally:
        h.stop()


def _secrets(b: Secured) -> dict[str, str]:
    """What must never leave the secret store: passwords, and two body lines of every private key."""
    sec = b.base / "security"
    found = {"kbench password": load_properties(b.properties)["sasl.password"]}
    for line in (sec / "secrets.properties").read_text().splitlines():
        if 'password="' in line:
            found["broker password"] = line.split('password="')[1].split('"')[0]
    for key in ("ca.key", "broker.key", "client.key"):
        body = (sec / key).read_text().splitlines()
        found[f"{key} line 2"], found[f"{key} line 20"] = body[1], body[20]
    assert all(len(v) >= 16 for v in found.values()), "secrets too short to be distinctive"
    return found


def _kbench(args: list[str], cwd: Path, timeout: float) -> str:
    proc = subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd, env=dict(os.environ))
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), f"kbench {args[0]} exit {proc.returncode}:\n{out[-3000:]}"
    return out


def test_no_secret_in_anything_kbench_writes(scram_broker: Secured, tmp_path: Path, _kbench_home: Path) -> None:
    b, props = scram_broker, str(scram_broker.properties)
    target = ["--bootstrap", b.bootstrap, "--client-config-file", props]
    short = ["--set", "workload.duration=3s", "--set", "workload.warmup=1s"]
    outputs = [
        _kbench(["run", "scenarios/smoke.yaml", *target, *short, "--out", str(tmp_path / "run"), "--no-progress"],
                REPO, 180),
        _kbench(["locust", "scenarios/smoke.yaml", *target, *short, "--out", str(tmp_path / "locust"), "--headless"],
                REPO, 180),
        _kbench(["report", str(tmp_path / "run")], REPO, 120),
        _kbench(["conformance", *target, "-k", "S1 or S4 or S8 or P1 or G6 or T1",
                 "--report-dir", str(tmp_path / "conformance")], REPO, 600),
        _kbench(["broker", "status"], REPO, 60),
        _kbench(["broker", "logs", b.name, "-n", "400"], REPO, 60),
    ]
    report = json.loads((tmp_path / "conformance" / "report.json").read_text())
    assert report["counts"]["PASS"] >= 6 and not report["counts"].get("FAIL"), report["counts"]
    result = (tmp_path / "run" / "result.json").read_text()
    assert '"sasl.username": "kbench"' in result  # the client config is recorded, redacted
    assert any((tmp_path / "locust").glob("*.csv")) and any((tmp_path / "run" / "report").iterdir())

    secrets = _secrets(b)
    files = [p for root in (tmp_path, _kbench_home) for p in root.rglob("*")
             if p.is_file() and (b.base / "security") not in p.parents]
    assert len(files) > 30, files
    leaks = [f"{what} in {p}" for p in files for what, s in secrets.items() if s.encode() in p.read_bytes()]
    leaks += [f"{what} in the output of command {i}" for i, text in enumerate(outputs)
              for what, s in secrets.items() if s in text]
    assert not leaks, leaks
