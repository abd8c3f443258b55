"""The run's extensions (:class:`bench.run.events.Extension`): fault injection and ``--verify``.

Each is told when a cell's load starts and adds its fields to the cell's entry when the cell ends:
:class:`FaultExtension` runs the ``faults:`` schedule (``faults``), :class:`VerifyExtension` reads the
topic back and checks the history (``verification``). :func:`run_events` composes them, in that order
(the faults are stopped and the cluster restored before the final read), with the broker health check
that does not count nodes taken down on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from bench.errors import ConfigError
from bench.faults.inject import FaultInjector, Lookup, Nodes, Partitions, Toxics, partition_state
from bench.run.events import CellFinished, Extension, LoadStarted, Observer, RunEvents

if TYPE_CHECKING:
    from bench.faults.plan import FaultPlan
    from bench.results.model import CellDocument
    from bench.scenario.model import Cell
    from bench.verify.cell import CellVerifier
    from bench.verify.lost import SegmentLookup

__all__ = ["FaultExtension", "VerifyExtension", "run_events"]


class FaultExtension:
    """Starts a :class:`FaultInjector` for each cell's load; its log becomes the cell's ``faults``."""

    def __init__(self, plan: FaultPlan, handle: Nodes, lookup: Lookup, proxy: Toxics | None = None,
                 network: Partitions | None = None) -> None:
        plan.check_nodes([n.node_id for n in handle.nodes])
        self.plan, self.handle, self.lookup, self.proxy, self.network = plan, handle, lookup, proxy, network
        self.current: FaultInjector | None = None

    def load_started(self, event: LoadStarted) -> None:
        load_s = event.cell.workload.warmup_s + event.cell.workload.duration_s
        self.current = FaultInjector(self.plan, self.handle, event.topic, event.t0_ns, load_s, self.lookup,
                                     proxy=self.proxy, network=self.network).start()

    def cell_finished(self, event: CellFinished) -> CellDocument:
        return {"faults": self.current.stop()} if self.current is not None else {}

    def cell_aborted(self, cell: Cell, topic: str) -> None:
        if self.current is not None:
            self.current.stop()

    def broker_alive(self) -> bool:
        """Every node is up, except those the injector took down on purpose."""
        down = self.current.down_indexes() if self.current is not None else set()
        up = set(self.handle.alive_nodes())
        return all(n.node_id in up for i, n in enumerate(self.handle.nodes) if i not in down)


class VerifyExtension:
    """``--verify``: the final read and the history check of every cell (:mod:`bench.verify.cell`)."""

    def __init__(self, verifier: CellVerifier, faults: FaultExtension | None) -> None:
        self.verifier, self.faults = verifier, faults

    def load_started(self, event: LoadStarted) -> None:
        injector = self.faults.current if self.faults is not None else None
        self.verifier.load_started(event.cell, event.topic, event.t0_ns, injector)

    def cell_finished(self, event: CellFinished) -> CellDocument:
        results = cast("Mapping[str, Mapping[int, Mapping[str, Any]]]", event.results)
        return cast("CellDocument", self.verifier(event.cell, event.topic, results))

    def cell_aborted(self, cell: Cell, topic: str) -> None:
        return None


def _segment_lookup(handle: Nodes | None) -> SegmentLookup | None:
    """The lost-write lookup on the disks of an embedded broker's nodes (None: an external broker)."""
    if handle is None:
        return None
    from pathlib import Path

    from bench.verify.lost import NodeLogDirs, SegmentLookup
    from bench.verify.segments import read_log_dirs

    nodes = [NodeLogDirs(n.node_id, tuple(read_log_dirs(Path(n.data_dir)))) for n in handle.nodes]
    return SegmentLookup(nodes, kind=str(getattr(handle, "kind", "embedded")))


def run_events(plan: FaultPlan | None, *, handle: Nodes | None, bootstrap: str,
               client_config: Mapping[str, str] | None = None, verify: bool = False,
               alive: Callable[[], bool] | None = None, lookup: Lookup | None = None,
               observers: Sequence[Observer] = (), final_read_timeout_s: float = 60.0,
               proxy: Toxics | None = None, network: Partitions | None = None) -> RunEvents:
    """The events of a run: ``observers``, the faults and verify extensions it needs, and the health check.

    ``plan`` (from :func:`bench.faults.plan.validate`) needs an embedded broker ``handle``, and its
    partitions the ``network`` of a ``--netns`` broker (ConfigError otherwise)."""
    conf = dict(client_config or {})
    extensions: list[Extension] = []
    faults: FaultExtension | None = None
    if plan is not None:
        if handle is None:
            raise ConfigError("the scenario has faults:, which need an embedded broker to kill and restart "
                              "(--broker kafka --nodes 3); an external --bootstrap cannot be faulted")
        if plan.needs_netns and network is None:
            raise ConfigError("the scenario has action: partition, which needs the broker's nodes in network "
                              "namespaces: run it with --broker kafka --nodes 3 --netns")
        faults = FaultExtension(plan, handle, lookup or partition_state(bootstrap, conf), proxy, network)
        extensions.append(faults)
    if verify:
        from bench.verify.cell import CellVerifier

        verifier = CellVerifier(bootstrap, conf, final_read_timeout_s=final_read_timeout_s,
                                segments=_segment_lookup(handle))
        extensions.append(VerifyExtension(verifier, faults))
    return RunEvents(observers=tuple(observers), extensions=tuple(extensions),
                     broker_alive=faults.broker_alive if faults is not None else alive)
