"""Kroxylicious, the Java Kafka proxy from the Kroxylicious project, as a benchmark peer.

Kroxylicious is a Netty proxy that decodes every Kafka frame so that filters can act on it; run
with no filters it is the fair Java counterpart of our gateway. Its command-line entry point
(``kroxylicious-app``) is not on Maven Central, its runtime is, so ``maven/kroxylicious/pom.xml``
resolves ``kroxylicious-runtime`` (and its own kafka-clients) into the cache, and
``lab/java/KroxyliciousLauncher.java`` parses the YAML config with Kroxylicious's own
``ConfigParser`` and starts its ``KafkaProxy``.

The config: one virtual cluster whose target is the upstream broker, addressed by port (a
bootstrap port, then one port per node id of the upstream), no filters, no TLS, no management
listener. Kroxylicious 0.12 has no bind address for port-based addressing (only SNI, which needs
TLS, has one), and would listen on every interface. So the cluster names, through the deprecated
but still accepted ``clusterNetworkAddressConfigProvider`` property, the launcher's own provider
plugin ``LoopbackPortPerNode``: Kroxylicious's port-per-node provider, same config, bound to
127.0.0.1. Kroxylicious finds plugins with a ServiceLoader, hence the ``META-INF/services`` entry
written next to the launcher's classes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kafka_testbed import admin, fetching, java_programs, networking, supervising
from kafka_testbed.errors import FetchError, TestbedError
from kafka_testbed.peers import PeerProxy, PeerUnavailable, wait_until_listening

KROXYLICIOUS_VERSION = "0.12.0"
"""The newest release on Maven Central (2025), built for Java 17 (``maven.compiler.release``)."""

KROXYLICIOUS_POM = fetching.PACKAGE_DIR / "maven" / "kroxylicious" / "pom.xml"
LAUNCHER = "KroxyliciousLauncher"
ADDRESS_PLUGIN = "LoopbackPortPerNode"
"""The launcher's nested provider plugin, named in the config by its simple name."""
ADDRESS_PLUGIN_SERVICE = "io.kroxylicious.proxy.service.ClusterNetworkAddressConfigProviderService"
JVM_OPTIONS = ("-Xmx1g", "-XX:+UseG1GC", "-Dlog4j2.level=WARN")
UPSTREAM_METADATA_SECONDS = 10.0
PORT_BLOCK_ATTEMPTS = 50


def kroxylicious_jars_dir(version: str = KROXYLICIOUS_VERSION) -> Path:
    """Where the Kroxylicious runtime and its dependencies live."""
    return fetching.cache_root() / "jars" / f"kroxylicious-{version}"


def fetch_kroxylicious(version: str = KROXYLICIOUS_VERSION) -> Path:
    """Make sure Kroxylicious's jars are cached and return their folder; a no-op when complete."""
    return fetching.fetch_pom(
        KROXYLICIOUS_POM, {"kroxylicious.version": version}, kroxylicious_jars_dir(version)
    )


def proxy_config(upstream: str, bootstrap_port: int, node_start_port: int, nodes: range) -> str:
    """Kroxylicious's YAML config (written as JSON, which YAML reads), listening on 127.0.0.1."""
    addressing = {
        "type": ADDRESS_PLUGIN,
        "config": {
            "bootstrapAddress": f"{networking.HOST}:{bootstrap_port}",
            "nodeAddressPattern": networking.HOST,
            "nodeStartPort": node_start_port,
            "nodeIdRanges": [
                {
                    "name": "brokers",
                    "range": {"startInclusive": nodes.start, "endExclusive": nodes.stop},
                }
            ],
        },
    }
    cluster = {
        "name": "bench",
        "targetCluster": {"bootstrapServers": upstream},
        "clusterNetworkAddressConfigProvider": addressing,
    }
    return json.dumps({"virtualClusters": [cluster]}, indent=2) + "\n"


def launcher_classes(jars: Path) -> Path:
    """The launcher compiled against ``jars``, with its plugin registered for ServiceLoader."""
    classes = java_programs.compiled(LAUNCHER, jars)
    services = classes / "META-INF" / "services" / ADDRESS_PLUGIN_SERVICE
    entry = f"{LAUNCHER}${ADDRESS_PLUGIN}\n"
    if not services.is_file() or services.read_text() != entry:
        services.parent.mkdir(parents=True, exist_ok=True)
        services.write_text(entry)
    return classes


def start_kroxylicious(upstream: str, workdir: Path) -> PeerProxy:
    """Kroxylicious with no filters in front of ``upstream``, listening once this returns."""
    try:
        jars = fetch_kroxylicious()
    except FetchError as error:
        raise PeerUnavailable(f"kroxylicious {KROXYLICIOUS_VERSION}: {error}") from error
    java = shutil.which("java")
    if java is None:
        raise PeerUnavailable("kroxylicious needs `java` (17+) on PATH")
    classes = launcher_classes(jars)
    nodes = _upstream_node_ids(upstream)
    bootstrap_port, node_start_port = _ports(len(nodes))
    config_path = workdir / "kroxylicious.yaml"
    config_path.write_text(proxy_config(upstream, bootstrap_port, node_start_port, nodes))
    command = [
        java, *JVM_OPTIONS, "-cp", f"{classes}:{fetching.classpath(jars)}",
        LAUNCHER, str(config_path),
    ]  # fmt: skip
    log_path = workdir / "kroxylicious.log"
    process = supervising.spawn(command, log_path)
    peer = PeerProxy("kroxylicious", f"{networking.HOST}:{bootstrap_port}", process, log_path)
    wait_until_listening(peer)
    return peer


def _upstream_node_ids(upstream: str) -> range:
    """The node ids the upstream advertises, as the smallest range holding them all."""
    brokers = admin.broker_addresses(upstream, timeout=UPSTREAM_METADATA_SECONDS)
    if not brokers:
        raise TestbedError(f"kroxylicious: no Metadata from the upstream {upstream}")
    return range(min(brokers), max(brokers) + 1)


def _ports(node_count: int) -> tuple[int, int]:
    """A free bootstrap port and the first of ``node_count`` consecutive free node ports."""
    for _ in range(PORT_BLOCK_ATTEMPTS):
        bootstrap, first = networking.free_ports(2)
        block = range(first, first + node_count)
        fits = block.stop <= 65536 and bootstrap not in block
        if fits and all(networking.is_port_free(port) for port in block):
            return bootstrap, first
    raise TestbedError(f"kroxylicious: found no {node_count} consecutive free ports")
