"""The locustfile of ``kbench locust``: Kafka users plus kbench's plugin (plan, run control, exact merge).

Start a worker on another machine (kbench installed there) with Locust's own command line::

    locust -f "$(python -c 'import bench.locust; print(bench.locust.LOCUSTFILE)')" \\
        --worker --master-host MASTER --master-port 5557
"""

from locust import events

from bench.locust.plugin import install
from bench.locust.users import KafkaConsumerUser, KafkaProducerUser

__all__ = ["KafkaConsumerUser", "KafkaProducerUser"]

install(events)
