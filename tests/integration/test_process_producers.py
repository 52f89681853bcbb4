"""Producers in processes of their own (Java 4.x, Java 3.7.2, franz-go), straight to a broker and
through the gateway: every record sent is acknowledged, and read back from the broker itself.

These prove the adapters of :mod:`kafka_testbed.process_producers` end to end, before any switch
relies on them: the programs' command line, their output read into the producer log, SIGTERM and
the time bound both flushing what was sent, sequence numbers and keys where
:class:`workloads.ClusterTail` finds them.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kafka_testbed import admin, process_producers, workloads
from kafka_testbed.clusters import Cluster

PARTITIONS = 3
RECORDS = 150
RATE = 150.0
FIRST_SEQ = 1000
ACK_TIMEOUT_SECONDS = 60.0
FAMILIES = list(process_producers.PROCESS_PRODUCERS)


def new_topic(cluster: Cluster) -> str:
    topic = f"process-producer-{uuid.uuid4().hex[:8]}"
    admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
    return topic


def read_back(cluster: Cluster, topic: str, seqs: set[int]) -> tuple[set[int], set[Any]]:
    """The sequence numbers of ``seqs`` not on the broker, and every record's placement."""
    tail = workloads.ClusterTail(cluster.bootstrap, topic, PARTITIONS, cluster="main").start()
    try:
        missing = workloads.wait_until_landed([tail], seqs, timeout=30)
        return missing, tail.placements()
    finally:
        tail.stop()


def assert_all_acknowledged(producer: process_producers.ProcessProducer) -> dict[int, float]:
    sent, acked, errors = producer.log.snapshot()
    explain = producer.output_tail()
    assert not producer.fatal and not errors, explain
    assert producer.output.flushed, explain
    assert set(sent) == set(acked), f"sent, never acknowledged: {sorted(set(sent) - set(acked))}"
    assert set(sent) == set(range(FIRST_SEQ, FIRST_SEQ + len(sent))), "numbered from first_seq"
    assert all(sent[seq] <= at for seq, at in acked.items()), "acknowledged before sent"
    return acked


def assert_one_partition_per_key(placements: set[Any]) -> None:
    partitions: dict[bytes, set[int]] = {}
    for seq, partition, _offset in placements:
        partitions.setdefault(workloads.record_key(seq), set()).add(partition)
    assert all(len(found) == 1 for found in partitions.values()), partitions


