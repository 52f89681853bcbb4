"""A real cluster takes an adopted producer id's first batch at any sequence; the gateway then
tells a batch behind it UNKNOWN_PRODUCER_ID, and the producer's way out (a new epoch from 0) is
taken. Raw Produce requests through a real gateway to a real Apache Kafka broker."""

from __future__ import annotations

import uuid
from typing import Any

from kafka.record.default_records import DefaultRecordBatchBuilder

from conftest import GatewayFactory
from failover_gateway.routing import producer_ids
from kafka_testbed import admin
from kafka_testbed.clusters import Cluster
from kafka_testbed.raw_protocol import RawConnection

PRODUCE, VERSION = 0, 9
UNKNOWN_PRODUCER_ID = 59
# An id the failover cluster issued: stale while main is active, so written under an adopted id.
STALE = producer_ids.codecs(["main", "failover"])["failover"].to_client(4242)


def batch(first: int, epoch: int = 0, records: int = 5) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=STALE,
        producer_epoch=epoch,
        base_sequence=first,
        batch_size=1 << 20,
    )
    for offset in range(records):
        builder.append(
            offset, timestamp=1, key=None, value=f"{first + offset}".encode(), headers=[]
        )
    return bytes(builder.build())


def produce(connection: RawConnection, topic: str, records: bytes) -> dict[str, Any]:
    answer = connection.request(
        PRODUCE,
        VERSION,
        {
            "TransactionalId": None,
            "Acks": -1,
            "TimeoutMs": 10_000,
            "TopicData": [{"Name": topic, "PartitionData": [{"Index": 0, "Records": records}]}],
        },
    )
    partition: dict[str, Any] = answer["Responses"][0]["PartitionResponses"][0]
    return partition


def test_a_batch_behind_the_sequence_the_cluster_took_first_is_told_unknown_producer_id(
    gateway_factory: GatewayFactory, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    gateway = gateway_factory(
        {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}
    )
    topic = f"adopted-{uuid.uuid4().hex[:8]}"
    admin.create_topic(kafka_single.bootstrap, topic, partitions=1)

    with RawConnection(gateway.bootstrap) as connection:
        later = produce(connection, topic, batch(10))  # arrives first: the cluster takes it
        older = produce(connection, topic, batch(0))
        renumbered = produce(connection, topic, batch(0, epoch=1))  # what the producer does next

    assert later["ErrorCode"] == 0, "a real broker takes any first sequence from an unknown id"
    assert older["ErrorCode"] == UNKNOWN_PRODUCER_ID, older
    assert older["LogStartOffset"] >= 0
    assert renumbered["ErrorCode"] == 0, "a new epoch from sequence 0 is written"
    assert "behind the sequence main acknowledged first" in gateway.log_tail(100)
