"""Write a :class:`~bench.capacity.plan.Plan` as markdown, HTML (chart embedded as base64 PNG) and PNG.

The HTML is a Jinja2 template, ``bench/capacity/templates/plan.html``, rendered with autoescaping on.

Files go into a ``plan/`` folder next to the result: ``plan.md``, ``plan.html``, ``plan.png``; if any of
them exists, the next free number is used (``plan-2.md`` …). Files are created exclusively: nothing
is ever overwritten.
"""

from __future__ import annotations

import base64
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from bench.capacity.plan import Plan
from bench.capacity.search import effective_steps
from bench.errors import ConfigError
from bench.results.model import RunDocument

__all__ = ["PlanFiles", "plan_sections", "render_chart", "render_html", "render_markdown", "write_plan"]

Section = tuple[Any, ...]   # ("h2", text) | ("p", text) | ("ul", [items]) | ("table", headers, rows) | ("chart",)


@dataclass
class PlanFiles:
    markdown: Path
    html: Path
    png: Path


def _f(x: float | None, fmt: str = ",.1f") -> str:
    return "–" if x is None else format(x, fmt)


def _verdict(step: dict[str, Any], counted: set[int]) -> str:
    if step["good"]:
        return "good"
    head = "bad" if id(step) in counted else "not counted (retry passed)"
    return f"{head}: " + "; ".join(step["reasons"])


def plan_sections(plan: Plan, doc: RunDocument) -> list[Section]:
    """The report's content, independent of the output format."""
    p, pt = plan, plan.point
    lo, hi = p.brokers_range
    b = p.measured_brokers
    out: list[Section] = [
        ("p", f"**{p.headline()}**"),
        ("h2", "Answer"),
        ("table", ["quantity", "value"], [
            ["target", f"{p.target_mb_per_s:g} MB/s"], ["headroom", f"{p.headroom * 100:g}%"],
            ["plan for (target / (1 - headroom))", f"{p.needed_mb_per_s:.2f} MB/s"],
            ["latency SLO", f"{p.metric} p99 <= {p.p99_ms:g} ms"],
            ["brokers", str(p.brokers)], ["brokers within measured noise", f"{lo}–{hi if hi is not None else '?'}"],
            ["partitions", str(p.partitions)]]),
        ("h2", "Arithmetic"),
        ("ul", [f"measured point: {pt.label} — {pt.mb_per_s:.2f} ± {pt.spread_mb_per_s:.2f} MB/s "
                f"({pt.msgs_per_s:,.0f} msg/s) on {pt.partitions} partition(s), {b} broker(s), "
                f"{p.metric} p99 {_f(pt.p99_ms, ',.2f')} ms ({pt.kind})",
                f"per broker = {pt.mb_per_s:.2f} / {b} = {p.per_broker_mb_per_s:.2f} MB/s; "
                f"per partition = {pt.mb_per_s:.2f} / {pt.partitions} = {p.per_partition_mb_per_s:.3f} MB/s",
                f"brokers = max(ceil({p.needed_mb_per_s:.2f} / {p.per_broker_mb_per_s:.2f}), replication factor "
                f"{p.assumptions.get('replication_factor')}) = {p.brokers}",
                f"noise: with {pt.mb_per_s:.2f} ± {pt.spread_mb_per_s:.2f} MB/s the broker count is {lo} to "
                f"{hi if hi is not None else '? (spread >= mean)'}",
                f"partitions = {p.partitions} (smallest count reaching the need on the measured brokers, "
                f"else the measured density of {pt.partitions / b:g} per broker)"]),
        ("h2", "Latency vs load" if plan.group.steps else "Throughput vs partitions"), ("chart",),
    ]
    steps = plan.group.steps
    counted = {id(s) for s in effective_steps(steps)}
    if steps:
        out.append(("table", ["step", "phase", "offered msg/s", "achieved msg/s", "95% lower bound", "MB/s",
                              "publish p99 ms", "e2e p99 ms", "send delay p99 ms", "other cores",
                              f"verdict at {p.p99_ms:g} ms"],
                    [[str(s["index"]), s.get("phase") or "", _f(s["rate"], ",.0f"),
                      _f(s["achieved_msgs_per_s"], ",.0f"), _f(s.get("achieved_lcb"), ",.0f"),
                      _f(s["mb_per_s"], ".2f"), _f(s["p99_ms"].get("publish"), ",.2f"),
                      _f(s["p99_ms"].get("e2e"), ",.2f"), _f(s["p99_ms"].get("send_delay"), ",.2f"),
                      _f((s.get("host") or {}).get("other_cores"), ".1f"),
                      _verdict(s, counted)] for s in steps]))
    out += [("h2", "Measured capacity by configuration"),
            ("table", ["configuration", "cells", "partitions", "kind", "msg/s", "MB/s ± sd", "p99 ms", "used"],
             [[g.key, ",".join(map(str, q.cells)), str(q.partitions), q.kind, _f(q.msgs_per_s, ",.0f"),
               f"{q.mb_per_s:.2f} ± {q.spread_mb_per_s:.2f}", _f(q.p99_ms, ",.2f"),
               "yes" if q.usable else f"no: {q.why}"] for g in p.groups for q in g.points]),
            ("h2", "Assumptions (read from the result)"),
            ("table", ["setting", "value"], [[k, str(v)] for k, v in p.assumptions.items()]),
            ("h2", "Extrapolation"), ("ul", p.extrapolation or ["none: the plan stays within the measured range"]),
            ("h2", "Limits of this measurement"), ("ul", p.limits)]
    if p.notes:
        out += [("h2", "Notes"), ("ul", p.notes)]
    return out


