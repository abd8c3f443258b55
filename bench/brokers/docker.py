"""The ``docker`` runtime: every broker node (and auxiliary process) is a container, driven by the Docker SDK.

Two ways a kind runs in a container (one container per node, host networking on loopback, ``init=True``
so SIGTERM reaches the broker):

* **process kinds** (``kafka``, ``kafka-zk``, ``kfake``): the command the process runtime would run, in
  a locally built image (:mod:`bench.brokers.images`): ``kfake`` in the 10 MB ``kbench/kfake`` image
  (``FROM scratch`` + the static binary), the others unchanged in ``kbench/host-jre``, with the broker's
  state directory (rw) and the kbench cache (ro: jars) bind-mounted at the host's paths.
* **image kinds** (:data:`IMAGE_KINDS`): an image with its own entrypoint, pinned as docker-compose.yml
  pins it (``apache-kafka``, ``redpanda``, ``tansu``). ``--image REF`` swaps the image of any kind.

kbench never pulls: a missing image is a :class:`~bench.errors.BrokerError` (exit 2) saying how to get
it. Ready = every node answers a Kafka metadata request (not an open port). ``kill`` = SIGKILL through
the container API, ``pause`` = the cgroup freezer (``docker pause``), ``restart`` = ``docker start`` of
the same container (its data intact), ``down`` = stop and remove the containers. Container ids are kept
in ``state.json`` (``NodeState.extra``), so ``kbench broker status/logs/down`` work from another shell.
"""

from __future__ import annotations

import contextlib
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench._paths import cache_dir
from bench.brokers.base import BrokerState, NodeState, check_ports, port_free
from bench.brokers.docker_engine import docker_client, engine_host
from bench.brokers.docker_service import LABEL, DockerBroker
from bench.brokers.images import KFAKE_BIN, BuiltImage, host_jre_image, image_present, kfake_image
from bench.brokers.service import FetchRequest, Progress, StartRequest
from bench.errors import BrokerError, BrokerStartError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from docker import DockerClient

    from bench.brokers.process import ProcessKind

__all__ = ["IMAGE_KINDS", "DockerBroker", "DockerRuntime", "ImageKind"]

@dataclass(frozen=True)
class ImageKind:
    """A broker shipped as an image. ``command``/``env`` are templates: ``{port}`` (node 1's client port),
    ``{ports}`` (all, comma-separated). One container serves ``nodes`` brokers on consecutive ports."""

    name: str
    image: str                                   # pinned reference; kbench never pulls it
    version: str
    summary: str
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    node_counts: tuple[int, ...] = (1,)
    build: Callable[[DockerClient, Progress | None], BuiltImage] | None = None


_KAFKA_ENV = {
    "KAFKA_NODE_ID": "1", "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_LISTENERS": "PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
    "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://127.0.0.1:{port}",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@127.0.0.1:{controller}",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
}

IMAGE_KINDS: dict[str, ImageKind] = {k.name: k for k in (
    # the three below are pinned as in docker-compose.yml; load them first (`docker load -i ...`)
    ImageKind("apache-kafka", "apache/kafka:4.3.1", "4.3.1", "the apache/kafka image (KRaft)",
              env=_KAFKA_ENV),
    ImageKind("redpanda", "docker.redpanda.com/redpandadata/redpanda:v25.2.10", "v25.2.10", "Redpanda",
              ("redpanda", "start", "--mode=dev-container", "--smp=1", "--memory=1G",
               "--kafka-addr=127.0.0.1:{port}", "--advertise-kafka-addr=127.0.0.1:{port}",
               "--rpc-addr=127.0.0.1:{controller}", "--advertise-rpc-addr=127.0.0.1:{controller}")),
    ImageKind("tansu", "ghcr.io/tansu-io/tansu:0.6.0", "0.6.0", "Tansu (the ghcr.io image)",
              env={"CLUSTER_ID": "kbench", "LISTENER_URL": "tcp://127.0.0.1:{port}",
                   "ADVERTISED_LISTENER_URL": "tcp://127.0.0.1:{port}", "STORAGE_ENGINE": "memory://tansu/"}),
)}
# process kinds with an image of their own: (builder, the executable's path inside it)
OWN_IMAGES: dict[str, tuple[Callable[[DockerClient, Progress | None], BuiltImage], str]] = {
    "kfake": (kfake_image, KFAKE_BIN),
}
CONTROLLER_OFFSET = 1000     # image kinds that need a second port get {port} + 1000 as {controller}


