"""Locust users that drive confluent-kafka: ``KafkaProducerUser`` and ``KafkaConsumerUser``.

Each user owns one librdkafka client (see :mod:`bench.locust.clients` for why nothing here ever waits
inside librdkafka). A producer user's task sends whatever its open-loop schedule has made due and serves
delivery reports; its ``wait_time`` is the time until its next message is due (a per-user constant
throughput of ``scenario rate / producer users``), or 0 at ``rate: max``. Each drained batch of delivery
reports fires one ``environment.events.request`` (``request_type`` ``kafka-produce``, ``name`` the cell
label, response time = the batch's largest publish latency in ms with µs precision, response length = its
bytes, ``context={"messages": n}``; ``exception=`` for failed deliveries); each batch a consumer user reads
fires one ``kafka-consume`` event with its largest end-to-end latency. Locust's request counts are batches;
kbench's HDR histograms keep every (timed) message.

The users take their settings from the kbench plan (:class:`bench.locust.plan.Plan`) that the kbench
plugin (:mod:`bench.locust.plugin`) installs on the environment at ``test_start``.
"""

from __future__ import annotations

from typing import Any

from locust import User, task
from locust.exception import StopUser

from bench.locust.clients import ConsumerDriver, ProducerDriver

__all__ = ["KafkaConsumerUser", "KafkaProducerUser"]

_NO_PLAN_WAIT_S = 1.0


def _state(user: User) -> Any:
    state = getattr(user.environment, "kbench_worker", None)
    if state is None:
        raise StopUser("no kbench plan on this environment (start the run with `kbench locust`)")
    return state


class _KafkaUser(User):
    """A user driving one client: ``wait_time`` and the task are the client's; the plugin's worker state
    makes the client at ``on_start`` (:meth:`_new`) and measures it at ``on_stop``."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.driver: ProducerDriver | ConsumerDriver | None = None

    def _new(self, state: Any) -> ProducerDriver | ConsumerDriver:
        raise NotImplementedError

    def wait_time(self) -> float:
        return self.driver.wait_s() if self.driver is not None else _NO_PLAN_WAIT_S

    def on_start(self) -> None:
        self.driver = self._new(_state(self))

    @task
    def tick(self) -> None:
        if self.driver is not None:
            self.driver.tick()

    def on_stop(self) -> None:
        if self.driver is not None:
            _state(self).finish(self.driver)
            self.driver = None


class KafkaProducerUser(_KafkaUser):
    """Produces the cell's messages to its topic at ``rate / producer_users`` msgs/s (or as fast as it can)."""

    weight = 1

    def _new(self, state: Any) -> ProducerDriver:
        return state.new_producer()


class KafkaConsumerUser(_KafkaUser):
    """One member of a consumer group of the cell; the plugin sets ``fixed_count`` to the scenario's consumers."""

    weight = 1

    def _new(self, state: Any) -> ConsumerDriver:
        return state.new_consumer()
