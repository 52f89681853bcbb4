"""Kroxylicious, the Java Kafka proxy from the Kroxylicious project, as a benchmark peer.

Kroxylicious is a Netty proxy that decodes every Kafka frame so that filters can act on it; run
with no filters it is the fair Java counterpart of our gateway. Its command-line entry point
(``kroxylicious-app``) is not on Maven Central, its runtime is, so ``maven/kroxylicious/pom.xml``
resolves ``kroxylicious-runtime`` (and its own kafka-clients) into the cache, and
``tests/java/KroxyliciousLauncher.java`` parses the YAML config with Kroxylicious's own
``ConfigParser`` and starts its ``KafkaProxy``.

The config: one virtual cluster whose target is the upstream broker, one gateway in which the
port identifies the node (a bootstrap port, then one port per node id of the upstream), no
filters, no TLS, no management listener. Kroxylicious 0.12 has no bind address for port-based
gateways: it listens on every interface, and advertises 127.0.0.1 to clients.
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
JVM_OPTIONS = ("-Xmx1g", "-XX:+UseG1GC", "-Dlog4j2.level=WARN")
UPSTREAM_METADATA_SECONDS = 10.0
PORT_BLOCK_ATTEMPTS = 50


def kroxylicious_jars_dir(version: str = KROXYLICIOUS_VERSION) -> Path:
    """Where the Kroxylicious runtime and its dependencies live."""
    return fetching.cache_root() / "jars" / f"kroxylicious-{version}"


def fetch_kroxylicious(version: str = KROXYLICIOUS_VERSION) -> Path:
    """Make sure Kroxylicious's jars are cached and return their folder; a no-op when complete."""
    return fetching._fetch(
        KROXYLICIOUS_POM, {"kroxylicious.version": version}, kroxylicious_jars_dir(version)
    )


def proxy_config(upstream: str, bootstrap_port: int, node_start_port: int, nodes: range) -> str:
    """Kroxylicious's YAML config (written as JSON, which YAML reads) for one plain gateway."""
    gateway = {
        "name": "loopback",
        "portIdentifiesNode": {
            "bootstrapAddress": f"{networking.HOST}:{bootstrap_port}",
            "advertisedBrokerAddressPattern": networking.HOST,
            "nodeStartPort": node_start_port,
            "nodeIdRanges": [{"name": "brokers", "start": nodes.start, "end": nodes.stop - 1}],
        },
    }
    cluster = {
        "name": "bench",
        "targetCluster": {"bootstrapServers": upstream},
        "gateways": [gateway],
    }
    return json.dumps({"virtualClusters": [cluster]}, indent=2) + "\n"


def start_kroxylicious(upstream: str, workdir: Path) -> PeerProxy:
    """Kroxylicious with no filters in front of ``upstream``, listening once this returns."""
    try:
        jars = fetch_kroxylicious()
    except FetchError as error:
        raise PeerUnavailable(f"kroxylicious {KROXYLICIOUS_VERSION}: {error}") from error
    java = shutil.which("java")
    if java is None:
        raise PeerUnavailable("kroxylicious needs `java` (17+) on PATH")
    classes = java_programs.compiled(LAUNCHER, jars)
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
