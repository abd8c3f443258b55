"""Closing librdkafka consumers within a time limit.

``Consumer.close()`` leaves the group and has no timeout: librdkafka can wait in it for good (a coordinator
that never answers, confluentinc/librdkafka#3740; an assignment arriving while a cooperative consumer
closes, #4527). The call is in C, so neither a signal nor pytest-timeout can end it: a harness that calls
it on the main thread can hang the whole run on one broker's answer. Here each close runs on a daemon
thread, all of them against one deadline; a close that has not returned by then is reported and left to
finish (or not) in the background.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

from confluent_kafka import KafkaException

__all__ = ["CLOSE_TIMEOUT_S", "Closable", "close_all", "close_within"]

#: long enough for a leave-group round trip and its rebalance callback on a loaded machine
CLOSE_TIMEOUT_S = 15.0


class Closable(Protocol):
    def close(self) -> None: ...


def _close_on_thread(client: Closable) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``client.close()`` on a daemon thread: the thread, and the list its error (if any) lands in."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.close()
        except BaseException as exc:   # handed to the caller's thread
            errors.append(exc)

    t = threading.Thread(target=run, name="kbench-close", daemon=True)
    t.start()
    return t, errors


def close_all(clients: Sequence[Closable], timeout_s: float = CLOSE_TIMEOUT_S) -> list[str]:
    """Close ``clients`` concurrently, waiting at most ``timeout_s`` in all; the problems seen (errors,
    and one line for the closes still running at the deadline)."""
    closing = [_close_on_thread(c) for c in clients]
    deadline = time.monotonic() + timeout_s
    for t, _ in closing:
        t.join(max(deadline - time.monotonic(), 0.0))
    problems = [f"consumer close: {exc}" for _, errors in closing for exc in errors
                if not (isinstance(exc, (KafkaException, RuntimeError)) and "closed" in str(exc).lower())]
    stuck = sum(t.is_alive() for t, _ in closing)
    if stuck:
        problems.append(f"{stuck} of {len(closing)} consumer close() calls did not return within "
                        f"{timeout_s:g} s (librdkafka); left running in the background")
    return problems


def close_within(client: Closable, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
    """Close one client: True when done, False when its close has not returned within ``timeout_s``; an
    error of the close itself is raised here, as a direct call would raise it."""
    t, errors = _close_on_thread(client)
    t.join(timeout_s)
    if errors:
        raise errors[0]
    return not t.is_alive()
