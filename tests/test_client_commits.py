"""C27's pure parts (conformance/commit_steps.py): the offset its commit must carry, the metadata string."""

from __future__ import annotations

import json

from bench.drivers.events import GroupOptions
from conformance.commit_steps import METADATA, expected_commit, metadata_text


def test_expected_commit_is_the_next_offset_after_the_last_read_per_partition() -> None:
    reads = [(0, 0, 9, 0), (0, 1, 9, 1), (1, 5, 9, 2), (0, 2, 9, 3)]
    assert expected_commit(reads) == {0: 3, 1: 6}
    assert expected_commit([]) == {}


def test_metadata_is_long_non_ascii_and_json() -> None:
    raw = METADATA.encode()
    assert len(raw) > len(METADATA) > 255 and any(ord(c) > 0xFFFF for c in METADATA)
    assert json.loads(METADATA[METADATA.index("{"):METADATA.rindex("}") + 1])["host"] == "a/b"
    assert "\\x" not in METADATA     # so metadata_text of bytes that differ (invalid UTF-8 escaped) cannot equal it


def test_text_keeps_invalid_bytes_visible() -> None:
    assert metadata_text(None) is None and metadata_text(b"") == ""
    assert metadata_text(METADATA.encode()) == METADATA
    assert metadata_text(METADATA.encode() + b"\xd5") != METADATA


def test_commit_metadata_goes_in_the_spec() -> None:
    assert GroupOptions(commit="batch", commit_metadata=METADATA).to_spec()["commit_metadata"] == METADATA
    assert GroupOptions().to_spec()["commit_metadata"] is None
