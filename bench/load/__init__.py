"""Load generation: the one open-loop core, payloads, keys, the wire header, and the worker processes.

* :mod:`bench.load.schedule` — the pure parts: clock, window, schedule, sampling, exact counts;
* :mod:`bench.load.core` — :class:`~bench.load.core.OpenLoopProducer`, shared by the producer processes
  (:mod:`bench.load.producer`) and the Locust users (:mod:`bench.locust.clients`);
* :mod:`bench.load.acks`, :mod:`bench.load.chunks` — delivery-report sinks; chunked value building and sending;
* :mod:`bench.load.consumer` — the consumer process and its :class:`~bench.load.consumer.Receiver`;
* :mod:`bench.load.payload` — payload pools, key streams and the 16-byte header codec.

Every message value starts with a 16-byte header (:mod:`bench.load.payload`): the intended send time
(CLOCK_MONOTONIC ns — shared by all processes on one host), the producer index and a per-producer
sequence number, so consumers compute end-to-end latency and verification can identify every record.
"""
