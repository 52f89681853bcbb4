"""A planned switchover on one gateway, with real brokers, MirrorMaker 2 and librdkafka clients:
nothing lost, nothing written twice, nothing re-read; and an abort when replication is stopped.
"""

from __future__ import annotations

import collections
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_producer_identity import committed_by_attempt, in_background

from kafka_testbed import admin, gateways, mirroring, process_producers, workloads
from kafka_testbed.clusters import Cluster

PARTITIONS = 2
RATE = 100.0
SWITCHOVER = {
    "switchover": {
        "replication": "mirrorMaker2",
        "topics": "planned-.*",  # what the MirrorMaker flow below copies; main has other topics
        "consumerDrainSeconds": 5,
        "maxCatchUpSeconds": 20,
    }
}


def topic_on_both(main: Cluster, failover: Cluster) -> str:
    topic = f"planned-{uuid.uuid4().hex[:8]}"
    # failover first: MirrorMaker creates a topic it sees on main on failover by itself
    for cluster in (failover, main):
        admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
    return topic


def wait_for(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f}s"
        time.sleep(0.2)


def switchover_of(topic: str, **overrides: Any) -> dict[str, Any]:
    """The switchover settings for one test's topic: the clusters are shared by the session, and
    another test's groups (some still with members on failover) are not this test's to hand off."""
    return {"switchover": {**SWITCHOVER["switchover"], "topics": re.escape(topic), **overrides}}


def planned_gateway(
    main: Cluster, failover: Cluster, workdir: Path, topic: str
) -> gateways.GatewayProcess:
    clusters = {"main": main.bootstrap, "failover": failover.bootstrap}
    return gateways.start_gateway(clusters, gateway_extra=switchover_of(topic), workdir=workdir)


def test_a_planned_switch_under_load_loses_duplicates_and_rereads_nothing(
    kafka_single: Cluster,
    kafka_failover: Cluster,
    mirror_maker: mirroring.MirrorMaker,
    tmp_path: Path,
) -> None:
    topic = topic_on_both(kafka_single, kafka_failover)
    gateway = planned_gateway(kafka_single, kafka_failover, tmp_path, topic)
    group = f"planned-{uuid.uuid4().hex[:6]}"
    client = workloads.ConfluentProducer(gateway.bootstrap, {"enable.idempotence": True})
    producer = workloads.SequencedProducer(client, topic, rate=RATE).start()
    consumer = workloads.GroupConsumer(
        gateway.bootstrap, topic, group, {"auto.commit.interval.ms": 200}
    ).start()
    tail = workloads.ClusterTail(kafka_failover.bootstrap, topic, PARTITIONS, cluster="failover")
    tail.start()
    main_tail = workloads.ClusterTail(kafka_single.bootstrap, topic, PARTITIONS, cluster="main")
    main_tail.start()
    try:
        assert producer.wait_acked(200, timeout=60), "nothing acknowledged before the switch"
        wait_for("MirrorMaker copying the topic", lambda: bool(tail.sequences()), timeout=90)
        answer = gateway.switch("failover", mode="planned")
        assert answer.status == 200, answer
        report: dict[str, Any] = answer.body["switchover"]
        metrics = gateway.metrics()
        time.sleep(3.0)
        state = gateway.state()
        producer.stop(flush_timeout=30)
        _, acked, _ = producer.log.snapshot()
        missing = workloads.wait_until_landed([tail], acked, timeout=60)
        time.sleep(2.0)  # the consumer reads the last records from failover
        receipts = consumer.received()
        received = [r.seq for r in receipts]
    finally:
        consumer.stop()
        tail.stop()
        main_tail.stop()
        gateway.stop()
    assert report["outcome"] == "switched" and report["lagAtSwitch"] == 0, report
    assert report["groupsHandedOff"] >= 1, report
    assert 'kafka_failover_planned_switches_total{outcome="switched"} 1.0' in metrics
    assert f"kafka_failover_last_fence_duration_seconds {report['fenceMs'] / 1000}" in metrics
    assert not missing, f"acknowledged but not on failover: {sorted(missing)[:20]}"
    on_failover = collections.Counter(seq for seq, _, _ in tail.placements())
    assert max(on_failover.values()) == 1, "a record is twice on failover"
    reread = {seq for seq, n in collections.Counter(received).items() if n > 1}
    before_switch = main_tail.sequences()
    assert not reread & before_switch, (
        f"the group read again {len(reread & before_switch)} records written before the switch "
        f"(the offset hand-off failed): {sorted(reread & before_switch)[:20]}; {report}"
    )
    # Nor after it: the consumer's fetches on failover wait until it has rejoined there
    # (failover_gateway.pump.rejoin_gate), so it never reads ahead of the handed-off offset.
    assert not reread, f"{len(reread)} records written after the switch read twice"
    assert set(acked) <= set(received), "the group read every acknowledged record"
    assert state["fetchesHeldForRejoin"] >= 1, "the group's fetches waited for its rejoin"
    print(f"planned switchover report: {report}")


