"""Conformance report files and the broker × check matrix. Pure I/O: nothing here talks to a broker.

A run directory holds ``report.json`` (schema below), ``report.md``, ``junit.xml`` and one
``<operation>.hgrm`` per timed operation. ``report.json``::

    {"schema_version": 1, "kind": "kbench-conformance", "run_id", "started_at", "finished_at",
     "wall_seconds", "complete", "exit_status",
     "broker": {"bootstrap", "implementation", "version", "embedded", "cluster_id",
                "controller_id", "brokers": [{"id", "host", "port"}], "api_versions": {...}},
     "client": {"kbench", "confluent_kafka", "librdkafka", "python"}, "host": {...},
     "counts": {"PASS": n, "FAIL": n, "ERROR": n, "N/A": n, "RECORD": n},
     "checks": [{"id", "title", "case", "nodeid", "verdict", "detail", "observed", "duration_s",
                 "client"}],
     "timings": {"<op>": {"count", "min_us", "p50_us", "p90_us", "p99_us", "max_us", "hdr", "hgrm"}}}
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import ResultError
from bench.results import store

__all__ = [
    "SCHEMA_VERSION",
    "CheckResult",
    "check_sort_key",
    "count_verdicts",
    "load_report",
    "matrix",
    "new_run_dir",
    "render_markdown",
    "write_report",
]

SCHEMA_VERSION = 1
#: ERROR (kbench/the client/a precondition failed, not the broker) was added to schema 1 without a
#: version bump: older reports simply have no ERROR count (read as 0)
VERDICTS = ("PASS", "FAIL", "ERROR", "N/A", "RECORD")
AREA_ORDER = "PKGOTAREC"
#: the client of the suite's own checks (confluent-kafka-python)
DEFAULT_CLIENT = "librdkafka"


@dataclass
class CheckResult:
    """The verdict of one check (one test item; ``case`` is the parametrize id, if any)."""

    id: str
    title: str
    verdict: str
    detail: str = ""
    case: str = ""
    nodeid: str = ""
    duration_s: float = 0.0
    observed: dict[str, Any] = field(default_factory=dict)
    #: the client that produced the verdict: librdkafka for the suite's own checks, the ``--client``
    #: for the through-client checks (reports before this field: librdkafka)
    client: str = DEFAULT_CLIENT

    @property
    def label(self) -> str:
        base = f"{self.id}[{self.case}]" if self.case else self.id
        return base if self.client == DEFAULT_CLIENT else f"{base}@{self.client}"


def check_sort_key(check_id: str, case: str = "") -> tuple[int, str, int, str]:
    """Order of docs/conformance.md: P, K, G, O, T, A, R, E, then the number."""
    m = re.fullmatch(r"([A-Z]+)(\d+)(.*)", check_id)
    if not m:
        return (len(AREA_ORDER), check_id, 0, case)
    area, num, rest = m.groups()
    pos = AREA_ORDER.find(area) if len(area) == 1 else -1
    return (pos if pos >= 0 else len(AREA_ORDER), area + rest, int(num), case)


def count_verdicts(checks: Sequence[CheckResult]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    for c in checks:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    return counts


def new_run_dir(root: Path, broker_label: str, stamp: str) -> Path:
    """Create ``root/conformance-<label>-<stamp>`` (``-2``, ``-3``… if taken); never reuse one.

    :func:`bench.results.store.new_run_dir` with the ``conformance-`` prefix; an empty label is
    ``broker``. ``--report-dir`` is checked by the plugin instead, since ``--resume`` continues a
    non-empty one."""
    return store.new_run_dir(root, f"conformance-{store.safe_name(broker_label, 'broker')}", stamp=stamp)


def _cell(text: str, limit: int = 240) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(doc: Mapping[str, Any]) -> str:
    """report.md: identity, verdict counts, then one row per check (ID, semantic, verdict, detail)."""
    broker = doc.get("broker", {})
    client = doc.get("client", {})
    lines = [
        f"# Conformance: {broker.get('implementation') or 'unknown'} {broker.get('version') or ''}".rstrip(),
        "",
        f"- bootstrap: `{broker.get('bootstrap')}`, cluster id `{broker.get('cluster_id')}`, "
        f"brokers: {len(broker.get('brokers') or [])}",
        f"- client: confluent-kafka {client.get('confluent_kafka')}, librdkafka {client.get('librdkafka')}, "
        f"kbench {client.get('kbench')}",
        f"- run {doc.get('run_id')}: {doc.get('started_at')} → {doc.get('finished_at')} "
        f"({doc.get('wall_seconds', 0):.1f} s){'' if doc.get('complete', True) else ' — INCOMPLETE'}",
        "- verdicts: " + ", ".join(f"{k} {v}" for k, v in doc.get("counts", {}).items()),
        "",
        "| ID | semantic | verdict | detail |",
        "|---|---|---|---|",
    ]
    for c in doc.get("checks", []):
        label = f"{c['id']} ({c['case']})" if c.get("case") else c["id"]
        if c.get("client", DEFAULT_CLIENT) != DEFAULT_CLIENT:
            label += f" · {c['client']}"
        lines.append(f"| {label} | {_cell(c.get('title', ''), 80)} | {c['verdict']} | "
                     f"{_cell(c.get('detail', ''))} |")
    timings = doc.get("timings") or {}
    if timings:
        lines += ["", "## Timings (µs)", "", "| operation | count | p50 | p90 | p99 | max |",
                  "|---|---|---|---|---|---|"]
        for name, t in timings.items():
            lines.append(f"| {name} | {t['count']} | {t['p50_us']} | {t['p90_us']} | {t['p99_us']} | "
                         f"{t['max_us']} |")
    return "\n".join(lines) + "\n"


def render_junit(doc: Mapping[str, Any]) -> str:
    """junit.xml: one testcase per check; FAIL → failure, ERROR → error, N/A → skipped,
    RECORD → system-out."""
    checks = doc.get("checks", [])
    counts = doc.get("counts", {})
    suite = ET.Element("testsuite", {
        "name": f"kbench-conformance-{(doc.get('broker') or {}).get('implementation') or 'broker'}",
        "tests": str(len(checks)), "failures": str(counts.get("FAIL", 0)),
        "skipped": str(counts.get("N/A", 0)), "errors": str(counts.get("ERROR", 0)),
        "time": f"{doc.get('wall_seconds', 0):.3f}", "timestamp": str(doc.get("started_at", ""))})
    for c in checks:
        name = f"{c['id']} {c.get('title', '')}" + (f" [{c['case']}]" if c.get("case") else "")
        case = ET.SubElement(suite, "testcase", {"classname": "conformance." + c["id"][:1],
                                                 "name": name, "time": f"{c.get('duration_s', 0):.3f}"})
        detail = c.get("detail", "")
        if c["verdict"] == "FAIL":
            ET.SubElement(case, "failure", {"message": detail[:500]}).text = detail
        elif c["verdict"] == "ERROR":
            ET.SubElement(case, "error", {"message": detail[:500]}).text = detail
        elif c["verdict"] == "N/A":
            ET.SubElement(case, "skipped", {"message": detail[:500]})
        elif c["verdict"] == "RECORD":
            ET.SubElement(case, "system-out").text = "RECORD: " + detail
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_report(run_dir: Path, doc: dict[str, Any], hgrm_writer: Any = None) -> None:
    """Write report.json, report.md, junit.xml (and .hgrm files via ``hgrm_writer(run_dir)``)."""
    if hgrm_writer is not None:
        for path in hgrm_writer(run_dir):
            name = Path(path).stem
            if name in doc.get("timings", {}):
                doc["timings"][name]["hgrm"] = Path(path).name
    # default=str: ``observed`` holds whatever a check saw (enums, bytes...); NaN is allowed here,
    # unlike in a benchmark result, since nothing computes on it
    store.write_text_atomic(run_dir / "report.json", json.dumps(doc, indent=2, default=str) + "\n")
    store.write_text_atomic(run_dir / "report.md", render_markdown(doc))
    store.write_text_atomic(run_dir / "junit.xml", render_junit(doc))


def build_doc(checks: Sequence[CheckResult], **meta: Any) -> dict[str, Any]:
    """The report.json document from check results and metadata fields."""
    ordered = sorted(checks, key=lambda c: check_sort_key(c.id, c.case))
    return {"schema_version": SCHEMA_VERSION, "kind": "kbench-conformance", **meta,
            "counts": count_verdicts(ordered), "checks": [asdict(c) for c in ordered]}


def load_report(path: Path) -> dict[str, Any]:
    """Load a report.json (or the run directory holding one); refuses unknown schema versions."""
    if path.is_dir():
        path = path / "report.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultError(f"{path}: cannot read conformance report: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "kbench-conformance":
        raise ResultError(f"{path}: not a kbench conformance report")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ResultError(f"{path}: conformance report schema_version {doc.get('schema_version')!r} "
                          f"is not supported (this kbench reads {SCHEMA_VERSION})")
    return doc


def _broker_label(doc: Mapping[str, Any]) -> str:
    b = doc.get("broker", {})
    return " ".join(x for x in (b.get("implementation"), b.get("version")) if x) or str(b.get("bootstrap"))


def _clients(doc: Mapping[str, Any]) -> list[str]:
    """The clients of a report's verdicts: librdkafka first, then the others in name order."""
    found = {str(c.get("client", DEFAULT_CLIENT)) for c in doc.get("checks", [])} or {DEFAULT_CLIENT}
    return sorted(found, key=lambda n: (n != DEFAULT_CLIENT, n))