def _missing_image(ref: str, host: str | None) -> BrokerError:
    return BrokerError(f"image {ref} is not in the Docker engine at {host or 'the default socket'}, and kbench "
                       "never pulls one: load it (`docker load -i FILE.tar`), build it, or pass --image REF")


def _free_port(needed: Callable[[int], list[int]]) -> int:
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 40000)
        if all(port_free(p) for p in needed(port)):
            return port
    raise BrokerError("could not find free loopback ports for a broker")


# ------------------------------------------------------------------------------------------ runtime
@dataclass(frozen=True)
class _Spec:
    """One container to create."""

    node: NodeState
    image: str
    command: list[str]
    entrypoint: list[str] | None
    env: dict[str, str]
    mounts: dict[str, dict[str, str]]
    workdir: str | None = None


class DockerRuntime:
    """Runs image kinds, and the process kinds it is given, as containers (see the module docstring)."""

    name = "docker"

    def __init__(self, process_kinds: Mapping[str, ProcessKind]) -> None:
        self._process = {k: v for k, v in process_kinds.items() if k not in IMAGE_KINDS}

    def kinds(self) -> tuple[str, ...]:
        return (*IMAGE_KINDS, *self._process)

    def attach(self, state: BrokerState) -> DockerBroker:
        return DockerBroker(state)

    def fetch(self, kind: str, request: FetchRequest) -> str:
        client = docker_client()
        if kind in IMAGE_KINDS:
            ik = IMAGE_KINDS[kind]
            if ik.build is None:
                if not image_present(client, ik.image):
                    raise _missing_image(ik.image, engine_host())
                return f"{kind}: image {ik.image} is in the engine"
            built = ik.build(client, request.progress)
            return f"{kind}: image {built.tag} ({built.size / 1e6:.0f} MB{', built' if built.built else ''})"
        pkind = self._kind(kind)
        line = pkind.fetch(request)
        built = OWN_IMAGES.get(kind, (host_jre_image, ""))[0](client, request.progress)
        return f"{line}; image {built.tag} ({built.size / 1e6:.0f} MB{', built' if built.built else ''})"

    def _kind(self, kind: str) -> ProcessKind:
        if kind not in self._process:
            raise ConfigError(f"the docker runtime cannot start {kind!r} (it runs: {', '.join(self.kinds())})")
        return self._process[kind]

    def start(self, base: Path, request: StartRequest) -> DockerBroker:
        """Create and start the containers, wait until every node answers; on failure remove them all."""
        options = dict(request.options)
        image = options.pop("image", None)
        request = replace(request, options=options)
        client = docker_client()
        try:
            if request.kind in IMAGE_KINDS:
                state, specs = self._image_specs(client, base, request, image)
            else:
                state, specs = self._process_specs(client, base, request, image)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        broker = DockerBroker(state)
        pkind = self._process.get(request.kind)
        try:
            for spec in specs:
                self._create(client, state, spec)
            state.save()
            broker.start(request.timeout, wait_aux=pkind.wait_aux if pkind is not None else None)
        except BaseException:
            broker.stop(keep_data=True)
            raise
        return broker

    def _state(self, base: Path, request: StartRequest, version: str, nodes: list[NodeState],
               aux: list[NodeState] | None = None, brokers: int | None = None,
               bootstrap: str | None = None) -> BrokerState:
        return BrokerState(
            name=request.name, kind=request.kind, version=version, base_dir=str(base), nodes=nodes,
            aux=aux or [], brokers=brokers, runtime="docker",
            bootstrap=bootstrap or ",".join(f"127.0.0.1:{n.port}" for n in nodes),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"), configs=dict(request.configs),
            options=dict(request.options))

    def _image_specs(self, client: DockerClient, base: Path, request: StartRequest,
                     image: str | None) -> tuple[BrokerState, list[_Spec]]:
        ik = IMAGE_KINDS[request.kind]
        if request.nodes not in ik.node_counts:
            raise ConfigError(f"{ik.name} in docker: --nodes must be {' or '.join(map(str, ik.node_counts))}")
        if request.options or request.configs or request.binary or request.version:
            raise ConfigError(f"{ik.name} in docker takes only --image (no --option/--config/--binary/--version); "
                              f"its version is the image's ({ik.image})")
        if image is not None:
            if not image_present(client, image):
                raise _missing_image(image, engine_host())
            ref = image
        elif ik.build is not None:
            ref = ik.build(client, request.progress).tag
        elif image_present(client, ik.image):
            ref = ik.image
        else:
            raise _missing_image(ik.image, engine_host())

        def needed(p: int) -> list[int]:
            return [p + i for i in range(request.nodes)] + [p + CONTROLLER_OFFSET]

        port = request.port or _free_port(needed)
        check_ports(needed(port))
        ports = [port + i for i in range(request.nodes)]
        values = {"port": str(port), "ports": ",".join(map(str, ports)), "controller": str(port + CONTROLLER_OFFSET)}
        ndir = base / "node-1"
        ndir.mkdir(parents=True, exist_ok=True)
        node = NodeState(node_id=1, port=port, cmd=[c.format(**values) for c in ik.command], data_dir=str(ndir),
                         log_file=str(ndir / "container.log"),
                         env={k: v.format(**values) for k, v in ik.env.items()})
        state = self._state(base, request, ik.version if image is None else image.rpartition(":")[2] or "latest",
                            [node], brokers=request.nodes, bootstrap=",".join(f"127.0.0.1:{p}" for p in ports))
        return state, [_Spec(node, ref, node.cmd, None, dict(node.env or {}), {})]

    def _process_specs(self, client: DockerClient, base: Path, request: StartRequest,
                       image: str | None) -> tuple[BrokerState, list[_Spec]]:
        kind = self._kind(request.kind)
        if request.nodes not in kind.node_counts:
            raise ConfigError(f"{kind.name}: --nodes must be {' or '.join(map(str, kind.node_counts))}")
        if request.port == 0:
            request = replace(request, port=_free_port(lambda p: kind.ports_needed(p, request.nodes)))
        check_ports(kind.ports_needed(request.port, request.nodes))
        if image is not None and not image_present(client, image):
            raise _missing_image(image, engine_host())
        build, exe_inside = OWN_IMAGES.get(kind.name, (host_jre_image, ""))
        ref = image or build(client, request.progress).tag
        prepared = kind.prepare(base, request)
        mounts = {str(base): {"bind": str(base), "mode": "rw"}}
        cache = cache_dir().resolve()
        if cache.exists():
            mounts[str(cache)] = {"bind": str(cache), "mode": "ro"}
        specs = []
        for node in [*prepared.aux, *prepared.nodes]:
            exe = Path(node.cmd[0])
            extra = dict(mounts)
            if exe.is_absolute() and exe.exists() and not exe.is_relative_to(cache) and exe.parent != Path("/usr/bin"):
                extra[str(exe.parent)] = {"bind": str(exe.parent), "mode": "ro"}
            entrypoint = [exe_inside or node.cmd[0]] if image is None or exe_inside == "" else None
            specs.append(_Spec(node, ref, list(node.cmd[1:]), entrypoint, dict(node.env or {}), extra,
                               node.data_dir))
        state = self._state(base, request, prepared.version, prepared.nodes, prepared.aux, prepared.brokers,
                            prepared.bootstrap)
        return state, specs

    @staticmethod
    def _create(client: DockerClient, state: BrokerState, spec: _Spec) -> None:
        from docker.errors import DockerException

        node = spec.node
        cname = f"kbench-{state.name}-{node.role}-{node.node_id}"
        with contextlib.suppress(DockerException):      # a leftover of an earlier broker of this name
            client.containers.get(cname).remove(force=True)
        try:
            c = client.containers.create(
                spec.image, spec.command, entrypoint=spec.entrypoint, name=cname, detach=True, init=True,
                network_mode="host", environment=spec.env, volumes=spec.mounts, working_dir=spec.workdir,
                labels={LABEL: state.name, "kbench.node": str(node.node_id), "kbench.role": node.role})
        except DockerException as exc:
            raise BrokerStartError(f"creating the container of {state.kind} {node.role} {node.node_id} "
                                   f"from {spec.image} failed: {exc}") from exc
        node.extra = {**(node.extra or {}), "container": str(c.id), "image": spec.image,
                      "docker_host": engine_host() or ""}
        node.pid = None
