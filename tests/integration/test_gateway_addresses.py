"""Every broker address a client can learn through the gateway is a gateway address.

Each address-bearing api (Metadata, FindCoordinator, DescribeCluster) is asked at every version
the gateway advertises, through the gateway and, as a control, directly: the direct answers show
real broker ports (so the assertions can fail), the gateway's answers only gateway ports. The
KIP-951 leader hints of Produce and Fetch are provoked by asking a broker that does not host the
partition.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from kafka_testbed import admin, gateways
from kafka_testbed.clusters import Cluster
from kafka_testbed.raw_protocol import RawConnection

METADATA, FIND_COORDINATOR, API_VERSIONS, DESCRIBE_CLUSTER = 3, 10, 18, 60
PRODUCE, FETCH, SHARE_FETCH, SHARE_ACKNOWLEDGE, DESCRIBE_QUORUM = 0, 1, 78, 79, 55
WRITE_TXN_MARKERS = 27
TOPIC = "address-check"

BODIES: dict[int, dict[str, Any]] = {
    METADATA: {
        "Topics": [{"Name": TOPIC, "TopicId": uuid.UUID(int=0)}],
        "AllowAutoTopicCreation": True,
        "IncludeClusterAuthorizedOperations": False,
        "IncludeTopicAuthorizedOperations": False,
    },
    FIND_COORDINATOR: {"Key": "address-group", "KeyType": 0, "CoordinatorKeys": ["address-group"]},
    DESCRIBE_CLUSTER: {
        "IncludeClusterAuthorizedOperations": False,
        "EndpointType": 1,
        "IncludeFencedBrokers": False,
    },
}
API_VERSIONS_BODY = {"ClientSoftwareName": "raw-test", "ClientSoftwareVersion": "1.0"}


def advertised_versions(address: str) -> dict[int, tuple[int, int]]:
    with RawConnection(address) as connection:
        answer = connection.request(API_VERSIONS, 3, API_VERSIONS_BODY)
    assert answer["ErrorCode"] == 0
    return {k["ApiKey"]: (k["MinVersion"], k["MaxVersion"]) for k in answer["ApiKeys"]}


def addresses_in(api_key: int, answer: dict[str, Any]) -> list[tuple[str, int]]:
    if api_key == FIND_COORDINATOR and "Coordinators" in answer:
        return [(c["Host"], c["Port"]) for c in answer["Coordinators"]]
    if api_key == FIND_COORDINATOR:
        return [(answer["Host"], answer["Port"])]
    return [(b["Host"], b["Port"]) for b in answer["Brokers"]]


def coordinator_ready(answer: dict[str, Any]) -> bool:
    entries = answer.get("Coordinators", [answer])
    return all(entry["ErrorCode"] == 0 for entry in entries)


def ask(address: str, api_key: int, version: int) -> dict[str, Any]:
    """Ask once, retrying a coordinator that is still loading (error answers carry no address)."""
    deadline = time.monotonic() + 30
    while True:
        with RawConnection(address) as connection:
            answer = connection.request(api_key, version, BODIES[api_key])
        if api_key != FIND_COORDINATOR or coordinator_ready(answer):
            return answer
        assert time.monotonic() < deadline, f"coordinator never available: {answer}"
        time.sleep(0.5)


def first(bootstrap: str) -> str:
    return bootstrap.split(",", maxsplit=1)[0]


def gateway_ports(gateway: gateways.GatewayProcess) -> set[int]:
    return set(range(gateway.port + 1, gateway.port + 1 + gateway.broker_port_count))


@pytest.mark.parametrize("api_key", [METADATA, FIND_COORDINATOR, DESCRIBE_CLUSTER])
def test_every_version_of_an_address_bearing_answer_names_only_gateway_ports(
    gateway_factory: Any, kafka_triple: Cluster, kafka_failover: Cluster, api_key: int
) -> None:
    gateway = gateway_factory(
        {"main": kafka_triple.bootstrap, "failover": kafka_failover.bootstrap}
    )
    low, high = advertised_versions(gateway.bootstrap)[api_key]
    allowed = gateway_ports(gateway)
    for version in range(low, high + 1):
        through = addresses_in(api_key, ask(gateway.bootstrap, api_key, version))
        direct = addresses_in(api_key, ask(first(kafka_triple.bootstrap), api_key, version))
        assert through, f"v{version}: no address in the answer"
        assert all(host == "127.0.0.1" and port in allowed for host, port in through), (
            f"api {api_key} v{version} leaked {through}"
        )
        assert not any(port in allowed for _, port in direct), "control: real ports differ"


def test_two_gateways_give_every_node_the_same_port_whichever_port_is_asked(
    gateway_factory: Any, kafka_triple: Cluster, kafka_failover: Cluster
) -> None:
    clusters = {"main": kafka_triple.bootstrap, "failover": kafka_failover.bootstrap}
    first_gateway, second_gateway = gateway_factory(clusters), gateway_factory(clusters)
    seen = []
    for gateway in (first_gateway, second_gateway):
        offsets = set()
        for port in [gateway.port, *(gateway.port + 1 + node for node in (1, 2, 3))]:
            answer = ask(f"127.0.0.1:{port}", METADATA, 12)
            offsets.add(
                tuple(sorted((b["NodeId"], b["Port"] - gateway.port) for b in answer["Brokers"]))
            )
        assert len(offsets) == 1, offsets
        seen.append(offsets.pop())
    assert seen[0] == seen[1] == ((1, 2), (2, 3), (3, 4))


def test_api_versions_advertise_only_what_the_gateway_can_rewrite(
    gateway: gateways.GatewayProcess, kafka_single: Cluster
) -> None:
    through = advertised_versions(gateway.bootstrap)
    direct = advertised_versions(first(kafka_single.bootstrap))
    assert direct[FETCH][1] >= 16 and direct[PRODUCE][1] >= 10, "control: broker has KIP-951"
    assert through[FETCH] == (direct[FETCH][0], min(direct[FETCH][1], 18))
    assert through[PRODUCE] == (direct[PRODUCE][0], min(direct[PRODUCE][1], 12))  # v13: topic ids
    assert through[METADATA] == (direct[METADATA][0], min(direct[METADATA][1], 13))
    assert through[SHARE_FETCH] == direct[SHARE_FETCH]
    assert through[DESCRIBE_QUORUM] == (0, 1) and direct[DESCRIBE_QUORUM][1] >= 2
    assert WRITE_TXN_MARKERS in direct and WRITE_TXN_MARKERS not in through
    assert set(through) <= set(direct)


def one_record_batch() -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    builder.append(0, timestamp=1, key=b"k", value=b"v", headers=[])
    return bytes(builder.build())


def leader_hint_request(
    api_key: int, version: int, topic: str, topic_id: uuid.UUID
) -> dict[str, Any]:
    """A Produce or Fetch of partition 0, to be sent to a broker that does not lead it."""
    if api_key == PRODUCE:
        partition = {"Index": 0, "Records": one_record_batch()}
        return {
            "TransactionalId": None, "Acks": 1, "TimeoutMs": 5000,
            "TopicData": [{"Name": topic, "TopicId": topic_id, "PartitionData": [partition]}],
        }  # fmt: skip
    fetch_partition = {
        "Partition": 0, "CurrentLeaderEpoch": -1, "FetchOffset": 0, "LastFetchedEpoch": -1,
        "LogStartOffset": -1, "PartitionMaxBytes": 1 << 20,
    }  # fmt: skip
    return {
        "ReplicaId": -1, "MaxWaitMs": 10, "MinBytes": 1, "MaxBytes": 1 << 20,
        "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": -1,
        "Topics": [{"Topic": topic, "TopicId": topic_id, "Partitions": [fetch_partition]}],
        "ForgottenTopicsData": [], "RackId": "",
    }  # fmt: skip


def leader_and_topic_id(bootstrap: str, topic: str) -> tuple[int, uuid.UUID]:
    body = dict(BODIES[METADATA], Topics=[{"Name": topic, "TopicId": uuid.UUID(int=0)}])
    with RawConnection(bootstrap) as connection:
        answer = connection.request(METADATA, 12, body)
    described = answer["Topics"][0]
    return described["Partitions"][0]["LeaderId"], described["TopicId"]


@pytest.mark.parametrize(("api_key", "version"), [(PRODUCE, 10), (PRODUCE, 12), (FETCH, 16)])
def test_a_leader_hint_from_a_broker_that_does_not_lead_names_a_gateway_port(
    gateway_factory: Any, kafka_triple: Cluster, kafka_failover: Cluster, api_key: int,
    version: int,
) -> None:  # fmt: skip
    gateway = gateway_factory(
        {"main": kafka_triple.bootstrap, "failover": kafka_failover.bootstrap}
    )
    topic = f"hint-{uuid.uuid4().hex[:8]}"
    # One replica: the other brokers cannot serve it and answer NOT_LEADER_OR_FOLLOWER with a
    # hint (Kafka 4 followers serve consumer fetches, so a replica would not).
    admin.create_topic(kafka_triple.bootstrap, topic, partitions=1, replication_factor=1)
    leader, topic_id = leader_and_topic_id(first(kafka_triple.bootstrap), topic)
    follower = next(node for node in kafka_triple.nodes if node != leader)
    request = leader_hint_request(api_key, version, topic, topic_id)

    with RawConnection(kafka_triple.brokers[follower]) as connection:
        direct = connection.request(api_key, version, request)
    with RawConnection(f"127.0.0.1:{gateway.port + 1 + follower}") as connection:
        through = connection.request(api_key, version, request)

    real_ports = {int(address.rsplit(":", 1)[1]) for address in kafka_triple.brokers.values()}
    assert [(e["NodeId"], e["Port"]) for e in direct["NodeEndpoints"]] == [
        (leader, int(kafka_triple.brokers[leader].rsplit(":", 1)[1]))
    ], "control: the broker names the leader's real address"
    assert [(e["NodeId"], e["Host"], e["Port"]) for e in through["NodeEndpoints"]] == [
        (leader, "127.0.0.1", gateway.port + 1 + leader)
    ]
    assert not {e["Port"] for e in through["NodeEndpoints"]} & real_ports