def _doc_labels(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each report's broker label. Reports of one broker whose clients do not overlap (e.g. the CI gate's
    librdkafka/java/franz-go run and a sarama/kafka-go one against the same Kafka version) share it, so their
    columns sit side by side; a report that repeats a client of that broker gets ``#2``, ``#3``…"""
    taken: dict[str, set[str]] = {}
    labels = []
    for d in docs:
        base, n, clients = _broker_label(d), 2, set(_clients(d))
        label = base
        while label in taken and taken[label] & clients:
            label, n = f"{base} #{n}", n + 1
        taken.setdefault(label, set()).update(clients)
        labels.append(label)
    return labels


def matrix(report_paths: Sequence[Path]) -> str:
    """One markdown table: rows = checks (ID, semantic, case), columns = broker × client, cells = verdicts;
    the last rows count each column's verdicts ("—": that client did not run the check)."""
    docs = [load_report(Path(p)) for p in report_paths]
    if not docs:
        raise ResultError("matrix: no report given")
    labels = _doc_labels(docs)
    per_client = any(_clients(d) != [DEFAULT_CLIENT] for d in docs)   # else one column per broker
    columns: list[tuple[str, str]] = []              # (broker label, client), in the reports' order
    for label, d in zip(labels, docs, strict=True):
        columns += [(label, c) for c in _clients(d) if (label, c) not in columns]
    rows: dict[tuple[str, str], str] = {}
    cells: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
    for label, doc in zip(labels, docs, strict=True):
        for c in doc.get("checks", []):
            key = (c["id"], c.get("case", ""))
            rows.setdefault(key, c.get("title", ""))
            cells.setdefault(key, {})[(label, str(c.get("client", DEFAULT_CLIENT)))] = c["verdict"]
    heads = [f"{b} · {c}" if per_client else b for b, c in columns]
    lines = ["| ID | semantic | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(columns)]
    for key in sorted(rows, key=lambda k: check_sort_key(*k)):
        label = f"{key[0]} ({key[1]})" if key[1] else key[0]
        verdicts = [cells[key].get(col, "—") for col in columns]
        lines.append(f"| {label} | {_cell(rows[key], 60)} | " + " | ".join(verdicts) + " |")
    for verdict in VERDICTS:
        counts = [sum(1 for k in rows if cells[k].get(col) == verdict) for col in columns]
        lines.append(f"| **{verdict}** | | " + " | ".join(str(n) for n in counts) + " |")
    return "\n".join(lines) + "\n"
