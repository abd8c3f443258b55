"""Fixtures and options of the conformance suite (see conformance/README.md).

Broker selection, first match wins: ``--bootstrap HOST:PORT`` · ``--broker KIND`` (embedded,
started through :func:`bench.brokers.start_broker`) · environment ``KBENCH_BOOTSTRAP``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bench.errors import ConfigError
from bench.kafka.admin import TopicAdmin
from bench.kafka.protocol import api_versions
from conformance.clients import COMMON_CONF, Clients, Names, delete_topics
from conformance.plugin import CTX_KEY, PLUGIN_NAME, BrokerInfo, ConformancePlugin
from conformance.timings import Timings
from conformance.verdicts import CheckContext


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("kbench-conformance")
    g.addoption("--bootstrap", default=None, help="external broker HOST:PORT[,HOST:PORT]")
    from bench.brokers import kind_names

    g.addoption("--broker", default=None, choices=kind_names(),
                help="start an embedded broker of this kind for the session")
    g.addoption("--broker-name", default=None, help="implementation name for the report (external)")
    g.addoption("--broker-version", default=None, help="broker version for the report (external)")
    g.addoption("--report-dir", default=None, help="write the report here (must not exist or be empty)")
    g.addoption("--report-root", default="reports",
                help="parent of reports/conformance-<broker>-<UTC stamp>/ (default: ./reports)")
    g.addoption("--no-report", action="store_true", default=False, help="write no report files")
    g.addoption("--resume", action="store_true", default=False,
                help="continue the run in --report-dir (keep its verdicts; used by conformance.runner)")
    g.addoption("--broker-attach", default=None,
                help="name of an embedded broker started by another process (bench.brokers.get_broker)")
    g.addoption("--check-timeout", default=60.0, type=float, help="per-check time limit, s (default 60)")
    g.addoption("--client-config-file", default=None,
                help="librdkafka key=value lines (SASL/TLS) for every client, admin and probe of the suite")
    g.addoption("--client", "--clients", dest="client", action="append", default=None, metavar="NAME[,NAME]",
                help="also run the through-client checks (conformance/test_client_checks.py) with this "
                     "client's driver (repeatable)")


#: environment variable naming the client-properties file, for child-process members (conformance._member)
CLIENT_CONFIG_ENV = "KBENCH_CONFORMANCE_CLIENT_CONFIG"


def _security_conf(config: pytest.Config) -> dict[str, str]:
    """The ``--client-config-file`` properties, merged into every client's config (COMMON_CONF)."""
    path = config.getoption("client_config_file")
    if not path:
        return {}
    from bench.brokers.security import load_properties

    conf = load_properties(path)
    COMMON_CONF.update(conf)
    os.environ[CLIENT_CONFIG_ENV] = str(path)
    return conf


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id, title): conformance check ID and semantic")
    config.addinivalue_line("markers", "through_client: runs through --client drivers (deselected without one)")
    config.addinivalue_line("markers", "exclusive: must not run while another lane of --jobs N runs (it restarts "
                                       "the broker, or its timing does not survive a loaded machine)")
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(ConformancePlugin(config), PLUGIN_NAME)
    _security_conf(config)


def _plugin(config: pytest.Config) -> ConformancePlugin:
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    assert isinstance(plugin, ConformancePlugin)
    return plugin


