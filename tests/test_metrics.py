"""bench.metrics (hdr, series, files): vectorised recording == hdrh record_value; merge, codec, series, files."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.metrics import hdr as metrics
from bench.metrics.files import read_hlog, write_hgrm, write_hlog
from bench.metrics.hdr import (
    HIGHEST_US,
    PERCENTILES,
    LatencyRecorder,
    merge_encoded,
    merge_into,
    new_histogram,
    record_array,
    summarize,
    value_at_percentiles,
)
from bench.metrics.series import IntervalSeries

TOP = 2**32 - 1  # last value hdrh's record_value accepts with the 1 µs .. 1 h / 3 digits layout


def reference(values: np.ndarray) -> tuple[HdrHistogram, int]:
    """hdrh's own per-value recording, and how many values it refused."""
    h = new_histogram()
    refused = sum(0 if h.record_value(int(v)) else 1 for v in values)
    return h, refused


def counts(h: HdrHistogram) -> np.ndarray:
    return np.array(h.counts[: h.counts_len], dtype=np.uint64)


def assert_identical(a: HdrHistogram, b: HdrHistogram) -> None:
    assert a.total_count == b.total_count
    assert a.min_value == b.min_value
    assert a.max_value == b.max_value
    assert a.get_min_value() == b.get_min_value()
    assert a.get_max_value() == b.get_max_value()
    assert np.array_equal(counts(a), counts(b))


def nasty_values(rng: np.random.Generator, n: int = 20_000) -> np.ndarray:
    """Small, bucket-edge, large, above-1-hour, out-of-range and negative values."""
    edges = [0, 1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 1_000_000, HIGHEST_US,
             HIGHEST_US + 1, TOP, TOP + 1, 2**40, 2**62, -1, -(2**40)]
    parts = [rng.integers(0, 3000, n), rng.lognormal(7, 2, n).astype(np.int64),
             rng.integers(0, 2**34, n // 4), rng.integers(-100, 0, 50), np.array(edges, dtype=np.int64)]
    data = np.concatenate(parts)
    rng.shuffle(data)
    return data


def test_layout_constants() -> None:
    h = new_histogram()
    layout = (h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures)
    assert layout == (1, 3_600_000_000, 3)
    assert metrics._layout(h).max_recordable == TOP


def test_record_array_identical_to_record_value() -> None:
    data = nasty_values(np.random.default_rng(7))
    ours = new_histogram()
    refused = record_array(ours, data)
    ref, ref_refused = reference(data)
    assert refused == ref_refused > 0
    assert_identical(ours, ref)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=60), st.integers(1, 7))
def test_recorder_identical_property(values: list[int], flush_every: int) -> None:
    rec = LatencyRecorder(flush_every=flush_every)
    for v in values:
        rec.record(v)
    ref, refused = reference(np.array(values, dtype=np.int64))
    assert_identical(rec.histogram, ref)
    assert rec.out_of_range == refused


def test_record_paths_agree_and_autoflush() -> None:
    data = nasty_values(np.random.default_rng(3), 2000)
    one, many = LatencyRecorder(flush_every=100), LatencyRecorder()
    for v in data.tolist():
        one.record(v)
    one.record(2**70)  # does not even fit int64
    assert one._hist.total_count > 0  # flushed on its own, before anything read it
    many.record_many(data)
    many.record_many(data[:0])
    assert_identical(one.histogram, many.histogram)
    assert one.out_of_range == many.out_of_range + 1


def test_record_many_rejects_floats_and_wraps_uint64() -> None:
    rec = LatencyRecorder()
    with pytest.raises(TypeError):
        rec.record_many(np.array([1.5, 2.0]))
    rec.record_many(np.array([5, 2**63 + 5], dtype=np.uint64))
    assert rec.histogram.total_count == 1 and rec.out_of_range == 1


def test_reset_forgets_warmup() -> None:
    rec = LatencyRecorder()
    rec.record_many(np.arange(1000))
    rec.record(-1)
    rec.record(7)
    rec.reset()
    assert rec.count == 0 and rec.out_of_range == 0
    rec.record_many(np.array([10, 20]))
    ref, _ = reference(np.array([10, 20]))
    assert_identical(rec.histogram, ref)


