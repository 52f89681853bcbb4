"""Record batches as real producers compress them (librdkafka, the Java client's xerial snappy,
lz4 frames, zstd) are read back by the gateway's own decoder, as a planned switchover reads the
offset syncs and the records it counts, on a real Kafka 4 broker."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from test_cluster_admin import admin_of

from failover_gateway.codec import records
from kafka_testbed import admin, process_producers, versions
from kafka_testbed.clusters import Cluster

CODECS = {"snappy": 2, "lz4": 3, "zstd": 4}
RECORDS = 200
JAVA = f"java-{versions.KAFKA_VERSION}"


def decoded(cluster: Cluster, topic: str) -> tuple[set[int], set[int]]:
    """The sequence numbers in partition 0's values, and the codecs of its batches."""

    async def run() -> tuple[set[int], set[int]]:
        seqs: set[int] = set()
        codecs: set[int] = set()
        async with admin_of(cluster) as calls:
            [end] = (await calls.end_offsets([(topic, 0)], committed_only=False)).values()
            position = 0
            while position < end:
                for batch in records.batches(await calls.read((topic, 0), position)):
                    codecs.add(batch.compression)
                    seqs |= {int(r.value.split(b":")[0]) for r in batch.records if r.value}
                    position = batch.last_offset + 1
        return seqs, codecs

    return asyncio.run(run())


@pytest.mark.parametrize("codec", list(CODECS))
def test_batches_librdkafka_compresses_decode_to_every_record_sent(
    kafka_single: Cluster, codec: str
) -> None:
    topic = f"compressed-{codec}-{uuid.uuid4().hex[:6]}"
    admin.create_topic(kafka_single.bootstrap, topic, partitions=1)
    producer = Producer(
        {"bootstrap.servers": kafka_single.bootstrap, "compression.type": codec, "linger.ms": 20}
    )
    for seq in range(RECORDS):
        producer.produce(topic, f"{seq}:{'padding ' * 20}".encode())
    assert producer.flush(30) == 0
    seqs, codecs = decoded(kafka_single, topic)
    assert seqs == set(range(RECORDS))
    assert codecs == {CODECS[codec]}


@pytest.mark.parametrize("codec", list(CODECS))
def test_batches_the_java_client_compresses_decode_to_every_record_acknowledged(
    kafka_single: Cluster, tmp_path: Path, codec: str
) -> None:
    topic = f"compressed-java-{codec}-{uuid.uuid4().hex[:6]}"
    admin.create_topic(kafka_single.bootstrap, topic, partitions=1)
    make = process_producers.PROCESS_PRODUCERS[JAVA]
    settings = {"compression.type": codec, "linger.ms": "20"}
    producer = make(kafka_single.bootstrap, topic, rate=400.0, settings=settings, log_dir=tmp_path)
    try:
        assert producer.start().wait_acked(RECORDS, 60.0), producer.output_tail()
    finally:
        producer.stop(flush_timeout=30)
    _, acked, _ = producer.log.snapshot()
    seqs, codecs = decoded(kafka_single, topic)
    assert set(acked) <= seqs and acked
    assert codecs == {CODECS[codec]}
