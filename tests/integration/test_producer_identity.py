"""Producer identity across switches, with real brokers and three gateway pods behind one address.

Issue 13's scenarios: idempotent producers of every family switched back and forth twenty times
(a failback used to kill them with OUT_OF_ORDER_SEQUENCE_NUMBER), a new producer after a
failover (it used to be handed an id the moved producer still wrote under), a restarted load
producer, and a transactional copy job whose transaction is open at the switch. The gateway pods
run behind a :class:`~kafka_testbed.service_balancer.ServiceBalancer`, so one client's connections
land on different pods. What landed is read straight from both clusters (:class:`ClusterTail`):
every acknowledged record must be somewhere; duplicates are counted and printed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafka_testbed import (
    admin,
    clients,
    gateway_fleet,
    java_workloads,
    process_producers,
    versions,
    workloads,
)
from kafka_testbed.clusters import Cluster
from kafka_testbed.gateway_fleet import GatewayFleet

PARTITIONS = 3
RATE = 150
SWITCHES, SWITCH_EVERY_SECONDS = 20, 1.5
SETTLE_SECONDS = 60.0
IDEMPOTENT: dict[str, dict[str, Any]] = {
    "confluent-kafka": {"enable.idempotence": True},
    "kafka-python": {"enable_idempotence": True, "acks": "all"},
    "aiokafka": {"enable_idempotence": True, "acks": "all"},
}


@pytest.fixture
def fleet(kafka_single: Cluster, kafka_failover: Cluster, tmp_path: Path) -> Iterator[GatewayFleet]:
    clusters = {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}
    with gateway_fleet.start_fleet(clusters, tmp_path) as started:
        yield started


def topic_on_both(main: Cluster, failover: Cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    for cluster in (main, failover):
        admin.create_topic(cluster.bootstrap, name, partitions=PARTITIONS)
    return name


def tails(main: Cluster, failover: Cluster, topic: str) -> list[workloads.ClusterTail]:
    return [
        workloads.ClusterTail(main.bootstrap, topic, PARTITIONS, cluster="main").start(),
        workloads.ClusterTail(failover.bootstrap, topic, PARTITIONS, cluster="failover").start(),
    ]


def duplicates(found: list[workloads.ClusterTail]) -> int:
    copies = Counter(seq for tail in found for seq, _, _ in tail.placements())
    return sum(count - 1 for count in copies.values())


def switch_back_and_forth(fleet: GatewayFleet, switches: int, every: float) -> None:
    target = "failover"
    for _ in range(switches):
        time.sleep(every)
        assert all(answer.status == 200 for answer in fleet.switch(target))
        target = "main" if target == "failover" else "failover"


def test_idempotent_producers_of_every_family_survive_twenty_switches_back_and_forth(
    fleet: GatewayFleet, kafka_single: Cluster, kafka_failover: Cluster, tmp_path: Path
) -> None:
    runs: dict[str, tuple[str, Any]] = {}
    for family, settings in IDEMPOTENT.items():
        topic = topic_on_both(kafka_single, kafka_failover, f"twenty-{family}")
        client = workloads.PRODUCER_CLIENTS[family](fleet.bootstrap, settings)
        runs[family] = (topic, workloads.SequencedProducer(client, topic, rate=RATE).start())
    for family, factory in process_producers.PROCESS_PRODUCERS.items():  # idempotent by default
        topic = topic_on_both(kafka_single, kafka_failover, f"twenty-{family}")
        producer = factory(fleet.bootstrap, topic, rate=RATE, log_dir=tmp_path)
        runs[family] = (topic, producer.start())

    switch_back_and_forth(fleet, SWITCHES, SWITCH_EVERY_SECONDS)
    time.sleep(SWITCH_EVERY_SECONDS)

    report = []
    for family, (topic, producer) in runs.items():
        producer.stop(flush_timeout=30)  # raises if the client failed fatally
        assert not getattr(producer, "fatal", []), f"{family}: {producer.fatal}"
        sent, acked, errors = producer.log.snapshot()
        found = tails(kafka_single, kafka_failover, topic)
        missing = workloads.wait_until_landed(found, acked, SETTLE_SECONDS)
        report.append(
            f"{family}: sent {len(sent)}, acknowledged {len(acked)}, failed {len(errors)}, "
            f"lost {len(missing)}, duplicated {duplicates(found)}"
        )
        for tail in found:
            tail.stop()
        assert not errors, f"{family}: {list(errors.items())[:5]}"
        assert len(acked) == len(sent), f"{family}: unacknowledged records"
        assert not missing, f"{family}: acknowledged but on no cluster: {sorted(missing)[:10]}"
    print("\n" + "\n".join(report))


def test_new_and_restarted_producers_after_a_failover_are_never_fatal(
    fleet: GatewayFleet, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    topic = topic_on_both(kafka_single, kafka_failover, "after-failover")
    settings = IDEMPOTENT["confluent-kafka"]

    def producer(bootstrap: str, first_seq: int) -> workloads.SequencedProducer:
        client = workloads.ConfluentProducer(bootstrap, settings)
        return workloads.SequencedProducer(client, topic, rate=RATE, first_seq=first_seq).start()

    load = producer(fleet.bootstrap, 0)
    assert load.wait_acked(200, timeout=30)
    assert all(answer.status == 200 for answer in fleet.switch("failover"))
    assert load.wait_acked(len(load.log.snapshot()[1]) + 200, timeout=30)
    newcomers = [producer(pod.bootstrap, 1_000_000 * (n + 1)) for n, pod in enumerate(fleet.pods)]
    restarted = producer(fleet.bootstrap, 10_000_000)
    everyone = [load, *newcomers, restarted]
    for started in everyone[1:]:
        assert started.wait_acked(100, timeout=30), "a producer got no acknowledgement"

    acked: set[int] = set()
    for started in everyone:
        started.stop(flush_timeout=30)
        _, acknowledged, errors = started.log.snapshot()
        assert not errors, list(errors.items())[:5]
        acked |= set(acknowledged)
    found = tails(kafka_single, kafka_failover, topic)
    assert not workloads.wait_until_landed(found, acked, SETTLE_SECONDS)
    for tail in found:
        tail.stop()


@pytest.mark.parametrize(
    "clients_version",
    [versions.NEWEST_KAFKA_VERSION, versions.OLD_CLIENTS_VERSION],
    ids=["java-4.4.0", "java-3.7.2"],
)
def test_a_transaction_open_at_a_switch_ends_aborted_and_the_copy_job_carries_on(
    fleet: GatewayFleet,
    kafka_single: Cluster,
    kafka_failover: Cluster,
    tmp_path: Path,
    clients_version: str,
) -> None:
    records = 200
    source = topic_on_both(kafka_single, kafka_failover, "copy-in")
    target = topic_on_both(kafka_single, kafka_failover, "copy-out")
    lines = [(f"key-{seq % 16}", workloads.encode_value(seq).decode()) for seq in range(records)]
    for cluster in (kafka_single, kafka_failover):  # as replication would have left them
        clients.ConfluentKafka().produce(cluster.bootstrap, source, lines)
    client = java_workloads.JavaClient(
        java_workloads.client_jars(clients_version), fleet.bootstrap, tmp_path
    )
    group = f"copy-{uuid.uuid4().hex[:6]}"

    def copy() -> java_workloads.TransactionsRun:
        return java_workloads.transactional_copy(
            client, input_topic=source, output_topic=target, group=group,
            expected_records=records, batch=10, abort_every=0, timeout_seconds=150,
            recover=True, pause_ms=150,
        )  # fmt: skip

    job = in_background(copy)
    try:
        wait_for_output(kafka_single, target, records=40)  # a few transactions on main
    except AssertionError as error:
        raise AssertionError(f"{error}; the copy job: {job(170).run.explain()}") from None
    assert all(answer.status == 200 for answer in fleet.switch("failover"))
    run = job(170)

    assert run.run.succeeded, run.run.explain()
    visible = {
        cluster.name: committed_by_attempt(cluster, target)
        for cluster in (kafka_single, kafka_failover)
    }
    for attempt, copied in run.attempts.items():
        holders = [name for name, by_attempt in visible.items() if attempt in by_attempt]
        assert len(holders) <= 1, f"attempt {attempt} committed on {holders}"
        for name in holders:
            assert visible[name][attempt] == copied, f"attempt {attempt} half visible on {name}"
    for transaction in run.transactions:
        if transaction.committed:
            assert any(transaction.attempt in by_attempt for by_attempt in visible.values())
    assert any(r.startswith("RECOVERED") for r in run.run.output.splitlines()), (
        "the switch never reached an open transaction: the test proved nothing"
    )


def wait_for_output(cluster: Cluster, topic: str, records: int, timeout: float = 60.0) -> None:
    """Until ``topic``'s partitions on ``cluster`` hold ``records`` records (and markers) in all."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "watermarks"})
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            highs = [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                for p in range(PARTITIONS)
            ]
            if sum(highs) >= records:
                return
            time.sleep(0.1)
        raise AssertionError(f"{topic} on {cluster.name} never reached {records} records")
    finally:
        consumer.close()


