"""Progress of a run: the cell, phase, live rates and p99 (rich Live on a terminal, plain lines otherwise)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from bench.run.events import CellFailed, CellStarted, PhaseChanged, RunEvent, WorkerStat

__all__ = ["RunProgress"]


class RunProgress:
    """An observer of a run's events (:mod:`bench.run.events`): cell, phase and the workers' once-a-second
    stats, for display."""

    def on_event(self, event: RunEvent) -> None:
        if isinstance(event, CellStarted):
            self.total = event.total
            self.start_cell(event.index, event.label)
        elif isinstance(event, PhaseChanged):
            self.set_phase(event.phase)
        elif isinstance(event, WorkerStat):
            self.stat(event.role, event.index, event.t_s, event.count, event.p99_us, event.total)
        elif isinstance(event, CellFailed):
            self.failed(event)

    def failed(self, event: CellFailed) -> None:
        """A failed cell is always said, even with the display off: the run goes on past it."""
        total = f"/{self.total}" if self.total else ""
        then = "" if event.stops_run else " — the run goes on"
        self.console.print(f"[red]cell {event.index + 1}{total} [{escape(event.label)}] FAILED[/red]: "
                           f"{escape(event.reason)}{then}")

    def __init__(self, total_cells: int = 0, console: Console | None = None, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self.total = total_cells
        self.enabled = enabled
        self.live: Live | None = None
        self.cell = ""
        self.index = 0
        self.phase = ""
        self._last: dict[tuple[str, int], tuple[float, int, Any, int]] = {}
        self._last_line = 0.0
        self._interactive = enabled and self.console.is_terminal and sys.stderr.isatty()

    def start_cell(self, index: int, label: str) -> None:
        self.index, self.cell, self._last = index, label, {}
        self.set_phase("starting")

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        if not self.enabled:
            return
        if self._interactive:
            if self.live is None:
                self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
                self.live.start()
            self.live.update(self._render())
        else:
            total = f"/{self.total}" if self.total else ""
            self.console.print(f"cell {self.index + 1}{total} [{self.cell}]: {phase}", markup=False)

    def stat(self, role: str, index: int, t_s: float, count: int, p99_us: Any, total: int) -> None:
        self._last[(role, index)] = (t_s, count, p99_us, total)
        if not self.enabled:
            return
        if self._interactive and self.live is not None:
            self.live.update(self._render())
        elif time.monotonic() - self._last_line >= 5.0:
            self._last_line = time.monotonic()
            self.console.print("  " + self._line())

    def _rates(self, role: str) -> tuple[int, Any, int]:
        rows = [v for (r, _i), v in self._last.items() if r == role]
        rate = sum(v[1] for v in rows)
        p99s = [v[2] for v in rows if v[2] is not None]
        return rate, (max(p99s) if p99s else None), sum(v[3] for v in rows)

    def _line(self) -> str:
        parts = [self.phase]
        for role, label in (("producer", "produce"), ("consumer", "consume")):
            rate, p99, total = self._rates(role)
            p = f", p99 {p99 / 1000:.1f} ms" if p99 is not None else ""
            parts.append(f"{label} {rate:,} msg/s{p} (total {total:,})")
        return " | ".join(parts)

    def _render(self) -> Table:
        total = f"/{self.total}" if self.total else ""
        table = Table(title=f"kbench — cell {self.index + 1}{total}: {self.cell}", title_justify="left")
        table.add_column("phase")
        table.add_column("produce msg/s", justify="right")
        table.add_column("publish p99 ms", justify="right")
        table.add_column("consume msg/s", justify="right")
        table.add_column("e2e p99 ms", justify="right")
        prate, pp99, _ = self._rates("producer")
        crate, cp99, _ = self._rates("consumer")
        fmt = (lambda v: f"{v / 1000:.2f}" if v is not None else "–")  # noqa: E731
        table.add_row(self.phase, f"{prate:,}", fmt(pp99), f"{crate:,}", fmt(cp99))
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
