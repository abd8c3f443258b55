"""bench.results.store: atomic writes (fsync of file and directory) and run directories that never overwrite."""

from __future__ import annotations

import json
import math
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.results.store import new_run_dir, safe_name, write_json_atomic, write_text_atomic
from conformance.report import new_run_dir as conformance_run_dir
from conformance.report import write_report


def _fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record what each os.fsync was given: 'dir' or 'file'."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_text_write_replaces_fsyncs_file_then_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fsyncs(monkeypatch)
    target = tmp_path / "report.md"
    write_text_atomic(target, "old\n")
    write_text_atomic(target, "néw\n")
    assert target.read_text(encoding="utf-8") == "néw\n"
    assert seen == ["file", "dir", "file", "dir"]
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temp file left
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_existing_mode_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_text("a")
    target.chmod(0o600)
    write_text_atomic(target, "b")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "b"


def test_json_write_and_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fsyncs(monkeypatch)
    target = tmp_path / "result.json"
    write_json_atomic(target, {"a": np.arange(3), "p": Path("/x")})
    assert json.loads(target.read_text()) == {"a": [0, 1, 2], "p": "/x"}
    assert seen == ["file", "dir"]
    with pytest.raises(ValueError):
        write_json_atomic(target, {"bad": math.nan})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"a": [0, 1, 2], "p": "/x"}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_interrupted_write_removes_its_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    write_text_atomic(target, "1")

    def boom(src: object, dst: object) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "2")
    assert target.read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_conformance_report_files_go_through_the_atomic_writer(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fsyncs(monkeypatch)
    write_report(tmp_path, {"schema_version": 1, "kind": "kbench-conformance", "checks": [], "counts": {}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.json", "report.md"]
    assert seen == ["file", "dir"] * 3


def test_run_dir_names_and_collisions(tmp_path: Path) -> None:
    a = new_run_dir(tmp_path, "smoke test!", stamp="20260101T000000Z")
    b = new_run_dir(tmp_path, "smoke test!", stamp="20260101T000000Z")
    c = new_run_dir(tmp_path / "deeper", "x", stamp="S")
    assert (a.name, b.name, c.name) == ("smoke_test-20260101T000000Z", "smoke_test-20260101T000000Z-2", "x-S")
    assert all(p.is_dir() for p in (a, b, c))
    assert safe_name("///") == "run" and safe_name("", "broker") == "broker" and safe_name("a..b-c_d") == "a..b-c_d"
    assert new_run_dir(tmp_path, "default").name.startswith("default-20")


def test_concurrent_run_dirs_are_distinct(tmp_path: Path) -> None:
    got: list[Path] = []
    lock = threading.Lock()

    def make() -> None:
        p = new_run_dir(tmp_path, "same", stamp="T")
        with lock:
            got.append(p)
    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 8


def test_out_must_be_new_or_empty(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "b"
    assert new_run_dir(tmp_path, "n", fresh) == fresh and fresh.is_dir()
    assert new_run_dir(tmp_path, "n", fresh) == fresh  # still empty: usable
    (fresh / "result.json").write_text("{}")
    with pytest.raises(ConfigError, match="not empty"):
        new_run_dir(tmp_path, "n", fresh)
    with pytest.raises(ConfigError, match="not empty"):
        new_run_dir(tmp_path, "n", fresh / "result.json")  # a file
    assert (fresh / "result.json").read_text() == "{}"


def test_conformance_run_dir_is_the_same_creator_with_its_prefix(tmp_path: Path) -> None:
    a = conformance_run_dir(tmp_path, "kafka 4.3", "20250101T000000Z")
    b = conformance_run_dir(tmp_path, "kafka 4.3", "20250101T000000Z")
    assert (a.name, b.name) == ("conformance-kafka_4.3-20250101T000000Z", "conformance-kafka_4.3-20250101T000000Z-2")
    assert conformance_run_dir(tmp_path, "???", "S").name == "conformance-broker-S"
