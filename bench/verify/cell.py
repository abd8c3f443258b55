"""Verification of a cell (``kbench run --verify``): was anything acknowledged lost, duplicated or reordered?

After the workers finish (and before the topic is deleted) every partition is read from its start up to
its high watermark (the *final read*, bounded by a deadline). The producers' acks, the consumers' reads
and the final read go to the one history checker (:func:`bench.verify.history.check`):

* **acked** records: delivery reports with an offset (``acks=0`` reports carry none: nothing to check
  but presence); a failed delivery is ``unknown`` (it may have been written) unless the error proves the
  record never left the client; a record sent but neither acked nor failed by the end is ``unknown``.
* **lost** / **unseen**: acked and missing from every read; **duplicated**: one record at two offsets;
  **reordered**: a producer's later send at a lower offset of the same partition (non-monotonic send).
* the final read is judged strictly (order, gaps, one value per offset). The benchmark consumers' reads
  count as reads and for position consistency, but their order is not judged: a worker does not record
  its rebalances, so each contiguous run of offsets is taken as its own poll (rewinds and jumps counted).

It also reports **unavailability windows** — gaps with no successful ack longer than ``gap_ms``, over
all partitions and per partition, in seconds from load start ``t0`` — and the **publish latency around
each fault**: ack time − intended send time (from the record's header, as read back) of the records
*intended* within ±``around_s`` of the action, next to a baseline of records away from every fault.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import TopicError
from bench.kafka.admin import TopicAdmin
from bench.load.payload import HEADER_SIZE, decode_header
from bench.verify.cell_txn import split_txns, txn_records, txn_section
from bench.verify.history import AnomalyKind, Poll, Send, check
from bench.verify.model import Txn

if TYPE_CHECKING:
    from bench.verify.lost import SegmentLookup

__all__ = ["DEFINITE_FAILURES", "CellVerifier", "FinalRead", "build_history", "latency_around",
           "make_cell_end", "read_topic", "unavailability", "value_id", "verify_cell"]

GAP_MS = 250.0
AROUND_S = 2.0
MAX_EXAMPLES = 20
#: delivery errors after which the record was certainly not written (never sent to a broker)
DEFINITE_FAILURES = frozenset({"_PURGE_QUEUE", "MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "_UNKNOWN_TOPIC",
                               "_UNKNOWN_PARTITION", "TOPIC_AUTHORIZATION_FAILED", "_INVALID_ARG"})

Results = Mapping[str, Mapping[int, Mapping[str, Any]]]


def value_id(producer: int, seq: int) -> str:
    """The unique id of a kbench record: ``"<producer>:<seq>"``."""
    return f"{producer}:{seq}"


@dataclass
class FinalRead:
    """Every partition read from its low watermark: ``records[p]`` = [(offset, value id)]."""

    records: dict[int, list[tuple[int, str | None]]] = field(default_factory=dict)
    intended_ns: dict[str, int] = field(default_factory=dict)   # value id -> intended send time (header)
    low: dict[int, int] = field(default_factory=dict)
    high: dict[int, int] = field(default_factory=dict)
    complete: bool = True
    elapsed_s: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"complete": self.complete, "elapsed_s": round(self.elapsed_s, 3), "error": self.error,
                "records": sum(len(v) for v in self.records.values()),
                "partitions": {str(p): [self.low.get(p), self.high.get(p)] for p in sorted(self.high)}}


def _watermarks(bootstrap: str, topic: str, client_config: Mapping[str, str] | None, timeout_s: float,
                out: FinalRead) -> bool:
    """Fill ``out.low``/``out.high``, retrying until ``deadline`` (leaders may still be moving after
    a fault); False (with ``out.error``) if the broker never answered."""
    deadline = time.monotonic() + timeout_s
    last: TopicError | None = None
    with TopicAdmin(bootstrap, client_config) as admin:
        while time.monotonic() < deadline:
            try:
                marks = admin.watermarks(topic, timeout_s=max(0.5, min(10.0, deadline - time.monotonic())))
            except TopicError as exc:
                last = exc
                time.sleep(0.5)
                continue
            out.low = {p: m.low for p, m in marks.items()}
            out.high = {p: m.high for p, m in marks.items()}
            return True
    out.complete, out.error = False, f"no watermarks within {timeout_s:g} s: {last if last else 'no time left'}"
    return False


def read_topic(bootstrap: str, topic: str, client_config: Mapping[str, str] | None = None,
               timeout_s: float = 60.0) -> FinalRead:
    """Read every partition of ``topic`` from the start up to its high watermark, within ``timeout_s``."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    started = time.monotonic()
    deadline = started + timeout_s
    out = FinalRead()
    if not _watermarks(bootstrap, topic, client_config, timeout_s, out):
        out.elapsed_s = time.monotonic() - started
        return out
    conf = {"bootstrap.servers": bootstrap, "group.id": f"kbench-verify-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest",
            "log_level": 3, **(client_config or {})}
    consumer = Consumer(conf)
    try:
        pending = {p for p in out.high if out.high[p] > out.low[p]}
        out.records = {part: [] for part in out.high}
        consumer.assign([TopicPartition(topic, p, out.low[p]) for p in sorted(pending)])
        errors: dict[str, int] = {}
        while pending and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                err = m.error()
                p, o = m.partition(), m.offset()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if p is not None and o is not None and o >= out.high.get(p, 0):
                            pending.discard(p)
                    else:
                        errors[err.name()] = errors.get(err.name(), 0) + 1
                    continue
                if p is None or o is None:
                    continue
                v = m.value()
                vid: str | None = None
                if v is not None and len(v) >= HEADER_SIZE:
                    t, prod, seq = decode_header(v)
                    vid = value_id(prod, seq)
                    out.intended_ns[vid] = t
                elif v is not None:
                    vid = "raw:" + v[:32].hex()
                out.records[p].append((o, vid))
                if o >= out.high[p] - 1:
                    pending.discard(p)
        if pending:
            out.complete = False
            out.error = (f"partitions {sorted(pending)} not read to their high watermark within {timeout_s:g} s"
                         + (f" (errors: {errors})" if errors else ""))
    finally:
        consumer.close()
        out.elapsed_s = time.monotonic() - started
    return out


