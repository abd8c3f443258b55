"""Merge the workers' measurements of one matrix cell into its entry of the result document.

Histograms are merged exactly (sum of HDR counts); per-second series are merged interval by interval
(the workers share the series origin, the start of the measurement window). Throughput is computed over
the measurement window; its spread comes from the per-second samples of whole seconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from bench.drivers.results import ConsumerResult, ProducerResult, SeriesDoc, TxnStats, WorkerResults
from bench.metrics.files import write_hgrm, write_hlog
from bench.metrics.hdr import decode_histogram, encode_histogram, merge_encoded, summarize
from bench.metrics.series import IntervalSeries
from bench.metrics.steady import check_steady_state
from bench.results.model import CellDocument, CellFailure
from bench.scenario.model import Cell, to_plain

__all__ = ["build_cell_result"]

_MB = 1e6


def _spread(series: dict[str, Any], full: int) -> dict[str, Any]:
    samples = [float(c) for c in series["count"][:full]]
    if not samples:
        return {"samples": 0, "mean": None, "stdev": None, "min": None, "max": None}
    return {"samples": len(samples), "mean": statistics.fmean(samples),
            "stdev": statistics.stdev(samples) if len(samples) > 1 else 0.0,
            "min": min(samples), "max": max(samples), "values": samples}


def _merge_series(docs: list[SeriesDoc]) -> IntervalSeries | None:
    merged: IntervalSeries | None = None
    for d in docs:
        s = IntervalSeries.decode(dict(d))
        if merged is None:
            merged = s
        elif s.origin_ns == merged.origin_ns:
            merged.merge(s)
    return merged


def _latency(encoded: list[str | None]) -> dict[str, Any] | None:
    present = [e for e in encoded if e]
    if not present:
        return None
    hist = merge_encoded(present)
    return {**summarize(hist), "hdr": encode_histogram(hist)}


def _sum_errors(results: Sequence[ProducerResult] | Sequence[ConsumerResult]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for r in results:
        for k, v in (r.get("errors") or {}).items():
            errors[k] = errors.get(k, 0) + int(v)
    return errors


def _merged_lag(cons: Sequence[ConsumerResult]) -> dict[float, int]:
    """The consumers' lag samples added up per whole second since t0."""
    lag: dict[float, int] = {}
    for r in cons:
        for t, v in r.get("lag") or []:
            key = float(round(t))
            lag[key] = lag.get(key, 0) + int(v)
    return lag


def _incomplete_reasons(reason: str | None, missing: int, worker_errors: list[str],
                        prods: Sequence[ProducerResult]) -> list[str]:
    reasons = [reason] if reason else []
    if missing:
        reasons.append(f"{missing} worker(s) returned no measurements")
    reasons += [f"worker error: {e}" for e in worker_errors]
    if any(r.get("stopped_early") for r in prods):
        reasons.append("producers stopped before the end of the window")
    return reasons


def _txn_stats(prods: Sequence[ProducerResult]) -> TxnStats | None:
    """The transactional producers' transaction counts added up (None if none sent transactionally)."""
    stats = [r["transactions"] for r in prods if "transactions" in r]
    if not stats:
        return None
    return cast(TxnStats, {k: sum(int(cast(dict[str, int], s)[k]) for s in stats) for k in stats[0]})


def _check(acked_total: int, offsets: dict[str, Any] | None, cons: Sequence[ConsumerResult],
           txn: TxnStats | None = None) -> dict[str, Any]:
    """Counts against the broker's offsets, and each group's reads against the acks. Transactional: each
    transaction's marker takes an offset in every partition it wrote to, and read_committed consumers do
    not get the records of aborted transactions (nor, perhaps, of unknown ones)."""
    check: dict[str, Any] = {"acked_total": acked_total, "broker_offsets": offsets}
    markers = hidden = 0
    if txn is not None:
        check["transactions"] = dict(txn)
        markers, hidden = txn["markers"], txn["acked_aborted"] + txn["acked_unknown"]
    if offsets is not None:
        check["offsets_agree"] = offsets["total"] == acked_total + markers
    if cons:
        groups: dict[str, int] = {}
        for r in cons:
            group = str(r.get("group"))
            groups[group] = groups.get(group, 0) + r["received_total"]
        check["received_per_group"] = groups
        check["consumed_all"] = all(v >= acked_total - hidden for v in groups.values())
    return check


