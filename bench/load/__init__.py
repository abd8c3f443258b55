"""Load generators: producer and consumer worker processes, payloads, keys and the wire header.

Every message value starts with a 16-byte header (:mod:`bench.load.payload`): the intended send time
(CLOCK_MONOTONIC ns — shared by all processes on one host), the producer index and a per-producer
sequence number, so consumers compute end-to-end latency and verification can identify every record.
"""