# -------------------------------------------------------------------------------------------- history
@dataclass
class _Acks:
    """All producers' acks as arrays (one row per ack)."""

    partition: np.ndarray
    ack_ns: np.ndarray
    ids: list[str]


def build_history(results: Results) -> tuple[list[Send], list[Poll], dict[str, Any], _Acks]:
    """Sends (acked / failed / unknown) and consumer polls from the workers' ``verify`` data."""
    sends: list[Send] = []
    info: dict[str, Any] = {"sent": 0, "in_flight_at_end": 0, "missing_workers": [], "consumer_reads": 0,
                            "consumer_rewinds": 0, "consumer_jumps": 0}
    parts: list[int] = []
    times: list[int] = []
    ids: list[str] = []
    for i, r in sorted(results.get("producer", {}).items()):
        ver = r.get("verify")
        if not ver:
            info["missing_workers"].append(f"producer {i}")
            continue
        done: set[int] = set()
        for p, o, prod, seq, t in ver["acks"]:
            vid = value_id(prod, seq)
            sends.append(Send(str(prod), seq, vid, p, o if o is not None and o >= 0 else None, "ok", t))
            done.add(seq)
            parts.append(p)
            times.append(t)
            ids.append(vid)
        for prod, seq, name in ver["failed"]:
            if seq in done:
                continue
            done.add(seq)
            sends.append(Send(str(prod), seq, value_id(prod, seq), status="failed"
                              if name in DEFINITE_FAILURES else "unknown"))
        sent = int(ver.get("sent") or 0)
        info["sent"] += sent
        if ver.get("unacked_seq_from") is not None:
            info["in_flight_at_end"] += sent - int(ver["unacked_seq_from"])
        sends.extend(Send(str(i), s, value_id(i, s), status="unknown") for s in range(sent) if s not in done)
    polls: list[Poll] = []
    for j, r in sorted(results.get("consumer", {}).items()):
        reads = r.get("verify")
        if reads is None:
            info["missing_workers"].append(f"consumer {j}")
            continue
        info["consumer_reads"] += len(reads)
        polls.extend(_consumer_polls(f"consumer-{j}", reads, info, r.get("verify_polls")))
    acks = _Acks(np.asarray(parts, dtype=np.int64), np.asarray(times, dtype=np.int64), ids)
    return sends, polls, info, acks


