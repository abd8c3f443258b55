"""Reports and comparisons built from result documents only (nothing here talks to a broker)."""

from __future__ import annotations

__all__: list[str] = []
