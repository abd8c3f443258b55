"""What every Locust process of a ``kbench locust`` run needs to know, as one JSON-able document, and the
pure (Locust-free) halves of the result pipeline: merging what the workers send, rebasing their series,
and the typed shape of what the master writes (:class:`Collected`).

The plan travels like this: the Locust driver (:mod:`bench.locust.driver`) writes ``plan.json`` into a
private temporary directory and starts the master with ``--kbench-plan PATH``; the master reads it at
``init`` and puts its text into its ``parsed_options``, which Locust forwards to every worker (local or
remote) with each ``spawn`` message.
So a worker started by hand on another machine needs kbench installed, not the file.

Nothing here imports Locust or gevent: the ``kbench`` process itself must never import Locust, which
monkey-patches the standard library on import.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from bench.drivers.results import ConsumerResult, ProducerResult, Role
from bench.metrics.hdr import decode_histogram, encode_histogram, merge_encoded
from bench.scenario.model import Cell, Keys, MessageSize, Payload

__all__ = ["LATENCY_METRICS", "Collected", "MergeDoc", "Plan", "UserReport", "WorkerReport", "build_plan",
           "merge_worker_reports", "rebase_result"]

#: latency histograms a user result carries, by role
LATENCY_METRICS: dict[str, tuple[str, ...]] = {"producer": ("publish", "service", "send_delay"),
                                               "consumer": ("e2e",)}


@dataclass(frozen=True)
class Plan:
    """One matrix cell turned into Locust users (see the module docstring for how it travels)."""

    group_prefix: str                 # consumer group g is f"{group_prefix}-g{g}" (the pipeline's CellJob)
    bootstrap: str
    topic: str
    request_name: str                 # `name` of Locust request events: the cell label
    producer_config: dict[str, str]
    consumer_config: dict[str, str]
    warmup_s: float
    duration_s: float
    rate: float | None                # whole-run msgs/s; None = as fast as possible
    producer_users: int
    consumer_groups: int
    consumers_per_group: int
    workers: int                      # worker processes expected (0 = one local Locust process)
    message_size: dict[str, Any]
    payload: dict[str, Any]
    keys: dict[str, Any]
    flush_timeout_s: float = 30.0
    drain_timeout_s: float = 30.0
    collect_timeout_s: float = 30.0
    results_path: str | None = None   # where the master writes what the workers sent
    started_path: str | None = None   # where the master writes the common start t0 when the test starts
    start_delay_s: float = 0.5        # t0 = the master's test start + this (spawn messages travel)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def consumer_users(self) -> int:
        return self.consumer_groups * self.consumers_per_group

    @property
    def user_rate(self) -> float | None:
        """Each producer user's share of the scenario rate (constant per user)."""
        if self.rate is None or self.producer_users < 1:
            return None
        return self.rate / self.producer_users

    def group_id(self, group: int) -> str:
        return f"{self.group_prefix}-g{group}"

    def message_size_spec(self) -> MessageSize:
        d = dict(self.message_size)
        d["values"], d["weights"] = tuple(d.get("values") or ()), tuple(d.get("weights") or ())
        return MessageSize(**d)

    def payload_spec(self) -> Payload:
        from pathlib import Path

        file = self.payload.get("file")
        return Payload(kind=str(self.payload["kind"]), compressibility=float(self.payload["compressibility"]),
                       file=Path(file) if file else None)

    def keys_spec(self) -> Keys:
        return Keys(kind=str(self.keys["kind"]), count=self.keys.get("count"), zipf_s=float(self.keys["zipf_s"]))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls(**json.loads(text))


def build_plan(cell: Cell, *, group_prefix: str, bootstrap: str, topic: str, client_config: dict[str, str],
               producer_users: int, workers: int, results_path: str | None, started_path: str | None = None,
               drain_timeout_s: float = 30.0, flush_timeout_s: float = 30.0) -> Plan:
    """The plan of ``cell``: its workload, client configs and message shape; ``producer_users`` share the rate."""
    w = cell.workload
    return Plan(
        group_prefix=group_prefix, bootstrap=bootstrap, topic=topic, request_name=cell.label(),
        producer_config={**client_config, **dict(cell.producer)},
        consumer_config={**client_config, **dict(cell.consumer)},
        warmup_s=w.warmup_s, duration_s=w.duration_s, rate=w.rate, producer_users=producer_users,
        consumer_groups=w.consumer_groups, consumers_per_group=w.consumers_per_group, workers=workers,
        message_size={**asdict(w.message_size), "values": list(w.message_size.values),
                      "weights": list(w.message_size.weights)},
        payload={"kind": w.payload.kind, "compressibility": w.payload.compressibility,
                 "file": str(w.payload.file) if w.payload.file else None},
        keys=asdict(w.keys), flush_timeout_s=flush_timeout_s, drain_timeout_s=drain_timeout_s,
        results_path=results_path, started_path=started_path,
    )


