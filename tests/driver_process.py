"""What every test-side coordinator of a driver process (docs/drivers.md) needs: its protocol lines go to
the driver's stdin one JSON object a line, flushed at once, and EOF on stdin is a stop.

Shared by tests/test_java_driver.py (``DriverRun``) and tests/go_driver_helper.py (``DriverProc``): a
class with a ``proc`` attribute (the driver's ``subprocess.Popen``, text mode) inherits both methods."""

from __future__ import annotations

import json
import subprocess
from typing import Any

__all__ = ["DriverStdin"]


class DriverStdin:
    """Mixin: ``send`` a protocol line to ``self.proc``'s stdin, or ``close_stdin`` (EOF, the driver stops)."""

    proc: subprocess.Popen[str]

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
