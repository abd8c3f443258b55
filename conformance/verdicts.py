"""Verdicts of a conformance check and the helpers a check uses to reach them.

* PASS   — the test returned normally and never called :meth:`CheckContext.record`.
* FAIL   — the broker is blamed: an assertion failed (detail = "observed … expected …"), or an
           exception raised by the client library or a broker wait (KafkaException, TimeoutError of
           a ``wait_for``/``wait_event`` deadline…; detail starts with ``ERROR``). Never N/A.
* N/A    — only via :meth:`CheckContext.require_api`, which reads the broker's ApiVersions.
* RECORD — the test returned normally after :meth:`CheckContext.record` (behaviour documented,
           not judged).
* ERROR  — kbench is blamed, not the broker: the check's own precondition did not take effect
           (:func:`require_effective` / :class:`HarnessError`), a programming error in kbench
           (TypeError, AttributeError, NameError…, see :data:`HARNESS_EXCEPTIONS`), the per-check
           hard time limit (pytest-timeout: every broker wait has its own, shorter deadline that
           ends in FAIL) or the test process dying (client library crash). Counted apart from FAIL.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

import pytest

from bench.kafka.protocol import ApiVersionsResult, api_name

__all__ = ["EXIT_FAIL", "EXIT_HARNESS_ERROR", "EXIT_OK", "HARNESS_EXCEPTIONS", "CheckContext",
           "HarnessError", "NotApplicable", "Verdict", "exit_code", "expect", "expect_eq",
           "is_harness_error", "require_effective"]


class Verdict(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NA = "N/A"
    RECORD = "RECORD"
    ERROR = "ERROR"


#: exit codes of a conformance run (pytest, ``kbench conformance``): every check PASS/N/A/RECORD;
#: some check FAIL (the broker is blamed; wins over ERROR); some check ERROR and none FAIL (kbench
#: is blamed: the run says nothing about those checks). 2 stays for usage/config errors.
EXIT_OK, EXIT_FAIL, EXIT_HARNESS_ERROR = 0, 1, 3


def exit_code(counts: Mapping[str, int]) -> int:
    """The run's exit code from its verdict counts (see :data:`EXIT_OK` and the two after it)."""
    if counts.get(Verdict.FAIL, 0):
        return EXIT_FAIL
    if counts.get(Verdict.ERROR, 0):
        return EXIT_HARNESS_ERROR
    return EXIT_OK


class HarnessError(Exception):
    """kbench (not the broker) could not carry out the check: the verdict is ERROR, not FAIL.

    Raise it (or use :func:`require_effective`) when the check's own precondition did not take
    effect — e.g. the fault injection cut no connection — so nothing can be said about the broker.
    """


#: exception types that mean a bug in kbench's own code (or its use of the client API), not a
#: broker misbehaving: a check ending in one of them is ERROR
HARNESS_EXCEPTIONS: tuple[type[BaseException], ...] = (
    HarnessError, TypeError, AttributeError, NameError, ImportError, SyntaxError, ZeroDivisionError,
    NotImplementedError, RecursionError)


def is_harness_error(exc: BaseException) -> bool:
    """Whether ``exc`` blames kbench (verdict ERROR) rather than the broker (FAIL)."""
    if isinstance(exc, HARNESS_EXCEPTIONS):
        return True
    # pytest-timeout's hard per-check limit: the check's own deadlines should have ended it first
    return isinstance(exc, pytest.fail.Exception) and str(exc).lstrip().startswith("Timeout")


def require_effective(condition: bool, what: str, observed: Any, expected: str) -> None:
    """ERROR (harness) with ``"precondition not effective: <what>: observed …, expected …"``.

    For what the check itself does to set the scene (fault injection, a paused process, …): when it
    did not take effect the broker was never tested, so the broker must not be blamed.
    """
    if not condition:
        raise HarnessError(f"precondition not effective: {what}: observed {_fmt(observed)}, "
                           f"expected {expected}")


class NotApplicable(pytest.skip.Exception):  # type: ignore[name-defined]
    """Raised only by :meth:`CheckContext.require_api`; the plugin turns it into N/A.

    Any other skip (``pytest.skip``, ``skipif``) is reported as FAIL, so a skip cannot hide a failure.
    """


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."


def expect_eq(observed: Any, expected: Any, what: str) -> None:
    """Fail with ``"<what>: observed <o>, expected <e>"`` unless ``observed == expected``."""
    if observed != expected:
        raise AssertionError(f"{what}: observed {_fmt(observed)}, expected {_fmt(expected)}")


def expect(condition: bool, what: str, observed: Any, expected: str) -> None:
    """Fail with ``"<what>: observed <o>, expected <expected>"`` unless ``condition``."""
    if not condition:
        raise AssertionError(f"{what}: observed {_fmt(observed)}, expected {expected}")


class CheckContext:
    """Per-test handle (the ``check`` fixture): notes, recordings and ApiVersions gating."""

    def __init__(self, check_id: str, title: str, api: ApiVersionsResult | None) -> None:
        self.check_id = check_id
        self.title = title
        self._api = api
        self.notes: list[str] = []
        self.observed: dict[str, Any] = {}
        self.recorded = False

    def note(self, text: str) -> None:
        """Add a line to the verdict's detail (kept for PASS, FAIL and RECORD)."""
        self.notes.append(text)

    def record(self, **observed: Any) -> None:
        """Store observed behaviour; a test that then returns normally ends as RECORD."""
        self.recorded = True
        for key, value in observed.items():
            self.observed[key] = _jsonable(value)

    def observe(self, **observed: Any) -> None:
        """Store observed values in the report without changing the verdict."""
        for key, value in observed.items():
            self.observed[key] = _jsonable(value)

    def supports(self, api_key: int, min_version: int = 0) -> bool:
        """Whether the broker advertises ``api_key`` at ``min_version`` or above."""
        return self._api is not None and self._api.supports(api_key, min_version)

    def require_api(self, api_key: int, min_version: int = 0, why: str = "") -> None:
        """End the check as N/A unless the broker advertises ``api_key`` >= ``min_version``."""
        if self._api is None:
            raise RuntimeError("ApiVersions unknown: cannot decide N/A")
        rng = self._api.apis.get(api_key)
        if rng is None or rng.max_version < min_version:
            have = "not advertised" if rng is None else f"advertised v{rng.min_version}-v{rng.max_version}"
            reason = f"N/A: {api_name(api_key)} (key {api_key}) v{min_version}+ needed, {have}"
            raise NotApplicable(reason + (f" ({why})" if why else ""))

    def detail(self) -> str:
        parts = list(self.notes)
        if self.observed:
            parts.append("observed: " + json.dumps(self.observed, sort_keys=True, default=str)[:1500])
        return "; ".join(parts)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