class UserReport(TypedDict):
    """One user's measurements, as a worker sends them (JSON)."""

    role: Role
    index: int
    worker: int
    result: ProducerResult | ConsumerResult        # ``{"failed": reason}`` when it could not measure


class WorkerReport(TypedDict, total=False):
    """What one Locust worker sends the master at the end of the test (``kbench_result``)."""

    worker_index: int
    users: list[UserReport]
    errors: list[str]
    progress: dict[str, Any]
    anchor_ns: int


class MergeDoc(TypedDict):
    """The master's exact merge of the workers' reports (:func:`merge_worker_reports`)."""

    workers: int
    per_worker: dict[str, dict[str, int]]           # client id -> histogram and message counts
    sum: dict[str, int]                             # those counts added over the workers
    merged: dict[str, dict[str, Any]]               # metric -> {count, hdr}: the workers' histograms merged


class Collected(TypedDict, total=False):
    """``locust-results.json``: what the master received and merged, and how the test ended."""

    group_prefix: str
    t0_wall_ns: int | None
    end_reason: str | None
    elapsed_s: float
    missing_workers: list[str]
    reports: dict[str, WorkerReport]
    merge: MergeDoc
    target_user_classes_count: dict[str, int]


def rebase_result(result: dict[str, Any], t_start_ns: int) -> dict[str, Any]:
    """A user's result with its series origin and window end made relative to its measurement start.

    Each Locust process has its own CLOCK_MONOTONIC (other hosts, even), but all of them start their
    measurement window at the same wall-clock instant; rebasing every series to origin 0 lets
    :func:`bench.run.cell.build_cell_result` add them up interval by interval."""
    out = dict(result)
    if out.get("series"):
        out["series"] = {**out["series"], "origin_ns": 0}
    if out.get("window_end_ns") is not None:
        out["window_end_ns"] = int(out["window_end_ns"]) - t_start_ns
    return out


def merge_worker_reports(reports: dict[str, WorkerReport]) -> MergeDoc:
    """The master's exact merge of the workers' reports (``{client_id: {"users": [...], ...}}``).

    Returns per-worker histogram counts and message counts, their sums, and the whole histograms merged
    across workers with :func:`bench.metrics.hdr.merge_encoded` (so ``merged[m].count`` must equal
    ``sum(per_worker[*][m])``, and ``messages`` the sum of the workers' counts)."""
    per_worker: dict[str, dict[str, int]] = {}
    encoded: dict[str, list[str]] = {m: [] for ms in LATENCY_METRICS.values() for m in ms}
    for client_id, report in sorted(reports.items()):
        counts: dict[str, int] = {m: 0 for m in encoded}
        counts.update(produced=0, acked_total=0, received_measured=0, received_total=0)
        for user in report.get("users", []):
            result: dict[str, Any] = dict(user["result"])
            if "failed" in result:
                continue
            for metric, text in (result.get("hdr") or {}).items():
                if text:
                    encoded[metric].append(text)
                    counts[metric] += int(decode_histogram(text).get_total_count())
            if user["role"] == "producer":
                counts["produced"] += int(result["acked_measured"])
                counts["acked_total"] += int(result["acked_total"])
            else:
                counts["received_measured"] += int(result["received_measured"])
                counts["received_total"] += int(result["received_total"])
        per_worker[client_id] = counts
    keys = sorted({k for c in per_worker.values() for k in c})
    sums = {k: sum(c.get(k, 0) for c in per_worker.values()) for k in keys}
    merged = {m: merge_encoded(texts) for m, texts in encoded.items() if texts}
    return {"workers": len(per_worker), "per_worker": per_worker, "sum": sums,
            "merged": {m: {"count": int(h.get_total_count()), "hdr": encode_histogram(h)}
                       for m, h in merged.items()}}
