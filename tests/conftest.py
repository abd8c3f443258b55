"""Fixtures for kbench's own tests.

``kafka_bootstrap`` / ``tansu_bootstrap``: an external broker when ``KBENCH_BOOTSTRAP`` (or
``KBENCH_TANSU_BOOTSTRAP``) is set, otherwise an embedded one started once for the session on free
loopback ports and stopped afterwards. Broker state lives in a per-session KBENCH_HOME so the tests never
touch brokers a user started with ``kbench broker up``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _kbench_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("kbench-home")
    old = os.environ.get("KBENCH_HOME")
    os.environ["KBENCH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("KBENCH_HOME", None)
    else:
        os.environ["KBENCH_HOME"] = old


def _bootstrap(env: str, kind: str) -> Iterator[str]:
    """The broker named by ``$env``, else an embedded broker of ``kind``, stopped when the session ends."""
    external = os.environ.get(env)
    if external:
        yield external
        return
    from bench.brokers import start_broker

    handle = start_broker(kind, port=0, name=f"test-{kind}-{os.getpid()}")
    try:
        yield handle.bootstrap
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(_kbench_home: Path) -> Iterator[str]:
    yield from _bootstrap("KBENCH_BOOTSTRAP", "kafka")


@pytest.fixture(scope="session")
def tansu_bootstrap(_kbench_home: Path) -> Iterator[str]:
    yield from _bootstrap("KBENCH_TANSU_BOOTSTRAP", "tansu")


def run_kbench(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process (as a user would), capturing its output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd or REPO, check=False)
