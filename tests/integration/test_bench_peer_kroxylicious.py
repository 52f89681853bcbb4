"""The Kroxylicious benchmark peer: a real client's records go through it to the broker and back."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from kafka_testbed import admin, networking, peers
from kafka_testbed.clusters import Cluster

RECORDS = 1000
CONSUME_DEADLINE_SECONDS = 60.0


def test_kroxylicious_forwards_records_to_the_broker_and_back(
    kafka_single: Cluster, tmp_path: Path
) -> None:
    from confluent_kafka import Consumer, Producer

    topic = f"kroxylicious-{uuid.uuid4().hex[:8]}"
    admin.create_topic(kafka_single.bootstrap, topic, partitions=3)
    with peers.start_peer("kroxylicious", kafka_single.bootstrap, tmp_path / "peer") as peer:
        advertised = admin.broker_addresses(peer.bootstrap)
        assert advertised == {1: advertised[1]}
        assert advertised[1] != kafka_single.bootstrap, "the peer must advertise itself"

        listening = networking.listening_addresses(peer.pid)
        bootstrap_port = networking.split_address(peer.bootstrap)[1]
        node_port = networking.split_address(advertised[1])[1]
        assert {port for _, port in listening} >= {bootstrap_port, node_port}, listening
        assert {address for address, _ in listening} == {networking.HOST}, listening

        producer = Producer({"bootstrap.servers": peer.bootstrap, "acks": "all"})
        failures: list[str] = []

        def on_delivery(error: object, _message: object) -> None:
            if error is not None:
                failures.append(str(error))

        sent = {f"key-{n}": f"value-{n}" for n in range(RECORDS)}
        for key, value in sent.items():
            producer.produce(topic, value.encode(), key.encode(), on_delivery=on_delivery)
            producer.poll(0)
        assert producer.flush(30) == 0
        assert failures == []

        consumer = Consumer(
            {
                "bootstrap.servers": peer.bootstrap,
                "group.id": f"{topic}-readers",
                "auto.offset.reset": "earliest",
            }
        )
        received: dict[str, str] = {}
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + CONSUME_DEADLINE_SECONDS
            while len(received) < RECORDS and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error() is not None:
                    continue
                received[message.key().decode()] = message.value().decode()
        finally:
            consumer.close()
        assert received == sent, peer.log_tail()
