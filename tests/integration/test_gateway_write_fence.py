"""The write fence with real brokers and a real producer: writes stop reaching main at once, and
what was held is neither lost nor written twice, whether the fence lifts or the gateway switches.
"""

from __future__ import annotations

import collections
import time
import uuid
from typing import Any

from kafka_testbed import admin, gateways, mirroring, workloads
from kafka_testbed.clusters import Cluster

PARTITIONS = 2
RATE = 100.0
FENCED_SECONDS = 1.5


def topic_on_both(main: Cluster, failover: Cluster) -> str:
    topic = f"fence-{uuid.uuid4().hex[:8]}"
    for cluster in (main, failover):
        admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
    return topic


def end_offsets(cluster: Cluster, topic: str) -> dict[int, int]:
    return mirroring.high_watermarks(cluster.bootstrap, topic, PARTITIONS)


def copies(tails: list[workloads.ClusterTail]) -> collections.Counter[int]:
    """How many times each sequence number was written, over both clusters."""
    return collections.Counter(seq for tail in tails for seq, _, _ in tail.placements())


def fenced_run(
    gateway: gateways.GatewayProcess, main: Cluster, failover: Cluster, end: Any
) -> tuple[dict[str, Any], dict[int, int], dict[int, int], dict[int, float], list[Any]]:
    """Produce through the gateway, fence, hold FENCED_SECONDS, then ``end(gateway)``."""
    topic = topic_on_both(main, failover)
    client = workloads.ConfluentProducer(gateway.bootstrap, {"enable.idempotence": True})
    producer = workloads.SequencedProducer(client, topic, rate=RATE).start()
    tails = [
        workloads.ClusterTail(main.bootstrap, topic, PARTITIONS, cluster="main").start(),
        workloads.ClusterTail(failover.bootstrap, topic, PARTITIONS, cluster="failover").start(),
    ]
    try:
        assert producer.wait_acked(50, timeout=30), "nothing acknowledged before the fence"
        answer = gateway.request("PUT", "/api/v1/fence", {"maxSeconds": 30})
        assert answer.status == 200 and answer.body["acknowledged"], answer
        at_fence = end_offsets(main, topic)
        time.sleep(FENCED_SECONDS)
        while_fenced = end_offsets(main, topic)
        state = gateway.state()["writeFence"]
        assert "kafka_failover_write_fenced 1.0" in gateway.metrics()
        end(gateway)
        time.sleep(2.0)
        producer.stop(flush_timeout=30)
        _, acked, _ = producer.log.snapshot()
        missing = workloads.wait_until_landed(tails, acked, timeout=30)
        assert not missing, f"acknowledged but on neither cluster: {sorted(missing)[:20]}"
        return state, at_fence, while_fenced, acked, tails
    finally:
        for tail in tails:
            tail.stop()


def test_a_fenced_gateway_writes_nothing_more_to_main_and_a_lift_loses_and_doubles_nothing(
    gateway: gateways.GatewayProcess, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    def lift(fenced: gateways.GatewayProcess) -> None:
        assert fenced.request("DELETE", "/api/v1/fence").status == 200

    state, at_fence, while_fenced, acked, tails = fenced_run(
        gateway, kafka_single, kafka_failover, lift
    )
    assert state["fenced"] and state["cluster"] == "main"
    assert while_fenced == at_fence, "nothing reached main while it was fenced"
    written = copies(tails)
    assert set(acked) <= set(written)
    assert max(written.values()) == 1, "a held write was written twice"
    assert not gateway.state()["writeFence"]["fenced"]
    assert "kafka_failover_write_fenced 0.0" in gateway.metrics()


def test_writes_held_at_a_switch_land_once_on_failover(
    gateway: gateways.GatewayProcess, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    def switch(fenced: gateways.GatewayProcess) -> None:
        assert fenced.switch("failover").status == 200

    _, at_fence, _, acked, tails = fenced_run(gateway, kafka_single, kafka_failover, switch)
    written = copies(tails)
    assert max(written.values()) == 1, "a held write was written twice"
    on_main = {seq for seq, _, _ in tails[0].placements()}
    assert sum(at_fence.values()) == len(on_main), "main holds exactly what it had at the fence"
    assert set(acked) - on_main, "writes held at the switch went on to failover"
    assert not gateway.state()["writeFence"]["fenced"], "a switch ends the fence"


def test_a_fence_with_a_bad_limit_is_refused_naming_the_valid_range(
    gateway: gateways.GatewayProcess,
) -> None:
    answer = gateway.request("PUT", "/api/v1/fence", {"maxSeconds": -1})
    assert answer.status == 400
    assert "maxSeconds must be a number above 0 and at most 600" in answer.body["error"]
    assert not gateway.state()["writeFence"]["fenced"]