def committed_by_attempt(cluster: Cluster, topic: str) -> dict[int, frozenset[int]]:
    """What read_committed shows of each attempt's writes on ``cluster``; a record twice fails."""
    seen = java_workloads.read_topic(cluster.bootstrap, topic, isolation="read_committed")
    by_attempt: dict[int, set[int]] = {}
    copies = Counter()
    for record in seen:
        value, _, attempt = (record.value or "").partition("@")
        seq = int(value[:12])
        copies[seq] += 1
        by_attempt.setdefault(int(attempt), set()).add(seq)
    assert all(count == 1 for count in copies.values()), f"a record twice on {cluster.name}"
    return {attempt: frozenset(seqs) for attempt, seqs in by_attempt.items()}


def in_background(work: Callable[[], Any]) -> Callable[[float], Any]:
    """Run ``work`` in a thread; the returned call waits (bounded) for its result."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as error:  # re-raised by the caller's wait
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def wait(timeout: float) -> Any:
        thread.join(timeout)
        assert not thread.is_alive(), f"still running after {timeout} s"
        if "error" in result:
            raise result["error"]
        return result["value"]

    return wait


def test_a_librdkafka_transaction_open_at_a_switch_is_aborted_and_the_producer_carries_on(
    fleet: GatewayFleet, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    from confluent_kafka import KafkaException, Producer

    topic = topic_on_both(kafka_single, kafka_failover, "rdkafka-txn")
    producer = Producer(
        {
            "bootstrap.servers": fleet.bootstrap,
            "transactional.id": f"txn-{topic}",
            "linger.ms": 5,
            "transaction.timeout.ms": 10_000,  # main aborts the half left there within 10 s
        }
    )
    producer.init_transactions(30)
    committed: dict[int, frozenset[int]] = {}
    recovered, switched, attempt, seq = [], False, 0, 0
    deadline = time.monotonic() + 90
    while len(committed) < 40 and time.monotonic() < deadline:
        attempt += 1
        batch = frozenset(range(seq, seq + 10))
        try:
            producer.begin_transaction()
            for number in sorted(batch):
                value = workloads.encode_value(number) + f"@{attempt}".encode()
                producer.produce(topic, key=workloads.record_key(number), value=value)
            if len(committed) == 15 and not switched:
                switched = all(answer.status == 200 for answer in fleet.switch("failover"))
            producer.commit_transaction(30)
            committed[attempt], seq = batch, seq + 10
        except KafkaException as error:
            recovered.append(str(error))
            if error.args[0].txn_requires_abort():
                producer.abort_transaction(30)
            else:
                raise
        time.sleep(0.05)

    assert switched and len(committed) == 40, recovered
    assert recovered, "the switch never reached an open transaction: the test proved nothing"
    visible = {c.name: committed_by_attempt(c, topic) for c in (kafka_single, kafka_failover)}
    for number, batch in committed.items():
        holders = [name for name, by_attempt in visible.items() if number in by_attempt]
        assert len(holders) == 1, f"attempt {number} committed on {holders}"
        assert visible[holders[0]][number] == batch, f"attempt {number} half visible"
    for by_attempt in visible.values():
        assert set(by_attempt) <= set(committed), "an aborted attempt is visible"