def _consumer_polls(name: str, reads: Sequence[Sequence[int]], info: dict[str, Any],
                    batches: Sequence[Sequence[int]] | None = None) -> Iterable[Poll]:
    """Cut a consumer's reads into polls at every offset discontinuity (rebalances are not recorded: a poll
    after one has ``rebalance_before``) and, given the consumer's ``batches`` ((first read, receipt ns) of
    each batch handed over), at every batch, each poll with its batch's receipt time ``t_ns``."""
    starts = {int(k): int(t) for k, t in batches or ()}
    last: dict[int, int] = {}
    batch: list[tuple[int, int, str]] = []
    index = 0
    t_ns = starts.get(0)
    after_jump = False
    for k, (p, o, prod, seq) in enumerate(reads):
        lo = last.get(p)
        jump = lo is not None and o != lo + 1
        if lo is not None and jump:
            info["consumer_rewinds" if o <= lo else "consumer_jumps"] += 1
        if batch and (jump or k in starts):
            yield Poll(name, index, batch, rebalance_before=after_jump, t_ns=t_ns)
            index += 1
            batch = []
            after_jump = False
        if jump:
            last = {}
            after_jump = True
        t_ns = starts.get(k, t_ns)
        batch.append((p, o, value_id(prod, seq)))
        last[p] = o
    if batch:
        yield Poll(name, index, batch, rebalance_before=after_jump, t_ns=t_ns)


# --------------------------------------------------------------------------------------- availability
def _gaps(ack_ns: np.ndarray, t0_ns: int, end_ns: int, gap_ns: int) -> list[tuple[int, int, bool]]:
    """(start, end, open) of every stretch longer than gap_ns without an ack, from the first ack (start-up,
    reported as ``first_ack_s``, is not unavailability) to the end of load."""
    t = np.sort(ack_ns)
    out: list[tuple[int, int, bool]] = []
    if t.size == 0:
        return [(t0_ns, end_ns, True)] if end_ns - t0_ns > gap_ns else []
    d = np.diff(t)
    for k in np.nonzero(d > gap_ns)[0]:
        out.append((int(t[k]), int(t[k + 1]), False))
    if end_ns - t[-1] > gap_ns:
        out.append((int(t[-1]), end_ns, True))
    return out


def _fault_label(e: Mapping[str, Any]) -> str:
    return f"{e.get('action')} node {e.get('node', '?')} at {e.get('started_s', 0.0):.2f}s"


def _window(start: int, end: int, is_open: bool, t0_ns: int, actions: Sequence[Mapping[str, Any]],
            partition: int | None) -> dict[str, Any]:
    s, e = (start - t0_ns) / 1e9, (end - t0_ns) / 1e9
    w: dict[str, Any] = {"start_s": round(s, 3), "end_s": round(e, 3), "duration_s": round(e - s, 3)}
    if partition is not None:
        w["partition"] = partition
    if is_open:
        w["open"] = True  # no ack from here to the end of load
    near = [_fault_label(a) for a in actions if s - 1.0 <= a.get("started_s", -1e9) <= e]
    if near:
        w["faults"] = near
    return w


def unavailability(acks: _Acks, t0_ns: int, end_ns: int, actions: Sequence[Mapping[str, Any]] = (),
                   gap_ms: float = GAP_MS) -> dict[str, Any]:
    """Stretches with no successful ack, over all partitions (``windows``) and per partition."""
    gap_ns = int(gap_ms * 1e6)
    windows = [_window(s, e, o, t0_ns, actions, None) for s, e, o in _gaps(acks.ack_ns, t0_ns, end_ns, gap_ns)]
    per: list[dict[str, Any]] = []
    for p in sorted(set(acks.partition.tolist())):
        sel = acks.ack_ns[acks.partition == p]
        per += [_window(s, e, o, t0_ns, actions, p) for s, e, o in _gaps(sel, t0_ns, end_ns, gap_ns)]
    per.sort(key=lambda w: (w["start_s"], w["partition"]))
    first = (int(acks.ack_ns.min()) - t0_ns) / 1e9 if acks.ack_ns.size else None
    return {"gap_ms": gap_ms, "first_ack_s": None if first is None else round(first, 3), "windows": windows,
            "total_s": round(sum(w["duration_s"] for w in windows), 3),
            "partition_windows": per,
            "longest_partition_s": max((w["duration_s"] for w in per), default=0.0)}


