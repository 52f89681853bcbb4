"""The lab's brokers really work for every client, and the lab can break and stop them on demand.

Each backend (Apache Kafka with one and three nodes, Tansu) is checked with each client
(confluent-kafka, kafka-python, aiokafka, the Java console tools): a fresh topic, keyed records
produced with acks=all and read back by a consumer group, exactly. Then the failure tools that
later tests rely on: killing a node, stopping a cluster, and clear errors when a start fails.
"""

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka_testbed import admin, clients, supervising
from kafka_testbed.clients import Record
from kafka_testbed.clusters import Cluster
from kafka_testbed.errors import ClusterStartError, PortInUseError
from kafka_testbed.labs import Lab

BACKENDS = ["kafka_single", "kafka_triple", "tansu"]
RECORD_COUNT = 30
KEY_COUNT = 5
PARTITIONS = 3
CONSUME_TIMEOUT_SECONDS = 45.0


def keyed_records(count: int = RECORD_COUNT) -> list[Record]:
    return [(f"key-{index % KEY_COUNT}", f"value-{index}") for index in range(count)]


def values_by_key(records: list[Record]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in records:
        grouped.setdefault(key, []).append(value)
    return grouped


def unique_name(request: pytest.FixtureRequest, prefix: str) -> str:
    """Topic and group names unique per test (and per run, the clusters are shared)."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("client_name", sorted(clients.CLIENTS))
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_client_round_trips_keyed_records_through_a_consumer_group(
    backend: Cluster, client_name: str, request: pytest.FixtureRequest
) -> None:
    client = clients.CLIENTS[client_name]
    topic, group = unique_name(request, "topic"), unique_name(request, "group")
    records = keyed_records()

    client.create_topic(backend.bootstrap, topic, PARTITIONS)
    client.produce(backend.bootstrap, topic, records)
    consumed = client.consume(
        backend.bootstrap, topic, group=group, count=len(records), timeout=CONSUME_TIMEOUT_SECONDS
    )

    assert sorted(consumed) == sorted(records)
    assert values_by_key(consumed) == values_by_key(records)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_every_node_of_a_shared_cluster_is_advertised_at_its_own_address(
    backend: Cluster,
) -> None:
    assert admin.broker_addresses(backend.bootstrap) == backend.brokers
    assert backend.bootstrap == ",".join(backend.brokers.values())


@pytest.mark.kafka
def test_a_killed_kafka_node_refuses_connections_until_restarted(lab: Lab) -> None:
    cluster = lab.kafka([1, 2, 3], name="kill-test")

    cluster.kill(2)

    assert cluster.unreachable_nodes() == [2]
    assert 2 not in cluster.pids
    survivors = ",".join(address for node, address in cluster.brokers.items() if node != 2)
    assert admin.broker_addresses(survivors), "the other two nodes still answer Metadata"
    cluster.restart(2)
    assert cluster.unreachable_nodes() == []


@pytest.mark.tansu
def test_a_killed_tansu_broker_refuses_connections(lab: Lab) -> None:
    cluster = lab.tansu(name="tansu-kill-test")
    (node_id,) = cluster.brokers

    cluster.kill_all()

    assert cluster.unreachable_nodes() == [node_id]
    assert not connects(cluster.brokers[node_id])


@pytest.mark.kafka
@pytest.mark.tansu
@pytest.mark.parametrize("kind", ["apache-kafka", "tansu"])
def test_stopping_a_cluster_leaves_no_process_and_no_files(lab: Lab, kind: str) -> None:
    cluster = lab.kafka([1], name="stop-test") if kind == "apache-kafka" else lab.tansu()
    pids = list(cluster.pids.values())
    assert pids and all(supervising.is_running(pid) for pid in pids)

    cluster.stop()

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert not Path(f"/proc/{pid}").exists()
        assert process_group_members(pid) == []
    assert cluster.pids == {}
    assert not cluster.workdir.exists()
    assert all(not connects(address) for address in cluster.brokers.values())


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_starting_kafka_on_a_port_in_use_fails_at_once_naming_the_port(
    lab: Lab, occupied_port: int
) -> None:
    with pytest.raises(PortInUseError, match=rf"already in use: 127\.0\.0\.1:{occupied_port} "):
        lab.kafka([1], ports={1: occupied_port})
    assert lab.started == []


def test_starting_tansu_on_a_port_in_use_fails_at_once_naming_the_port(
    lab: Lab, occupied_port: int
) -> None:
    with pytest.raises(PortInUseError, match=str(occupied_port)):
        lab.tansu(port=occupied_port)


@pytest.mark.kafka
def test_a_kafka_node_dying_during_startup_fails_with_its_last_log_lines(lab: Lab) -> None:
    running_before = set(supervising.live_pids())
    # Parses as a class name (so storage formatting passes) but is no AlterConfigPolicy, which
    # the controller only finds out when it starts.
    with pytest.raises(ClusterStartError) as failure:
        lab.kafka([1], properties={"alter.config.policy.class.name": "java.lang.String"})

    message = str(failure.value)
    assert "exited with status" in message
    assert "AlterConfigPolicy" in message
    assert "----- kafka-1 node 1" in message
    assert set(supervising.live_pids()) == running_before


@pytest.mark.kafka
def test_an_invalid_kafka_property_fails_naming_the_property(lab: Lab) -> None:
    with pytest.raises(ClusterStartError, match=r"(?s)Formatting.*num\.partitions"):
        lab.kafka([1], properties={"num.partitions": "lots"})


@pytest.mark.tansu
def test_a_tansu_broker_dying_during_startup_fails_with_its_last_log_lines(lab: Lab) -> None:
    with pytest.raises(ClusterStartError) as failure:
        lab.tansu(storage_engine="nonsense://nowhere")

    message = str(failure.value)
    assert "exited with status" in message
    assert "nonsense" in message


@pytest.mark.kafka
def test_a_cluster_not_ready_in_time_fails_instead_of_waiting_forever(lab: Lab) -> None:
    running_before = set(supervising.live_pids())
    with pytest.raises(ClusterStartError, match="timed out"):
        lab.kafka([1], timeout=0.05)
    assert set(supervising.live_pids()) == running_before


def connects(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except ConnectionRefusedError:
        return False


def process_group_members(group_id: int) -> list[int]:
    """Pids whose process group is ``group_id``, read from /proc (no psutil needed)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group_id:
            members.append(int(stat.parent.name))
    return members
