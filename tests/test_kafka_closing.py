"""bench.kafka.closing: consumer closes bounded in time (fakes: the hang itself is librdkafka's, in C)."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from bench.kafka.closing import close_all, close_within


class _Hangs:
    def __init__(self) -> None:
        self.release = threading.Event()

    def close(self) -> None:
        self.release.wait(30)


class _Closes:
    closed = False

    def close(self) -> None:
        self.closed = True


class _Fails:
    def close(self) -> None:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT))


def test_close_all_waits_one_limit_for_all_and_reports_the_stuck() -> None:
    hangs = [_Hangs(), _Hangs()]
    ok = _Closes()
    t0 = time.monotonic()
    problems = close_all([hangs[0], ok, hangs[1], _Fails()], timeout_s=0.5)
    assert time.monotonic() - t0 < 2.0           # one deadline, not one per client
    assert ok.closed
    assert any("2 of 4 consumer close() calls did not return within 0.5 s" in p for p in problems)
    assert any("consumer close:" in p and "_TRANSPORT" in p for p in problems)
    for h in hangs:
        h.release.set()


def test_close_within_true_false_and_raises_the_close_error() -> None:
    assert close_within(_Closes(), 1.0)
    h = _Hangs()
    assert not close_within(h, 0.2)
    h.release.set()
    with pytest.raises(KafkaException):
        close_within(_Fails(), 1.0)
