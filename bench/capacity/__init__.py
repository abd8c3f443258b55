"""Capacity planning: the knee search (``kbench search``) and the plan (``kbench plan``).

* :mod:`~bench.capacity.spec` validates a scenario's ``search:`` section (:func:`parse_search`);
* :mod:`~bench.capacity.search` judges steps and plans the next rate (:func:`plan_next`, pure) and runs
  the search through the runner's adaptive mode (:func:`run_search`);
* :mod:`~bench.capacity.model` turns result documents into sustainable-throughput points per
  configuration; :mod:`~bench.capacity.plan` does the arithmetic (:func:`compute_plan`, pure);
  :mod:`~bench.capacity.render` writes the markdown/HTML/PNG report (:func:`write_plan`).
"""

from __future__ import annotations

from bench.capacity.host import HostProbe, contention_note, local_broker_pids
from bench.capacity.model import Group, Point, build_groups
from bench.capacity.plan import Plan, compute_plan, parse_headroom
from bench.capacity.render import PlanFiles, write_plan
from bench.capacity.search import (
    KneeSearch,
    judge_step,
    knee_noise,
    lower_bound,
    plan_next,
    run_search,
    summarize_search,
)
from bench.capacity.spec import SearchSpec, parse_search, search_cell

__all__ = ["Group", "HostProbe", "KneeSearch", "Plan", "PlanFiles", "Point", "SearchSpec", "build_groups",
           "compute_plan", "contention_note", "judge_step", "knee_noise", "local_broker_pids", "lower_bound",
           "parse_headroom", "parse_search", "plan_next", "run_search", "search_cell", "summarize_search", "write_plan"]
