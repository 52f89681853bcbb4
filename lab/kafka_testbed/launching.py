"""Starting lab clusters: Apache Kafka (KRaft, 1 or 3 combined nodes) and Tansu, ready for clients.

A cluster is returned only once a real client sees every broker in a Metadata response (through
the secured client listener, with the configured credentials, when there is one). Any
failure on the way (port taken, process dead, timeout) stops what was started and raises
:class:`ClusterStartError` carrying the last log lines.
"""

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka_testbed import (
    admin,
    broker_properties,
    clusters,
    fetching,
    networking,
    supervising,
    versions,
    warming,
)
from kafka_testbed import security as lab_security
from kafka_testbed.broker_properties import DEFAULT_JVM_OPTIONS, NodeSpec
from kafka_testbed.clusters import Cluster, Node
from kafka_testbed.errors import ClusterStartError, TestbedError
from kafka_testbed.security import BrokerSecurity

DEFAULT_TIMEOUT_SECONDS = 60.0
FORMAT_LOG_LINES = 20
START_ATTEMPTS = 3
"""Starts on kernel-chosen ports retry when another process grabbed a port in between."""
_PORT_TAKEN = re.compile(r"already in use|Address in use|AddrInUse")


def start_kafka(
    node_ids: Sequence[int] = (1,),
    *,
    name: str | None = None,
    ports: Mapping[int, int] | None = None,
    properties: Mapping[str, str] | None = None,
    jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    workdir_parent: Path | None = None,
    keep_files: bool = False,
    security: BrokerSecurity | None = None,
    kafka_version: str = versions.KAFKA_VERSION,
    features: Mapping[str, int] | None = None,
) -> Cluster:
    """Start an Apache Kafka cluster with these node ids, every node broker and controller.

    ``ports`` pins client ports by node id (others are picked free); ``properties`` override
    ``server.properties`` of every node; ``timeout`` bounds the whole start. ``security``
    secures the client listener (TLS and/or SASL, see :mod:`kafka_testbed.security`); the
    returned cluster's ``bootstrap`` is still that listener. ``kafka_version`` picks the release
    (its jars are fetched on first use); ``features`` formats the cluster with those feature
    levels (``{"transaction.version": 1}``) instead of the release's defaults.
    """
    _check_node_ids(node_ids)
    name = name or "kafka-" + "-".join(str(node_id) for node_id in node_ids)

    def start_once() -> Cluster:
        return _start_kafka_once(
            node_ids, name=name, ports=ports or {}, properties=properties or {},
            jvm_options=jvm_options, timeout=timeout, workdir_parent=workdir_parent,
            keep_files=keep_files, security=security, kafka_version=kafka_version,
            features=features or {},
        )  # fmt: skip

    return _retrying_lost_port_races(start_once, ports_pinned=bool(ports))


def start_tansu(
    *,
    name: str = "tansu",
    port: int | None = None,
    storage_engine: str = "memory://tansu/",
    extra_args: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    workdir_parent: Path | None = None,
    keep_files: bool = False,
) -> Cluster:
    """Start one Tansu broker (in-memory storage by default); Tansu picks its own node id."""

    def start_once() -> Cluster:
        chosen = port if port is not None else networking.free_ports(1)[0]
        arguments = ["--storage-engine", storage_engine, *extra_args]
        return _start_tansu_once(
            chosen, name, arguments,
            timeout=timeout, workdir_parent=workdir_parent, keep_files=keep_files,
        )  # fmt: skip

    return _retrying_lost_port_races(start_once, ports_pinned=port is not None)


def _retrying_lost_port_races(start: Callable[[], Cluster], *, ports_pinned: bool) -> Cluster:
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return start()
        except ClusterStartError as error:
            if ports_pinned or attempt == START_ATTEMPTS or not _PORT_TAKEN.search(str(error)):
                raise
            print("kafka_testbed: a free port was taken meanwhile, retrying", file=sys.stderr)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class _JavaLaunch:
    """How every JVM of one Kafka cluster is started."""

    java: str
    classpath: str
    log4j: Path
    broker_options: tuple[str, ...]
    tool_options: tuple[str, ...]

    def broker(self, config: Path) -> list[str]:
        return self._command(broker_properties.BROKER_MAIN_CLASS, [str(config)], broker=True)

    def format(
        self,
        cluster_id: str,
        config: Path,
        security: BrokerSecurity | None = None,
        features: Mapping[str, int] | None = None,
    ) -> list[str]:
        arguments = broker_properties.format_arguments(cluster_id, config, security, features)
        return self._command(broker_properties.STORAGE_TOOL_MAIN_CLASS, arguments, broker=False)

    def _command(self, main_class: str, arguments: list[str], *, broker: bool) -> list[str]:
        options = self.broker_options if broker else self.tool_options
        return broker_properties.java_command(
            self.java, self.classpath, main_class, arguments,
            log4j_config=self.log4j, jvm_options=options,
        )  # fmt: skip


