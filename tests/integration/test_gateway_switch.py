"""A switch under load, with real clients: records move to the failover cluster, nothing is lost.

Main has brokers 1, 2, 3 and failover only broker 7, so clients hold cached ports of brokers the
failover cluster does not have. Ground truth comes from reading both clusters directly: every
acknowledged record must be on one of them, and records sent after the switch land on failover.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kafka_testbed import admin, fetching, java_programs, workloads
from kafka_testbed.clusters import Cluster

PARTITIONS = 3
RATE = 150.0
BEFORE_SWITCH_SECONDS = 3.0
AFTER_SWITCH_SECONDS = 5.0

PRODUCERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "confluent-kafka": (workloads.ConfluentProducer, {"enable.idempotence": True}),
    "kafka-python": (workloads.KafkaPythonProducer, {"enable_idempotence": True}),
    "aiokafka": (workloads.AiokafkaProducer, {"enable_idempotence": True}),
}


def topic_on_both(main: Cluster, failover: Cluster) -> str:
    topic = f"switch-{uuid.uuid4().hex[:8]}"
    for cluster in (main, failover):
        admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
    return topic


def tails_of(main: Cluster, failover: Cluster, topic: str) -> list[workloads.ClusterTail]:
    return [
        workloads.ClusterTail(main.bootstrap, topic, PARTITIONS, cluster="main").start(),
        workloads.ClusterTail(failover.bootstrap, topic, PARTITIONS, cluster="failover").start(),
    ]


@pytest.mark.parametrize("library", list(PRODUCERS))
def test_a_switch_under_idempotent_produce_and_group_consume_loses_no_acknowledged_record(
    gateway_factory: Any, kafka_triple: Cluster, kafka_failover: Cluster, library: str
) -> None:
    gateway = gateway_factory(
        {"main": kafka_triple.bootstrap, "failover": kafka_failover.bootstrap}
    )
    topic = topic_on_both(kafka_triple, kafka_failover)
    make_client, idempotent = PRODUCERS[library]
    client = make_client(gateway.bootstrap, idempotent)
    producer = workloads.SequencedProducer(client, topic, rate=RATE).start()
    consumer = workloads.GroupConsumer(gateway.bootstrap, topic, f"group-{library}").start()
    tails = tails_of(kafka_triple, kafka_failover, topic)
    try:
        time.sleep(BEFORE_SWITCH_SECONDS)
        switched_at = time.monotonic()
        answer = gateway.switch("failover")
        assert answer.status == 200, answer
        assert answer.body["closedConnections"] + answer.body["movedConnections"] >= 2, answer
        time.sleep(AFTER_SWITCH_SECONDS)
        producer.stop(flush_timeout=30)
        _, acked, errors = producer.log.snapshot()
        missing = workloads.wait_until_landed(tails, acked, timeout=30)
        where = workloads.landed(tails)
        time.sleep(1.0)  # let the consumer read the last records from failover
        received = consumer.received()
    finally:
        consumer.stop()
        for tail in tails:
            tail.stop()
    assert consumer.failure is None, consumer.failure
    assert len(acked) > RATE * (BEFORE_SWITCH_SECONDS + AFTER_SWITCH_SECONDS) * 0.5
    assert not missing, f"acknowledged but on neither cluster: {sorted(missing)[:20]}"
    assert not any("fatal" in error.lower() for error in errors.values()), errors
    on_failover = {seq for seq, clusters in where.items() if "failover" in clusters}
    late = {seq for seq, at in acked.items() if at > switched_at + 2.0}
    assert late and late <= on_failover, "records acknowledged after the switch are on failover"
    resumed = [r for r in received if r.at > switched_at and r.seq in on_failover]
    assert resumed, "the consumer group resumed on the failover cluster"


def acknowledged(stdout: str) -> dict[int, int]:
    """seq -> line number of its ACK: the line order is the acknowledgement order."""
    return {int(m.group(1)): n for n, m in enumerate(re.finditer(r"^ACK (\d+) ", stdout, re.M))}


@pytest.mark.parametrize("clients", ["3.7.2", "4.1.1"])
def test_a_java_producer_keeps_producing_across_a_switch_without_restart(
    gateway_factory: Any,
    kafka_triple: Cluster,
    kafka_failover: Cluster,
    tmp_path: Path,
    clients: str,
) -> None:
    """kafka-clients 3.7 has no KIP-899 rebootstrap: it only ever reconnects to broker ports it
    learned, which the gateway keeps serving (broker 7 behind main's ports 1-3)."""
    gateway = gateway_factory(
        {"main": kafka_triple.bootstrap, "failover": kafka_failover.bootstrap}
    )
    topic = topic_on_both(kafka_triple, kafka_failover)
    jars = fetching.fetch_old_clients() if clients == "3.7.2" else fetching.fetch_kafka_jars()
    log = tmp_path / "producer.log"
    process = java_programs.start(
        "SequenceProducer", jars, [gateway.bootstrap, topic, "14", "100"], log
    )
    tails = tails_of(kafka_triple, kafka_failover, topic)
    try:
        time.sleep(6)
        assert gateway.switch("failover").status == 200
        process.wait(timeout=60)
        output = log.read_text()
        acked = acknowledged(output)
        missing = workloads.wait_until_landed(tails, acked, timeout=30)
        where = workloads.landed(tails)
    finally:
        for tail in tails:
            tail.stop()
    assert "DONE" in output, output[-3000:]
    assert len(acked) > 800, output[-3000:]
    assert not missing, f"acknowledged but on neither cluster: {sorted(missing)[:20]}"
    last = sorted(acked, key=acked.__getitem__)[-100:]
    assert all("failover" in where[seq] for seq in last), "the last records went to failover"
