"""One line per verified cell for the reports (markdown, HTML, the run's summary): the verdict, the lost
and unseen counts and, when they were looked up in the nodes' segments (``verification.lost_lookup``,
docs/faults.md), how many were on disk but not served and how many were gone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["verification_line"]


def verification_line(cell: Mapping[str, Any]) -> str | None:
    """``None`` for a cell run without ``--verify``."""
    v = cell.get("verification")
    if not isinstance(v, Mapping) or "ok" not in v:
        return None
    counts = v.get("counts") or {}
    line = (f"verification {'ok' if v.get('ok') else 'FAILED'}: acked {counts.get('acked', 0):,}, "
            f"lost {counts.get('lost', 0):,}, unseen {counts.get('unseen', 0):,}, "
            f"duplicated {counts.get('duplicated', 0):,}")
    look = v.get("lost_lookup")
    if isinstance(look, Mapping):
        if look.get("status") == "skipped":
            line += f"; not looked up on disk ({look.get('note')})"
        else:
            more = f", {look['not_looked_up']:,} not looked up (cap)" if look.get("not_looked_up") else ""
            line += (f"; on the nodes' disks: {look.get('on_disk', 0):,} on disk but not served, "
                     f"{look.get('gone', 0):,} gone, {look.get('unknown', 0):,} unknown{more}"
                     + (" (lookup incomplete)" if look.get("status") == "incomplete" else ""))
    return line