@pytest.fixture(scope="session")
def broker_control(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The embedded broker handle (``--broker``), else None (external broker: black-box only)."""
    attach = pytestconfig.getoption("broker_attach")
    if attach:
        from bench.brokers import get_broker

        attached = get_broker(attach)
        if attached is None:
            raise ConfigError(f"--broker-attach {attach}: no such embedded broker")
        yield attached  # owned by whoever started it
        return
    kind = pytestconfig.getoption("broker")
    if kind is None or pytestconfig.getoption("bootstrap"):
        yield None
        return
    from bench.brokers import start_broker

    handle = start_broker(kind, nodes=1, port=0, name=f"conformance-{kind}-{os.getpid()}")
    try:
        yield handle
    finally:
        handle.stop()


def _resolve_bootstrap(config: pytest.Config, handle: Any) -> str:
    boot = config.getoption("bootstrap")
    if boot:
        return str(boot)
    if handle is not None:
        return str(handle.bootstrap)
    env = os.environ.get("KBENCH_BOOTSTRAP")
    if env:
        return env
    raise ConfigError("no broker: give --bootstrap HOST:PORT, --broker KIND or KBENCH_BOOTSTRAP")


@pytest.fixture(scope="session")
def broker(pytestconfig: pytest.Config, broker_control: Any) -> BrokerInfo:
    """Identity of the broker under test: bootstrap, ApiVersions, cluster id, brokers."""
    plugin = _plugin(pytestconfig)
    bootstrap = _resolve_bootstrap(pytestconfig, broker_control)
    info = BrokerInfo(
        bootstrap=bootstrap,
        implementation=(getattr(broker_control, "kind", None) or pytestconfig.getoption("broker_name")),
        version=(getattr(broker_control, "version", None) or pytestconfig.getoption("broker_version")),
        embedded=broker_control is not None)
    plugin.broker = info
    security = client_conf(pytestconfig)
    info.api = api_versions(bootstrap, timeout=10.0, security=security)
    with TopicAdmin(bootstrap, security) as admin:
        cluster = admin.cluster(timeout_s=10)
    info.cluster_id = cluster.cluster_id
    info.controller_id = cluster.controller_id
    info.brokers = [{"id": b.id, "host": b.host, "port": b.port} for b in cluster.brokers]
    return info


def client_conf(config: pytest.Config) -> dict[str, str]:
    """The security properties of ``--client-config-file`` (empty without one)."""
    path = config.getoption("client_config_file")
    if not path:
        return {}
    from bench.brokers.security import load_properties

    return load_properties(path)


@pytest.fixture(scope="session")
def security_conf(pytestconfig: pytest.Config) -> dict[str, str]:
    """The client properties (SASL/TLS) every client of the run uses; {} on a plaintext broker."""
    return client_conf(pytestconfig)


@pytest.fixture(scope="session")
def names(pytestconfig: pytest.Config) -> Names:
    """Unique topic/group/transactional-id names for this run (``kbc-<run id>-…``)."""
    return Names(_plugin(pytestconfig).run_id)


@pytest.fixture(scope="session")
def created_topics(broker: BrokerInfo) -> Iterator[list[str]]:
    """Topics created by this run; deleted (bounded, best effort) at session end."""
    topics: list[str] = []
    yield topics
    delete_topics(broker.bootstrap, topics, timeout=15.0)


@pytest.fixture(scope="session")
def timings(pytestconfig: pytest.Config) -> Timings:
    """HDR timings of the run: ``timings.record("commit", us)`` / ``with timings.time("commit"):``."""
    return _plugin(pytestconfig).timings


@pytest.fixture(autouse=True)
def check(request: pytest.FixtureRequest, broker: BrokerInfo) -> CheckContext:
    """The check's context: ``note``, ``record``, ``observe``, ``require_api``, ``supports``."""
    marker = request.node.get_closest_marker("check")
    check_id, title = (str(marker.args[0]), str(marker.args[1])) if marker else ("?", "?")
    ctx = CheckContext(check_id, title, broker.api)
    request.node.stash[CTX_KEY] = ctx
    return ctx


@pytest.fixture
def clients(broker: BrokerInfo, names: Names, created_topics: list[str], check: CheckContext
            ) -> Iterator[Clients]:
    """Client/topic factory bound to the broker; closes every client after the test."""
    c = Clients(broker.bootstrap, names, check.check_id.lower(), created_topics)
    yield c
    problems = c.close()
    if problems:
        check.note("cleanup: " + "; ".join(problems))
