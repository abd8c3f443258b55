"""The shared half of every runtime's broker (:class:`bench.brokers.nodeset.NodeSetBroker`), through
:class:`~bench.brokers.process.ProcessBroker` with real local processes (``sh``/``sleep``, no broker):
identity read from the state, node lookup, start order, liveness, logs and stop."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.brokers.base import BrokerState, NodeState
from bench.brokers.docker_service import DockerBroker
from bench.brokers.nodeset import NodeSetBroker
from bench.brokers.process import ProcessBroker, alive
from bench.brokers.service import Service
from bench.errors import BrokerStartError, ConfigError


def _node(base: Path, node_id: int, role: str = "broker") -> NodeState:
    ndir = base / f"{role}-{node_id}"
    ndir.mkdir(parents=True)
    return NodeState(node_id=node_id, port=1, cmd=["sh", "-c", f"echo {role} {node_id} up; exec sleep 60"],
                     data_dir=str(ndir), log_file=str(ndir / "out.log"), role=role)


def _state(base: Path, nodes: int = 2, aux: int = 0) -> BrokerState:
    # nothing listens on port 1: readiness never comes, so start() ends in BrokerStartError
    return BrokerState(name="ns-test", kind="sleepers", version="0", bootstrap="127.0.0.1:1", base_dir=str(base),
                       nodes=[_node(base, i + 1) for i in range(nodes)],
                       aux=[_node(base, i + 1, "zookeeper") for i in range(aux)])


def _until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_identity_is_the_states_current_value(tmp_path: Path) -> None:
    state = _state(tmp_path)
    broker = ProcessBroker(state)
    assert (broker.name, broker.kind, broker.version, broker.bootstrap) == ("ns-test", "sleepers", "0", "127.0.0.1:1")
    assert broker.nodes is state.nodes
    state.bootstrap = "127.0.0.2:7"
    assert broker.bootstrap == "127.0.0.2:7" and broker.node_address(state.nodes[1]) == "127.0.0.2:1"
    assert DockerBroker(state).node_address(state.nodes[1]) == "127.0.0.1:1"
    assert isinstance(broker, Service) and isinstance(DockerBroker(state), Service)
    assert not isinstance(NodeSetBroker.name, str)     # on the class: the descriptor itself, not an error


def test_node_index_and_an_unknown_node_id(tmp_path: Path) -> None:
    broker = ProcessBroker(_state(tmp_path, nodes=3))
    assert broker.node_index(3) == 2
    with pytest.raises(ConfigError, match=r"broker 'ns-test' has no node with id 9 \(nodes: 1, 2, 3\)") as info:
        broker.node_index(9)
    assert info.value.exit_code == 2


def test_a_runtime_must_supply_its_part() -> None:
    class Half(NodeSetBroker):
        def _runs(self, node: NodeState) -> bool:
            return False

    with pytest.raises(TypeError, match="abstract"):
        Half(BrokerState("x", "k", "0", "127.0.0.1:1", "/nonexistent", []))  # type: ignore[abstract]


def test_start_order_liveness_logs_and_stop(tmp_path: Path) -> None:
    state = _state(tmp_path / "b", nodes=2, aux=1)
    broker = ProcessBroker(state)
    seen: list[tuple[str, bool, bool]] = []

    def wait_aux(node: NodeState, timeout: float) -> None:
        seen.append((node.role, alive(node), any(alive(n) for n in state.nodes)))

    try:
        with pytest.raises(BrokerStartError, match="not ready after"):
            broker.start(timeout=1.0, wait_aux=wait_aux)
        assert seen == [("zookeeper", True, False)]          # the auxiliary runs before any node is spawned
        assert broker.alive_nodes() == [1, 2] and broker.is_alive() and broker.dead_node_reason() is None
        assert _until(lambda: all("up" in log.text for log in broker.logs()))
        assert [(log.role, log.node_id) for log in broker.logs()] == [("zookeeper", 1), ("broker", 1), ("broker", 2)]

        broker.kill_node(0)
        assert broker.alive_nodes() == [2] and not broker.is_alive()
        reason = broker.dead_node_reason() or ""
        assert "sleepers broker 1 exited during start-up" in reason and "broker 1 up" in reason

        broker.stop(keep_data=True)
        assert not any(alive(n) for n in [*state.aux, *state.nodes])
        assert Path(state.base_dir).is_dir() and not (Path(state.base_dir) / "state.json").exists()
    finally:
        broker.stop()
    assert not Path(state.base_dir).exists()
