"""The scenario that the fault tests (test_faults, test_network_faults) put their ``faults:`` entries into."""

from __future__ import annotations

from bench.faults.plan import FaultPlan, validate
from bench.scenario.model import load_scenario_text

#: a 3-node scenario with 60 s of load (5 s warm-up + 55 s), its ``faults:`` list left open
BASE = """\
name: f
topic: {partitions: 3, replication_factor: 3}
workload: {rate: 100, warmup: 5s, duration: 55s}
faults:
"""
#: :data:`BASE` with 5 s of load and no warm-up, for an injector that runs in real time
SHORT = BASE.replace("duration: 55s", "duration: 5s").replace("warmup: 5s", "warmup: 0s")


def plan_or_none(faults: str, *, base: str = BASE, filename: str = "f.yaml") -> FaultPlan | None:
    """``faults`` (list entries indented under ``faults:``) in ``base``, loaded and validated."""
    return validate(load_scenario_text(base + faults, filename=filename), filename=filename)


def fault_plan(faults: str, *, base: str = BASE, filename: str = "f.yaml") -> FaultPlan:
    """:func:`plan_or_none` for entries that make a plan."""
    plan = plan_or_none(faults, base=base, filename=filename)
    assert plan is not None
    return plan
