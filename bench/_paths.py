"""Where kbench keeps caches (downloaded jars) and state (running embedded brokers)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Downloaded artifacts: ``$KBENCH_CACHE``, else ``$XDG_CACHE_HOME/kbench``, else ``~/.cache/kbench``."""
    env = os.environ.get("KBENCH_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kbench"


def state_dir() -> Path:
    """Running brokers' state: ``$KBENCH_HOME``, else ``$XDG_STATE_HOME/kbench``, else ``~/.local/state/kbench``."""
    env = os.environ.get("KBENCH_HOME")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "kbench"
