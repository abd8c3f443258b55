"""Warm a broker kbench started itself before the first counted cell.

A fresh embedded JVM broker is not its steady state: on this 2-core machine the first smoke run on a new
Kafka gave publish p99 1,166 ms, the next three 13, 10 and 7 ms. So ``kbench run --broker …`` first runs
the scenario's first cell, uncounted, for ``seconds`` (its own topic, no faults, no verification, results
in a temporary directory that is removed), and records what it saw in the result as ``priming``: a
reader can see that the broker was warmed and how cold it was.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import RunAborted
from bench.run.events import RunEvents
from bench.run.execute import RunOptions, execute
from bench.scenario.model import Scenario

__all__ = ["DEFAULT_PRIME_S", "prime_broker", "priming_scenario"]

DEFAULT_PRIME_S = 8.0


def priming_scenario(scenario: Scenario, seconds: float) -> Scenario:
    """The scenario's first cell for ``seconds`` without warm-up, on a topic of its own, once, no thresholds."""
    first = scenario.cells[0]
    work = dataclasses.replace(first.workload, warmup_s=0.0, duration_s=seconds, backlog=None)
    cell = dataclasses.replace(first, index=0, workload=work, topic=dataclasses.replace(first.topic, name=None))
    return dataclasses.replace(scenario, name=f"{scenario.name}-priming", cells=(cell,), thresholds=(), faults=None,
                               search=None, repeat=1)


def prime_broker(scenario: Scenario, opts: RunOptions, seconds: float = DEFAULT_PRIME_S, *,
                 alive: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run the priming cell; returns the ``priming`` record of the result document."""
    with tempfile.TemporaryDirectory(prefix="kbench-priming-") as tmp:
        prime_opts = dataclasses.replace(opts, reports_root=Path(tmp), out=None, verify=False, keep_topics=False)
        try:
            outcome = execute(priming_scenario(scenario, seconds), prime_opts, events=RunEvents(broker_alive=alive))
        except RunAborted as exc:  # nothing the user asked for was measured yet: say so, keep the exit code
            raise RunAborted(f"stopped while priming the broker, before any cell was measured ({exc})",
                             interrupted=exc.interrupted) from None
    cell = outcome.document["cells"][0]
    publish = cell["latency"].get("publish") or {}
    return {"seconds": seconds, "cell": cell["label"], "complete": bool(cell["complete"]),
            "produce_msgs_per_s": cell["produce"]["msgs_per_s"], "publish_p99_ms": publish.get("p99_ms"),
            "steady": (cell.get("steady_state") or {}).get("steady")}
