"""One validation step for every command that runs a scenario (``kbench run``, ``search``, ``locust``).

:func:`prepare` reads the scenario and checks everything a run needs before anything happens: the
scenario with its ``faults:``, ``search:`` and ``thresholds:`` sections, the client configuration and the
output directory. It has no side effects (it only reads files): no broker, no process, no directory is
started or created. Every problem is a :class:`~bench.errors.ConfigError` (exit 2) naming the file, the
key and what was expected; the commands call it first, then start a broker with what it returned.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bench.errors import ConfigError, ScenarioError
from bench.scenario import source as _yaml

if TYPE_CHECKING:
    from bench.capacity.spec import SearchSpec
    from bench.faults.plan import FaultPlan
    from bench.scenario.model import Cell, Scenario

__all__ = ["Command", "PrepareRequest", "PreparedRun", "check_out_dir", "prepare"]

Command = Literal["run", "search", "locust"]


@dataclass(frozen=True)
class PrepareRequest:
    """What a command was asked to do (its command-line values, not yet checked)."""

    command: Command
    scenario_path: str
    overrides: Sequence[str] = ()
    out: str | None = None
    reports_dir: str = "reports"
    client_config: Mapping[str, str] = field(default_factory=dict)
    bootstrap: str | None = None
    cell: int | None = None            # search / locust: the matrix cell
    repeat: int | None = None          # run: --repeat
    prime_s: float = 0.0               # run: --prime
    netns: bool = False                # run: --netns (the embedded broker's nodes in network namespaces)
    broker: str | None = None          # run: --broker (the embedded kind; default: the scenario's broker:)
    runtime: str | None = None         # --runtime: how the embedded broker runs (default: its kind's first)


@dataclass(frozen=True)
class PreparedRun:
    """A validated run: everything the command needs, before any side effect."""

    command: Command
    scenario: Scenario
    fault_plan: FaultPlan | None
    search_spec: SearchSpec | None     # the scenario's search: section (None when it has none)
    search_cell: Cell | None           # kbench search: the cell searched
    client_config: Mapping[str, str]
    out: Path | None                   # --out, checked: absent or an empty writable directory
    reports_root: Path
    runtime: str | None = None         # --runtime, checked: it can start the broker's kind


def check_out_dir(value: str | None, flag: str = "--out") -> Path | None:
    """``--out`` as a Path, or ConfigError: it must not exist or be an empty directory, and its nearest
    existing ancestor must be a writable directory (so creating it later cannot fail on permissions)."""
    if value is None:
        return None
    if not value.strip():
        raise ConfigError(f"{flag} {value!r}: expected a directory path, got an empty string")
    path = Path(value)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{flag} {path}: is a file; expected a new or empty directory for the run")
        try:
            empty = not any(path.iterdir())
        except OSError as exc:
            raise ConfigError(f"{flag} {path}: cannot list it ({exc.strerror}); expected a new or empty "
                              "directory") from None
        if not empty:
            raise ConfigError(f"{flag} {path}: already exists and is not empty; kbench never overwrites a run "
                              "(expected a new or empty directory)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {path}: is not writable; expected a directory kbench can write to")
        return path
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file; expected a directory path kbench can create")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: parent directory {parent} is not writable; expected a path kbench "
                          "can create")
    return path


def _reports_root(value: str) -> Path:
    """``--reports-dir``: an existing directory or a path under a writable one."""
    root = Path(value)
    probe = root.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--reports-dir {root}: {probe} is a file; expected a directory for run directories")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--reports-dir {root}: {probe} is not writable; expected a directory kbench can write to")
    return root


def _ctx(scenario: Scenario) -> _yaml.Ctx:
    """An error factory with the scenario file's line numbers (key paths only when it cannot be re-read)."""
    from bench.faults.plan import _display_name

    name = _display_name(scenario)
    if scenario.path is None or scenario.source_format != "kbench":
        return _yaml.Ctx(name, {})
    try:
        _, origins = _yaml.compose(_yaml.decode(scenario.path.read_bytes(), name), name)
    except (OSError, ScenarioError):
        origins = {}
    return _yaml.Ctx(name, origins)


def _check_thresholds(scenario: Scenario, ctx: _yaml.Ctx) -> None:
    from bench.run.thresholds import validate_metric

    for i, t in enumerate(scenario.thresholds):
        try:
            validate_metric(t.metric)
        except ScenarioError as exc:
            raise ctx.error(("thresholds", i, "metric"), exc.detail) from None


def _with_repeat(scenario: Scenario, repeat: int | None) -> Scenario:
    if repeat is None:
        return scenario
    from bench.scenario.model import MAX_REPEAT

    if not 1 <= repeat <= MAX_REPEAT:
        raise ConfigError(f"--repeat {repeat}: expected a number of runs per cell from 1 to {MAX_REPEAT}")
    return dataclasses.replace(scenario, repeat=repeat)


