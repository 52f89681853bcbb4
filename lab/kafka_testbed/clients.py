"""One produce/consume round trip written for each client the product must serve.

confluent-kafka (librdkafka), kafka-python, aiokafka and the Java clients (through Kafka's console
tools) behave differently around bootstrap, metadata and group coordination; tests parametrize
over :data:`CLIENTS` to prove a cluster (or, later, the gateway) works for all of them.
"""

import asyncio
import time
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from kafka_testbed import admin, tooling
from kafka_testbed.errors import TestbedError

T = TypeVar("T")
Record = tuple[str, str]
"""A record as ``(key, value)`` text."""

DEFAULT_TIMEOUT_SECONDS = 60.0
MAX_REPLICATION_FACTOR = 3
SESSION_TIMEOUT_MS = 6000
"""Consumer session timeout: the smallest a stock broker accepts (group.min.session.timeout.ms).

Tansu holds a JoinGroup for about half the session timeout while waiting for other members, so
client defaults (10-45 s) would make every group join there take 5-23 s.
"""


class ClientDriver(Protocol):
    """Create a topic, produce keyed records (acks=all), consume them as a consumer group."""

    name: str

    def create_topic(self, bootstrap: str, topic: str, partitions: int) -> None:
        """Create ``topic``; return once it can be produced to."""

    def produce(self, bootstrap: str, topic: str, records: Sequence[Record]) -> None:
        """Send every record and wait until each is acknowledged."""

    def consume(
        self, bootstrap: str, topic: str, *, group: str, count: int, timeout: float
    ) -> list[Record]:
        """Read ``count`` records from the beginning in group ``group`` and commit offsets."""


class ConfluentKafka:
    """confluent-kafka, i.e. librdkafka."""

    name = "confluent_kafka"

    def create_topic(self, bootstrap: str, topic: str, partitions: int) -> None:
        admin.create_topic(bootstrap, topic, partitions=partitions)

    def produce(self, bootstrap: str, topic: str, records: Sequence[Record]) -> None:
        from confluent_kafka import Producer

        failures: list[str] = []
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for key, value in records:
            producer.produce(topic, key=key, value=value, on_delivery=_collect_failures(failures))
        remaining = producer.flush(DEFAULT_TIMEOUT_SECONDS)
        if failures or remaining:
            raise TestbedError(f"confluent-kafka: {remaining} unsent, failures: {failures}")

    def consume(
        self, bootstrap: str, topic: str, *, group: str, count: int, timeout: float
    ) -> list[Record]:
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
            }
        )
        consumer.subscribe([topic])
        try:
            records = _poll_confluent(consumer, count, time.monotonic() + timeout)
            if records:
                consumer.commit(asynchronous=False)
        finally:
            consumer.close()
        return records


def _collect_failures(failures: list[str]) -> Any:
    def on_delivery(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    return on_delivery


def _poll_confluent(consumer: Any, count: int, deadline: float) -> list[Record]:
    records: list[Record] = []
    while len(records) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            raise TestbedError(f"confluent-kafka consumer: {message.error()}")
        records.append((message.key().decode(), message.value().decode()))
    return records


class KafkaPython:
    """kafka-python (pure Python; its protocol schemas also drive the gateway's codec)."""

    name = "kafka_python"

    def create_topic(self, bootstrap: str, topic: str, partitions: int) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        client = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            client.create_topics([NewTopic(topic, partitions, -1)], wait_for_metadata=True)
        finally:
            client.close()

    def produce(self, bootstrap: str, topic: str, records: Sequence[Record]) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        try:
            futures = [
                producer.send(topic, key=key.encode(), value=value.encode())
                for key, value in records
            ]
            producer.flush(DEFAULT_TIMEOUT_SECONDS)
            for future in futures:
                future.get(timeout=DEFAULT_TIMEOUT_SECONDS)
        finally:
            producer.close()

    def consume(
        self, bootstrap: str, topic: str, *, group: str, count: int, timeout: float
    ) -> list[Record]:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS,
        )
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < count and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend((m.key.decode(), m.value.decode()) for m in batch)
            if records:
                consumer.commit()
        finally:
            consumer.close()
        return records


class AioKafka:
    """aiokafka (asyncio); each call runs its own event loop."""

    name = "aiokafka"

    def create_topic(self, bootstrap: str, topic: str, partitions: int) -> None:
        _run_bounded(self._create_topic(bootstrap, topic, partitions), DEFAULT_TIMEOUT_SECONDS)
        admin.wait_for_leaders(bootstrap, topic, partitions)

    def produce(self, bootstrap: str, topic: str, records: Sequence[Record]) -> None:
        _run_bounded(self._produce(bootstrap, topic, records), DEFAULT_TIMEOUT_SECONDS)

    def consume(
        self, bootstrap: str, topic: str, *, group: str, count: int, timeout: float
    ) -> list[Record]:
        consuming = self._consume(bootstrap, topic, group, count, timeout)
        return _run_bounded(consuming, timeout + DEFAULT_TIMEOUT_SECONDS)

    async def _create_topic(self, bootstrap: str, topic: str, partitions: int) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await client.start()
        try:
            # aiokafka insists on an explicit replication factor: as wide as the cluster allows.
            brokers = (await client.describe_cluster())["brokers"]
            factor = min(len(brokers), MAX_REPLICATION_FACTOR)
            await client.create_topics([NewTopic(topic, partitions, factor)])
        finally:
            await client.close()

    async def _produce(self, bootstrap: str, topic: str, records: Sequence[Record]) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            sends = [
                await producer.send(topic, key=key.encode(), value=value.encode())
                for key, value in records
            ]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()

    async def _consume(
        self, bootstrap: str, topic: str, group: str, count: int, timeout: float
    ) -> list[Record]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS,
        )
        await consumer.start()
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < count and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend((m.key.decode(), m.value.decode()) for m in batch)
            if records:
                await consumer.commit()
        finally:
            await consumer.stop()
        return records


def _run_bounded(work: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run a coroutine in its own event loop, cancelled if it takes longer than ``timeout``."""
    return asyncio.run(asyncio.wait_for(work, timeout))


class JavaConsoleTools:
    """The Java clients, driven through kafka-topics, kafka-console-producer and -consumer."""

    name = "java_console"

    def create_topic(self, bootstrap: str, topic: str, partitions: int) -> None:
        tooling.create_topic(bootstrap, topic, partitions=partitions)
        admin.wait_for_leaders(bootstrap, topic, partitions)

    def produce(self, bootstrap: str, topic: str, records: Sequence[Record]) -> None:
        tooling.console_produce(bootstrap, topic, records)

    def consume(
        self, bootstrap: str, topic: str, *, group: str, count: int, timeout: float
    ) -> list[Record]:
        return tooling.console_consume(
            bootstrap,
            topic,
            group=group,
            max_messages=count,
            consumer_properties={"session.timeout.ms": str(SESSION_TIMEOUT_MS)},
            timeout=timeout,
        )


CLIENTS: dict[str, ClientDriver] = {
    driver.name: driver
    for driver in (ConfluentKafka(), KafkaPython(), AioKafka(), JavaConsoleTools())
}
"""Every client the product must serve, by name (stable names, used as pytest ids)."""