def test_encode_decode_round_trip() -> None:
    rng = np.random.default_rng(11)
    rec = LatencyRecorder()
    rec.record_many(rng.lognormal(8, 1.5, 50_000).astype(np.int64))
    text = rec.encode()
    assert isinstance(text, str) and text.startswith("HISTF")
    back = HdrHistogram.decode(text)
    assert np.array_equal(counts(back), counts(rec.histogram))
    assert back.total_count == rec.histogram.total_count
    assert back.get_min_value() == rec.histogram.get_min_value()
    assert back.get_max_value() == rec.histogram.get_max_value()
    assert LatencyRecorder.decode(text).summary() == rec.summary()
    empty = LatencyRecorder.decode(LatencyRecorder().encode())
    assert empty.summary()["count"] == 0 and empty.summary()["p99_us"] is None


def test_merge_equals_recording_everything_in_one() -> None:
    rng = np.random.default_rng(5)
    chunks = [rng.lognormal(6 + i, 1, 10_000).astype(np.int64) for i in range(3)] + [np.array([-3, 2**41])]
    whole = LatencyRecorder()
    whole.record_many(np.concatenate(chunks))
    parts = []
    for chunk in chunks:
        part = LatencyRecorder()
        part.record_many(chunk)
        parts.append(part)
    merged = LatencyRecorder()
    for part in parts:
        merged.merge(part)
    assert_identical(merged.histogram, whole.histogram)
    assert merged.out_of_range == whole.out_of_range == 2
    across = merge_encoded([p.encode() for p in parts])
    assert_identical(across, HdrHistogram.decode(whole.encode()))
    assert summarize(across) == summarize(whole.histogram)


def test_merge_refuses_other_layouts() -> None:
    with pytest.raises(ValueError, match="different layouts"):
        merge_into(new_histogram(), HdrHistogram(1, 1_000_000, 2))


def test_percentiles_match_hdrh_and_numpy() -> None:
    rng = np.random.default_rng(13)
    n = 100_000
    data = np.maximum(rng.lognormal(7, 1.2, n).astype(np.int64), 1)
    rec = LatencyRecorder()
    rec.record_many(data)
    h, s = rec.histogram, rec.summary()
    levels = [0.0, 1.0, 25.0, 50.0, 99.0, 99.999, 100.0]
    assert value_at_percentiles(h, levels) == [h.get_value_at_percentile(p) for p in levels]
    ordered = np.sort(data)
    for stem, p in PERCENTILES:
        exact = int(ordered[max(int(p * n / 100 + 0.5), 1) - 1])  # the rank HdrHistogram reports
        got = s[f"{stem}_us"]
        assert got == h.get_value_at_percentile(p)
        assert h.get_lowest_equivalent_value(exact) <= got <= exact * (1 + 2**-10) + 1
        assert s[f"{stem}_ms"] == pytest.approx(got / 1000)
    assert s["count"] == n and s["out_of_range"] == 0
    assert s["min_us"] == h.get_min_value() and s["max_us"] == h.get_max_value()
    assert s["mean_us"] == pytest.approx(h.get_mean_value(), rel=1e-12)
    assert s["stddev_us"] == pytest.approx(h.get_stddev(), rel=1e-9)
    assert s["mean_us"] == pytest.approx(float(data.mean()), rel=1e-3)
    assert s["stddev_us"] == pytest.approx(float(data.std()), rel=1e-3)
    json.dumps(s)


def _series(origin: int, events: list[tuple[float, int]]) -> IntervalSeries:
    s = IntervalSeries(origin_ns=origin)
    t = np.array([origin + int(sec * 1e9) for sec, _ in events], dtype=np.int64)
    s.add_many(t, np.array([size for _, size in events]))
    return s