def _check_faults(req: PrepareRequest, scenario: Scenario, ctx: _yaml.Ctx) -> FaultPlan | None:
    from bench.faults.plan import validate as validate_faults

    plan = validate_faults(scenario, filename=ctx.filename)
    if plan is None:
        return None
    if req.command != "run":
        raise ctx.error(("faults",), f"faults are only supported by `kbench run`; `kbench {req.command}` cannot "
                                     "inject them (remove the faults: section, or --set faults=[])")
    if req.bootstrap:
        raise ConfigError(f"{ctx.filename}: the scenario has faults:, which need an embedded broker to kill and "
                          "restart (--broker kafka --nodes 3); an external --bootstrap cannot be faulted")
    first_cut = next((a for a in plan.actions if a.cut is not None), None)
    if first_cut is not None and not req.netns:
        raise ScenarioError("partition needs the broker's nodes in network namespaces: run with --broker kafka "
                            "--nodes 3 --netns (as root)", file=first_cut.file, line=first_cut.line,
                            key=f"{first_cut.key}.action")
    first_toxic = next((a for a in plan.actions if a.on_proxy), None)
    if first_toxic is not None and req.netns:
        raise ScenarioError(f"{first_toxic.action} goes through the client proxy, which cannot be combined with "
                            "--netns yet (drop --netns, or this fault)", file=first_toxic.file,
                            line=first_toxic.line, key=f"{first_toxic.key}.action")
    return plan


def _check_netns(req: PrepareRequest, scenario: Scenario, plan: FaultPlan | None) -> None:
    """``--netns``: an embedded kind that can, root and iproute2 (and nft for partitions)."""
    if not req.netns:
        return
    if req.bootstrap:
        raise ConfigError("--netns puts the nodes of an embedded broker in network namespaces; it cannot apply "
                          "to an external --bootstrap")
    from bench.brokers.registry import check_netns

    kind = req.broker or scenario.broker
    if kind is not None:
        check_netns(kind, req.runtime, partitions=plan is not None and plan.needs_netns)


def _check_runtime(req: PrepareRequest, scenario: Scenario, plan: FaultPlan | None) -> None:
    """``--runtime``: an embedded broker of a kind that runtime has, without the client proxy (which needs local
    processes); ``--netns`` with it is :func:`_check_netns`'s (the same check as ``kbench broker up``)."""
    if req.runtime is None:
        return
    if req.bootstrap:
        raise ConfigError("--runtime says how an embedded broker runs; it cannot apply to an external --bootstrap")
    from bench.brokers.registry import check_runtime

    kind = req.broker or scenario.broker
    if kind is not None:
        check_runtime(kind, req.runtime)
    if req.runtime != "process" and plan is not None and plan.needs_proxy:
        raise ConfigError(f"network faults through the client proxy need broker processes, not --runtime {req.runtime}")


def _check_search(req: PrepareRequest, scenario: Scenario) -> tuple[SearchSpec | None, Cell | None]:
    from bench.capacity.spec import parse_search, search_cell

    if req.command == "search":
        cell = search_cell(scenario, req.cell)
        return parse_search(scenario, cell), cell
    if scenario.search is None:
        return None, None
    # run / locust ignore the section, but a broken one is still an error in the file
    index = req.cell if req.cell is not None and 0 <= req.cell < len(scenario.cells) else 0
    return parse_search(scenario, scenario.cells[index], check_cell=False), None


def _check_clients(scenario: Scenario, client_config: Mapping[str, str]) -> None:
    """Every cell's clients can honour its producer / consumer keys (ConfigError naming client and key)."""
    from bench.drivers.registry import check_client_config

    seen: set[tuple[str, str, str | None, tuple[tuple[str, str], ...]]] = set()
    for cell in scenario.cells:
        for role, client, conf in (("producer", cell.client, cell.producer), ("consumer", cell.consumer_client,
                                                                               cell.consumer)):
            merged = {**client_config, **conf}
            key = (role, client, cell.client_version, tuple(sorted(merged.items())))
            if key in seen:
                continue
            seen.add(key)
            try:
                check_client_config(client, role, merged, cell.client_version)
            except ConfigError as exc:
                where = scenario.path or scenario.name
                raise ConfigError(f"{where}: cell {cell.index} ({cell.label()}): {exc}") from None


def _check_transactions(req: PrepareRequest, scenario: Scenario, ctx: _yaml.Ctx) -> None:
    """``workload.transactions`` runs on the process driver's librdkafka workers (``kbench run``, ``search``)."""
    if req.command == "locust" and any(c.workload.transactions is not None for c in scenario.cells):
        raise ctx.error(("workload", "transactions"), "kbench locust does not run transactional workloads (its "
                        "users send no transactions); use kbench run")


def prepare(req: PrepareRequest) -> PreparedRun:
    """Validate everything ``req`` needs; ConfigError / ScenarioError (exit 2) on the first problem.

    No side effects: nothing is started, created or written."""
    from bench.scenario.model import load_scenario

    out = check_out_dir(req.out)
    reports_root = _reports_root(req.reports_dir)
    if req.prime_s < 0:
        raise ConfigError(f"--prime {req.prime_s:g}: expected seconds >= 0 (0 skips priming)")
    scenario = _with_repeat(load_scenario(req.scenario_path, req.overrides), req.repeat)
    ctx = _ctx(scenario)
    _check_thresholds(scenario, ctx)
    _check_clients(scenario, req.client_config)
    _check_transactions(req, scenario, ctx)
    plan = _check_faults(req, scenario, ctx)
    _check_netns(req, scenario, plan)
    _check_runtime(req, scenario, plan)
    spec, cell = _check_search(req, scenario)
    return PreparedRun(command=req.command, scenario=scenario, fault_plan=plan, search_spec=spec, search_cell=cell,
                       client_config=dict(req.client_config), out=out, reports_root=reports_root,
                       runtime=req.runtime)