def _lat_summary(lat_ns: np.ndarray) -> dict[str, Any]:
    if lat_ns.size == 0:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    p50, p99 = np.percentile(lat_ns, [50, 99])
    return {"n": int(lat_ns.size), "p50_ms": round(float(p50) / 1e6, 3), "p99_ms": round(float(p99) / 1e6, 3),
            "max_ms": round(float(lat_ns.max()) / 1e6, 3)}


def _fault_end_s(e: Mapping[str, Any], load_s: float) -> float:
    for k in ("in_sync_s", "up_s", "resumed_s", "off_s"):   # off_s: a network toxic taken off
        if e.get(k) is not None:
            return float(e[k])
    if e.get("action") == "kill" and e.get("restarted") is False:
        return load_s
    return float(e.get("started_s", 0.0))


def latency_around(acks: _Acks, intended_ns: Mapping[str, int], t0_ns: int, load_s: float,
                   actions: Sequence[Mapping[str, Any]] = (), around_s: float = AROUND_S,
                   warmup_s: float = 0.0) -> dict[str, Any]:
    """Publish latency (ack − intended) of records intended within ±around_s of each action; the baseline
    is the records intended after the warm-up and away from every fault."""
    ok = [k for k, v in enumerate(acks.ids) if v in intended_ns]
    intended = np.asarray([intended_ns[acks.ids[k]] for k in ok], dtype=np.int64)
    lat = acks.ack_ns[np.asarray(ok, dtype=np.int64)] - intended if ok else np.zeros(0, dtype=np.int64)
    rel = (intended - t0_ns) / 1e9
    faults: list[dict[str, Any]] = []
    quiet = rel >= warmup_s
    for e in actions:
        a = float(e.get("started_s", 0.0))
        near = (rel >= a - around_s) & (rel <= a + around_s)
        quiet &= ~((rel >= a - around_s) & (rel <= _fault_end_s(e, load_s) + around_s))
        doc = {"fault": e.get("fault"), "occurrence": e.get("occurrence"), "action": e.get("action"),
               "node": e.get("node"), "at_s": a, **_lat_summary(lat[near])}
        if "toxic" in e:   # a network fault: also the records intended while it was on
            doc["during"] = _lat_summary(lat[(rel >= a) & (rel <= _fault_end_s(e, load_s))])
        faults.append(doc)
    return {"around_s": around_s, "baseline": _lat_summary(lat[quiet]), "faults": faults,
            "all": _lat_summary(lat), "without_header": len(acks.ids) - len(ok)}


# ------------------------------------------------------------------------------------------- the cell
def verify_cell(results: Results, final: FinalRead, *, t0_ns: int, load_s: float,
                actions: Sequence[Mapping[str, Any]] = (), gap_ms: float = GAP_MS, around_s: float = AROUND_S,
                expect_order: bool = True, allow_duplicates: bool = False, warmup_s: float = 0.0) -> dict[str, Any]:
    """The ``verification`` entry of a cell, from the workers' verify data and the final read.

    ``expect_order=False`` / ``allow_duplicates=True`` (a non-idempotent producer, whose retries may
    reorder and duplicate) still count reorders and duplicates but do not fail the verdict on them."""
    sends, polls, info, acks = build_history(results)
    records = txn_records(results)
    txns: list[Txn] = []
    if records:   # transactional: markers take offsets, the final read was read_committed
        sends, txns = split_txns(sends, records)
    report = check(sends, polls, final_reads=final.records, log_start=final.low, expect_order=expect_order,
                   allow_duplicates=allow_duplicates, max_examples=MAX_EXAMPLES, txns=txns,
                   allow_gaps=bool(records), final_isolation="read_committed")
    counts = report.to_dict()["counts"]
    counts["reordered"] = report.count(AnomalyKind.NON_MONOTONIC_SEND)
    counts["final_read_skips"] = report.count(AnomalyKind.POLL_SKIP)
    problems: list[str] = []
    if not final.complete:
        problems.append(f"final read incomplete: {final.error}")
    if info["missing_workers"]:
        problems.append(f"no verify data from {', '.join(info['missing_workers'])} (run with --verify)")
    end_ns = t0_ns + int(load_s * 1e9)
    doc = report.to_dict()
    for a in doc["anomalies"]:
        if a.get("t_ns") is not None:
            a["t_s"] = round((a["t_ns"] - t0_ns) / 1e9, 4)  # ack time, seconds from load start
    ok = report.ok and not problems
    return {
        **({"transactions": txn_section(report, txns)} if records else {}),
        "ok": ok,
        "summary": report.summary() + ("" if not problems else " — " + "; ".join(problems)),
        "problems": problems,
        "counts": {**counts, "sent": info["sent"], "in_flight_at_end": info["in_flight_at_end"]},
        "anomaly_counts": doc["anomaly_counts"],
        "anomalies": doc["anomalies"],
        "final_read": final.to_dict(),
        "consumers": {"reads": info["consumer_reads"], "rewinds": info["consumer_rewinds"],
                      "jumps": info["consumer_jumps"],
                      "note": "consumer order is not judged (rebalances are not recorded); the final read is"},
        "unavailability": unavailability(acks, t0_ns, end_ns, actions, gap_ms),
        "latency_around_faults": latency_around(acks, final.intended_ns, t0_ns, load_s, actions, around_s,
                                                warmup_s),
    }