def _java_launch(
    workdir: Path, jvm_options: Sequence[str], kafka_version: str = versions.KAFKA_VERSION
) -> _JavaLaunch:
    jars_dir = fetching.fetch_kafka_jars(kafka_version)
    archive = warming.archive_options(jars_dir)
    log4j = _write(workdir / "log4j2.properties", broker_properties.log4j2_properties())
    return _JavaLaunch(
        _java(), fetching.classpath(jars_dir), log4j,
        (*jvm_options, *archive), (*DEFAULT_JVM_OPTIONS, *archive),
    )  # fmt: skip


def _start_kafka_once(
    node_ids: Sequence[int],
    *,
    name: str,
    ports: Mapping[int, int],
    properties: Mapping[str, str],
    jvm_options: Sequence[str],
    timeout: float,
    workdir_parent: Path | None,
    keep_files: bool,
    security: BrokerSecurity | None,
    kafka_version: str,
    features: Mapping[str, int],
) -> Cluster:
    started = time.monotonic()
    deadline = started + timeout
    specs = _node_specs(node_ids, ports, secured=security is not None)
    workdir = _make_workdir(name, workdir_parent)
    cluster = Cluster("apache-kafka", name, {}, workdir, keep_files=keep_files)
    try:
        launch = _java_launch(workdir, jvm_options, kafka_version)
        configs = _write_configs(specs, workdir, properties, security)
        _format_storage(launch, configs, workdir, deadline, security=security, features=features)
        _spawn_brokers(cluster, specs, launch, configs)
        _wait_until_ready(cluster, deadline, security=security)
    except BaseException:
        cluster.stop()
        raise
    return _finish(cluster, started)


def _start_tansu_once(
    port: int,
    name: str,
    arguments: Sequence[str],
    *,
    timeout: float,
    workdir_parent: Path | None,
    keep_files: bool,
) -> Cluster:
    started = time.monotonic()
    networking.ensure_ports_free({"tansu listener": port})
    url = f"tcp://{networking.HOST}:{port}"
    command = [
        str(fetching.tansu_binary()), "broker", "--cluster-id", name,
        "--listener-url", url, "--advertised-listener-url", url, *arguments,
    ]  # fmt: skip
    workdir = _make_workdir(name, workdir_parent)
    node = Node(0, f"{networking.HOST}:{port}", command, workdir / "logs" / "tansu.log")
    cluster = Cluster("tansu", name, {0: node}, workdir, keep_files=keep_files)
    try:
        node.process = supervising.spawn(command, node.log_path)
        _wait_until_ready(cluster, started + timeout, adopt_advertised_id=True)
    except BaseException:
        cluster.stop()
        raise
    return _finish(cluster, started)


def _finish(cluster: Cluster, started: float) -> Cluster:
    cluster.startup_seconds = time.monotonic() - started
    clusters.announce(cluster)
    return cluster


def _check_node_ids(node_ids: Sequence[int]) -> None:
    if not node_ids or len(set(node_ids)) != len(node_ids) or min(node_ids) < 0:
        raise ValueError(f"node_ids must be distinct non-negative integers, got {list(node_ids)}")


def _node_specs(
    node_ids: Sequence[int], ports: Mapping[int, int], *, secured: bool = False
) -> list[NodeSpec]:
    unknown = set(ports) - set(node_ids)
    if unknown:
        raise ValueError(f"ports given for unknown node ids {sorted(unknown)}")
    fresh = iter(networking.free_ports((3 if secured else 2) * len(node_ids)))
    specs = []
    for node_id in node_ids:
        port = ports[node_id] if node_id in ports else next(fresh)
        specs.append(NodeSpec(node_id, port, next(fresh), next(fresh) if secured else None))
    wanted = {f"node {spec.node_id} client listener": spec.port for spec in specs}
    wanted |= {f"node {spec.node_id} controller listener": spec.controller_port for spec in specs}
    wanted |= {
        f"node {spec.node_id} inter-broker listener": spec.broker_port
        for spec in specs
        if spec.broker_port is not None
    }
    networking.ensure_ports_free(wanted)
    return specs


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ClusterStartError(
            "Java (`java`) is not on PATH; Kafka brokers need Java 17+. Install a JDK "
            "(e.g. `apt-get install openjdk-17-jdk-headless`)."
        )
    return java