def render_chart(plan: Plan, doc: RunDocument) -> bytes:
    """PNG (matplotlib Agg): latency and achieved rate vs offered rate with the knee marked (search), or
    MB/s vs partitions per configuration (sweep)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    steps = plan.group.steps
    fig = Figure(figsize=(10, 4.2), dpi=100)
    if steps:
        ax1, ax2 = fig.subplots(1, 2)
        pts = sorted(steps, key=lambda s: s["rate"])
        counted = {id(s) for s in effective_steps(steps)}
        kinds = (("good", "o", "tab:green"), ("bad", "x", "tab:red"), ("not counted (prime, retried)", "o", "none"))
        for label, marker, color in kinds:
            sel2 = [s for s in pts if (label[0] == "n") is (id(s) not in counted)
                    and (label[0] == "n" or bool(s["good"]) is (label == "good"))]
            sel = [s for s in sel2 if s["p99_ms"].get(plan.metric) is not None]
            style = {"facecolors": "none", "edgecolors": "grey"} if color == "none" else {"color": color}
            ax1.scatter([s["rate"] for s in sel], [s["p99_ms"][plan.metric] for s in sel], marker=marker,
                        label=label, zorder=3, **style)
            ax2.scatter([s["rate"] for s in sel2], [s["achieved_msgs_per_s"] for s in sel2], marker=marker,
                        zorder=3, **style)
        ax1.axhline(plan.p99_ms, ls="--", color="tab:orange", label=f"SLO {plan.p99_ms:g} ms")
        ax1.set_yscale("log")
        ax1.set_xlabel("offered rate (msg/s, open loop)")
        ax1.set_ylabel(f"{plan.metric} p99 (ms, CO-corrected)")
        top = max(s["rate"] for s in pts)
        ax2.plot([0, top], [0, top], color="grey", lw=0.8, label="achieved = offered")
        ax2.set_xlabel("offered rate (msg/s)")
        ax2.set_ylabel("achieved rate (msg/s, in-window)")
        first = plan.point.cells[0] if plan.point.cells else None
        knee = next((s["rate"] for s in steps if s["index"] == first), None)
        if knee:
            for ax in (ax1, ax2):
                ax.axvline(knee, color="tab:blue", lw=1.2, label=f"knee {knee:,.0f} msg/s")
        ax1.legend(fontsize=8)
        ax2.legend(fontsize=8)
        fig.suptitle(f"knee search: {plan.group.key}", fontsize=10)
    else:
        ax = fig.subplots()
        for g in plan.groups:
            pts2 = sorted(g.points, key=lambda q: q.partitions)
            ax.errorbar([q.partitions for q in pts2], [q.mb_per_s for q in pts2],
                        yerr=[q.spread_mb_per_s for q in pts2], marker="o", capsize=3, label=g.key)
            bad = [q for q in pts2 if not q.usable]
            ax.scatter([q.partitions for q in bad], [q.mb_per_s for q in bad], marker="x", color="tab:red", zorder=3)
        ax.axhline(plan.needed_mb_per_s / max(1, plan.brokers) * plan.measured_brokers, ls="--", color="tab:orange",
                   label="need per measured cluster")
        ax.set_xlabel("partitions")
        ax.set_ylabel("sustained MB/s (± 1 sd per second)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_markdown(sections: list[Section], title: str, png_name: str) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        if s[0] == "h2":
            lines += [f"## {s[1]}", ""]
        elif s[0] == "p":
            lines += [s[1], ""]
        elif s[0] == "ul":
            lines += [f"- {item}" for item in s[1]] + [""]
        elif s[0] == "chart":
            lines += [f"![chart]({png_name})", ""]
        else:
            headers, rows = s[1], s[2]
            lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows] + [""]
    return "\n".join(lines)


@dataclass(frozen=True)
class _Block:
    """One section as ``plan.html`` reads it (``kind``: h2, p, ul, chart or table)."""

    kind: str
    text: str = ""
    bold: bool = False
    items: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def _block(section: Section) -> _Block:
    kind = str(section[0])
    if kind == "h2":
        return _Block(kind, text=str(section[1]))
    if kind == "p":
        text = str(section[1])
        return _Block(kind, text=text.strip("*"), bold=True) if text.startswith("**") else _Block(kind, text=text)
    if kind == "ul":
        return _Block(kind, items=tuple(str(i) for i in section[1]))
    if kind == "chart":
        return _Block(kind)
    return _Block("table", headers=tuple(str(h) for h in section[1]),
                  rows=tuple(tuple(str(c) for c in row) for row in section[2]))


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("bench.capacity", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render_html(sections: list[Section], title: str, png: bytes) -> str:
    """The plan as one HTML page (``bench/capacity/templates/plan.html``, autoescaped), the chart embedded."""
    return _env().get_template("plan.html").render(title=title, blocks=[_block(s) for s in sections],
                                                   png_base64=base64.b64encode(png).decode("ascii"))


def _free_names(folder: Path) -> tuple[Path, Path, Path]:
    for n in range(1, 1000):
        stem = "plan" if n == 1 else f"plan-{n}"
        names = (folder / f"{stem}.md", folder / f"{stem}.html", folder / f"{stem}.png")
        if not any(p.exists() or p.is_symlink() for p in names):
            return names
    raise ConfigError(f"{folder}: 999 plans already; remove some")


def write_plan(plan: Plan, doc: RunDocument, result_file: Path) -> PlanFiles:
    """Write the plan next to the result in ``plan/``; never overwrite (next free number instead)."""
    folder = result_file.parent / "plan"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a directory; kbench will not replace it")
    folder.mkdir(exist_ok=True)
    md_path, html_path, png_path = _free_names(folder)
    title = f"Capacity plan — {(doc.get('scenario') or {}).get('name', 'result')} ({result_file})"
    png = render_chart(plan, doc)
    sections = plan_sections(plan, doc)
    written: list[Path] = []
    try:
        for path, data in ((png_path, png), (md_path, render_markdown(sections, title, png_path.name).encode()),
                           (html_path, render_html(sections, title, png).encode())):
            with open(path, "xb") as f:  # exclusive: fails rather than overwrite a file that appeared meanwhile
                f.write(data)
            written.append(path)
    except FileExistsError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise ConfigError(f"{exc.filename}: appeared while writing the plan; not overwritten, try again") from None
    return PlanFiles(md_path, html_path, png_path)
