"""The ``search:`` section of a scenario, validated strictly into a frozen :class:`SearchSpec`.

The scenario loader keeps ``search:`` raw; this module checks every key (unknown keys, types, ranges,
combinations) and raises :class:`~bench.errors.ScenarioError` naming file, line and dotted key, e.g.
``capacity.yaml:31: search.p99_ms: expected a number > 0 and <= 3.6e+06, got -5``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import ScenarioError
from bench.scenario import source as _yaml
from bench.scenario.model import MAX_RATE, Cell, Scenario, to_plain
from bench.scenario.source import Ctx, KeyPath, show

__all__ = ["SEARCH_KEYS", "SearchSpec", "parse_search", "search_cell"]

SEARCH_KEYS = ("metric", "p99_ms", "start_rate", "max_rate", "min_rate", "step", "refine", "confirm",
               "max_steps", "achieved_ratio", "noise_check", "retry_transient", "cooldown", "prime",
               "max_other_cpu_pct", "quiet_wait", "step_duration", "warmup")
METRICS = ("publish", "e2e")
MIN_NOISE_SAMPLES = 3


@dataclass(frozen=True)
class SearchSpec:
    """How to search the knee of one cell (all rates in messages/s, offered open loop).

    A step is *good* when it had no errors and completed, its p99 (``metric``) is at most ``p99_ms``,
    and the achieved rate (lower confidence bound of the per-second samples when ``noise_check``) is at
    least ``achieved_ratio`` x offered. The ramp multiplies the rate by ``step_factor`` (or adds
    ``step_add``) from ``start_rate`` up to ``max_rate``; after the first bad step, bisection narrows the
    interval between the best good and the lowest bad rate to one ramp step halved ``refine`` times
    (:meth:`resolution`); the best good rate is then
    repeated ``confirm`` times. With ``prime``, a first uncounted step at ``start_rate`` warms the broker.
    A step that kept up on average but failed only on noise (unstable seconds, one isolated second over
    the SLO) — or, in the ramp, was slow while keeping up — is retried once when ``retry_transient``.
    After a step that fell behind, the search pauses ``cooldown_s`` so the broker settles. Before each
    step it waits (at most ``quiet_wait_s``) until other processes use <= ``max_other_cpu_pct`` of the
    CPUs; a failed step during which they used more is *contended*: retried, never counted.
    ``max_steps`` bounds the number of steps (cells) of the whole search, retries included.
    """

    metric: str
    p99_ms: float
    start_rate: float
    max_rate: float
    min_rate: float
    step_factor: float | None
    step_add: float | None
    refine: int
    confirm: int
    max_steps: int
    achieved_ratio: float
    noise_check: bool
    step_duration_s: float
    warmup_s: float
    retry_transient: bool = True
    cooldown_s: float = 5.0
    prime: bool = True
    max_other_cpu_pct: float = 25.0
    quiet_wait_s: float = 30.0

    def up(self, rate: float) -> float:
        """The next ramp rate after ``rate`` (capped at ``max_rate``)."""
        nxt = rate * self.step_factor if self.step_factor is not None else rate + (self.step_add or 0.0)
        return min(self.max_rate, float(round(nxt)))

    def down(self, rate: float) -> float:
        """The next rate below ``rate`` when even the first step failed."""
        nxt = rate / self.step_factor if self.step_factor is not None else rate - (self.step_add or 0.0)
        return float(round(nxt)) if nxt >= 1 else float(round(rate / 2))

    def resolution(self, rate: float) -> float:
        """The bracket width (msg/s) the search refines to near ``rate``: one ramp step halved ``refine`` times."""
        step = rate * (self.step_factor - 1) if self.step_factor is not None else (self.step_add or 0.0)
        return step / 2 ** self.refine

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form, recorded in the result's ``search.spec``."""
        step = {"factor": self.step_factor} if self.step_factor is not None else {"add": self.step_add}
        return {"metric": self.metric, "p99_ms": self.p99_ms, "start_rate": self.start_rate,
                "max_rate": self.max_rate, "min_rate": self.min_rate, "step": step, "refine": self.refine,
                "confirm": self.confirm, "max_steps": self.max_steps, "achieved_ratio": self.achieved_ratio,
                "noise_check": self.noise_check, "retry_transient": self.retry_transient, "cooldown_s": self.cooldown_s,
                "prime": self.prime, "max_other_cpu_pct": self.max_other_cpu_pct, "quiet_wait_s": self.quiet_wait_s,
                "step_duration_s": self.step_duration_s, "warmup_s": self.warmup_s}


def _context(scenario: Scenario) -> Ctx:
    """A Ctx whose errors carry line numbers: the scenario file is composed again for its origins."""
    filename = str(scenario.path) if scenario.path else "<scenario>"
    if scenario.path is None or scenario.source_format != "kbench":
        return Ctx(filename, {})
    try:
        text = _yaml.decode(scenario.path.read_bytes(), filename)
        _, origins = _yaml.compose(text, filename)
    except (OSError, ScenarioError):
        origins = {}
    return Ctx(filename, origins)


def _rate(ctx: Ctx, value: object, path: KeyPath) -> float:
    return float(round(ctx.number(value, path, 1, MAX_RATE, what=f"a rate in messages/s from 1 to {MAX_RATE:g}")))


