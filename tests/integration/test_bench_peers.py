"""Peer proxies for the benchmark (issue #8) forward real traffic to a real broker.

Each peer is checked with a client it is documented to work with (see ``kafka_testbed.peers``):
records produced through it with ``acks=all`` are acknowledged, and a consumer group reading
through it gets every one of them back.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from kafka_testbed import admin, peers
from kafka_testbed.clusters import Cluster

RECORDS = 1000
RECORD_SIZE = 100
KAFKA_PYTHON_API_VERSION = (3, 5)
"""Pinned: without it kafka-python 3.0.12 asks ApiVersions v4, which tansu 0.6.0 cannot proxy."""


def test_tansu_proxy_forwards_records_to_the_broker_and_back(
    kafka_single: Cluster, tmp_path: Path
) -> None:
    topic = f"tansu-peer-{uuid.uuid4().hex[:8]}"
    admin.create_topic(kafka_single.bootstrap, topic, partitions=3)
    with peers.start_peer("tansu-proxy", kafka_single.bootstrap, tmp_path) as peer:
        producer = KafkaProducer(
            bootstrap_servers=peer.bootstrap, acks="all", api_version=KAFKA_PYTHON_API_VERSION
        )
        try:
            futures = [
                producer.send(topic, b"x" * RECORD_SIZE, key=str(i).encode())
                for i in range(RECORDS)
            ]
            producer.flush(30)
        finally:
            producer.close()
        failed = [future.exception for future in futures if not future.succeeded()]
        assert not failed, f"{len(failed)} records not acknowledged, e.g. {failed[:1]}:\n" + (
            peer.log_tail()
        )

        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=peer.bootstrap,
            group_id=f"{topic}-reader",
            auto_offset_reset="earliest",
            consumer_timeout_ms=10_000,
            api_version=KAFKA_PYTHON_API_VERSION,
        )
        keys: set[bytes] = set()
        try:
            for message in consumer:  # ends after consumer_timeout_ms without records
                keys.add(message.key)
                if len(keys) == RECORDS:
                    break
        finally:
            consumer.close()
        assert keys == {str(i).encode() for i in range(RECORDS)}, (
            f"read back {len(keys)} of {RECORDS} keys through {peer.bootstrap}; "
            f"proxy log ends:\n{peer.log_tail()}"
        )