def test_interval_series_buckets_and_merge() -> None:
    origin = 5_000_000_000
    a = _series(origin, [(0.0, 10), (0.999999999, 20), (1.0, 5), (3.5, 7)])
    b = _series(origin, [(1.2, 100), (5.0, 1)])
    a.add(origin + 2_500_000_000, count=3, nbytes=30, errors=1)
    a.add_errors(np.array([origin, origin + 5_100_000_000]))
    da = a.to_dict()
    assert da["interval_s"] == 1.0 and da["t"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert da["count"] == [2, 1, 3, 1, 0, 0]
    assert da["bytes"] == [30, 5, 30, 7, 0, 0]
    assert da["errors"] == [1, 0, 1, 0, 0, 1]
    a.merge(b)
    d = a.to_dict(until_ns=origin + 7_200_000_000)  # idle tail up to the run's end is zeros
    assert d["count"] == [2, 2, 3, 1, 0, 1, 0, 0]
    assert d["bytes"] == [30, 105, 30, 7, 0, 1, 0, 0]
    assert d["p50_us"] == [None] * 8
    json.dumps(d)
    assert len(a.to_dict()["count"]) == 6  # padding is not kept
    a.add_many(np.array([origin, origin + 1]), 100)  # one size for all
    assert a.to_dict()["bytes"][0] == 230
    with pytest.raises(ValueError, match="same length"):
        a.add_many(np.array([origin, origin + 1]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="different origins"):
        a.merge(IntervalSeries(origin_ns=origin + 1))
    with pytest.raises(ValueError, match="before the series origin"):
        a.add_many(np.array([origin - 1]), np.array([1]))


def test_interval_series_latencies_per_interval() -> None:
    origin = 10**12
    rng = np.random.default_rng(2)
    t = origin + rng.integers(0, 4_000_000_000, 20_000)  # unsorted, four intervals
    lat = rng.lognormal(6, 1, t.size).astype(np.int64)
    lat[:3] = [-1, 2**40, 5]
    halves = []
    for part in (slice(0, 10_000), slice(10_000, None)):
        s = IntervalSeries(origin_ns=origin)
        s.add_latencies(t[part], lat[part])
        halves.append(s)
    halves[0].merge(halves[1])
    merged = halves[0]
    d = merged.to_dict()
    assert merged.latency_out_of_range == 2
    idx = (t - origin) // 1_000_000_000
    for i in range(4):
        ref, _ = reference(lat[idx == i])
        assert_identical(merged.histogram_at(i), ref)
        assert d["p50_us"][i] == ref.get_value_at_percentile(50)
        assert d["p99_us"][i] == ref.get_value_at_percentile(99)
        assert d["max_us"][i] == ref.get_max_value()
    assert d["count"] == [0, 0, 0, 0]  # latencies alone do not count messages


def test_write_hgrm_matches_hdrh_table(tmp_path: Path) -> None:
    rec = LatencyRecorder()
    rec.record_many(np.random.default_rng(4).lognormal(7, 1, 5000).astype(np.int64))
    h = rec.histogram
    path = tmp_path / "lat.hgrm"
    write_hgrm(h, path)
    text = path.read_text()
    ref = io.BytesIO()
    h.output_percentile_distribution(ref, 1000.0)
    table = [line for line in ref.getvalue().decode().splitlines() if not line.startswith("#")]
    assert text.splitlines()[: len(table)] == table
    assert f"Total count    = {5000:12d}" in text
    last_row = table[-1].split()
    assert float(last_row[0]) == pytest.approx(h.get_max_value() / 1000, abs=1e-3)
    assert float(last_row[1]) == 1.0
    mean_line = next(line for line in text.splitlines() if line.startswith("#[Mean"))
    assert float(mean_line.split("=")[2].rstrip("]")) == pytest.approx(h.get_stddev() / 1000, abs=1e-3)
    write_hgrm(new_histogram(), tmp_path / "empty.hgrm", scale_to_ms=False)
    assert "Total count    =            0" in (tmp_path / "empty.hgrm").read_text()


@pytest.mark.parametrize("start_time_s", [None, 1_700_000_000.25])
def test_write_hlog_read_back_with_hdrh(tmp_path: Path, start_time_s: float | None) -> None:
    origin = 0
    s = IntervalSeries(origin_ns=origin)
    t = np.array([100, 200, 2_100_000_000, 2_200_000_000, 2_300_000_000])
    s.add_latencies(t, np.array([1500, 2500, 10, 20, 3_000_000]))
    intervals = s.intervals(until_ns=4_000_000_000)
    assert len(intervals) == 4
    path = tmp_path / "lat.hlog"
    write_hlog(intervals, path, start_time_s=start_time_s, comment="kbench test")
    lines = path.read_text().splitlines()
    assert lines[0] == "#kbench test" and "[Histogram log format version 1.3]" in lines[1]
    top = new_histogram().get_highest_equivalent_value(3_000_000)
    assert lines[-2].split(",")[:3] == ["2.000", "1.000", f"{top / 1000:.3f}"]
    back = read_hlog(path)
    assert len(back) == 4
    base = start_time_s or 0.0
    for (start, end, h), (b_start, b_end, b_h) in zip(intervals, back, strict=True):
        assert b_start == pytest.approx(base + start, abs=1e-3)
        assert b_end == pytest.approx(base + end, abs=1e-3)
        assert np.array_equal(counts(b_h), counts(h))
        assert b_h.get_max_value() == h.get_max_value()


def test_empty_summary_and_json() -> None:
    s = LatencyRecorder().summary()
    assert s["count"] == 0 and s["min_us"] is None and s["p99_9_ms"] is None
    assert set(s) >= {f"{stem}_{unit}" for stem, _ in PERCENTILES for unit in ("us", "ms")}
    json.dumps(s)
    assert new_histogram().min_value == sys.maxsize
