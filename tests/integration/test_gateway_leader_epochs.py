"""A switch to a cluster whose leader epochs are lower than the old one's.

Every cluster counts each partition's leader epochs on its own, and a broker restart moves them
on. The one-hour soak's Java producers failed thousands of sends after switches to failover, one
partition at a time, once main's brokers had been restarted a few times: the clients kept main's
higher epochs and ignored failover's metadata as stale, so they kept sending to a node that did
not lead the partition there, until their batches expired. Here main's epochs are moved ahead by
one broker restart, producers of the families that keep epochs learn them, and the switch must
not stop any partition.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import GatewayFactory
from kafka_testbed import admin, process_producers, versions, workloads
from kafka_testbed.clusters import Cluster
from kafka_testbed.labs import Lab
from kafka_testbed.raw_protocol import RawConnection

METADATA = 3
PARTITIONS = 3
RATE = 60
AFTER_SWITCH_SECONDS = 10.0
SETTLE_SECONDS = 30.0  # well inside every client's default delivery timeout (120 s and more)
FAMILIES = ("confluent-kafka", f"java-{versions.KAFKA_VERSION}", "franz-go")


def leaders(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Partition -> (leader node, leader epoch), as the cluster itself says (not the gateway)."""
    with RawConnection(bootstrap.rsplit(",", maxsplit=1)[-1]) as connection:
        answer = connection.request(
            METADATA,
            12,
            {
                "Topics": [{"Name": topic, "TopicId": uuid.UUID(int=0)}],
                "AllowAutoTopicCreation": False,
                "IncludeTopicAuthorizedOperations": False,
            },
        )
    (described,) = answer["Topics"]
    return {p["PartitionIndex"]: (p["LeaderId"], p["LeaderEpoch"]) for p in described["Partitions"]}


def start_producer(family: str, bootstrap: str, topic: str, log_dir: Path) -> Any:
    if family in workloads.PRODUCER_CLIENTS:
        client = workloads.PRODUCER_CLIENTS[family](bootstrap, None)
        return workloads.SequencedProducer(client, topic, rate=RATE).start()
    factory = process_producers.PROCESS_PRODUCERS[family]
    return factory(bootstrap, topic, rate=RATE, log_dir=log_dir).start()


@pytest.mark.kafka
def test_producers_keep_every_partition_after_a_switch_to_a_cluster_with_lower_leader_epochs(
    lab: Lab, gateway_factory: GatewayFactory, kafka_failover: Cluster, tmp_path: Path
) -> None:
    main = lab.kafka([1, 2, 3], name="epochs")
    topics = {family: f"epochs-{family}-{uuid.uuid4().hex[:6]}" for family in FAMILIES}
    for topic in topics.values():
        admin.create_topic(main.bootstrap, topic, partitions=PARTITIONS, replication_factor=3)
        admin.create_topic(kafka_failover.bootstrap, topic, partitions=PARTITIONS)
    main.kill(1)  # its partitions move to another broker under a new epoch
    main.restart(1)
    for topic in topics.values():
        ahead = [
            p
            for p, (leader, epoch) in leaders(main.bootstrap, topic).items()
            if epoch > leaders(kafka_failover.bootstrap, topic)[p][1] and leader != 7
        ]
        assert ahead, f"{topic}: no partition with a higher epoch on main; the test proves nothing"

    gateway = gateway_factory({"main": main.bootstrap, "failover": kafka_failover.bootstrap})
    producers = {
        family: start_producer(family, gateway.bootstrap, topic, tmp_path)
        for family, topic in topics.items()
    }
    for family, producer in producers.items():
        assert producer.wait_acked(RATE, timeout=60), f"{family}: no acknowledgement from main"
    assert gateway.switch("failover").status == 200
    time.sleep(AFTER_SWITCH_SECONDS)

    report = []
    for family, producer in producers.items():
        settled = producer.wait_settled(SETTLE_SECONDS)
        producer.stop(flush_timeout=10)
        sent, acked, errors = producer.log.snapshot()
        report.append(f"{family}: sent {len(sent)}, acked {len(acked)}, failed {len(errors)}")
        tails = [
            workloads.ClusterTail(cluster.bootstrap, topics[family], PARTITIONS, cluster=name)
            for name, cluster in (("main", main), ("failover", kafka_failover))
        ]
        for tail in tails:
            tail.start()
        missing = workloads.wait_until_landed(tails, acked, SETTLE_SECONDS)
        partitions = {partition for _, partition, _ in tails[1].placements()}
        for tail in tails:
            tail.stop()
        assert settled and not errors, f"{family}: {len(sent) - len(acked)} unacknowledged"
        assert not missing, f"{family}: acknowledged but on no cluster: {sorted(missing)[:10]}"
        assert partitions == set(range(PARTITIONS)), f"{family}: failover got only {partitions}"
    print("\n" + "\n".join(report))
