"""Commits through a client's driver, C27 (docs/conformance.md, "Through a client").

O6 of the broker suite (commit metadata) through the client's own commit API: one member of the client on
protocol v2 (:mod:`conformance.group_client`) commits each poll batch with ``group_options.commit_metadata``;
the suite then reads the group's committed offset and metadata with OffsetFetch (what ListConsumerGroupOffsets
sends) over the raw protocol (:func:`bench.kafka.member_commit.fetch_committed`), comparing the metadata's bytes
exactly. Not through confluent-kafka-python's admin: its TopicPartition copies librdkafka's metadata (a buffer
with a size, not NUL-terminated) with ``strdup``, reading past its end (seen: a UnicodeDecodeError at byte 280 of
this check's 280-byte string with confluent-kafka 2.16.1); its view is observed, not judged. A client whose
library's commits carry no metadata is N/A (client), from the capability table :mod:`conformance.group_features`.
Collected only with ``--client NAME``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.drivers.events import GroupOptions
from bench.kafka.codec import ProtocolError
from bench.kafka.member_commit import fetch_committed
from bench.load.payload import encode_header
from conformance.clients import Clients, produce_all
from conformance.commit_steps import METADATA, admin_view, expected_commit, metadata_text
from conformance.group_client import stop_members, wait_result
from conformance.group_features import require_feature
from conformance.group_steps import harness_errors, joined, member
from conformance.plugin import BrokerInfo
from conformance.through_client import selected_clients
from conformance.verdicts import CheckContext, HarnessError, expect, expect_eq, require_effective

pytestmark = [pytest.mark.through_client, pytest.mark.timeout(60)]

#: records written; the member reads C27_READ of them and stops (the rest stays unread, uncommitted)
C27_RECORDS = 40
C27_READ = 20
RESULT_S = 30.0



def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", selected_clients(metafunc.config), ids=str)


@pytest.mark.check("C27", "through a client: commit metadata read back unchanged")
def test_c27_commit_metadata(check: CheckContext, clients: Clients, broker: BrokerInfo, names: Any,
                             security_conf: dict[str, str], client: str) -> None:
    require_feature(client, "commit_metadata")
    if broker.api is None:
        raise HarnessError("no ApiVersions of the broker: C27's OffsetFetch picks its version from them")
    topic, group = clients.create_topic(1), names.group("c27")
    recs = [{"value": encode_header(time.monotonic_ns(), 9, i) + bytes(48), "partition": 0}
            for i in range(C27_RECORDS)]
    errors = [d.error for d in produce_all(clients.producer(), topic, recs) if d.error is not None]
    require_effective(not errors, "records written for the check", errors[:3], "all acked")
    m = member(client, "m", 1, broker, topic, group, GroupOptions(
        commit="batch", auto_commit=False, max_records=C27_READ, commit_metadata=METADATA))
    try:
        joined(m, [])
        done = wait_result(m, RESULT_S)
    finally:
        stop_members([m])
    harness_errors([m])
    expect(done, "the member stopped on its own", m.result, f"a result after {C27_READ} records")
    reads = m.reads()
    try:
        fetched = fetch_committed(broker.bootstrap, group, topic, [0], api=broker.api, security=security_conf)
    except ProtocolError as exc:
        raise HarnessError(f"kbench's OffsetFetch: {exc}") from exc
    got = fetched.get(0)
    want = expected_commit(reads)
    offs = [o for _p, o, _a, _b in reads]
    check.observe(read=len(reads), offsets_read=offs[:3] + offs[-1:],
                  driver_commits=[(c.offsets, c.ok, c.error) for c in m.commits()],
                  offset_fetch=None if got is None else {"offset": got.offset, "error_code": got.error_code,
                                                         "metadata": metadata_text(got.metadata)},
                  metadata_sent=METADATA, metadata_bytes=len(METADATA.encode()),
                  librdkafka_admin=admin_view(clients.admin(), group, topic))
    expect_eq(len(reads), C27_READ, "records the member read before it stopped")
    expect(got is not None and got.error_code == 0, "OffsetFetch of partition 0", got, "an answer, no error")
    assert got is not None
    expect_eq(got.offset, want.get(0), "committed offset (OffsetFetch; last record read + 1)")
    expect_eq(metadata_text(got.metadata), METADATA, "committed metadata (OffsetFetch; the string committed)")
    expect_eq(got.metadata, METADATA.encode(), "committed metadata's UTF-8 bytes")

