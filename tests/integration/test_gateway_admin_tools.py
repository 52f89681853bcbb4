"""Kafka 4.4's own admin tools through the gateway: quorum, features, api versions.

The protocol policy caps DescribeQuorum below the version that names controller endpoints and
rewrites ApiVersions features to what every configured cluster supports; these run the Java tools
users would run and check what they print.
"""

from __future__ import annotations

import re
import time
from typing import Any

from kafka_testbed import fetching, tooling, versions
from kafka_testbed.clusters import Cluster

QUORUM_COMMAND = "org.apache.kafka.tools.MetadataQuorumCommand"
FEATURE_COMMAND = "org.apache.kafka.tools.FeatureCommand"
BROKER_API_VERSIONS = "org.apache.kafka.tools.BrokerApiVersionsCommand"


def run_tool(main_class: str, bootstrap: str, *arguments: str) -> str:
    jars = fetching.fetch_kafka_jars(versions.NEWEST_KAFKA_VERSION)
    result = tooling.run_java(
        main_class,
        ["--bootstrap-server", bootstrap, *arguments],
        classpath=fetching.classpath(jars),
        timeout=90,
    )
    return result.stdout


def feature_levels(output: str) -> dict[str, int]:
    return {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"Feature: (\S+)\s.*?FinalizedVersionLevel: (\d+)", output)
    }


def test_the_quorum_tool_describes_the_active_cluster_without_controller_addresses(
    kafka_newest: Cluster, kafka_failover: Cluster, gateway_factory: Any
) -> None:
    gateway = gateway_factory(
        {"main": kafka_newest.bootstrap, "failover": kafka_failover.bootstrap}
    )

    output = run_tool(QUORUM_COMMAND, gateway.bootstrap, "describe", "--status")

    assert "LeaderId:" in output and "CurrentVoters:" in output
    controller_ports = [str(port) for port in _controller_ports(kafka_newest)]
    assert not any(port in output for port in controller_ports), output


def test_the_features_tool_sees_levels_every_cluster_has_finalized(
    kafka_newest: Cluster, kafka_transactions_v1: Cluster, gateway_factory: Any
) -> None:
    direct = feature_levels(run_tool(FEATURE_COMMAND, kafka_newest.bootstrap, "describe"))
    gateway = gateway_factory(
        {"main": kafka_newest.bootstrap, "failover": kafka_transactions_v1.bootstrap}
    )
    wait_until_every_cluster_was_probed(gateway)

    through = feature_levels(run_tool(FEATURE_COMMAND, gateway.bootstrap, "describe"))

    assert direct["transaction.version"] == 2
    assert through["transaction.version"] == 1  # failover was formatted with level 1
    assert through["group.version"] == direct["group.version"] == 1


def wait_until_every_cluster_was_probed(gateway: Any, timeout: float = 30.0) -> None:
    """The gateway narrows its answers to a cluster only once it has probed that cluster."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        upstreams = gateway.state()["upstreams"]
        if all(upstream["reachable"] for upstream in upstreams.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"not every cluster probed within {timeout} s: {upstreams}")


def _controller_ports(cluster: Cluster) -> list[int]:
    ports = []
    for node in cluster.nodes.values():
        config = (cluster.workdir / f"node-{node.node_id}" / "server.properties").read_text()
        ports += [int(p) for p in re.findall(r"CONTROLLER://[^:,]+:(\d+)", config)]
    return ports
