"""Knee search: the highest offered rate (open loop) one cell sustains within a p99 latency SLO.

The search is a pure function of the steps measured so far (:func:`plan_next`), driven by the runner's
adaptive mode (``execute(..., next_cell=KneeSearch(...))``): every step is an ordinary cell of the
result document, and the decisions live in the document's root ``search`` record::

    search: {spec: {...}, cell: {index, label}, status, steps: [{index, phase, rate, good, reasons,
             achieved_msgs_per_s, achieved_lcb, per_second_stdev, samples, mb_per_s, p99_ms: {...}}],
             knee: {rate, upper, resolution_pct, runs, achieved_msgs_per_s, mb_per_s, p99_ms, noise_pct,
                    noise_range: {estimate, range, sd_log, p99_noise_pct, pairs, curve}},
             notes: [...]}

Phases: ``ramp`` (start_rate x factor … up to max_rate), ``down`` (only if the first step already
failed), ``refine`` (bisection between the best good and the lowest bad rate), ``confirm`` (the best
good rate again), ``recheck`` (with ``confirm`` >= 1, the lowest bad rate once more, last: it measures
the run-to-run noise on the bad side of the boundary for :func:`knee_noise`), ``prime`` (the first step,
at start_rate, warms the broker's JVM, caches and connections and is not counted), ``retry`` (a failure
that may not be the load's is run once more: noise only — unstable per-second samples or one isolated
second over the SLO — in any phase, or, in the ramp, a slow step that still kept up on average; a step
that fell behind is never retried). A rate is good only if *every* counted run at it was good (a retried
transient failure is the only run not counted); good rates above the lowest bad rate are ignored (and
noted), so one lucky step cannot raise the knee.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from bench.capacity.host import HostProbe, contention_note
from bench.capacity.spec import SearchSpec
from bench.report.data import series_of
from bench.results.model import CellDocument
from bench.run.events import RunEvents
from bench.run.execute import RunOptions, RunOutcome, execute
from bench.scenario.model import Cell, Scenario

__all__ = ["KneeSearch", "effective_steps", "judge_step", "knee_noise", "lower_bound", "plan_next", "run_search",
           "summarize_search"]

def lower_bound(samples: Sequence[float]) -> float | None:
    """One-sided 95 % lower confidence bound of the mean (Student t, ``scipy.stats.t.ppf``); None below
    2 samples.

    Per-second samples of an open-loop run are not independent (a stall is followed by a catch-up),
    so this is a stability screen, not an exact interval: it fails a step whose seconds disagree."""
    n = len(samples)
    if n < 2:
        return None
    from scipy.stats import t  # here, not at the top: scipy.stats adds 0.5 s to every import of this module

    return statistics.fmean(samples) - float(t.ppf(0.95, n - 1)) * statistics.stdev(samples) / math.sqrt(n)


def _p99(cell: CellDocument, metric: str) -> float | None:
    lat = (cell.get("latency") or {}).get(metric) or {}
    value = lat.get("p99_ms")
    return float(value) if value is not None else None


def _rate_check(values: list[float], fallback: float, need: float, spec: SearchSpec,
                who: str) -> tuple[float, float | None, str | None, bool]:
    """(achieved, lower bound, reason or None, whether the failure is only noise: the mean kept up)."""
    achieved = statistics.fmean(values) if values else fallback
    lcb = lower_bound(values)
    if achieved < need:
        bound = f" (95% lower bound {lcb:,.0f})" if lcb is not None else ""
        why = f"{who} {achieved:,.0f} msg/s{bound} < {spec.achieved_ratio:g} x offered = {need:,.0f}"
        return achieved, lcb, why, False
    if spec.noise_check:
        if lcb is None:
            return achieved, lcb, f"{who}: too few per-second samples ({len(values)}) for the noise check", False
        if lcb < need:
            return achieved, lcb, (f"{who} unstable: mean {achieved:,.0f} msg/s but 95% lower bound {lcb:,.0f} < "
                                   f"{spec.achieved_ratio:g} x offered = {need:,.0f}"), True
    return achieved, lcb, None, True


def _seconds_over(cell: CellDocument, spec: SearchSpec) -> tuple[int, int] | None:
    """(seconds whose p99 exceeded the SLO, seconds with latencies) from the per-second series."""
    series = series_of(cell, "produce" if spec.metric == "publish" else "consume") or {}
    p99s = [v for v in series.get("p99_us") or [] if v is not None]
    if len(p99s) < 3:
        return None
    return sum(1 for v in p99s if v / 1000 > spec.p99_ms), len(p99s)


def judge_step(cell: CellDocument, spec: SearchSpec) -> dict[str, Any]:
    """Decide whether one step (a cell document) sustained its offered rate within the SLO.

    Achieved throughput is the mean of the whole per-second samples *inside* the measurement window
    (acks that arrive while the producer flushes after the window are not counted as throughput)."""
    offered = float(cell["workload"]["rate"])
    prod = cell.get("produce") or {}
    ps = prod.get("per_second") or {}
    values = [float(v) for v in ps.get("values") or []]
    need = spec.achieved_ratio * offered
    reasons: list[str] = []
    behind = False   # did not keep up on average: incomplete, errors, achieved or consumed mean too low
    if not cell.get("complete"):
        reasons.append(f"incomplete: {cell.get('incomplete_reason')}")
        behind = True
    errors = int((cell.get("errors") or {}).get("total") or 0)
    if errors:
        reasons.append(f"{errors} error(s)")
        behind = True
    achieved, lcb, why, noise_only = _rate_check(values, float(prod.get("msgs_per_s") or 0.0), need, spec, "achieved")
    if why:
        reasons.append(why)
        behind = behind or not noise_only
    cons = cell.get("consume") or {}
    groups = int(cons.get("groups") or 0)
    if groups:
        # consumers fetch in bursts, so their per-second counts are noisy by design: the mean must keep up
        # (lag shows in e2e latency anyway)
        cvals = [float(v) / groups for v in (cons.get("per_second") or {}).get("values") or []]
        consumed = statistics.fmean(cvals) if cvals else float(cons.get("msgs_per_s") or 0.0) / groups
        if consumed < need:
            reasons.append(f"consumed {consumed:,.0f} msg/s per group < {spec.achieved_ratio:g} x offered "
                           f"= {need:,.0f}")
            behind = True
    p99 = _p99(cell, spec.metric)
    slow = False     # over the SLO in more than one second
    if p99 is None:
        reasons.append(f"no {spec.metric} latency measured")
        behind = True
    elif p99 > spec.p99_ms:
        over = _seconds_over(cell, spec)
        slow = over is None or over[0] > 1
        reasons.append(f"{spec.metric} p99 {p99:,.1f} ms > SLO {spec.p99_ms:g} ms"
                       + (f" (in {over[0]} of {over[1]} seconds)" if over else ""))
    # transient: it kept up on average, and failed only on unstable seconds or one isolated latency spike
    transient = bool(reasons) and not behind and not slow
    messages, nbytes = int(prod.get("messages") or 0), int(prod.get("bytes") or 0)
    mean_size = nbytes / messages if messages else float(cell["workload"]["message_size"].get("max") or 0)
    return {
        "index": cell.get("index"), "rate": offered, "good": not reasons, "reasons": reasons, "transient": transient,
        "kept_up": not behind,
        "achieved_msgs_per_s": achieved, "achieved_lcb": lcb,
        "per_second_stdev": statistics.stdev(values) if len(values) > 1 else None, "samples": len(values),
        "mb_per_s": achieved * mean_size / 1e6, "mean_message_bytes": mean_size,
        "p99_ms": {m: _p99(cell, m) for m in ("publish", "e2e", "service", "send_delay")},
    }


def _retryable(step: dict[str, Any]) -> bool:
    """Failed, but possibly not because of the load: while other processes loaded the host
    (``contended``, any phase, also a retry); noise only (``transient``); or, in the ramp, kept up on
    average but slow — one false "bad" there would cap the whole search."""
    if step["good"] or step.get("phase") == "prime":
        return False
    if step.get("contended"):
        return True
    if step.get("phase") == "retry":
        return False
    return bool(step.get("transient")) or (bool(step.get("kept_up")) and step.get("phase") in ("ramp", "down"))


def effective_steps(steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps that count: not the priming step, and not a retryable failure (see :func:`_retryable`)
    whose retry right after it, at the same rate, was good — or that was contended (its evidence is
    void: the retry's verdict stands alone)."""
    out = []
    for i, s in enumerate(steps):
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        excused = (_retryable(s) and nxt is not None and nxt.get("phase") == "retry" and nxt["rate"] == s["rate"]
                   and (nxt["good"] or bool(s.get("contended"))))
        if not excused and s.get("phase") != "prime":
            out.append(s)
    return out


