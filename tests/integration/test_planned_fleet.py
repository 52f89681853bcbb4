"""A planned switchover across several gateway pods behind one address, with real brokers,
MirrorMaker 2 and a librdkafka consumer group: nothing re-read, although each consumer's group
traffic and fetches land on pods chosen per connection (a Service's round robin).
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_planned_switchover import switchover_of, wait_for

from kafka_testbed import admin, mirroring, workloads
from kafka_testbed.clusters import Cluster
from kafka_testbed.gateway_fleet import GatewayFleet, start_fleet

PODS = 3
CONSUMERS = 3
PARTITIONS = 3
RATE = 150.0


@pytest.fixture
def topic(kafka_single: Cluster, kafka_failover: Cluster) -> str:
    name = f"planned-{uuid.uuid4().hex[:8]}"
    for cluster in (kafka_failover, kafka_single):  # failover first: MirrorMaker would create it
        admin.create_topic(cluster.bootstrap, name, partitions=PARTITIONS)
    return name


@pytest.fixture
def fleet(
    kafka_single: Cluster, kafka_failover: Cluster, tmp_path: Path, topic: str
) -> Iterator[GatewayFleet]:
    clusters = {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}
    extra = switchover_of(topic)
    with start_fleet(clusters, tmp_path, pods=PODS, gateway_extra=extra) as started:
        yield started


def test_a_planned_switch_through_several_pods_rereads_nothing(
    fleet: GatewayFleet,
    kafka_single: Cluster,
    kafka_failover: Cluster,
    mirror_maker: mirroring.MirrorMaker,
    topic: str,
) -> None:
    group = f"fleet-{uuid.uuid4().hex[:6]}"
    client = workloads.ConfluentProducer(fleet.bootstrap, {"enable.idempotence": True})
    producer: workloads.SequencedProducer | None = workloads.SequencedProducer(
        client, topic, rate=RATE
    ).start()
    consumers = [
        workloads.GroupConsumer(
            fleet.bootstrap, topic, group, {"auto.commit.interval.ms": 200, "client.id": f"c{n}"}
        ).start()
        for n in range(CONSUMERS)
    ]
    tail = workloads.ClusterTail(kafka_failover.bootstrap, topic, PARTITIONS, cluster="failover")
    tail.start()
    try:
        assert producer.wait_acked(300, timeout=60), "nothing acknowledged before the switch"
        wait_for("MirrorMaker copying the topic", lambda: bool(tail.sequences()), timeout=90)
        answer = fleet.planned_switch("failover")
        assert answer.status == 200, answer
        acked_at_switch = len(producer.log.snapshot()[1])
        assert producer.wait_acked(acked_at_switch + 300, timeout=60), "no acks after the switch"
        stopping, producer = producer, None
        stopping.stop(flush_timeout=30)
        _, acked, _ = stopping.log.snapshot()
        missing = workloads.wait_until_landed([tail], acked, timeout=60)
        wait_for(
            "the group reading every acknowledged record",
            lambda: set(acked) <= {r.seq for c in consumers for r in c.received()},
            timeout=60,
        )
        time.sleep(1.0)  # anything read twice would arrive with or just after the last record
        received = [r.seq for c in consumers for r in c.received()]
        states = [pod.state() for pod in fleet.pods]
    finally:
        if producer is not None:
            producer.stop(flush_timeout=5)
        for consumer in consumers:
            consumer.stop()
        tail.stop()
    assert not missing, f"acknowledged but not on failover: {sorted(missing)[:20]}"
    reread = sorted(seq for seq, n in collections.Counter(received).items() if n > 1)
    held = [s["fetchesHeldForRejoin"] for s in states]
    seen_on_cluster = [s["rejoinsSeenOnCluster"] for s in states]
    print(f"fetches held per pod {held}, rejoins seen on failover per pod {seen_on_cluster}")
    assert not reread, f"{len(reread)} records read twice through {PODS} pods: {reread[:20]}"
    assert sum(held) >= 1, "the group's fetches waited for its rejoin"
