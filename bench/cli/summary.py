"""The summary table printed at the end of ``kbench run``: one row per matrix cell."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.report.verification import verification_line
from bench.results.model import CellDocument, RunDocument

__all__ = ["print_summary"]


def _ms(lat: dict[str, Any] | None, key: str) -> str:
    if not lat or lat.get(key) is None:
        return "–"
    return f"{lat[key]:.2f}"


def _steady(cell: CellDocument) -> str:
    steady = (cell.get("steady_state") or {}).get("steady")
    return "?" if steady is None else ("yes" if steady else "NO")


def print_summary(doc: RunDocument, console: Console) -> None:
    scen = doc["scenario"]["name"]
    broker = doc["environment"]["broker"]
    table = Table(title=f"{scen} on {broker.get('kind')} {broker.get('version') or ''}".strip(),
                  title_justify="left")
    for col in ("cell", "produce msg/s", "MB/s", "publish p50 ms", "p99 ms", "p99.9 ms", "e2e p99 ms",
                "consume msg/s", "errors", "offsets", "steady"):
        table.add_column(col, justify="left" if col == "cell" else "right")
    for c in doc["cells"]:
        if c.get("status") == "failed":   # partial numbers, kept in the result, never shown as a result
            table.add_row(escape(c["label"]) + " [red](FAILED)[/red]", *["–"] * 10)
            continue
        lat = c["latency"]
        spread = c["produce"].get("per_second") or {}
        rate = f"{c['produce']['msgs_per_s']:,.0f}"
        if spread.get("stdev") is not None and spread.get("samples", 0) > 1:
            rate += f" ±{spread['stdev']:,.0f}"
        agree = c["check"].get("offsets_agree")
        table.add_row(
            c["label"] + ("" if c["complete"] else " (incomplete)"), rate, f"{c['produce']['mb_per_s']:.2f}",
            _ms(lat["publish"], "p50_ms"), _ms(lat["publish"], "p99_ms"), _ms(lat["publish"], "p99_9_ms"),
            _ms(lat["e2e"], "p99_ms"), f"{c['consume']['msgs_per_s']:,.0f}", str(c["errors"]["total"]),
            "–" if agree is None else ("ok" if agree else "MISMATCH"),
            _steady(c),
        )
    console.print(table)
    sampled = sorted({c["produce"].get("latency_sample", 1) for c in doc["cells"]} - {1})
    if sampled:
        console.print(f"publish latency (rate: max) timed on 1 in {'/'.join(map(str, sampled))} messages "
                      "(workload.latency_sample); counts are exact")
    if any(c["produce"].get("errors_estimated") for c in doc["cells"]):
        console.print("errors marked estimated: failures among untimed messages = N x the sampled failures")
    for f in doc.get("failed_cells") or []:
        reason = " ".join(f["reason"].split())
        console.print(f"[red]failed:[/red] {escape(f['label'])}: {escape(reason)}")
    for c in doc["cells"]:
        st = c.get("steady_state") or {}
        if st.get("steady") is False:
            console.print(f"[yellow]warning:[/yellow] {escape(c['label'])}: {escape(str(st.get('warning')))}")
        verified = verification_line(c)
        if verified:
            console.print(f"{escape(c['label'])}: {escape(verified)}")
    priming = doc.get("priming")
    if priming:
        p99 = priming.get("publish_p99_ms")
        rounds = priming.get("rounds") or []
        trail = " → ".join("–" if r.get("publish_p99_ms") is None else f"{r['publish_p99_ms']:.0f}" for r in rounds)
        how = (f" ({len(rounds)} rounds, publish p99 {trail} ms, "
               + ("settled)" if priming.get("settled") else "[yellow]not settled[/yellow])")) if rounds else ""
        console.print(f"broker primed for {priming['seconds']:g} s before the first cell (not counted){how}: "
                      f"last round {priming['produce_msgs_per_s']:,.0f} msg/s, publish p99 "
                      + ("–" if p99 is None else f"{p99:.1f} ms"))