def _verdicts(steps: Sequence[dict[str, Any]]) -> tuple[dict[float, bool], float | None, float | None]:
    """Per-rate verdict (good only if all counted runs good), the lowest bad rate, the best good rate below it."""
    verdict: dict[float, bool] = {}
    for s in effective_steps(steps):
        verdict[s["rate"]] = verdict.get(s["rate"], True) and bool(s["good"])
    bad = [r for r, ok in verdict.items() if not ok]
    hi = min(bad) if bad else None
    lo = max((r for r, ok in verdict.items() if ok and (hi is None or r < hi)), default=None)
    return verdict, lo, hi


def plan_next(spec: SearchSpec, steps: Sequence[dict[str, Any]]) -> tuple[float, str] | None:
    """The next (rate, phase) to measure given the judged steps so far, or None when the search is over.

    Never more than ``spec.max_steps`` steps. Bisection goes on until the interval between the best good
    and the lowest bad rate is as narrow as ``refine`` halvings of one ramp step (:meth:`SearchSpec.resolution`)
    — also after a failed confirmation widened it again — or 1 %; the steps needed to repeat the knee
    ``confirm`` times are kept in reserve."""
    n = len(steps)
    if n >= spec.max_steps:
        return None
    if n == 0 and spec.prime:
        return spec.start_rate, "prime"
    counted = effective_steps(steps)
    if not counted and not (steps and _retryable(steps[-1])):
        return spec.start_rate, "ramp"
    if spec.retry_transient and _retryable(steps[-1]):
        return steps[-1]["rate"], "retry"
    _, lo, hi = _verdicts(steps)
    runs_lo = sum(1 for s in counted if s["rate"] == lo)
    confirm_left = max(0, 1 + spec.confirm - runs_lo) if lo is not None else 0
    budget = spec.max_steps - n
    if hi is None:  # every rate so far was good: keep ramping
        assert lo is not None
        if lo < spec.max_rate:
            return spec.up(lo), "ramp"
        return (lo, "confirm") if confirm_left else None
    if lo is None:  # even the lowest rate failed: step down
        nxt = spec.down(min(s["rate"] for s in counted))
        return (nxt, "down") if nxt >= spec.min_rate else None
    mid = float(round((lo + hi) / 2))
    narrow = hi - lo <= max(1.0, 0.01 * lo, spec.resolution(lo)) or mid in (lo, hi)
    if not narrow and budget > confirm_left:
        return mid, "refine"
    if confirm_left:
        return lo, "confirm"
    # with the knee confirmed, run the first bad rate once more: the noise is measured on both sides of
    # the boundary (knee_noise); its verdict cannot raise the knee (a rate is good only if every run was)
    if spec.confirm and sum(1 for s in counted if s["rate"] == hi) < 2 and \
            not any(s.get("phase") == "recheck" for s in steps):
        return hi, "recheck"
    return None


