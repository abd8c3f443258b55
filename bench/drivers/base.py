"""The driver seam (OMB's driver split): run one cell's workers, return their typed results.

The pipeline (:mod:`bench.run.execute`) owns everything around the load: the topic, the offsets check,
merging the results into the cell document, the extensions (faults, verification). A :class:`Driver`
owns only the workers: start producers and consumers, set the common start ``t0``, run the warm-up and
the window, drain, stop, and return a :class:`CellRun`. It emits :mod:`bench.run.events` (phases, load
started, worker stats) and raises :class:`CellAborted` with what it measured when the cell cannot go on
(and whether that stops the run or only fails the cell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bench.drivers.results import WorkerResults, empty_results

if TYPE_CHECKING:
    from bench.results.model import CellRunDocument
    from bench.run.events import RunEvents
    from bench.scenario.model import Cell

__all__ = ["BacklogDoc", "CellAborted", "CellJob", "CellRun", "Driver", "DriverEnvironment"]


@dataclass(frozen=True)
class CellJob:
    """One run of one cell, as the pipeline hands it to a driver."""

    cell: Cell
    topic: str
    group_prefix: str                       # consumer group g is f"{group_prefix}-g{g}"
    bootstrap: str
    client_config: Mapping[str, str]        # run-wide (SASL/TLS …); the cell's producer/consumer on top
    verify: bool = False
    drain_timeout_s: float = 30.0
    run_dir: Path | None = None             # the run directory, for a driver's own files (Locust's CSV/HTML)


@dataclass
class BacklogDoc:
    build_s: float
    messages: int
    drain_s: float
    caught_up: bool
    drain_msgs_per_s: float | None


def _no_fields() -> CellRunDocument:
    return {}


@dataclass
class CellRun:
    """What a driver measured: the workers' results, their errors, and the driver's warnings."""

    results: WorkerResults = field(default_factory=empty_results)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    backlog: BacklogDoc | None = None
    elapsed_s: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)          # the driver's own checks: added to `check`
    fields: CellRunDocument = field(default_factory=_no_fields)   # the driver's own cell fields (`locust`)


class CellAborted(Exception):
    """The cell stopped early; ``run`` is what was measured.

    Cell-local by default: a worker or driver that died or exited, a worker never ready, a consumer that
    never joined, Locust past its budget or without results. The run marks the cell failed and goes on with
    the next one. ``stops_run``: the failure makes later cells meaningless (the embedded broker died, the
    user stopped the test from the Locust web UI); ``interrupted``: Ctrl-C (it stops the run too).
    ``by_user``: the user stopped the cell (Ctrl-C, the web UI's Stop): incomplete, not failed."""

    def __init__(self, reason: str, run: CellRun | None = None, *, interrupted: bool = False,
                 stops_run: bool = False, by_user: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.run = run
        self.interrupted = interrupted
        self.stops_run = stops_run or interrupted
        self.by_user = by_user or interrupted


@dataclass(frozen=True)
class DriverEnvironment:
    """What a driver adds to the run document's ``environment``: how its workers read time, and its own
    fields (the Locust driver: ``driver: "locust"`` and ``locust: {...}``)."""

    clock: str
    fields: Mapping[str, Any] = field(default_factory=dict)


class Driver(Protocol):
    name: str

    def environment(self) -> DriverEnvironment: ...

    def run_cell(self, job: CellJob, events: RunEvents) -> CellRun: ...