@pytest.mark.parametrize("route", ["straight", "gateway"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_record_a_process_producer_sent_before_sigterm_is_acknowledged_and_on_the_broker(
    kafka_single: Cluster, gateway_factory: Any, tmp_path: Path, family: str, route: str
) -> None:
    if route == "gateway":
        clusters = {"main": kafka_single.bootstrap, "failover": kafka_single.bootstrap}
        bootstrap = gateway_factory(clusters).bootstrap
    else:
        bootstrap = kafka_single.bootstrap
    topic = new_topic(kafka_single)
    make = process_producers.PROCESS_PRODUCERS[family]
    producer = make(bootstrap, topic, rate=RATE, first_seq=FIRST_SEQ, log_dir=tmp_path)
    try:
        reached = producer.start().wait_acked(RECORDS, ACK_TIMEOUT_SECONDS)
    finally:
        producer.stop(flush_timeout=30)

    assert reached, producer.output_tail()
    acked = assert_all_acknowledged(producer)
    missing, placements = read_back(kafka_single, topic, set(acked))
    assert not missing, f"acknowledged, not on the broker: {sorted(missing)[:20]}"
    assert_one_partition_per_key(placements)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_process_producer_stops_by_itself_at_its_time_bound_having_flushed(
    kafka_single: Cluster, tmp_path: Path, family: str
) -> None:
    topic = new_topic(kafka_single)
    make = process_producers.PROCESS_PRODUCERS[family]
    producer = make(
        kafka_single.bootstrap, topic, rate=RATE, seconds=1.0, first_seq=FIRST_SEQ, log_dir=tmp_path
    )
    try:
        finished = producer.start().wait_finished(ACK_TIMEOUT_SECONDS)
    finally:
        producer.stop(flush_timeout=10)

    assert finished and producer.exit_code == 0, producer.output_tail()
    acked = assert_all_acknowledged(producer)
    assert 0 < len(acked) <= RATE * 1.5, "at most about one second's records"
    missing, _ = read_back(kafka_single, topic, set(acked))
    assert not missing, f"acknowledged, not on the broker: {sorted(missing)[:20]}"


REFUSING_SETTINGS: dict[str, dict[str, Any]] = {
    "java-4.1.1": {"transactional.id": "never-initialised"},
    "java-3.7.2": {"transactional.id": "never-initialised"},
    "franz-go": {"delivery-timeout": "1ms"},
}
"""A producer that cannot produce: a transactional Java producer whose transactions were never
initialised refuses every send(); franz-go refuses to create a client with this timeout."""


@pytest.mark.parametrize("family", FAMILIES)
def test_a_process_producer_that_cannot_produce_reports_fatal_stops_and_exits_3(
    kafka_single: Cluster, tmp_path: Path, family: str
) -> None:
    topic = new_topic(kafka_single)
    make = process_producers.PROCESS_PRODUCERS[family]
    settings = REFUSING_SETTINGS[family]
    producer = make(kafka_single.bootstrap, topic, rate=RATE, settings=settings, log_dir=tmp_path)
    try:
        finished = producer.start().wait_finished(ACK_TIMEOUT_SECONDS)
    finally:
        producer.stop(flush_timeout=10)

    assert finished and producer.exit_code == process_producers.EXIT_FATAL
    assert len(producer.fatal) == 1, producer.output_tail()
    sent, acked, errors = producer.log.snapshot()
    assert not acked and set(errors) == set(sent), "every record it took failed"


CONSUMER_FAMILIES = [
    *process_producers.PROCESS_CONSUMERS,
    *(f"python:{library}" for library in workloads.CONSUMER_CLIENTS),
]


def start_consumer(
    family: str, bootstrap: str, topic: str, group: str, tmp_path: Path
) -> workloads.ConsumerClient:
    if family.startswith("python:"):
        return workloads.start_group_consumer(family.split(":", 1)[1], bootstrap, topic, group)
    make = process_producers.PROCESS_CONSUMERS[family]
    return make(bootstrap, topic, group, log_dir=tmp_path).start()


@pytest.mark.parametrize("family", CONSUMER_FAMILIES)
def test_a_group_consumer_of_every_family_through_the_gateway_receives_every_record_once_numbered(
    kafka_single: Cluster, gateway_factory: Any, family: str, tmp_path: Path
) -> None:
    clusters = {"main": kafka_single.bootstrap, "failover": kafka_single.bootstrap}
    gateway = gateway_factory(clusters)
    topic = new_topic(kafka_single)
    producer = workloads.SequencedProducer(
        workloads.PRODUCER_CLIENTS["confluent-kafka"](kafka_single.bootstrap, {}),
        topic,
        rate=RATE,
        first_seq=FIRST_SEQ,
    ).start()
    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = start_consumer(family, gateway.bootstrap, topic, group, tmp_path)
    try:
        time.sleep(RECORDS / RATE)
        producer.stop(flush_timeout=30)
        acked = set(producer.log.snapshot()[1])
        deadline = time.monotonic() + ACK_TIMEOUT_SECONDS
        while {r.seq for r in consumer.received()} < acked and time.monotonic() < deadline:
            assert consumer.failure is None, consumer.failure
            time.sleep(0.1)
    finally:
        consumer.stop()

    received = consumer.received()
    assert acked and {r.seq for r in received} >= acked, "every acknowledged record received"
    assert len({(r.partition, r.offset) for r in received}) == len(received), "nothing twice"
