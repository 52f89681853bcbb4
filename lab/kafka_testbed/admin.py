"""The few admin calls the lab makes through a real Kafka client (librdkafka, via confluent-kafka).

Readiness is judged by what a client sees (every broker in a Metadata response), not by log lines,
and tests create topics the same way an application would. confluent-kafka is imported lazily so
that ``python -m kafka_testbed.fetching`` stays fast.
"""

import time
from collections.abc import Mapping
from typing import Any

from kafka_testbed.errors import TestbedError

POLL_SECONDS = 0.2


def _client(bootstrap: str, config: Mapping[str, str] | None = None) -> Any:
    """``config`` adds client settings, e.g. SASL/TLS for a secured lab cluster."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": 2000,
            "reconnect.backoff.max.ms": 500,
            "log_level": 2,
            **(config or {}),
        }
    )


def broker_addresses(bootstrap: str, timeout: float = 5.0) -> dict[int, str]:
    """Node id -> ``host:port`` as advertised in a Metadata response; ``{}`` if none arrives."""
    from confluent_kafka import KafkaException

    try:
        metadata = _client(bootstrap).list_topics(timeout=timeout)
    except KafkaException:
        return {}
    return {broker.id: f"{broker.host}:{broker.port}" for broker in metadata.brokers.values()}


def create_topic(
    bootstrap: str,
    name: str,
    *,
    partitions: int = 3,
    replication_factor: int = -1,
    timeout: float = 30.0,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create a topic and wait until every partition has a leader (so producing works at once).

    ``replication_factor=-1`` uses the broker default (the cluster size in the lab).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.cimpl import NewTopic

    client = _client(bootstrap, config)
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)],
        operation_timeout=timeout,
    )
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as error:
        raise TestbedError(f"Creating topic {name!r} on {bootstrap} failed: {error}") from error
    wait_for_leaders(bootstrap, name, partitions, timeout, config=config)


def wait_for_leaders(
    bootstrap: str,
    topic: str,
    partitions: int,
    timeout: float = 30.0,
    *,
    config: Mapping[str, str] | None = None,
) -> None:
    """Wait until Metadata shows ``partitions`` partitions of ``topic``, each with a leader."""
    client = _client(bootstrap, config)
    deadline = time.monotonic() + timeout
    while True:
        metadata = client.list_topics(topic=topic, timeout=max(0.1, deadline - time.monotonic()))
        found = metadata.topics.get(topic)
        leaders = [p.leader for p in found.partitions.values()] if found and not found.error else []
        if len(leaders) == partitions and all(leader >= 0 for leader in leaders):
            return
        if time.monotonic() > deadline:
            raise TestbedError(f"Topic {topic!r} has no leader for every partition: {leaders}")
        time.sleep(POLL_SECONDS)