def _isotonic(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    """Non-decreasing least-squares fit of ys over increasing xs (pool adjacent violators; equal xs
    pooled first): [(x, fitted y)], one point per distinct x."""
    blocks: list[list[float]] = []  # [x, sum_y, n] per distinct x, then merged while decreasing
    for x, y in sorted(zip(xs, ys, strict=True)):
        if blocks and blocks[-1][0] == x:
            blocks[-1][1] += y
            blocks[-1][2] += 1
        else:
            blocks.append([x, y, 1])
    pools: list[list[Any]] = []      # [xs, sum_y, n]
    for x, sy, n in blocks:
        pools.append([[x], sy, n])
        while len(pools) > 1 and pools[-2][1] / pools[-2][2] > pools[-1][1] / pools[-1][2]:
            last = pools.pop()
            pools[-1][0] += last[0]
            pools[-1][1] += last[1]
            pools[-1][2] += last[2]
    return [(x, sy / n) for xs_, sy, n in pools for x in xs_]


def _crossing(curve: Sequence[tuple[float, float]], level: float) -> float | None:
    """The first x where the piecewise-linear curve reaches ``level`` (None if it never does)."""
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if y0 < level <= y1:
            return x0 + (level - y0) / (y1 - y0) * (x1 - x0)
    if curve and curve[0][1] >= level:
        return curve[0][0]
    return None


def knee_noise(spec: SearchSpec, steps: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The knee as a measured *range*, not a point: how far the SLO crossing can move given the noise of
    p99 between repeated runs at the same rate.

    * ``sd_log``: pooled standard deviation of ln(p99) between runs at the same rate (the confirmation
      and retries provide the pairs; a failure excused by its retry counts here: it *is* the noise) —
      run-to-run noise, which is what moves a knee between searches;
    * ``curve``: a non-decreasing fit of ln(p99) over rate (steps that fell behind count as infinitely
      slow), so one noisy step cannot fold the curve;
    * ``estimate``: where the fitted curve crosses the SLO; ``range``: where it crosses SLO x e^(∓2 sd),
      i.e. the rates at which a run is within 2 sd of the SLO — a repeated search lands anywhere in it.

    None without a repeated rate (no noise measured) or without a failing rate above a passing one."""
    # every run is evidence here, also a failure excused by its retry (that is noise); not the priming step,
    # nor a run while other processes loaded the host
    runs = [s for s in steps if s.get("phase") != "prime" and not s.get("contended")
            and (s["p99_ms"].get(spec.metric) is not None or not s.get("kept_up", True))]
    slo = math.log(spec.p99_ms)
    big = slo + 10.0   # "fell behind": latency grows without bound in an open loop
    pts = [(s["rate"], big if not s.get("kept_up", True) else math.log(max(s["p99_ms"][spec.metric], 1e-3)))
           for s in runs]
    by_rate: dict[float, list[float]] = {}
    for r, y in pts:
        by_rate.setdefault(r, []).append(y)
    groups = [ys for ys in by_rate.values() if len(ys) > 1 and max(ys) < big]
    dof = sum(len(ys) - 1 for ys in groups)
    if not dof:
        return None
    sd = math.sqrt(sum(sum((y - statistics.fmean(ys)) ** 2 for y in ys) for ys in groups) / dof)
    curve = _isotonic([r for r, _ in pts], [y for _, y in pts])
    est = _crossing(curve, slo)
    if est is None or curve[0][1] >= slo:
        return None
    lo = _crossing(curve, slo - 2 * sd)
    hi = _crossing(curve, slo + 2 * sd)
    return {"sd_log": sd, "p99_noise_pct": (math.exp(sd) - 1) * 100, "pairs": dof, "estimate": est,
            "range": [lo if lo is not None else curve[0][0], hi if hi is not None else curve[-1][0]],
            "curve": [[x, math.exp(y) if y < big else None] for x, y in curve]}


def summarize_search(spec: SearchSpec, steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Status, knee and notes of a (finished or partial) search."""
    verdict, lo, hi = _verdicts(steps)
    notes: list[str] = []
    above = sorted(r for r, ok in verdict.items() if ok and hi is not None and r > hi)
    if above:
        notes.append(f"good rate(s) above the lowest bad rate {hi:,.0f} ignored (non-monotone, noisy system): "
                     + ", ".join(f"{r:,.0f}" for r in above))
    counted = effective_steps(steps)
    if not counted:
        return {"status": "not run", "knee": None, "notes": notes}
    if lo is None:
        notes.append(f"no rate down to {min(verdict):,.0f} msg/s was sustainable within the SLO")
        return {"status": "no sustainable rate", "knee": None, "notes": notes}
    excused = len([s for s in steps if s.get("phase") != "prime"]) - len(counted)
    if excused:
        notes.append(f"{excused} failed run(s) passed when retried at the same rate and were not counted "
                     "(noise, or a slow ramp step while keeping up)")
    runs = [s for s in counted if s["rate"] == lo]
    if hi is None:
        status = "above max_rate" if lo >= spec.max_rate else "budget exhausted in the ramp"
        notes.append(f"no bad step up to {lo:,.0f} msg/s: the knee is at least this (raise search.max_rate)"
                     if lo >= spec.max_rate else "the step budget ran out before any step failed: raise max_steps")
    elif len(runs) < 1 + spec.confirm:
        status = "unconfirmed"
        notes.append("the step budget ran out before the knee was repeated: raise search.max_steps")
    else:
        status = "converged"
    achieved = [s["achieved_msgs_per_s"] for s in runs]
    noise = [s["per_second_stdev"] / s["achieved_msgs_per_s"] * 100 for s in runs
             if s.get("per_second_stdev") is not None and s["achieved_msgs_per_s"]]
    p99s = [s["p99_ms"][spec.metric] for s in runs if s["p99_ms"].get(spec.metric) is not None]
    knee = {
        "rate": lo, "upper": hi, "resolution_pct": (hi - lo) / lo * 100 if hi is not None else None,
        "runs": [s["index"] for s in runs], "achieved_msgs_per_s": statistics.fmean(achieved),
        "achieved_runs": achieved, "mb_per_s": statistics.fmean(s["mb_per_s"] for s in runs),
        "p99_ms": max(p99s) if p99s else None, "noise_pct": max(noise) if noise else None,
        "target_resolution_pct": spec.resolution(lo) / lo * 100,
    }
    noise_range = knee_noise(spec, steps)
    if noise_range is not None:
        knee["noise_range"] = noise_range
        a, b = noise_range["range"]
        notes.append(f"run-to-run noise of p99 at repeated rates: ±{noise_range['p99_noise_pct']:.0f}% (1 sd, "
                     f"{noise_range['pairs']} repeat(s)); the SLO crossing is at {noise_range['estimate']:,.0f} "
                     f"msg/s and within 2 sd anywhere in [{a:,.0f}, {b:,.0f}] msg/s: another search is expected "
                     "to find its knee in that range")
    fails = [s["rate"] for s in counted if not s["good"]]
    passes = [s["rate"] for s in counted if s["good"]]
    if fails and passes and min(fails) < max(passes):
        knee["zone"] = [min(fails), max(passes)]
        notes.append(f"verdicts were not monotone in rate between {min(fails):,.0f} and {max(passes):,.0f} msg/s "
                     "(a rate failed below one that passed): the knee is a transition zone, not a point, and "
                     "repeated searches land anywhere near it; longer steps (step_duration) narrow it")
    if hi is not None and hi - lo > max(1.0, 0.01 * lo, spec.resolution(lo)) and round((lo + hi) / 2) not in (lo, hi):
        notes.append(f"the step budget ran out before the bracket [{lo:,.0f}, {hi:,.0f}) reached the target "
                     f"resolution ({knee['target_resolution_pct']:.1f}%): raise search.max_steps")
    return {"status": status, "knee": knee, "notes": notes}


class KneeSearch:
    """The runner's ``next_cell`` callback: judges each finished step, records it, plans the next."""

    def __init__(self, spec: SearchSpec, base: Cell, record: dict[str, Any] | None = None,
                 probe: HostProbe | None = None, track_contention: bool = True) -> None:
        self.spec, self.base, self.probe, self.track = spec, base, probe, track_contention
        self.record = record if record is not None else {}
        self.record.update({"spec": spec.as_dict(), "cell": {"index": base.index, "label": base.label()},
                            "status": "running", "steps": [], "knee": None, "notes": []})
        self._phases: list[str] = []
        self._gates: list[dict[str, float]] = []
        if probe is not None and not track_contention:
            self.record["notes"].append("the broker runs on this host but its process could not be identified: "
                                        "CPU contention is recorded per step but neither gated nor retried")

    def __call__(self, cells: list[CellDocument]) -> Cell | None:
        steps: list[dict[str, Any]] = self.record["steps"]
        for i in range(len(steps), len(cells)):
            step = {"phase": self._phases[i], **judge_step(cells[i], self.spec)}
            if self.probe is not None and i == len(cells) - 1:
                host = {**self.probe.sample(), **self._gates[i]}
                step["host"] = host
                step["contended"] = self.track and \
                    host["other_cores"] > self.spec.max_other_cpu_pct / 100 * host["cpus"]
            steps.append(step)
        nxt = plan_next(self.spec, steps)
        if nxt is None:
            notes = self.record["notes"]
            self.record.update(summarize_search(self.spec, steps))
            self.record["notes"] = [*notes, *self.record["notes"]]
            note = contention_note(steps)
            if note:
                self.record["notes"].append(note)
            return None
        rate, phase = nxt
        self._phases.append(phase)
        last = steps[-1] if steps else None
        if last is not None and not last["good"] and not last.get("transient") and self.spec.cooldown_s:
            time.sleep(self.spec.cooldown_s)   # let the broker settle after an overload (log flush, deletes)
        gate: dict[str, float] = {}
        if self.probe is not None:
            if self.track and self.spec.quiet_wait_s > 0:   # wait (bounded) for other people's load to pass
                limit = self.spec.max_other_cpu_pct / 100 * self.probe.cpus
                waited, other = self.probe.wait_quiet(limit, self.spec.quiet_wait_s)
                gate = {"waited_s": round(waited, 1), "other_cores_before": other}
            self.probe.reset()
        self._gates.append(gate)
        w = replace(self.base.workload, rate=rate, duration_s=self.spec.step_duration_s, warmup_s=self.spec.warmup_s)
        return replace(self.base, index=len(cells), workload=w, params=MappingProxyType({"workload.rate": rate}))


def run_search(scenario: Scenario, opts: RunOptions, spec: SearchSpec, cell: Cell, events: RunEvents | None = None,
               broker_pids: Sequence[int] | None = ()) -> RunOutcome:
    """Run the knee search of ``cell``; the result document's cells are the steps, ``search`` the record.
    ``broker_pids``: the broker's processes on this host (not counted as other people's CPU); ``None``
    when the broker is on this host but unidentified: CPU contention is then recorded but not acted on."""
    record: dict[str, Any] = {}
    search = KneeSearch(spec, cell, record, probe=HostProbe(broker_pids or ()),
                        track_contention=broker_pids is not None)
    # a failed step says nothing about capacity, and the steps after it would be chosen from it: stop there
    return execute(scenario, replace(opts, fail_fast=True), events=events, next_cell=search,
                   extra={"search": record})
