"""``kbench run`` from a prepared run to a written result: the one wiring the CLI and the tests share.

:func:`run_prepared` opens the target (an external broker, checked fast, or an embedded one), composes
the run's events (observers, faults, ``--verify``), primes an embedded broker, and executes the scenario
through the driver. The CLI only prepares, calls this and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.drivers.base import Driver
from bench.results.model import RunDocument
from bench.run.events import Observer
from bench.run.execute import RunOptions, RunOutcome, execute
from bench.run.extensions import run_events
from bench.run.prepare import PreparedRun
from bench.run.target import Target, open_target

__all__ = ["Session", "run_prepared"]


@dataclass(frozen=True)
class Session:
    """How to run a prepared scenario (the ``kbench run`` flags other than the scenario's own)."""

    bootstrap: str | None = None          # an external broker, or None for an embedded one
    broker: str | None = None             # the embedded broker's kind (default: the scenario's broker:)
    nodes: int = 1
    netns: bool = False                   # embedded broker only: each node in its own network namespace
    verify: bool = False
    keep_topics: bool = False
    drain_timeout_s: float = 30.0
    prime_s: float = 0.0                  # embedded broker only: the priming run's length (0 skips)
    fail_fast: bool = False               # a failed cell stops the run (default: the other cells still run)
    observers: Sequence[Observer] = ()
    driver: Driver | None = None          # default: the process driver


def run_prepared(prepared: PreparedRun, session: Session, *, say: Callable[[str], None] = lambda _m: None,
                 broker_progress: Callable[[str], None] | None = None) -> RunOutcome:
    """Run ``prepared`` (validated by :func:`bench.run.prepare.prepare`, so nothing here can be a usage error
    but the broker's and the clients'); ``say`` gets one-line announcements (target, priming)."""
    scenario, conf = prepared.scenario, dict(prepared.client_config)
    proxy = prepared.fault_plan is not None and prepared.fault_plan.needs_proxy
    with open_target(session.bootstrap, session.broker or scenario.broker, nodes=session.nodes,
                     client_config=conf, progress=broker_progress, proxy=proxy, netns=session.netns,
                     runtime=prepared.runtime) as target:
        events = run_events(prepared.fault_plan, handle=target.handle, bootstrap=target.bootstrap,
                            client_config=conf, verify=session.verify, alive=target.alive,
                            observers=session.observers, proxy=target.proxy, network=target.network)
        runs = f" x {scenario.repeat} runs" if scenario.repeat > 1 else ""
        say(f"{scenario.name}: {len(scenario.cells)} cell(s){runs} against {target.describe()}")
        opts = RunOptions(bootstrap=target.bootstrap, broker=target.info, reports_root=prepared.reports_root,
                          out=prepared.out, client_config=conf, verify=session.verify,
                          drain_timeout_s=session.drain_timeout_s, keep_topics=session.keep_topics,
                          fail_fast=session.fail_fast)
        extra = _prime(prepared, session, opts, target, say)
        return execute(scenario, opts, session.driver, events, extra=extra)


def _prime(prepared: PreparedRun, session: Session, opts: RunOptions, target: Target,
           say: Callable[[str], None]) -> RunDocument | None:
    if target.handle is None or session.prime_s <= 0:
        return None
    from bench.run.priming import prime_broker

    say(f"priming the embedded broker: the first cell for {session.prime_s:g} s, not counted (--prime 0 to skip)")
    return {"priming": prime_broker(prepared.scenario, opts, session.prime_s, alive=target.alive)}