def _make_workdir(name: str, parent: Path | None) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"kafka-testbed-{name}-", dir=parent))
    (workdir / "logs").mkdir()
    return workdir


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _write_configs(
    specs: Sequence[NodeSpec],
    workdir: Path,
    overrides: Mapping[str, str],
    security: BrokerSecurity | None = None,
) -> dict[int, Path]:
    configs = {}
    for spec in specs:
        node_dir = workdir / f"node-{spec.node_id}"
        properties = broker_properties.server_properties(
            spec, specs, node_dir / "data", overrides, security
        )
        text = broker_properties.render_properties(properties)
        configs[spec.node_id] = _write(node_dir / "server.properties", text)
    return configs


def _format_storage(
    launch: _JavaLaunch,
    configs: Mapping[int, Path],
    workdir: Path,
    deadline: float,
    *,
    security: BrokerSecurity | None = None,
    features: Mapping[str, int] | None = None,
) -> None:
    """Format every node's log dir in parallel (one short JVM each) with one cluster id.

    SCRAM users of ``security`` are written into every node's initial metadata.
    """
    cluster_id = broker_properties.new_cluster_id()
    running = {}
    for node_id, config in configs.items():
        log_path = workdir / "logs" / f"format-node-{node_id}.log"
        running[node_id] = (
            supervising.spawn(launch.format(cluster_id, config, security, features), log_path),
            log_path,
        )
    try:
        for node_id, (process, log_path) in running.items():
            _wait_for_format(node_id, process, log_path, deadline)
    finally:
        for process, _ in running.values():
            supervising.kill(process)


def _wait_for_format(
    node_id: int, process: supervising.Process, log_path: Path, deadline: float
) -> None:
    try:
        status = process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        status = None
    if status != 0:
        problem = "timed out" if status is None else f"exited with status {status}"
        tail = "\n".join(clusters.read_tail(log_path, FORMAT_LOG_LINES))
        raise ClusterStartError(
            f"Formatting the storage of Kafka node {node_id} {problem}; {log_path}:\n{tail}\n"
            f"{clusters.KEEP_FILES_HINT}"
        )


def _spawn_brokers(
    cluster: Cluster, specs: Sequence[NodeSpec], launch: _JavaLaunch, configs: Mapping[int, Path]
) -> None:
    for spec in specs:
        log_path = cluster.workdir / "logs" / f"node-{spec.node_id}.log"
        node = Node(spec.node_id, spec.address, launch.broker(configs[spec.node_id]), log_path)
        cluster.nodes[spec.node_id] = node
        node.process = supervising.spawn(node.command, log_path)


def _wait_until_ready(
    cluster: Cluster,
    deadline: float,
    *,
    adopt_advertised_id: bool = False,
    security: BrokerSecurity | None = None,
) -> None:
    """Ports accept, then a Metadata response lists every node at its expected address."""
    cluster.wait_until_listening(list(cluster.nodes), max(0.0, deadline - time.monotonic()))
    expected = sorted(cluster.brokers.values())
    while True:
        cluster.raise_if_any_died()
        seen = _advertised(cluster.bootstrap, security)
        if sorted(seen.values()) == expected:
            break
        if time.monotonic() > deadline:
            raise cluster.start_error(f"clients see brokers {seen}, expected {cluster.brokers}")
        time.sleep(admin.POLL_SECONDS)
    if adopt_advertised_id:
        _adopt_advertised_ids(cluster, seen)
    elif seen != cluster.brokers:
        raise cluster.start_error(f"brokers advertise {seen}, expected {cluster.brokers}")


def _advertised(bootstrap: str, security: BrokerSecurity | None = None) -> dict[int, str]:
    if security is not None:
        return _advertised_securely(bootstrap, security)
    try:
        return admin.broker_addresses(bootstrap, timeout=2.0)
    except TestbedError:
        return {}


def _advertised_securely(bootstrap: str, security: BrokerSecurity) -> dict[int, str]:
    """Like :func:`admin.broker_addresses`, as the cluster's first user (with the lab client
    certificate when one is required): a start also proves the credentials work."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    client = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": 2000,
            "reconnect.backoff.max.ms": 500,
            "log_level": 2,
            **lab_security.client_config(security),
        }
    )
    try:
        metadata = client.list_topics(timeout=2.0)
    except KafkaException:
        return {}
    return {broker.id: f"{broker.host}:{broker.port}" for broker in metadata.brokers.values()}


def _adopt_advertised_ids(cluster: Cluster, advertised: Mapping[int, str]) -> None:
    """Key nodes by the id the broker chose itself (Tansu has no node id option)."""
    by_address = {node.address: node for node in cluster.nodes.values()}
    cluster.nodes = {}
    for node_id, address in advertised.items():
        node = by_address[address]
        node.node_id = node_id
        cluster.nodes[node_id] = node