def test_a_planned_switch_with_replication_stopped_aborts_and_stays_on_main(
    kafka_single: Cluster,
    kafka_failover: Cluster,
    mirror_maker: mirroring.MirrorMaker,
    tmp_path: Path,
) -> None:
    clusters = {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}
    topic = topic_on_both(kafka_single, kafka_failover)
    extra = switchover_of(topic, maxCatchUpSeconds=2)
    gateway = gateways.start_gateway(clusters, gateway_extra=extra, workdir=tmp_path)
    client = workloads.ConfluentProducer(gateway.bootstrap, {"enable.idempotence": True})
    producer = workloads.SequencedProducer(client, topic, rate=RATE).start()
    try:
        assert producer.wait_acked(100, timeout=60)
        mirror_maker.stall()
        try:
            time.sleep(0.5)
            answer = gateway.switch("failover", mode="planned")
            state, metrics = gateway.state(), gateway.metrics()
        finally:
            mirror_maker.unstall()
        acked_before = len(producer.log.snapshot()[1])
        assert producer.wait_acked(acked_before + 50, timeout=30), "writes resumed on main"
    finally:
        producer.stop(flush_timeout=30)
        gateway.stop()
    assert answer.status == 409, answer
    assert "replication did not catch up within 2s" in answer.body["error"], answer.body
    assert state["active"] == "main" and not state["writeFence"]["fenced"]
    assert state["lastSwitchover"]["outcome"] == "aborted"
    assert 'kafka_failover_planned_switches_total{outcome="aborted"} 1.0' in metrics


def test_a_planned_switch_without_replication_declared_is_refused_with_what_to_set(
    gateway: gateways.GatewayProcess,
) -> None:
    answer = gateway.switch("failover", mode="planned")
    assert answer.status == 400
    assert "gateway.switchover.replication" in answer.body["error"]
    assert gateway.state()["active"] == "main"


def test_a_planned_switch_under_a_transactional_producer_shows_each_commit_once(
    kafka_single: Cluster,
    kafka_failover: Cluster,
    mirror_maker: mirroring.MirrorMaker,
    tmp_path: Path,
) -> None:
    """Transactions keep running through the fence: writes of the one open at the fence go on so
    it can commit, the next waits for the switch. A read_committed group sees each committed
    transaction once, and failover holds each of them (MirrorMaker copies committed data only)."""
    from confluent_kafka import KafkaException, Producer

    topic = topic_on_both(kafka_single, kafka_failover)
    gateway = planned_gateway(kafka_single, kafka_failover, tmp_path, topic)
    group = f"planned-{uuid.uuid4().hex[:6]}"
    consumer = workloads.GroupConsumer(
        gateway.bootstrap,
        topic,
        group,
        {"auto.commit.interval.ms": 200, "isolation.level": "read_committed"},
    ).start()
    tail = workloads.ClusterTail(kafka_failover.bootstrap, topic, PARTITIONS, cluster="failover")
    tail.start()
    stop = threading.Event()
    committed: dict[int, frozenset[int]] = {}
    recovered: list[str] = []

    def transact() -> None:
        producer = Producer(
            {
                "bootstrap.servers": gateway.bootstrap,
                "transactional.id": f"txn-{topic}",
                "linger.ms": 5,
                "transaction.timeout.ms": 10_000,
            }
        )
        producer.init_transactions(30)
        attempt, seq = 0, 0
        while not stop.is_set():
            attempt += 1
            batch = frozenset(range(seq, seq + 10))
            try:
                producer.begin_transaction()
                for number in sorted(batch):  # ~200 ms a transaction: the fence finds one open
                    value = workloads.encode_value(number) + f"@{attempt}".encode()
                    producer.produce(topic, key=workloads.record_key(number), value=value)
                    producer.poll(0.02)
                producer.commit_transaction(30)
                committed[attempt], seq = batch, seq + 10
            except KafkaException as error:
                recovered.append(str(error))
                if not error.args[0].txn_requires_abort():
                    raise
                producer.abort_transaction(30)

    wait = in_background(transact)
    try:
        wait_for("10 committed transactions", lambda: len(committed) >= 10, timeout=60)
        wait_for("MirrorMaker copying the topic", lambda: bool(tail.sequences()), timeout=90)
        before = set(committed)
        answer = gateway.switch("failover", mode="planned")
        state = gateway.state()
        after_switch = len(committed)
        wait_for("transactions on failover", lambda: len(committed) >= after_switch + 10, 60)
    finally:
        stop.set()
        wait(90)
        tail.stop()
    time.sleep(2.0)  # the group reads the last transactions
    received = [r.seq for r in consumer.received()]
    consumer.stop()
    assert answer.status == 200, answer
    report = answer.body["switchover"]
    assert report["outcome"] == "switched" and report["lagAtSwitch"] == 0, report
    visible = committed_by_attempt(kafka_failover, topic)
    missing = {n for n in committed if visible.get(n) != committed[n]}
    assert not missing, f"committed transactions not (wholly) on failover: {sorted(missing)[:10]}"
    assert set(visible) <= set(committed), "an aborted transaction is visible on failover"
    everything = set().union(*committed.values())
    assert everything <= set(received), "the group read every committed record"
    reread = {seq for seq, n in collections.Counter(received).items() if n > 1}
    written_before = set().union(*(committed[n] for n in before))
    assert not reread & written_before, f"{len(reread & written_before)} records read twice"
    assert not reread, f"{len(reread)} records written after the switch read twice"
    admitted = state["writeFence"]["transactionalWritesAdmitted"]
    print(
        f"transactional planned switch: fence {report['fenceMs']} ms, {admitted} write(s) of an "
        f"open transaction admitted, {len(recovered)} recovered error(s), "
        f"{len(reread)} post-switch records read twice"
    )


