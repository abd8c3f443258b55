"""Warm a broker kbench started itself before the first counted cell.

A fresh embedded JVM broker is not its steady state: on this 2-core machine the first smoke run on a new
Kafka gave publish p99 1,166 ms, the next three 13, 10 and 7 ms. So ``kbench run --broker …`` first runs
the scenario's first cell, uncounted, for ``seconds`` (its own topic, no faults, no verification, results
in a temporary directory that is removed), and records what it saw in the result as ``priming``: a
reader can see that the broker was warmed and how cold it was.

A fixed length was not enough under load: with other work on the machine, an 8 s priming cell ended at
publish p99 2,408 ms and the next two counted cells still had p99 ~415 ms (later ones 9-31 ms). So the
priming runs in rounds of ``seconds / 2`` and stops once the broker has *settled*: after at least two
rounds, when the last round's publish p99 is no longer more than 20% below the round before it, or
after :data:`MAX_ROUNDS` rounds (then ``settled`` is false, and the record says so).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import RunAborted
from bench.run.events import RunEvents
from bench.run.execute import RunOptions, execute
from bench.scenario.model import Scenario

__all__ = ["DEFAULT_PRIME_S", "MAX_ROUNDS", "prime_broker", "priming_scenario", "settled"]

DEFAULT_PRIME_S = 8.0
MAX_ROUNDS = 8          # at most 4 x --prime seconds
SETTLE_RATIO = 1.25     # a round more than 20% below the previous one (p99 / 1.25) is still warming


def priming_scenario(scenario: Scenario, seconds: float) -> Scenario:
    """The scenario's first cell for ``seconds`` without warm-up, on a topic of its own, once, no thresholds."""
    first = scenario.cells[0]
    work = dataclasses.replace(first.workload, warmup_s=0.0, duration_s=seconds, backlog=None)
    cell = dataclasses.replace(first, index=0, workload=work, topic=dataclasses.replace(first.topic, name=None))
    return dataclasses.replace(scenario, name=f"{scenario.name}-priming", cells=(cell,), thresholds=(), faults=None,
                               search=None, repeat=1)


def settled(p99s: list[float | None]) -> bool:
    """True when the last round's publish p99 did not improve on the round before by more than 20%."""
    if len(p99s) < 2 or p99s[-1] is None or p99s[-2] is None:
        return False
    return p99s[-1] >= p99s[-2] / SETTLE_RATIO


@dataclass(frozen=True)
class PrimeRound:
    """What one priming round measured."""

    seconds: float
    cell: str
    complete: bool
    produce_msgs_per_s: float
    publish_p99_ms: float | None
    steady: bool | None


def prime_broker(scenario: Scenario, opts: RunOptions, seconds: float = DEFAULT_PRIME_S, *,
                 alive: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run priming rounds until the broker settles; returns the ``priming`` record of the result document."""
    round_scenario = priming_scenario(scenario, seconds / 2)
    rounds: list[PrimeRound] = []
    p99s: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="kbench-priming-") as tmp:
        prime_opts = dataclasses.replace(opts, reports_root=Path(tmp), out=None, verify=False, keep_topics=False,
                                        fail_fast=True)
        while len(rounds) < MAX_ROUNDS:
            rounds.append(_prime_round(round_scenario, prime_opts, alive))
            p99s.append(rounds[-1].publish_p99_ms)
            if not rounds[-1].complete or settled(p99s):
                break
    last = rounds[-1]
    return {"seconds": sum(r.seconds for r in rounds), "cell": last.cell, "complete": last.complete,
            "produce_msgs_per_s": last.produce_msgs_per_s, "publish_p99_ms": last.publish_p99_ms,
            "steady": last.steady, "settled": settled(p99s),
            "rounds": [{"seconds": r.seconds, "produce_msgs_per_s": r.produce_msgs_per_s,
                        "publish_p99_ms": r.publish_p99_ms} for r in rounds]}


def _prime_round(scenario: Scenario, opts: RunOptions, alive: Callable[[], bool] | None) -> PrimeRound:
    try:
        outcome = execute(scenario, opts, events=RunEvents(broker_alive=alive))
    except RunAborted as exc:  # nothing the user asked for was measured yet: say so, keep the exit code
        raise RunAborted(f"stopped while priming the broker, before any cell was measured ({exc})",
                         interrupted=exc.interrupted) from None
    cell = outcome.document["cells"][0]
    publish = cell["latency"].get("publish") or {}
    return PrimeRound(seconds=scenario.cells[0].workload.duration_s, cell=cell["label"],
                      complete=bool(cell["complete"]), produce_msgs_per_s=cell["produce"]["msgs_per_s"],
                      publish_p99_ms=publish.get("p99_ms"), steady=(cell.get("steady_state") or {}).get("steady"))
