"""The canary probe on real brokers: a cluster whose canary partition has no leader to ask is
judged down, naming the canary; once the topic exists and its leader answers, healthy again."""

from __future__ import annotations

import time
import uuid
from typing import Any

import confluent_kafka

from conftest import GatewayFactory
from kafka_testbed import admin
from kafka_testbed.clusters import Cluster


def verdict(state: dict[str, Any], cluster: str) -> tuple[str, str]:
    found = state["upstreams"][cluster]
    return str(found["verdict"]), str(found.get("error") or "")


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f}s: {check()}")


def test_a_cluster_is_healthy_only_while_its_canary_leader_answers(
    gateway_factory: GatewayFactory, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    canary = f"canary-{uuid.uuid4().hex[:8]}"
    gateway = gateway_factory(
        {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap},
        gateway_extra={"canaryTopic": canary, "timeouts": {"probeIntervalMs": 300}},
    )
    wait_for(lambda: verdict(gateway.state(), "main")[0] == "down")
    error = verdict(gateway.state(), "main")[1]
    assert f"canary {canary}-0" in error and "Kafka error 3" in error, error  # unknown topic
    # The verdict is for automatic failover; clients keep working (brokers were still learned).
    producer = confluent_kafka.Producer({"bootstrap.servers": gateway.bootstrap})
    delivered: list[Any] = []
    producer.produce(f"{canary}-data", b"served", on_delivery=lambda e, _: delivered.append(e))
    producer.flush(30)
    assert delivered == [None], delivered
    admin.create_topic(kafka_single.bootstrap, canary, partitions=1)
    wait_for(lambda: verdict(gateway.state(), "main")[0] == "healthy")
    assert verdict(gateway.state(), "failover")[0] == "down", "failover has no canary yet"