PYTHON_PRODUCERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "kafka-python": (workloads.KafkaPythonProducer, {"enable_idempotence": True}),
    "aiokafka": (workloads.AiokafkaProducer, {"enable_idempotence": True}),
}
FAMILIES = [*PYTHON_PRODUCERS, *process_producers.PROCESS_PRODUCERS]


def family_producer(family: str, bootstrap: str, topic: str, log_dir: Path) -> Any:
    """An idempotent producer of ``family`` (Java and franz-go are, by default), started."""
    if family in PYTHON_PRODUCERS:
        make, settings = PYTHON_PRODUCERS[family]
        return workloads.SequencedProducer(make(bootstrap, settings), topic, rate=RATE).start()
    make_process = process_producers.PROCESS_PRODUCERS[family]
    return make_process(bootstrap, topic, rate=RATE, seconds=120, log_dir=log_dir).start()


@pytest.mark.parametrize("family", FAMILIES)
def test_a_planned_switch_loses_and_duplicates_nothing_for_every_client_family(
    kafka_single: Cluster,
    kafka_failover: Cluster,
    mirror_maker: mirroring.MirrorMaker,
    tmp_path: Path,
    family: str,
) -> None:
    """Held writes wait in each family's own request timeout, then go to failover."""
    topic = topic_on_both(kafka_single, kafka_failover)
    gateway = planned_gateway(kafka_single, kafka_failover, tmp_path, topic)
    producer = family_producer(family, gateway.bootstrap, topic, tmp_path)
    tail = workloads.ClusterTail(kafka_failover.bootstrap, topic, PARTITIONS, cluster="failover")
    tail.start()
    try:
        assert producer.wait_acked(100, timeout=60), "nothing acknowledged before the switch"
        wait_for("MirrorMaker copying the topic", lambda: bool(tail.sequences()), timeout=90)
        answer = gateway.switch("failover", mode="planned")
        acked_at_switch = len(producer.log.snapshot()[1])
        assert producer.wait_acked(acked_at_switch + 100, timeout=60), "no acks after the switch"
    finally:
        producer.stop(flush_timeout=30)
    _, acked, errors = producer.log.snapshot()
    missing = workloads.wait_until_landed([tail], acked, timeout=60)
    copies = collections.Counter(seq for seq, _, _ in tail.placements())
    tail.stop()
    assert answer.status == 200 and answer.body["switchover"]["lagAtSwitch"] == 0, answer
    assert not missing, f"{family}: acknowledged, not on failover: {sorted(missing)[:20]}"
    assert max(copies.values()) == 1, f"{family}: a record twice on failover"
    assert not errors, f"{family}: sends failed across the fence: {list(errors.items())[:5]}"
    print(f"{family}: fence {answer.body['switchover']['fenceMs']} ms")
