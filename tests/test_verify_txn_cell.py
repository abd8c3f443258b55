"""A transactional cell's verification (bench/verify/cell.py + cell_txn.py) on synthetic worker data in the
shape the librdkafka workers send (pure): the transactions reach the checker, a clean history passes, and
each injected anomaly is caught."""

from __future__ import annotations

from typing import Any

import pytest

from bench.verify.cell import FinalRead, build_history, value_id, verify_cell
from bench.verify.cell_txn import split_txns
from bench.verify.model import Send

T0 = 1_000_000_000
MS = 1_000_000
# producer 0, partition 0: txn 0 committed (seqs 0-3 at offsets 0-3, marker 4), txn 1 aborted (seqs 4-7 at
# 5-8, marker 9), txn 2 committed (seqs 8-11 at 10-13, marker 14); commit called at 10 ms and 30 ms
TXNS = [(0, "committed", 0, 4, T0 + 10 * MS), (1, "aborted", 4, 8, None), (2, "committed", 8, 12, T0 + 30 * MS)]
OFFSET = {seq: seq if seq < 4 else seq + 1 if seq < 8 else seq + 2 for seq in range(12)}
VISIBLE = [0, 1, 2, 3, 8, 9, 10, 11]


def _results(*, poll_ns: tuple[int, int] = (T0 + 11 * MS, T0 + 31 * MS)) -> dict[str, Any]:
    acks = [(0, OFFSET[s], 0, s, T0 + s * MS) for s in range(12)]
    reads = [(0, OFFSET[s], 0, s) for s in VISIBLE]
    return {"producer": {0: {"verify": {"acks": acks, "failed": [], "unacked_seq_from": None, "sent": 12,
                                        "txns": [list(t) for t in TXNS]}}},
            "consumer": {0: {"verify": reads, "verify_polls": [(0, poll_ns[0]), (4, poll_ns[1])]}}}


def _final(seqs: list[int] = VISIBLE) -> FinalRead:
    return FinalRead(records={0: [(OFFSET[s], value_id(0, s)) for s in seqs]}, low={0: 0}, high={0: 15})


def _verify(results: dict[str, Any], final: FinalRead) -> dict[str, Any]:
    return verify_cell(results, final, t0_ns=T0, load_s=1.0, expect_order=True, allow_duplicates=False)


def test_a_clean_transactional_history_passes_with_its_transactions_counted() -> None:
    v = _verify(_results(), _final())
    assert v["ok"], v["summary"]
    assert v["transactions"] == {
        "committed": 2, "aborted": 1, "unknown": 0, "records": 12, "records_aborted": 4, "precommitted_reads": 0,
        "anomalies": {k: 0 for k in ("G0", "G1c", "int-nonmonotonic-poll", "int-nonmonotonic-send",
                                     "int-poll-skip", "int-send-skip", "precommitted-read")},
        "tolerated": ["G0", "int-send-skip"]}
    c = v["counts"]
    assert (c["acked"], c["failed"], c["lost"], c["unseen"], c["final_read_skips"]) == (8, 4, 0, 0, 0)
    assert c["txns_committed"] == 2 and "transactions committed 2, aborted 1" in v["summary"]


def test_an_aborted_record_in_the_read_committed_final_read_is_a_precommitted_read() -> None:
    v = _verify(_results(), _final(sorted([*VISIBLE, 5])))
    assert not v["ok"] and v["anomaly_counts"] == {"precommitted-read": 1}
    (a,) = v["anomalies"]
    assert a["txn"] == "producer-0/1" and a["value"] == "0:5" and "aborted transaction" in a["message"]


def test_a_poll_returned_before_its_writer_called_commit_is_a_precommitted_read() -> None:
    v = _verify(_results(poll_ns=(T0 + 11 * MS, T0 + 29 * MS)), _final())   # txn 2 called commit at 30 ms
    assert not v["ok"] and v["anomaly_counts"] == {"precommitted-read": 4}
    assert "before transaction producer-0/2 called commit" in v["anomalies"][0]["message"]


def test_a_committed_record_nobody_read_is_lost() -> None:
    results = _results()
    results["consumer"][0]["verify"] = [r for r in results["consumer"][0]["verify"] if r[3] != 9]
    v = _verify(results, _final([s for s in VISIBLE if s != 9]))
    assert not v["ok"] and v["anomaly_counts"] == {"lost-write": 1} and v["counts"]["lost"] == 1


def test_consumer_polls_are_cut_at_batches_with_their_receipt_times() -> None:
    _sends, polls, info, _acks = build_history(_results())
    # the batch at read 4 and the marker-gap at offset 4 -> 10 coincide: two polls, the second after a jump
    assert [(len(q.records), q.t_ns, q.rebalance_before) for q in polls] == [
        (4, T0 + 11 * MS, False), (4, T0 + 31 * MS, True)]
    assert info["consumer_jumps"] == 1


def test_split_txns_moves_each_transactions_sends_into_it() -> None:
    sends = [Send("0", s, value_id(0, s), 0, s) for s in range(12)] + [Send("1", 0, "1:0", 1, 0)]
    plain, txns = split_txns(sends, {0: TXNS})
    assert [s.value for s in plain] == ["1:0"]   # producer 1 sent no transactions
    assert [(t.id, t.outcome, [s.seq for s in t.sends], t.commit_ns) for t in txns] == [
        ("producer-0/0", "committed", [0, 1, 2, 3], T0 + 10 * MS), ("producer-0/1", "aborted", [4, 5, 6, 7], None),
        ("producer-0/2", "committed", [8, 9, 10, 11], T0 + 30 * MS)]
    with pytest.raises(ValueError, match="transaction record"):
        split_txns(sends, {0: [(0, "maybe", 0, 4, None)]})