class CellVerifier:
    """The runner's ``on_cell_end`` hook; ``load_started`` (called from ``on_load_start``) gives it t0."""

    def __init__(self, bootstrap: str, client_config: Mapping[str, str] | None = None, *,
                 final_read_timeout_s: float = 60.0, gap_ms: float = GAP_MS, around_s: float = AROUND_S,
                 segments: SegmentLookup | None = None) -> None:
        self.bootstrap, self.client_config = bootstrap, dict(client_config or {})
        self.segments = segments    # lost/unseen writes looked up on the nodes' disks (None: external broker)
        self.final_read_timeout_s, self.gap_ms, self.around_s = final_read_timeout_s, gap_ms, around_s
        self._t0: dict[str, int] = {}
        self._injectors: dict[str, Any] = {}

    def load_started(self, cell: Any, topic: str, t0_ns: int, injector: Any = None) -> None:
        self._t0[topic], self._injectors[topic] = t0_ns, injector

    def __call__(self, cell: Any, topic: str, results: Results) -> dict[str, Any]:
        t0_ns = self._t0.pop(topic, None)
        injector = self._injectors.pop(topic, None)
        if t0_ns is None:
            return {"verification": {"ok": False, "problems": ["load start time unknown (on_load_start hook "
                                                                "not installed)"]}}
        actions = injector.stop().get("actions", []) if injector is not None else []
        w = cell.workload
        read_conf = {**self.client_config, "isolation.level": "read_committed"} if w.transactions \
            else self.client_config
        final = read_topic(self.bootstrap, topic, read_conf, self.final_read_timeout_s)
        conf = {**self.client_config, **dict(cell.producer)}
        idempotent = w.transactions is not None or str(conf.get("enable.idempotence", "false")).lower() == "true"
        in_flight = str(conf.get("max.in.flight.requests.per.connection", conf.get("max.in.flight", "1000000")))
        doc = verify_cell(results, final, t0_ns=t0_ns, load_s=w.warmup_s + w.duration_s, actions=actions,
                          gap_ms=self.gap_ms, around_s=self.around_s, expect_order=idempotent or in_flight == "1",
                          allow_duplicates=not idempotent, warmup_s=w.warmup_s)
        doc["producer_idempotent"] = idempotent
        if doc["counts"]["lost"] or doc["counts"]["unseen"]:    # lost or unread? (bench/verify/lost.py)
            from bench.verify.lost import look_up

            sends, polls, _info, _acks = build_history(results)
            doc["lost_lookup"] = look_up(self.segments, topic, sends, polls, final.records, final.low, final.high)
        return {"verification": doc}


def make_cell_end(bootstrap: str, client_config: Mapping[str, str] | None = None, **kwargs: Any) -> CellVerifier:
    """The ``on_cell_end`` hook for ``--verify`` (see :class:`CellVerifier`; kwargs: final_read_timeout_s,
    gap_ms, around_s). Its ``load_started`` must be called from ``on_load_start``: use
    :func:`bench.faults.plan.make_hooks`, which wires both."""
    return CellVerifier(bootstrap, client_config, **kwargs)
