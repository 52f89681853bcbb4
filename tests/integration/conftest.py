"""Fixtures for gateway tests: a failover cluster with a different broker id, gateway processes.

The Kafka clusters (``kafka_single`` with node 1, ``kafka_triple`` with nodes 1-3, ``tansu``) are
session-scoped in ``tests/conftest.py``; here the failover cluster (node 7) is too, while each
test gets its own gateway process: gateways hold switch state, and start in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafka_testbed import gateways, launching, mirroring
from kafka_testbed.clusters import Cluster


@pytest.fixture(scope="session")
def kafka_failover() -> Iterator[Cluster]:
    """The failover cluster: one broker with node id 7, unlike any node id of main."""
    cluster = launching.start_kafka(node_ids=[7], name="failover-7")
    yield cluster
    cluster.stop()


GatewayFactory = Callable[..., gateways.GatewayProcess]


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start gateways in front of given clusters; all are stopped after the test."""
    started: list[gateways.GatewayProcess] = []

    def start(clusters: dict[str, str], **options: Any) -> gateways.GatewayProcess:
        workdir = tmp_path / f"gateway-{len(started)}"
        workdir.mkdir()
        gateway = gateways.start_gateway(clusters, workdir=workdir, **options)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(
    gateway_factory: GatewayFactory, kafka_single: Cluster, kafka_failover: Cluster
) -> gateways.GatewayProcess:
    """A gateway with main = the single-broker cluster (node 1), failover = node 7."""
    return gateway_factory({"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap})


@pytest.fixture(scope="session")
def mirror_maker(
    kafka_single: Cluster, kafka_failover: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[mirroring.MirrorMaker]:
    """MirrorMaker 2 copying main's ``planned-*`` topics and groups to failover (the planned
    switchover tests of the gateway and of the operator share it; a test that stalls it
    resumes it)."""
    # The worker's offset flush is when MirrorMaker emits the offset sync of the last record it
    # copied (a worker setting: prefixed with the target alias); read_committed so that it never
    # copies a transaction that is then aborted.
    settings = mirroring.MirrorSettings(
        topics="planned-.*",
        groups="planned-.*",
        extra={
            "failover.offset.flush.interval.ms": "1000",
            "main.consumer.isolation.level": "read_committed",
        },
    )
    started = mirroring.start_mirror_maker(
        kafka_single.bootstrap,
        kafka_failover.bootstrap,
        settings,
        workdir=tmp_path_factory.mktemp("mm2"),
    )
    yield started
    started.stop()
