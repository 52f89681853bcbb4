"""What an Apache Kafka node of the lab is told: server.properties, log4j2 config, JVM command.

Pure functions (no files, no processes) so the generated configuration is unit tested without
starting a JVM. Every node runs in KRaft combined mode (``process.roles=broker,controller``) and
every node is a voter of a static quorum: one process per node starts fastest, and a 3-node
cluster survives the loss of one node, which failure tests rely on. A cluster with a secured
client listener (:mod:`kafka_testbed.security`) gets a third, PLAINTEXT listener for replication.
"""

import base64
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka_testbed import security as lab_security
from kafka_testbed.security import BrokerSecurity

HOST = "127.0.0.1"

DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms64m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
"""Small heaps, one GC thread and the C1 compiler only: four brokers start fast on two cores.

Benchmarks that need peak broker throughput should pass their own options (full JIT, G1).
"""

BROKER_MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL_MAIN_CLASS = "kafka.tools.StorageTool"


@dataclass(frozen=True)
class NodeSpec:
    """Where one Kafka node listens."""

    node_id: int
    """``node.id``; doubles as broker id and controller id (combined mode)."""
    port: int
    """Client listener port on 127.0.0.1 (``PLAINTEXT`` unless the cluster is secured)."""
    controller_port: int
    """KRaft controller listener port on 127.0.0.1."""
    broker_port: int | None = None
    """Inter-broker ``PLAINTEXT`` listener port; only clusters with a secured client listener."""

    @property
    def address(self) -> str:
        """``host:port`` clients use for this broker."""
        return f"{HOST}:{self.port}"


def quorum_voters(nodes: Sequence[NodeSpec]) -> str:
    """The static ``controller.quorum.voters`` value: every node votes."""
    return ",".join(f"{node.node_id}@{HOST}:{node.controller_port}" for node in nodes)


def replication_settings(broker_count: int) -> dict[str, str]:
    """Internal topics replicated as widely as the cluster allows, tolerating one dead node."""
    factor = str(broker_count)
    min_isr = str(min(2, broker_count))
    return {
        "default.replication.factor": factor,
        "offsets.topic.replication.factor": factor,
        "transaction.state.log.replication.factor": factor,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": factor,
        "share.coordinator.state.topic.min.isr": min_isr,
        "min.insync.replicas": "1",
    }


TEST_FRIENDLY_SETTINGS: Mapping[str, str] = {
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "true",
    "num.partitions": "3",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.num.partitions": "10",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "background.threads": "4",
    "log.cleaner.threads": "1",
    "broker.heartbeat.interval.ms": "1000",
    "broker.session.timeout.ms": "4000",
}
"""Fast group joins and topic auto-creation; fewer threads because several JVMs share 2 cores.

A shorter broker session (default 9 s) fences a killed broker sooner, and lets a restarted one
register again sooner: the controller refuses a new incarnation while the old session lives.
"""


def server_properties(
    node: NodeSpec,
    quorum: Sequence[NodeSpec],
    data_dir: Path,
    overrides: Mapping[str, str] | None = None,
    security: BrokerSecurity | None = None,
) -> dict[str, str]:
    """The complete ``server.properties`` of one combined broker+controller node.

    With ``security`` the client listener is secured as described and replication uses a
    PLAINTEXT listener on ``node.broker_port``.
    """
    properties = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": quorum_voters(quorum),
        **(_plaintext_listeners(node) if security is None else _secured_listeners(node, security)),
        "log.dirs": str(data_dir),
        **replication_settings(len(quorum)),
        **TEST_FRIENDLY_SETTINGS,
    }
    properties.update(overrides or {})
    return properties


def _plaintext_listeners(node: NodeSpec) -> dict[str, str]:
    return {
        "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{node.address}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    }


def _secured_listeners(node: NodeSpec, security: BrokerSecurity) -> dict[str, str]:
    if node.broker_port is None:
        raise ValueError(f"node {node.node_id} needs a broker_port for its inter-broker listener")
    client, broker = lab_security.CLIENT_LISTENER, lab_security.BROKER_LISTENER
    return {
        "listeners": (
            f"{client}://{HOST}:{node.port},{broker}://{HOST}:{node.broker_port},"
            f"CONTROLLER://{HOST}:{node.controller_port}"
        ),
        "advertised.listeners": f"{client}://{node.address},{broker}://{HOST}:{node.broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": broker,
        "listener.security.protocol.map": lab_security.listener_protocol_map(security),
        **lab_security.client_listener_properties(security),
    }


def render_properties(properties: Mapping[str, str]) -> str:
    """Java ``.properties`` text, escaping what the format treats specially."""
    lines = [f"{_escape(key, is_key=True)}={_escape(value)}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"


def _escape(text: str, *, is_key: bool = False) -> str:
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if is_key:
        for special in ("=", ":", " ", "#", "!"):
            escaped = escaped.replace(special, "\\" + special)
    elif escaped.startswith(" "):
        escaped = "\\" + escaped
    return escaped


def log4j2_properties(level: str = "INFO", target: str = "SYSTEM_OUT") -> str:
    """A log4j2 configuration printing to the console (which the lab sends to a log file).

    Brokers log INFO to stdout; tools log WARN to stderr so their stdout stays parseable.
    """
    return "\n".join(
        (
            "status = warn",
            "appender.console.type = Console",
            "appender.console.name = CONSOLE",
            f"appender.console.target = {target}",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = [%d] %p %m (%c)%n",
            f"rootLogger.level = {level}",
            "rootLogger.appenderRef.console.ref = CONSOLE",
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "",
        )
    )


def java_command(
    java: str,
    classpath: str,
    main_class: str,
    arguments: Sequence[str],
    *,
    log4j_config: Path,
    jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
) -> list[str]:
    """The argv that runs one Kafka main class from the jar cache."""
    return [
        java,
        *jvm_options,
        f"-Dlog4j2.configurationFile={log4j_config}",
        "-cp",
        classpath,
        main_class,
        *arguments,
    ]


def format_arguments(
    cluster_id: str,
    config_file: Path,
    security: BrokerSecurity | None = None,
    features: Mapping[str, int] | None = None,
) -> list[str]:
    """``StorageTool format`` arguments for one node of a static-quorum cluster.

    SCRAM users of ``security`` are created here, in the initial metadata log: the broker then
    accepts them from its first second, with no admin call to wait for. ``features`` finalizes
    feature levels at format time (``--feature transaction.version=1``), as an operator pins a
    new cluster to an older protocol.
    """
    feature_arguments = [
        argument
        for name, level in sorted((features or {}).items())
        for argument in ("--feature", f"{name}={level}")
    ]
    return [
        "format",
        "--cluster-id",
        cluster_id,
        "--config",
        str(config_file),
        "--ignore-formatted",
        *(lab_security.scram_format_arguments(security) if security is not None else ()),
        *feature_arguments,
    ]


def new_cluster_id() -> str:
    """A random KRaft cluster id (a UUID in URL-safe base64, as ``kafka-storage random-uuid``).

    Like Kafka's ``Uuid.randomUuid()``, never one starting with ``-``: command-line parsers
    would take it for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
