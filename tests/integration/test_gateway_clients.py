"""Every client library produces and consumes with consumer groups through the gateway.

Same round trip as the harness's own backend tests, but the client only ever talks to the
gateway, and the records are then read straight from the cluster behind it: they went there.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kafka_testbed import clients
from kafka_testbed.clusters import Cluster

BACKENDS = ["kafka_single", "kafka_newest", "kafka_triple", "tansu"]
RECORD_COUNT = 30
PARTITIONS = 3


def keyed_records() -> list[clients.Record]:
    return [(f"key-{index % 5}", f"value-{index}") for index in range(RECORD_COUNT)]


@pytest.mark.parametrize("client_name", sorted(clients.CLIENTS))
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_client_round_trips_keyed_records_through_the_gateway(
    backend: Cluster, kafka_failover: Cluster, gateway_factory: Any, client_name: str
) -> None:
    gateway = gateway_factory({"main": backend.bootstrap, "failover": kafka_failover.bootstrap})
    client = clients.CLIENTS[client_name]
    suffix = f"{client_name}-{uuid.uuid4().hex[:8]}"
    topic, group = f"through-{suffix}", f"group-{suffix}"
    records = keyed_records()

    client.create_topic(gateway.bootstrap, topic, PARTITIONS)
    client.produce(gateway.bootstrap, topic, records)
    consumed = client.consume(gateway.bootstrap, topic, group=group, count=len(records), timeout=45)
    direct = clients.CLIENTS["confluent_kafka"].consume(
        backend.bootstrap, topic, group=f"direct-{suffix}", count=len(records), timeout=45
    )

    assert sorted(consumed) == sorted(records)
    assert sorted(direct) == sorted(records)
    assert gateway.state()["openConnections"]["failover"] == 0


@pytest.mark.parametrize("backend", ["kafka_single", "kafka_newest", "tansu"], indirect=True)
def test_an_idempotent_producer_writes_through_the_gateway_to_every_backend(
    backend: Cluster, kafka_failover: Cluster, gateway_factory: Any
) -> None:
    """The client holds the gateway's tagged producer id; the broker must get the one it issued.
    Apache Kafka takes any id, Tansu refuses one it never issued (UNKNOWN_PRODUCER_ID): so a
    gateway forwarding the tagged id, to save the rewrite, fails here on Tansu."""
    from confluent_kafka import Producer

    gateway = gateway_factory({"main": backend.bootstrap, "failover": kafka_failover.bootstrap})
    topic = f"idempotent-{uuid.uuid4().hex[:8]}"
    clients.CLIENTS["confluent_kafka"].create_topic(backend.bootstrap, topic, PARTITIONS)
    producer = Producer({"bootstrap.servers": gateway.bootstrap, "enable.idempotence": True})
    failures: list[str] = []
    records = keyed_records()
    for key, value in records:
        producer.produce(
            topic, value.encode(), key.encode(),
            on_delivery=lambda error, _msg: failures.append(str(error)) if error else None,
        )  # fmt: skip
    assert producer.flush(30) == 0
    direct = clients.CLIENTS["confluent_kafka"].consume(
        backend.bootstrap, topic, group=f"direct-{topic}", count=len(records), timeout=45
    )

    assert not failures
    assert sorted(direct) == sorted(records)
