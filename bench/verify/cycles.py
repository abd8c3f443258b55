"""Dependency cycles between transactions, in the manner of Elle: G0 (write cycles) and G1c
(cyclic information flow).

Vertices are the transactions that were not aborted. Edges (:class:`Dep`), with the version order
of each partition from :func:`bench.verify.txn.version_order`:

- ww ``T1 -> T2``: T2 wrote the next transactional version after T1's in some partition (records
  written outside transactions in between are skipped: they only order T1 before T2 further);
- wr ``T1 -> T2``: T2 read a value T1 wrote;
- rw ``T1 -> T2``: T1's highest read of a partition is the version just before one T2 wrote.

Cycles are searched over ww and wr only: a G0 is a cycle of ww edges; a G1c a cycle of wr edges
(with ``g1c_through_ww``, of ww and wr edges with at least one wr: Adya's definition). By default a
G1c may not pass through ww, as in Jepsen's Kafka checker without ``ww-deps``: Kafka does not
isolate writes, so ``T1 -ww-> T2 -wr-> T1`` (T2 wrote after T1 but committed first, and T1 read it)
is legal, while a wr-only cycle needs someone to read a record before its commit. rw is left out of
the search too: a poll returns a *range* of a partition, so not having read a later version is no
evidence of an anti-dependency (a lagging consumer would make read-only transactions look like
G-single); rw edges are built for :func:`dependencies` callers but cycles needing them (G-single,
G2) are not reported.

One anomaly per strongly connected component: per component of the ww graph, its shortest cycle
(G0); per component of the G1c graph that holds a wr edge, its shortest cycle through one (G1c).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence

from bench.verify.model import Anomaly, AnomalyKind, Dep, HistoryReport, Value
from bench.verify.txn import TxnIndex, VersionOrder, norm

__all__ = ["check_cycles", "dependencies", "shortest_cycle", "strongly_connected"]

Adjacency = dict[str, dict[str, Dep]]

#: how many start vertices / wr edges one component's minimal-cycle search tries.
SEARCH_CAP = 64


def dependencies(index: TxnIndex, vo: VersionOrder) -> list[Dep]:
    """The ww, wr and rw edges between the non-aborted transactions (one per pair and kind)."""
    order = [tid for tid, t in index.txns.items() if t.outcome != "aborted"]  # history order: stable output
    live = set(order)
    writer_at: dict[tuple[int, int], str] = {}
    for tid in order:
        for s in index.txns[tid].sends:
            p, o = s.partition, s.offset
            if p is not None and o is not None and vo.value_at.get(p, {}).get(o) == norm(s.value):
                writer_at[(p, o)] = tid
    edges: dict[tuple[str, str, str], Dep] = {}

    def add(d: Dep) -> None:
        edges.setdefault((d.src, d.dst, d.kind), d)

    for p, offs in vo.offsets.items():
        prev: tuple[str, int] | None = None
        for o in offs:
            w = writer_at.get((p, o))
            if w is None:
                continue
            if prev is not None and prev[0] != w:
                add(Dep(prev[0], w, "ww", p, (prev[1], o)))
            prev = (w, o)
    for tid in order:
        high: dict[int, int] = {}
        for q in index.txns[tid].polls:
            for p, o, raw in q.records:
                v = norm(raw)
                w = index.writer.get(v) if v is not None else None
                if w is not None and w != tid and w in live:
                    add(Dep(w, tid, "wr", p, (o,), v))
                if vo.idx(p, o) is not None and o > high.get(p, -1):
                    high[p] = o
        for p, o in high.items():
            nxt = vo.next_offset(p, o)
            w = writer_at.get((p, nxt)) if nxt is not None else None
            if w is not None and w != tid and nxt is not None:
                add(Dep(tid, w, "rw", p, (o, nxt)))
    return list(edges.values())


def strongly_connected(nodes: Iterable[str], adj: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one vertex, in discovery order.

    ``adj``: vertex -> its successors (an :data:`Adjacency`, or any graph: tests/test_imports.py's)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in nodes:
        if root in order:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(adj.get(root, ()))))
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in order:
                    order[nxt] = low[nxt] = len(order)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(adj.get(nxt, ()))))
                elif nxt in on_stack:
                    low[v] = min(low[v], order[nxt])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == order[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(comp[::-1])
    return out


def _path(adj: Adjacency, start: str, goal: str, allowed: set[str]) -> list[Dep] | None:
    """Shortest path start -> goal (BFS) through allowed vertices, as its edges."""
    back: dict[str, Dep | None] = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w, d in adj.get(v, {}).items():
            if w == goal:
                edges = [d]
                x = v
                while (e := back[x]) is not None:
                    edges.append(e)
                    x = e.src
                return edges[::-1]
            if w in allowed and w not in back:
                back[w] = d
                queue.append(w)
    return None


def shortest_cycle(comp: Sequence[str], adj: Adjacency, through: Sequence[Dep] = ()) -> list[Dep] | None:
    """A shortest cycle inside ``comp``: through one of the edges ``through`` if given (tried up
    to :data:`SEARCH_CAP`), else through any vertex (likewise)."""
    allowed = set(comp)
    best: list[Dep] | None = None
    if through:
        for d in through[:SEARCH_CAP]:
            rest = _path(adj, d.dst, d.src, allowed) if d.dst != d.src else []
            if rest is not None and (best is None or len(rest) + 1 < len(best)):
                best = [d, *rest]
        return best
    for v in comp[:SEARCH_CAP]:
        cyc = _path(adj, v, v, allowed)
        if cyc is not None and (best is None or len(cyc) < len(best)):
            best = cyc
    return best


def _adjacency(deps: Iterable[Dep], kinds: set[str], prefer: str = "wr") -> Adjacency:
    adj: Adjacency = {}
    for d in deps:
        if d.kind not in kinds:
            continue
        row = adj.setdefault(d.src, {})
        old = row.get(d.dst)
        if old is None or (d.kind == prefer and old.kind != prefer):
            row[d.dst] = d
    return adj


def _show(v: Value | None) -> str:
    return "" if v is None else f" {v!r}"


def _report(kind: AnomalyKind, cycle: list[Dep], report: HistoryReport) -> None:
    if not report._want(kind):
        return
    first = min(range(len(cycle)), key=lambda i: cycle[i].src)  # start at the least id: stable output
    cycle = cycle[first:] + cycle[:first]
    txns = (*(d.src for d in cycle), cycle[0].src)
    steps = " ".join(
        f"{d.src} -{d.kind}(p{d.partition}/" + ",".join(f"o{o}" for o in d.offsets) + f"{_show(d.value)})->"
        for d in cycle)
    what = "write cycle" if kind == AnomalyKind.G0 else "cycle with information flow"
    report.anomalies.append(Anomaly(
        kind, f"{kind}: {what} of {len(cycle)} transactions: {steps} {cycle[0].src}",
        txns=txns, edges=tuple(cycle)))


def check_cycles(
    index: TxnIndex, vo: VersionOrder, report: HistoryReport, g1c_through_ww: bool = False,
) -> list[Dep]:
    """Report G0 and G1c cycles (module docstring); return the dependency edges."""
    deps = dependencies(index, vo)
    nodes = list(index.txns)
    ww = _adjacency(deps, {"ww"})
    for comp in strongly_connected(nodes, ww):
        cyc = shortest_cycle(comp, ww)
        if cyc is not None:
            _report(AnomalyKind.G0, cyc, report)
    flow = _adjacency(deps, {"ww", "wr"} if g1c_through_ww else {"wr"})
    comp_of = {v: i for i, comp in enumerate(strongly_connected(nodes, flow)) for v in comp}
    wr_in: dict[int, list[Dep]] = {}
    for d in deps:
        c = comp_of.get(d.src)
        if d.kind == "wr" and c is not None and comp_of.get(d.dst) == c:
            wr_in.setdefault(c, []).append(d)
    members: dict[int, list[str]] = {}
    for v, c in comp_of.items():
        members.setdefault(c, []).append(v)
    for c, through in wr_in.items():
        cyc = shortest_cycle(members[c], flow, through)
        if cyc is not None:
            _report(AnomalyKind.G1C, cyc, report)
    return deps
