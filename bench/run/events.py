"""Typed events of a run, and the two kinds of subscriber.

``execute`` and the drivers emit events; they never format output. An :class:`Observer` sees every
event (the CLI's progress display is one). An :class:`Extension` takes part in each cell: it is told when
load starts and, when the cell ends, returns fields for the cell's entry in the result document (fault
injection adds ``faults``, ``--verify`` adds ``verification``). Both run in the coordinator process.

Events, in the order a cell emits them::

    CellStarted → PhaseChanged* → LoadStarted → (WorkerStat | PhaseChanged)* → CellFinished | CellFailed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bench.drivers.results import Role, WorkerResults
    from bench.results.model import CellDocument
    from bench.scenario.model import Cell

__all__ = ["CellFailed", "CellFinished", "CellStarted", "Extension", "LoadStarted", "Observer", "PhaseChanged",
           "RunEvent", "RunEvents", "WorkerStat"]


@dataclass(frozen=True)
class CellStarted:
    index: int
    label: str
    total: int                 # cells in the run (0: not known in advance, e.g. a search)


@dataclass(frozen=True)
class PhaseChanged:
    phase: str                 # "creating topic …", "consumers joining", "warm-up", "measure", …


@dataclass(frozen=True)
class LoadStarted:
    cell: Cell
    topic: str
    t0_ns: int                 # CLOCK_MONOTONIC: when load starts (warm-up first)


@dataclass(frozen=True)
class WorkerStat:
    """A worker's once-a-second progress (display only: nothing in the result comes from it)."""

    role: Role
    index: int
    t_s: float
    count: int
    p99_us: int | None
    total: int


@dataclass(frozen=True)
class CellFinished:
    cell: Cell
    topic: str
    results: WorkerResults


@dataclass(frozen=True)
class CellFailed:
    """The driver could not finish a cell (its entry is ``status: failed``); ``stops_run``: nothing follows."""

    index: int
    label: str
    reason: str
    stops_run: bool


RunEvent = CellStarted | PhaseChanged | LoadStarted | WorkerStat | CellFinished | CellFailed


class Observer(Protocol):
    def on_event(self, event: RunEvent) -> None: ...


class Extension(Protocol):
    def load_started(self, event: LoadStarted) -> None: ...

    def cell_finished(self, event: CellFinished) -> CellDocument:
        """Fields merged into the cell's entry of the result document (``{}`` for none)."""
        ...

    def cell_aborted(self, cell: Cell, topic: str) -> None:
        """The cell stopped early: release what ``load_started`` started."""
        ...


@dataclass
class RunEvents:
    """Where a run's events go: observers, extensions, and the broker's health check."""

    observers: Sequence[Observer] = ()
    extensions: Sequence[Extension] = ()
    broker_alive: Callable[[], bool] | None = None
    phase: str = field(default="", init=False)

    def emit(self, event: RunEvent) -> None:
        if isinstance(event, PhaseChanged):
            self.phase = event.phase
        for o in self.observers:
            o.on_event(event)

    def set_phase(self, phase: str) -> None:
        self.emit(PhaseChanged(phase))

    def load_started(self, cell: Cell, topic: str, t0_ns: int) -> None:
        event = LoadStarted(cell, topic, t0_ns)
        self.emit(event)
        for ext in self.extensions:
            ext.load_started(event)

    def cell_finished(self, cell: Cell, topic: str, results: WorkerResults) -> CellDocument:
        """Emit CellFinished; the extensions' fields for the cell document, merged in order."""
        event = CellFinished(cell, topic, results)
        self.emit(event)
        fields: CellDocument = {}
        for ext in self.extensions:
            fields.update(ext.cell_finished(event))
        return fields

    def cell_aborted(self, cell: Cell, topic: str) -> None:
        for ext in self.extensions:
            ext.cell_aborted(cell, topic)

    def alive(self) -> bool:
        return self.broker_alive is None or self.broker_alive()
