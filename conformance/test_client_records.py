"""Explicit records through a client's driver, C23–C26 (docs/conformance.md, "Through a client").

K1, P6, P7 and P8 (conformance/test_partitioning.py, test_produce.py: through librdkafka) through the
client's own producer, on driver protocol v2's explicit-records mode (docs/drivers.md): the driver sends
exactly the records the check lists (explicit partition, null/empty key and value, headers, CreateTime),
one in flight, and acks each; the suite's librdkafka consumer reads the topic back and each record is
compared, byte for byte, with the message stored at its acked (partition, offset). A record feature a
driver refuses is N/A (client) with the driver's reason.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from bench.drivers.records import ExplicitRecord
from conformance.clients import Clients
from conformance.plugin import BrokerInfo
from conformance.records_client import observe, send_records, stored
from conformance.through_client import producer_config, selected_clients
from conformance.verdicts import CheckContext, expect, expect_eq

pytestmark = [pytest.mark.through_client, pytest.mark.timeout(60)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", selected_clients(metafunc.config), ids=str)


def _config(client: str) -> dict[str, str]:
    return producer_config(client, "ordered")


@pytest.mark.check("C23", "through a client: explicit partition honoured")
def test_c23_explicit_partition(check: CheckContext, clients: Clients, broker: BrokerInfo,
                                security_conf: dict[str, str], client: str) -> None:
    parts = 4
    topic = clients.create_topic(parts)
    # the same key to every partition, in an order no partitioner follows: the explicit partition must win
    order = [0, 3, 1, 2, 2, 0, 3, 1]
    records = [ExplicitRecord(key=b"same-key", value=f"c23-{p}-{i}".encode(), partition=p)
               for i in range(3) for p in order]
    run = send_records(client, broker.bootstrap, topic, records, config=_config(client), security=security_conf)
    observe(check, run)
    expect_eq([a.partition for a in run.acks], [r.partition for r in records], "partitions in the client's acks")
    got = stored(run, clients, topic, parts)
    expect_eq([(m.partition(), m.value()) for m in got], [(r.partition, r.value) for r in records],
              "(partition, value) stored at each acked offset")


#: P6's cases: (key, value), null vs empty, and a plain one
_P6_CASES: list[tuple[bytes | None, bytes | None]] = [(None, None), (b"", b""), (None, b""), (b"", None),
                                                      (b"k", b"v"), (b"", b"v"), (b"k", b""), (None, b"v"),
                                                      (b"k", None)]


@pytest.mark.check("C24", "through a client: null vs empty key/value")
def test_c24_null_vs_empty(check: CheckContext, clients: Clients, broker: BrokerInfo,
                           security_conf: dict[str, str], client: str) -> None:
    topic = clients.create_topic(1)
    cases = _P6_CASES * 2
    records = [ExplicitRecord(key=k, value=v) for k, v in cases]
    run = send_records(client, broker.bootstrap, topic, records, config=_config(client), security=security_conf)
    observe(check, run)
    got = stored(run, clients, topic, 1)
    expect_eq([(m.key(), m.value()) for m in got], cases, "(key, value) stored, in send order (None = null)")


#: P7's headers: duplicate names (order kept), binary, an empty and a null value, a non-ASCII name
_P7_HEADERS: tuple[tuple[str, bytes | None], ...] = (
    ("dup", b"first"), ("bin", bytes(range(256))), ("dup", b"second"), ("empty", b""), ("null", None),
    ("ünicode", "ü".encode()), ("dup", b"third"))


@pytest.mark.check("C25", "through a client: headers")
def test_c25_headers(check: CheckContext, clients: Clients, broker: BrokerInfo,
                     security_conf: dict[str, str], client: str) -> None:
    topic = clients.create_topic(1)
    records = [ExplicitRecord(value=b"h", headers=_P7_HEADERS), ExplicitRecord(value=b"no-headers"),
               ExplicitRecord(value=b"one", headers=(("only", None),)),
               ExplicitRecord(value=b"h2", headers=tuple(reversed(_P7_HEADERS)))]
    run = send_records(client, broker.bootstrap, topic, records, config=_config(client), security=security_conf)
    observe(check, run)
    got = stored(run, clients, topic, 1)
    expect_eq([m.value() for m in got], [r.value for r in records], "values stored")
    for i in (0, 2, 3):
        expect_eq(got[i].headers(), list(records[i].headers),
                  f"headers of record {i} (order, duplicate names, binary/empty/null values)")
    expect(not got[1].headers(), "headers of a record sent without headers", got[1].headers(), "none")


@pytest.mark.check("C26", "through a client: CreateTime")
def test_c26_create_time(check: CheckContext, clients: Clients, broker: BrokerInfo,
                         security_conf: dict[str, str], client: str) -> None:
    topic = clients.create_topic(1, config={"message.timestamp.type": "CreateTime"})
    base = int(time.time() * 1000) - 600_000 + 123  # 10 min ago, not on a second boundary
    # out of order (a later record older), ms apart: a client that truncates, rounds or restamps is seen
    stamps = [base, base + 1, base - 7_919, base + 250_001, base + 2]
    records = [ExplicitRecord(value=f"t{i}".encode(), timestamp_ms=ts) for i, ts in enumerate(stamps)]
    run = send_records(client, broker.bootstrap, topic, records, config=_config(client), security=security_conf)
    observe(check, run)
    got = stored(run, clients, topic, 1)
    expect_eq([m.timestamp() for m in got], [(TIMESTAMP_CREATE_TIME, ts) for ts in stamps],
              "consumed (timestamp type, value), in send order")
