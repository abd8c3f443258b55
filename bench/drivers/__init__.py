"""The load-driver seam: a driver runs one matrix cell's producers and consumers and returns typed worker
results (:mod:`bench.drivers.results`). ``process`` runs librdkafka workers as Python processes and any
external client (Java, Go) as a process speaking the driver protocol (docs/drivers.md); Locust is another
driver (:mod:`bench.locust`)."""