def build_cell_result(cell: Cell, topic: str, results: WorkerResults, worker_errors: list[str],
                      opts: Any, *, offsets: dict[str, Any] | None = None, backlog: dict[str, Any] | None = None,
                      elapsed_s: float = 0.0, run_dir: Path | None = None, incomplete_reason: str | None = None,
                      warnings: list[str] | None = None, failure: CellFailure | None = None) -> CellDocument:
    """The cell's entry in ``result.json``; also writes its ``.hgrm``/``.hlog`` files into ``run_dir``.
    ``failure``: the driver could not finish the cell (``status: failed``; its reason is ``incomplete_reason``)."""
    w = cell.workload
    prods = [r for _i, r in sorted(results["producer"].items()) if "failed" not in r]
    cons = [r for _i, r in sorted(results["consumer"].items()) if "failed" not in r]
    missing = (w.producers - len(prods)) + (w.consumer_groups * w.consumers_per_group - len(cons))
    window_s = min((r["window_s"] for r in prods), default=min((r["window_s"] for r in cons), default=0.0))
    end_ns = max((r["window_end_ns"] for r in prods + cons), default=None)
    full = int(window_s + 1e-6)

    prod_series = _merge_series([r["series"] for r in prods])
    cons_series = _merge_series([r["series"] for r in cons])
    ps = prod_series.to_dict(until_ns=end_ns) if prod_series else None
    cs = cons_series.to_dict(until_ns=end_ns) if cons_series else None
    p_msgs = sum(r["acked_measured"] for r in prods)
    p_bytes = sum(r["bytes_measured"] for r in prods)
    c_msgs = sum(r["received_measured"] for r in cons)
    c_bytes = sum(r["bytes_measured"] for r in cons)
    p_err = _sum_errors(prods)
    c_err = _sum_errors(cons)
    per = max(window_s, 1e-9)
    acked_total = sum(r["acked_total"] for r in prods)
    lag = _merged_lag(cons)
    latency = {
        "publish": _latency([r["hdr"]["publish"] for r in prods]),
        "service": _latency([r["hdr"]["service"] for r in prods]),
        "send_delay": _latency([r["hdr"].get("send_delay") for r in prods]),
        "e2e": _latency([r["hdr"]["e2e"] for r in cons]),
    }
    reasons = _incomplete_reasons(incomplete_reason, missing, worker_errors, prods)
    check = _check(acked_total, offsets, cons, _txn_stats(prods))

    steady = check_steady_state({"produce": ps, "consume": cs}, full,
                                skip=("consume msg/s", "e2e p99") if backlog is not None else ())
    warnings = [*(warnings or []), *([steady.warning] if steady.warning and steady.steady is False else [])]
    doc: dict[str, Any] = {
        "index": cell.index, "label": cell.label(), "params": to_plain(dict(cell.params)),
        "complete": not reasons, "incomplete_reason": "; ".join(reasons) or None,
        "status": "failed" if failure is not None else "incomplete" if reasons else "ok", "failure": failure,
        "topic": {"name": topic, "created": cell.topic.name is None, "partitions": cell.topic.partitions,
                  "replication_factor": cell.topic.replication_factor, "config": dict(cell.topic.config)},
        "workload": to_plain(asdict(w)),
        "producer_config": {**opts.client_config, **dict(cell.producer)},
        "consumer_config": {**opts.client_config, **dict(cell.consumer)},
        "timing": {"warmup_s": w.warmup_s, "duration_s": w.duration_s, "window_s": window_s, "elapsed_s": elapsed_s},
        "produce": {"messages": p_msgs, "bytes": p_bytes, "msgs_per_s": p_msgs / per, "mb_per_s": p_bytes / per / _MB,
                    "acked_total": acked_total, "sent_total": sum(r["sent_total"] for r in prods),
                    "unacked_at_end": sum(r["unacked_at_end"] for r in prods),
                    "queue_full_events": sum(r["queue_full_events"] for r in prods),
                    "errors": p_err, "error_total": sum(p_err.values()),
                    # 1 in N messages timed (max rate); errors among the untimed ones estimated from the sample
                    "latency_sample": max((r.get("latency_sample", 1) for r in prods), default=1),
                    "errors_estimated": any(r.get("errors_estimated") for r in prods),
                    "per_second": _spread(ps, full) if ps else None},
        "consume": {"groups": w.consumer_groups, "messages": c_msgs, "bytes": c_bytes, "msgs_per_s": c_msgs / per,
                    "mb_per_s": c_bytes / per / _MB, "errors": c_err, "error_total": sum(c_err.values()),
                    "join_s": [r.get("join_s") for r in cons],
                    "per_second": _spread(cs, full) if cs else None},
        "errors": {"total": sum(p_err.values()) + sum(c_err.values())},
        "latency": latency,
        "series": {"produce": ps, "consume": cs, "lag": [[t, v] for t, v in sorted(lag.items())]},
        "check": check,
        "backlog": backlog,
        "warnings": warnings,
        "steady_state": steady.to_dict(),
        "clients": {"producer": _client(cell.client, prods), "consumer": _client(cell.consumer_client, cons)},
    }
    if run_dir is not None:
        _write_histogram_files(run_dir, cell.index, latency, prod_series, cons_series, end_ns)
    return cast(CellDocument, doc)


def _client(name: str, results: Sequence[ProducerResult] | Sequence[ConsumerResult]) -> dict[str, Any]:
    """The client of a role: what its workers reported (external drivers), else librdkafka's version."""
    for r in results:
        info = r.get("client")
        if info is not None:
            return {"name": info["name"], "version": info["version"], "protocol": r.get("protocol")}
    if name == "librdkafka":
        import confluent_kafka

        return {"name": name, "version": confluent_kafka.libversion()[0], "protocol": None}
    return {"name": name, "version": "unknown", "protocol": None}


def _write_histogram_files(run_dir: Path, index: int, latency: dict[str, Any], prod: IntervalSeries | None,
                           cons: IntervalSeries | None, end_ns: int | None) -> None:
    for name, lat in latency.items():
        if lat is not None:
            write_hgrm(decode_histogram(lat["hdr"]), run_dir / f"cell-{index:02d}-{name}.hgrm")
    for name, series in (("publish", prod), ("e2e", cons)):
        if series is not None and len(series):
            write_hlog(series.intervals(until_ns=end_ns), run_dir / f"cell-{index:02d}-{name}.hlog")
