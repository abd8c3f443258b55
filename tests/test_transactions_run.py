"""``kbench run scenarios/transactions.yaml --verify`` on a real embedded Kafka (the session's broker): the
transactional workload comes out clean, with committed and aborted transactions; the aborted records are
really in the log (a read_uncommitted read of the topic, taken next to the run's read_committed final read,
has them) and the checker flags them when they are read as committed, so the clean verdict is not vacuous."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import bench.verify.cell as vcell
from bench.verify.cell import FinalRead, verify_cell
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def _drive(bootstrap: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the shipped scenario (shortened) through the CLI's pipeline; capture the verifier's inputs and a
    read_uncommitted read of the topic taken right after the run's own final read."""
    from bench.run.prepare import PrepareRequest, prepare
    from bench.run.session import Session, run_prepared

    seen: dict[str, Any] = {}
    real_read, real_verify = vcell.read_topic, vcell.verify_cell

    def read_topic(bootstrap: str, topic: str, conf: Any = None, timeout_s: float = 60.0) -> FinalRead:
        seen["isolation"] = dict(conf or {}).get("isolation.level")
        final = real_read(bootstrap, topic, conf, timeout_s)
        seen["uncommitted"] = real_read(bootstrap, topic, {**(conf or {}), "isolation.level": "read_uncommitted"},
                                        timeout_s)
        return final

    def verify(results: Any, final: FinalRead, **kw: Any) -> dict[str, Any]:
        seen.update(results=results, final=final, kw=kw)
        return real_verify(results, final, **kw)

    monkeypatch.setattr(vcell, "read_topic", read_topic)
    monkeypatch.setattr(vcell, "verify_cell", verify)
    prepared = prepare(PrepareRequest(command="run", scenario_path=str(REPO / "scenarios" / "transactions.yaml"),
                                      overrides=["workload.warmup=1s", "workload.duration=6s"], out=str(out)))
    doc = run_prepared(prepared, Session(bootstrap=bootstrap, verify=True)).document
    return doc, seen


def test_transactional_run_is_clean_and_its_aborted_records_are_caught_if_read(
        tmp_path: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    doc, seen = _drive(kafka_bootstrap, tmp_path / "run", monkeypatch)
    (cell,) = doc["cells"]
    v, tx = cell["verification"], cell["verification"]["transactions"]
    assert doc["complete"] and v["ok"], v["summary"]
    assert tx["committed"] > 0 and tx["aborted"] > 0 and tx["unknown"] == 0 and tx["records_aborted"] > 0
    assert tx["precommitted_reads"] == 0 and {k: n for k, n in tx["anomalies"].items()
                                              if k not in tx["tolerated"]} == dict.fromkeys(
        ("G1c", "int-nonmonotonic-poll", "int-nonmonotonic-send", "int-poll-skip", "precommitted-read"), 0)
    c = v["counts"]
    assert c["lost"] == c["unseen"] == c["duplicated"] == c["unknown"] == 0 and c["acked"] > 1000
    assert c["failed"] == tx["records_aborted"]       # aborted sends: failed, not lost
    check = cell["check"]
    assert check["offsets_agree"] and check["consumed_all"], check   # markers counted, aborted not consumed
    assert check["transactions"]["committed"] == tx["committed"] and seen["isolation"] == "read_committed"

    # the aborted records are in the log: read_uncommitted returns them, read_committed did not
    final, raw = seen["final"], seen["uncommitted"]
    committed_ids = {vid for recs in final.records.values() for _o, vid in recs}
    raw_ids = {vid for recs in raw.records.values() for _o, vid in recs}
    assert len(raw_ids - committed_ids) == tx["records_aborted"]
    # read as if committed, they are precommitted reads: the checker sees what it must
    bad = verify_cell(seen["results"], raw, **seen["kw"])
    assert not bad["ok"] and bad["anomaly_counts"].get("precommitted-read") == tx["records_aborted"]
    # and one committed record missing from every read is lost
    p, recs = next((p, r) for p, r in final.records.items() if len(r) > 2)
    gone = recs[0][1]
    results = {"producer": seen["results"]["producer"], "consumer": {
        j: {**r, "verify": [x for x in r["verify"] if f"{x[2]}:{x[3]}" != gone], "verify_polls": None}
        for j, r in seen["results"]["consumer"].items()}}
    holed = dataclasses.replace(final, records={**final.records, p: recs[1:]})
    lost = verify_cell(results, holed, **seen["kw"])
    assert not lost["ok"] and lost["counts"]["lost"] + lost["counts"]["unseen"] == 1
