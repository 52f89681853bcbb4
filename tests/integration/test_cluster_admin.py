"""The gateway's own admin calls against a real Kafka 4 broker: end offsets (high watermark and
last stable offset), consumer groups and their commits, and reading a partition."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from failover_gateway.codec import record_batches
from failover_gateway.config import ClusterConfig, HostPort
from failover_gateway.server.cluster_admin import ClusterAdmin, ClusterCallFailed
from kafka_testbed import admin
from kafka_testbed.clusters import Cluster


def admin_of(cluster: Cluster) -> ClusterAdmin:
    host, port = cluster.bootstrap.split(",")[0].rsplit(":", 1)
    config = ClusterConfig(name="main", bootstrap_servers=(HostPort(host, int(port)),))
    return ClusterAdmin("main", config, None, timeout=10.0)


def produce(cluster: Cluster, topic: str, count: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for index in range(count):
        producer.produce(topic, f"r{index}".encode(), partition=index % 2)
    assert producer.flush(30) == 0


def test_end_offsets_commits_and_reads_agree_with_what_was_written(kafka_single: Cluster) -> None:
    topic, group = f"admin-{uuid.uuid4().hex[:6]}", f"group-{uuid.uuid4().hex[:6]}"
    admin.create_topic(kafka_single.bootstrap, topic, partitions=2)
    produce(kafka_single, topic, 10)

    async def run() -> tuple[dict[tuple[str, int], int], ...]:
        async with admin_of(kafka_single) as calls:
            ends = await calls.end_offsets([(topic, 0), (topic, 1)], committed_only=False)
            stable = await calls.end_offsets([(topic, 0), (topic, 1)], committed_only=True)
            await calls.commit(group, {(topic, 0): 3, (topic, 1): 5})
            committed = await calls.committed(group)
            assert group in await calls.group_ids()
            data = await calls.read((topic, 1), 0)
            batches = list(record_batches.batch_offsets(data, [(0, len(data))]))
            return ends, stable, committed, {0: len(batches)}

    ends, stable, committed, read = asyncio.run(run())
    assert ends == {(topic, 0): 5, (topic, 1): 5} == stable
    assert committed == {(topic, 0): 3, (topic, 1): 5}
    assert read[0] >= 1, "record batches came back"


def test_a_partition_that_does_not_exist_is_named_in_the_error(kafka_single: Cluster) -> None:
    async def run() -> str:
        async with admin_of(kafka_single) as calls:
            try:
                await calls.end_offsets([("no-such-topic-here", 0)], committed_only=True)
            except ClusterCallFailed as error:
                return str(error)
        return ""

    assert "no partition no-such-topic-here-0" in asyncio.run(run())


def test_a_member_left_by_the_gateway_is_out_of_its_group_and_must_rejoin(
    kafka_single: Cluster,
) -> None:
    """LeaveGroup on the gateway's own connection (as at a switch with the client's JoinGroup in
    flight): the member's next heartbeat finds itself gone and it rejoins under a new id."""
    from confluent_kafka import Consumer

    topic, group = f"leave-{uuid.uuid4().hex[:6]}", f"group-{uuid.uuid4().hex[:6]}"
    admin.create_topic(kafka_single.bootstrap, topic, partitions=1)
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_single.bootstrap,
            "group.id": group,
            "heartbeat.interval.ms": 500,
        }
    )
    try:
        consumer.subscribe([topic])
        poll_until(consumer, lambda: bool(consumer.assignment() and consumer.memberid()))
        member = consumer.memberid()
        asyncio.run(leave(kafka_single, group, member))
        poll_until(consumer, lambda: consumer.memberid() not in (None, "", member))
        asyncio.run(leave(kafka_single, group, member))  # already gone: no error
    finally:
        consumer.close()


async def leave(cluster: Cluster, group: str, member: str) -> None:
    async with admin_of(cluster) as calls:
        await calls.leave_group(group, member)


def poll_until(consumer: Any, check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        consumer.poll(0.2)
        if check():
            return
    raise AssertionError(f"not within {seconds} s")
