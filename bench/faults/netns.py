"""Hosts on one machine: network namespaces joined by a Linux bridge, with addresses from 198.18.0.0/15.

>>> with Topology.create(["broker", "master", "worker1"], attach_host=True) as topo:
...     topo.address("broker")                              # '198.18.7.2'
...     topo.popen_in("broker", ["java", ...])              # a process on that "host"
...     topo.run_in("master", ["ss", "-tn"]).stdout

Shape (one topology; every name starts with its prefix, ``kbn`` + 6 hex digits)::

    root namespace             <prefix>-switch              <prefix>-<node>  (one per node)
    [<prefix>-h 198.18.N.1] ─ host ┐                        ┌── eth0 198.18.N.2 (+ lo)
      (only with attach_host)     ├─ br0 ─ p0 ─────────────┘
                                  └─────── p1 ───────────────── eth0 198.18.N.3 (+ lo)

* Each node is a namespace with ``lo`` up and one veth, ``eth0``, whose peer ``p<i>`` is a port of the
  bridge ``br0``. The bridge lives in its own namespace (``<prefix>-switch``), not in the root one: the
  host's firewall (Docker's FORWARD chain, br_netfilter) never sees the traffic, and deleting the
  namespaces removes every veth and the bridge with them.
* Each topology gets its own /24 of 198.18.0.0/15 (``.1`` is the host's, nodes from ``.2``), one not in
  use in the root namespace. Nodes get only the on-link route of that /24: **no default route**, so
  nothing routes outside (connecting elsewhere fails with ENETUNREACH before a packet leaves). IPv6 is
  off on ``eth0``, so link-local IPv6 cannot bypass IPv4 rules.
* ``attach_host=True`` adds a veth from the root namespace to the bridge (``<prefix>-h``, ``.1``): the
  client side (kbench itself, a test) reaches every node directly. The root namespace's forwarding is not
  touched.
* :meth:`Topology.teardown` (also on ``with`` exit, exception or Ctrl-C) ends every process in the
  namespaces (the tracked ones first, then whatever ``ip netns pids`` lists: SIGTERM, SIGKILL after a
  grace), deletes the host veth and the namespaces, and checks nothing is left.
* A crashed owner leaves namespaces behind: :func:`list_leftovers` / :func:`cleanup_leftovers` find them
  (and their processes, root-namespace links and nft tables) by prefix. The owner's pid is recorded in
  ``/run/kbench/netns/<prefix>.json``, so ``orphans_only=True`` spares topologies whose owner still runs.
  A topology that outlives its creator (``kbench broker up --netns``) names a ``holder`` file instead (the
  broker's ``state.json``): it is no orphan while that file exists. :func:`cleanup_orphans` removes the
  orphans of one ``purpose`` only (e.g. ``"broker"``), so it never touches another tool's topologies.

Built on it: partitions (nft) and tbf limits in :mod:`bench.faults.network`; broker nodes as hosts
(``--netns``, each node's command wrapped with :func:`exec_argv`) in :mod:`bench.brokers.netns_nodes`.

Needs root and iproute2 (``ip``); :func:`unavailable_reason` says why not, :func:`require_root` raises.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from bench.errors import NetnsError
from bench.faults.netns_plan import (
    NET_RANGE,
    PREFIX_RE,
    PREFIX_ROOT,
    SWITCH,
    Node,
    TopologyPlan,
    exec_argv,
    new_prefix,
    pick_subnet,
    plan_topology,
)

__all__ = [
    "NET_RANGE", "PREFIX_ROOT", "SWITCH", "Leftovers", "NetnsError", "Node",
    "Topology", "TopologyPlan", "cleanup_leftovers", "cleanup_orphans", "exec_argv", "list_leftovers", "new_prefix",
    "pick_subnet", "plan_topology", "require_root", "unavailable_reason",
]

STATE_DIR = Path("/run/kbench/netns")      # one JSON file per live topology: its owner's pid
CMD_TIMEOUT_S = 20.0


# ------------------------------------------------------------------------------------------ the system
def unavailable_reason() -> str | None:
    """Why topologies cannot be built here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns, veth, bridge); run as root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2: the 'ip' command is not on PATH"
    return None


def require_root() -> None:
    reason = unavailable_reason()
    if reason:
        raise NetnsError(reason)


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = CMD_TIMEOUT_S,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, input=input)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"`{' '.join(argv)}` failed: {exc}") from exc
    if check and proc.returncode != 0:
        detail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[:6])
        raise NetnsError(f"`{' '.join(argv)}` exited {proc.returncode}: {detail}")
    return proc


