"""A group member's reads, cut at its rebalances, for the one history checker (:mod:`bench.verify.history`).

A protocol v2 driver (docs/drivers.md, "Protocol v2") reports every assignment and revocation with the
number of records it had handed over at that moment (``reads``). :func:`member_polls` cuts the member's
reads at those points into :class:`~bench.verify.history.Poll` runs that carry the generation the client
reported, with ``rebalance_before`` set after each assignment or revocation: within a run the checker judges
every rewind and skip, across a rebalance it allows them (a new owner resumes at the committed offset).
:func:`ownership` turns the events into who held which partition when, for the single-owner check (G1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.drivers.events import Assigned, GroupEvent, Revoked
from bench.verify.history import Poll

__all__ = ["Holding", "member_polls", "overlaps", "ownership"]

Read = Sequence[int]   # (partition, offset, producer, seq), as a consumer's result.verify has them


def _vid(producer: int, seq: int) -> str:
    return f"{producer}:{seq}"    # bench.verify.cell.value_id (not imported: cell pulls in numpy and admin)


def member_polls(name: str, reads: Sequence[Read], events: Iterable[GroupEvent]) -> list[Poll]:
    """``reads`` cut at every assigned/revoked event into polls; each poll has the generation of the
    rebalance before it (None before the first) and ``rebalance_before`` after the first."""
    cuts: list[tuple[int, int | None]] = []       # (reads before the rebalance, generation after it)
    for ev in events:
        if isinstance(ev, (Assigned, Revoked)):
            cuts.append((min(max(ev.reads, 0), len(reads)), ev.generation))
    polls: list[Poll] = []
    start, generation, rebalanced = 0, None, False
    for at, gen in [*cuts, (len(reads), None)]:
        if at > start:
            recs = [(int(p), int(o), _vid(int(prod), int(seq))) for p, o, prod, seq in reads[start:at]]
            polls.append(Poll(name, len(polls), recs, generation=generation, rebalance_before=rebalanced))
            start = at
        if at < len(reads) or gen is not None:
            generation, rebalanced = gen, True
    return polls


@dataclass(frozen=True)
class Holding:
    """``member`` held ``partition`` from ``start_ns`` to ``end_ns`` (None: still held at the cut-off)."""

    member: str
    partition: int
    start_ns: int
    end_ns: int | None


def ownership(member: str, events: Iterable[GroupEvent], until_ns: int | None = None) -> list[Holding]:
    """Every stretch ``member`` held a partition, from its assigned/revoked events before ``until_ns``."""
    held: dict[int, int] = {}
    out: list[Holding] = []
    for ev in events:
        if until_ns is not None and ev.t_ns >= until_ns:
            break
        if isinstance(ev, Assigned):
            for p in ev.partitions:
                held.setdefault(p, ev.t_ns)
        elif isinstance(ev, Revoked):
            for p in ev.partitions:
                if p in held:
                    out.append(Holding(member, p, held.pop(p), ev.t_ns))
    out += [Holding(member, p, t, None) for p, t in sorted(held.items())]
    return out


def overlaps(holdings: Iterable[Holding], limit: int = 20) -> list[str]:
    """Partitions two members held at once (one's stretch began before the other's ended)."""
    by_part: dict[int, list[Holding]] = {}
    for h in holdings:
        by_part.setdefault(h.partition, []).append(h)
    found: list[str] = []
    for p, hs in sorted(by_part.items()):
        hs.sort(key=lambda h: h.start_ns)
        for i, a in enumerate(hs):
            for b in hs[i + 1:]:
                if a.member == b.member or (a.end_ns is not None and b.start_ns >= a.end_ns) or len(found) >= limit:
                    continue
                until = "never revoked" if a.end_ns is None else f"until {a.end_ns}"
                found.append(f"p{p}: {b.member} was assigned it at {b.start_ns} ns while {a.member} held it "
                             f"(since {a.start_ns}, {until})")
    return found