def parse_search(scenario: Scenario, cell: Cell, *, check_cell: bool = True) -> SearchSpec:
    """Validate ``scenario.search`` for a knee search of ``cell``; ScenarioError on any problem.

    ``check_cell=False`` checks the section alone, not whether ``cell`` can be searched (for the commands
    that do not search, e.g. ``kbench run``, which still reject a broken section)."""
    ctx = _context(scenario)
    if scenario.search is None:
        raise ctx.error((), "no 'search:' section: a knee search needs at least {p99_ms: N} (see docs/capacity.md)")
    raw = to_plain(scenario.search)
    p: KeyPath = ("search",)
    d = ctx.mapping(raw, p, SEARCH_KEYS, what="a mapping {p99_ms: N, start_rate: R, ...}", null_ok=False)

    def at(key: str) -> KeyPath:
        return (*p, key)

    if "p99_ms" not in d:
        raise ctx.error(at("p99_ms"), "required: the latency SLO (p99, milliseconds) the knee is searched at")
    metric = ctx.choice(d.get("metric", "publish"), at("metric"), METRICS)
    p99 = ctx.number(d["p99_ms"], at("p99_ms"), 0, 3_600_000, lo_open=True)
    start = _rate(ctx, d.get("start_rate", 1000), at("start_rate"))
    max_rate = _rate(ctx, d.get("max_rate", max(start, 1_000_000.0)), at("max_rate"))
    if max_rate < start:
        raise ctx.error(at("max_rate"), f"expected max_rate >= start_rate ({start:g}), got {show(d.get('max_rate'))}")
    min_rate = _rate(ctx, d.get("min_rate", max(1.0, round(start / 100))), at("min_rate"))
    if min_rate > start:
        raise ctx.error(at("min_rate"), f"expected min_rate <= start_rate ({start:g}), got {show(d.get('min_rate'))}")
    step = ctx.mapping(d.get("step", {"factor": 1.5}), at("step"), ("factor", "add"),
                       what="{factor: F} (multiply, F > 1) or {add: N} (messages/s)", null_ok=False)
    if len(step) != 1:
        raise ctx.error(at("step"), f"expected exactly one of factor or add, got {len(step)} keys")
    factor = add = None
    if "factor" in step:
        factor = ctx.number(step["factor"], (*at("step"), "factor"), 1, 100, lo_open=True)
        if factor < 1.01:
            raise ctx.error((*at("step"), "factor"), f"expected a factor >= 1.01, got {show(step['factor'])}")
    else:
        add = _rate(ctx, step["add"], (*at("step"), "add"))
    w = cell.workload
    duration = ctx.duration(d.get("step_duration", w.duration_s), at("step_duration"), positive=True, maximum=3600)
    noise_check = ctx.boolean(d.get("noise_check", True), at("noise_check"))
    if noise_check and duration < MIN_NOISE_SAMPLES:
        raise ctx.error(at("step_duration"), f"the noise check needs >= {MIN_NOISE_SAMPLES} per-second samples: "
                                             f"expected a step_duration >= {MIN_NOISE_SAMPLES}s (or noise_check: "
                                             f"false), got {duration:g}s")
    spec = SearchSpec(
        metric=metric, p99_ms=p99, start_rate=start, max_rate=max_rate, min_rate=min_rate,
        step_factor=factor, step_add=add,
        refine=ctx.integer(d.get("refine", 3), at("refine"), 0, 20),
        confirm=ctx.integer(d.get("confirm", 1), at("confirm"), 0, 5),
        max_steps=ctx.integer(d.get("max_steps", 12), at("max_steps"), 1, 100),
        achieved_ratio=ctx.number(d.get("achieved_ratio", 0.95), at("achieved_ratio"), 0, 1, lo_open=True),
        noise_check=noise_check, step_duration_s=duration,
        warmup_s=ctx.duration(d.get("warmup", w.warmup_s), at("warmup"), positive=False, maximum=3600),
        retry_transient=ctx.boolean(d.get("retry_transient", True), at("retry_transient")),
        cooldown_s=ctx.duration(d.get("cooldown", 5.0), at("cooldown"), positive=False, maximum=600),
        prime=ctx.boolean(d.get("prime", True), at("prime")),
        max_other_cpu_pct=ctx.number(d.get("max_other_cpu_pct", 25), at("max_other_cpu_pct"), 0, 100),
        quiet_wait_s=ctx.duration(d.get("quiet_wait", 30.0), at("quiet_wait"), positive=False, maximum=3600),
    )
    if check_cell:
        _check_cell(ctx, spec, cell)
    return spec


def _check_cell(ctx: Ctx, spec: SearchSpec, cell: Cell) -> None:
    w = cell.workload
    if w.producers < 1:
        raise ctx.error(("workload", "producers"), "a knee search offers load: expected producers >= 1")
    if w.backlog is not None:
        raise ctx.error(("workload", "backlog"), "a knee search measures steady state: remove the backlog phase")
    if spec.metric == "e2e" and (w.consumer_groups < 1 or not w.end_to_end):
        raise ctx.error(("search", "metric"), "metric e2e needs consumer_groups >= 1 and end_to_end: true")


def search_cell(scenario: Scenario, index: int | None) -> Cell:
    """The cell to search: ``index`` (``--cell``) or the scenario's first cell."""
    if index is None:
        return scenario.cells[0]
    if not 0 <= index < len(scenario.cells):
        n = len(scenario.cells)
        raise ScenarioError(f"--cell {index}: the scenario has {n} cell(s) (0..{n - 1})",
                            file=str(scenario.path) if scenario.path else None)
    return scenario.cells[index]