def _root_networks() -> list[IPv4Network]:
    """Networks of the root namespace's IPv4 addresses and routes (what a new /24 must not overlap)."""
    nets: list[IPv4Network] = []
    for entry in json.loads(_run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for a in entry.get("addr_info", []):
            nets.append(IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for route in json.loads(_run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]"):
        dst = route.get("dst", "default")
        if dst != "default":
            with contextlib.suppress(ValueError):
                nets.append(IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    return nets


def _netns_names() -> list[str]:
    out = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _netns_pids(namespace: str) -> list[int]:
    proc = _run(["ip", "netns", "pids", namespace], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()] if proc.returncode == 0 else []


def _root_links() -> list[str]:
    return [e["ifname"] for e in json.loads(_run(["ip", "-j", "link", "show"]).stdout or "[]")]


def _nft_tables() -> list[tuple[str, str]]:
    """(family, name) of the root namespace's nft tables ([] without nft)."""
    if shutil.which("nft") is None:
        return []
    proc = _run(["nft", "list", "tables"], check=False)
    return [(p[1], p[2]) for p in (line.split() for line in proc.stdout.splitlines()) if len(p) == 3]


def _end_processes(pids: Iterable[int], grace_s: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; returns when all are gone (or after the SIGKILL wait)."""
    procs: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            p.send_signal(signal.SIGCONT)  # a paused (SIGSTOPped) process cannot act on SIGTERM
            p.terminate()
            procs.append(p)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def _owner_alive(prefix: str) -> bool:
    """The creator still runs, or the topology's ``holder`` file (if it has one) still exists."""
    try:
        doc = json.loads((STATE_DIR / f"{prefix}.json").read_text())
        if doc.get("holder") and Path(doc["holder"]).exists():
            return True
        p = psutil.Process(int(doc["pid"]))
        return abs(p.create_time() - float(doc["create_time"])) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return False


@dataclass(frozen=True)
class Leftovers:
    """What a topology (or a crash) left on the host, by kind."""

    namespaces: tuple[str, ...] = ()
    links: tuple[str, ...] = ()             # root-namespace interfaces
    nft_tables: tuple[str, ...] = ()        # root-namespace tables, "family name"
    pids: tuple[int, ...] = ()              # processes inside the namespaces

    @property
    def empty(self) -> bool:
        return not (self.namespaces or self.links or self.nft_tables or self.pids)

    def __str__(self) -> str:
        parts = [f"{k}: {', '.join(map(str, v))}" for k, v in
                 (("namespaces", self.namespaces), ("links", self.links), ("nft tables", self.nft_tables),
                  ("pids", self.pids)) if v]
        return "; ".join(parts) or "nothing"


def list_leftovers(prefix: str = PREFIX_ROOT, *, orphans_only: bool = False) -> Leftovers:
    """Namespaces, root links, root nft tables and processes whose names start with ``prefix``.

    ``orphans_only``: skip topologies whose owner (recorded at creation) is still running."""
    if not prefix.startswith(PREFIX_ROOT):
        raise NetnsError(f"prefix {prefix!r}: kbench's topologies all start with {PREFIX_ROOT!r}")

    def wanted(name: str) -> bool:
        return name.startswith(prefix) and not (orphans_only and _owner_alive(name.split("-", 1)[0]))

    namespaces = tuple(ns for ns in _netns_names() if wanted(ns))
    return Leftovers(namespaces=namespaces, links=tuple(n for n in _root_links() if wanted(n)),
                     nft_tables=tuple(f"{f} {n}" for f, n in _nft_tables() if wanted(n)),
                     pids=tuple(sorted({p for ns in namespaces for p in _netns_pids(ns)})))


def cleanup_leftovers(prefix: str, *, orphans_only: bool = False, grace_s: float = 5.0) -> Leftovers:
    """Remove what :func:`list_leftovers` finds (processes first); return what was found.

    ``prefix`` is required: :data:`PREFIX_ROOT` means every kbench topology on the host, live ones of other
    processes included unless ``orphans_only``. Raises :class:`NetnsError` if something could not be removed."""
    require_root()
    found = list_leftovers(prefix, orphans_only=orphans_only)
    _end_processes(found.pids, grace_s)
    for link in found.links:
        _run(["ip", "link", "del", link], check=False)
    for table in found.nft_tables:
        _run(["nft", "delete", "table", *table.split()], check=False)
    for ns in sorted(found.namespaces, key=lambda n: n.endswith(f"-{SWITCH}")):  # the switch last
        _run(["ip", "netns", "del", ns], check=False)
    for state in STATE_DIR.glob(f"{prefix}*.json"):  # also of a build that crashed before its first namespace
        if not (orphans_only and _owner_alive(state.stem)):
            state.unlink(missing_ok=True)
    _wait_gone(lambda: list_leftovers(prefix, orphans_only=orphans_only), f"cleanup of {prefix}*")
    return found


def cleanup_orphans(purpose: str, *, grace_s: float = 5.0) -> list[str]:
    """Remove every topology created with ``purpose`` whose owner is gone (dead creator, no holder file);
    return their prefixes. Topologies of other purposes, or without a state file, are left alone."""
    require_root()
    removed: list[str] = []
    for path in sorted(STATE_DIR.glob(f"{PREFIX_ROOT}*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        prefix = path.stem
        if isinstance(doc, dict) and doc.get("purpose") == purpose and PREFIX_RE.fullmatch(prefix) \
                and not _owner_alive(prefix):
            cleanup_leftovers(prefix, orphans_only=True, grace_s=grace_s)
            removed.append(prefix)
    return removed


def _wait_gone(probe: Callable[[], Leftovers], what: str, timeout_s: float = 10.0) -> None:
    """Namespace deletion is asynchronous in the kernel (veths go a moment later): poll until empty."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = probe()
        if left.empty:
            return
        if time.monotonic() >= deadline:
            raise NetnsError(f"{what}: still present after {timeout_s:g} s: {left}")
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------ a topology
class Topology:
    """A live topology (see the module docstring). Build it with :meth:`create`; always :meth:`teardown`."""

    def __init__(self, plan: TopologyPlan) -> None:
        self.plan = plan
        self._procs: list[subprocess.Popen[Any]] = []
        self._up = False
        self._holder: str | None = None
        self._purpose: str | None = None

    @classmethod
    def attach(cls, plan: TopologyPlan) -> Topology:
        """The live topology of ``plan``, built earlier (maybe by another process): usable, not rebuilt.

        Its :meth:`teardown` ends what runs in its namespaces and removes them (a no-op if already gone)."""
        topo = cls(plan)
        topo._up = True
        return topo

    @classmethod
    def create(cls, names: Sequence[str], *, attach_host: bool = False, prefix: str | None = None,
               subnet: IPv4Network | str | None = None, holder: str | Path | None = None,
               purpose: str | None = None) -> Topology:
        """Build namespaces, bridge, veths and addresses; on any failure remove what was made and raise.

        ``holder``: a file whose existence keeps the topology from being an orphan after this process
        exits; ``purpose``: a tag for :func:`cleanup_orphans`."""
        require_root()
        plan = plan_topology(names, prefix=prefix, subnet=subnet, attach_host=attach_host,
                             in_use=_root_networks())
        topo = cls(plan)
        topo._holder, topo._purpose = (str(holder) if holder is not None else None), purpose
        taken = [ns for ns in plan.namespaces if ns in _netns_names()]
        if taken:
            raise NetnsError(f"namespaces already exist: {', '.join(taken)} (cleanup_leftovers({plan.prefix!r}))")
        topo._write_state()
        topo._up = True
        try:
            for argv in plan.setup_commands():
                _run(argv)
        except BaseException:
            topo.teardown()
            raise
        return topo

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        me = psutil.Process()
        doc = {"pid": me.pid, "create_time": me.create_time(), "namespaces": list(self.plan.namespaces),
               "host_link": self.plan.host_link, "subnet": str(self.plan.subnet), "holder": self._holder,
               "purpose": self._purpose}
        (STATE_DIR / f"{self.plan.prefix}.json").write_text(json.dumps(doc))

    # -- names and addresses ----------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return self.plan.prefix

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.plan.nodes

    def node(self, name: str) -> Node:
        return self.plan.node(name)

    def address(self, name: str) -> str:
        """A node's address, or the host's (``"host"``, with ``attach_host``)."""
        if name == "host" and self.plan.attach_host:
            return str(self.plan.host_address)
        return str(self.plan.node(name).address)

    # -- processes --------------------------------------------------------------------------------
    def argv(self, target: str, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run in ``target``'s namespace (a node name or :data:`SWITCH`)."""
        return exec_argv(self.plan.namespace_of(target), argv)

    def run_in(self, target: str, argv: Sequence[str], *, check: bool = True, timeout: float = CMD_TIMEOUT_S,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion in ``target``'s namespace; :class:`NetnsError` on failure if ``check``."""
        self._check_up()
        return _run(self.argv(target, argv), check=check, timeout=timeout, input=input)

    def popen_in(self, target: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``target``'s namespace (``subprocess.Popen`` keywords pass through).

        The process is ended at :meth:`teardown` if it still runs."""
        self._check_up()
        try:
            proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(target, argv), **kwargs)
        except OSError as exc:
            raise NetnsError(f"cannot start {argv[0]} in {target}: {exc}") from exc
        self._procs.append(proc)
        return proc

    def pids(self, target: str) -> list[int]:
        """Every process in ``target``'s namespace (started here or not)."""
        return _netns_pids(self.plan.namespace_of(target))

    def _check_up(self) -> None:
        if not self._up:
            raise NetnsError(f"topology {self.prefix} is not up (torn down already?)")

    # -- teardown ---------------------------------------------------------------------------------
    def teardown(self, grace_s: float = 5.0) -> None:
        """End every process in the namespaces, delete host veth and namespaces, check nothing is left.

        Idempotent; raises :class:`NetnsError` if something remains."""
        self._up = False
        for p in self._procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        deadline = time.monotonic() + grace_s
        for p in self._procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        existing = set(_netns_names())
        _end_processes({pid for ns in self.plan.namespaces if ns in existing for pid in _netns_pids(ns)}, grace_s)
        for argv in self.plan.teardown_commands():
            _run(argv, check=False)
        with contextlib.suppress(FileNotFoundError):
            (STATE_DIR / f"{self.prefix}.json").unlink()
        _wait_gone(lambda: list_leftovers(self.prefix), f"teardown of topology {self.prefix}")

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()
