"""Talking to a broker below any client library's abstractions.

* :mod:`bench.kafka.admin` — topic administration once (create/wait, delete/wait, describe, watermarks);
* :mod:`bench.kafka.protocol` — the ApiVersions probe over PLAINTEXT, TLS and SASL, on
  :mod:`bench.kafka.codec` (request encoders/decoders), :mod:`bench.kafka.sasl` (PLAIN, SCRAM) and
  :mod:`bench.kafka.security` (TLS/SASL settings from librdkafka keys);
* :mod:`bench.kafka.murmur2` — the default partitioner's hash.
"""
