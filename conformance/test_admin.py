"""Admin and metadata checks A1–A8 (CONFORMANCE.md)."""

from __future__ import annotations

import pytest

from conformance.plugin import BrokerInfo
from conformance.verdicts import CheckContext


@pytest.mark.check("A1", "ApiVersions (RECORD)")
def test_a1_api_versions(check: CheckContext, broker: BrokerInfo) -> None:
    assert broker.api is not None and broker.api.apis, "ApiVersions: observed no APIs, expected a list"
    check.record(request_version=broker.api.request_version,
                 apis={r.name: f"{r.min_version}-{r.max_version}" for r in broker.api.apis.values()})
