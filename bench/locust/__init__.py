"""Locust integration: Kafka users on confluent-kafka, distributed load, the same result document.

``kbench locust SCENARIO`` (see :mod:`bench.cli.locust`) runs one matrix cell with Locust users: a
local Locust process, or a master and worker processes. It goes through the same pipeline as ``kbench
run``, with :class:`bench.locust.driver.LocustDriver` as its driver (:mod:`bench.locust.collect` turns
what the master collected into the driver's result). The Locust side lives in :mod:`bench.locust.users`
(``KafkaProducerUser``, ``KafkaConsumerUser``), :mod:`bench.locust.clients` (gevent-safe confluent-kafka
drivers) and :mod:`bench.locust.plugin` (events, custom messages, exact HDR merge); :data:`LOCUSTFILE` is
the file Locust loads.

Importing this package does not import Locust (which monkey-patches the standard library on import).
"""

from bench.locust.launcher import LOCUSTFILE

__all__ = ["LOCUSTFILE"]
