"""What Kafka 4.x clients can do, straight against a broker and through the gateway.

Each capability runs as a real Java client program (``lab/java``, driven by
:mod:`kafka_testbed.java_workloads`) twice: ``straight`` to the broker, the control that proves
the program and the broker are right, and ``through_gateway``, the claim. Main is Kafka 4.4.0
with its default features (``transaction.version=2``, share groups, streams groups) unless a test
names another cluster. The gateway's failover is the same cluster as its main: the gateway offers
clients only what *every* configured cluster supports (a client may be switched to any of them),
so a failover of another release would narrow what is tested here; that narrowing has tests of
its own (``test_api_versions_coherence.py``, ``test_gateway_admin_tools.py``).

- Transactions: a consume-transform-produce job (``sendOffsetsToTransaction``) with Java 4.4.0 and
  Java 3.7.2 clients; plain transactions, some committed and some aborted, against 4.4.0, 4.4.0
  formatted with ``transaction.version=1`` and 4.1.1 (whose default is ``transaction.version=2``
  too). A Java 4.x client on a ``transaction.version=2`` cluster uses KIP-890 part 2 (no
  AddPartitionsToTxn: a Produce v12+ request adds its partition itself); 3.7.2 clients and
  ``transaction.version=1`` clusters use the older protocol.
- Kafka Streams ``exactly_once_v2``, with the classic rebalance protocol and with KIP-1071
  streams groups (``group.protocol=streams``).
- A KIP-932 share consumer, and a KIP-848 (``group.protocol=consumer``) consumer.

What was written is read back with librdkafka through the same address the program used, in
read_committed (exactly the committed records, once each) and read_uncommitted (the aborted
records too, which proves the aborts reached the log). Every program halts itself at its time
bound; tests never sleep.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from kafka_testbed import admin, clients, java_workloads, versions, workloads
from kafka_testbed.clusters import Cluster
from kafka_testbed.java_workloads import JavaClient

NEWEST, OLD = versions.NEWEST_KAFKA_VERSION, versions.OLD_CLIENTS_VERSION
ROUTES = ("straight", "through_gateway")
PARTITIONS = 3
COPY_RECORDS, COPY_BATCH, ABORT_EVERY = 60, 10, 3
TRANSACTIONS, TRANSACTION_RECORDS = 6, 5
WORDS = ("alpha", "beta", "gamma", "delta", "epsilon")
LINES = 60
CONSUMED_RECORDS = 60


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    """``straight`` to the broker, or ``through_gateway`` (main = the test's cluster)."""
    return str(request.param)


def address(route: str, cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """The bootstrap a client is given: the cluster's, or a fresh gateway's in front of it."""
    if route == "straight":
        return cluster.bootstrap
    gateway_factory = request.getfixturevalue("gateway_factory")
    gateway = gateway_factory({"main": cluster.bootstrap, "failover": cluster.bootstrap})
    return str(gateway.bootstrap)


def java_client(version: str, bootstrap: str, tmp_path: Path) -> JavaClient:
    return JavaClient(java_workloads.client_jars(version), bootstrap, tmp_path)


def fresh_topic(cluster: Cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin.create_topic(cluster.bootstrap, name, partitions=PARTITIONS)
    return name


def fill_with_sequences(cluster: Cluster, topic: str, count: int) -> list[int]:
    records = [
        (workloads.record_key(seq).decode(), workloads.encode_value(seq).decode())
        for seq in range(count)
    ]
    clients.ConfluentKafka().produce(cluster.bootstrap, topic, records)
    return list(range(count))


def sequence_of(value: str | None) -> int:
    seq = workloads.decode_seq((value or "").encode())
    assert seq is not None, f"not a sequence-numbered value: {value!r}"
    return seq


def sequences(records: list[java_workloads.Record]) -> list[int]:
    return sorted(sequence_of(record.value) for record in records)


# -- Transactions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("clients_version", [NEWEST, OLD], ids=["java-4.4.0", "java-3.7.2"])
def test_a_transactional_copy_job_writes_every_input_record_exactly_once(
    kafka_newest: Cluster,
    clients_version: str,
    route: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    input_topic = fresh_topic(kafka_newest, "copy-in")
    output_topic = fresh_topic(kafka_newest, "copy-out")
    written = fill_with_sequences(kafka_newest, input_topic, COPY_RECORDS)
    bootstrap = address(route, kafka_newest, request)
    group = f"copier-{uuid.uuid4().hex[:6]}"

    job = java_workloads.transactional_copy(
        java_client(clients_version, bootstrap, tmp_path),
        input_topic=input_topic, output_topic=output_topic, group=group,
        expected_records=COPY_RECORDS, batch=COPY_BATCH, abort_every=ABORT_EVERY,
    )  # fmt: skip

    assert job.run.succeeded, job.run.explain()
    assert job.aborted_attempts, "the job aborted no transaction, so aborts went untested"
    committed = java_workloads.read_topic(bootstrap, output_topic, at_least=COPY_RECORDS)
    assert sequences(committed) == written
    everything = java_workloads.read_topic(
        bootstrap, output_topic, isolation="read_uncommitted", at_least=COPY_RECORDS
    )
    assert Counter(sequences(everything)) == Counter(written + job.aborted_sequences)
    offsets, ends = java_workloads.committed_and_end_offsets(bootstrap, input_topic, group)
    assert offsets == ends, "the input offsets committed inside the transactions"


@pytest.mark.parametrize(
    "backend",
    ["kafka_newest", "kafka_transactions_v1", "kafka_single"],
    indirect=True,
    ids=["kafka-4.4.0", "kafka-4.4.0-tv1", "kafka-4.1.1"],
)
def test_read_committed_consumers_see_exactly_the_committed_transactions(
    backend: Cluster, route: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    topic = fresh_topic(backend, "transactions")
    bootstrap = address(route, backend, request)

    job = java_workloads.transactional_produce(
        java_client(NEWEST, bootstrap, tmp_path),
        topic=topic, transactional_id=f"producer-{topic}",
        transactions=TRANSACTIONS, batch=TRANSACTION_RECORDS, abort_every=ABORT_EVERY,
    )  # fmt: skip

    assert job.run.succeeded, job.run.explain()
    assert job.aborted_attempts == list(range(ABORT_EVERY, TRANSACTIONS + 1, ABORT_EVERY))
    committed = java_workloads.read_topic(bootstrap, topic, at_least=len(job.committed_sequences))
    assert sequences(committed) == sorted(job.committed_sequences)
    everything = java_workloads.read_topic(
        bootstrap, topic, isolation="read_uncommitted", at_least=TRANSACTIONS * TRANSACTION_RECORDS
    )
    assert sequences(everything) == list(range(TRANSACTIONS * TRANSACTION_RECORDS))


# -- Kafka Streams --------------------------------------------------------------------------------


def word_lines(count: int) -> tuple[list[tuple[str, str]], Counter[str]]:
    """``count`` lines of one to four words, and how often each word occurs in them."""
    lines = [(f"line-{i}", " ".join(WORDS[(i + j) % len(WORDS)] for j in range(i % 4 + 1)))
             for i in range(count)]  # fmt: skip
    return lines, Counter(word for _, line in lines for word in line.split())


@pytest.mark.parametrize("group_protocol", ["classic", "streams"])
def test_a_kafka_streams_exactly_once_v2_word_count_counts_every_word_once(
    kafka_newest: Cluster,
    group_protocol: str,
    route: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    input_topic, output_topic = (
        fresh_topic(kafka_newest, "lines"),
        fresh_topic(kafka_newest, "counts"),
    )
    lines, expected = word_lines(LINES)
    clients.ConfluentKafka().produce(kafka_newest.bootstrap, input_topic, lines)
    bootstrap = address(route, kafka_newest, request)

    job = java_workloads.word_count(
        java_client(NEWEST, bootstrap, tmp_path),
        input_topic=input_topic, output_topic=output_topic,
        application_id=f"word-count-{uuid.uuid4().hex[:6]}",
        expected_words=sum(expected.values()),
        group_protocol=group_protocol,
    )  # fmt: skip

    assert job.run.succeeded, job.run.explain()
    assert job.counts == dict(expected)
    updates = java_workloads.read_topic(bootstrap, output_topic, at_least=len(expected))
    final = java_workloads.latest_by_key(updates)
    assert final == {word: str(count) for word, count in expected.items()}


# -- Share groups and KIP-848 consumer groups -----------------------------------------------------


def test_a_share_consumer_receives_every_record(
    kafka_newest: Cluster, route: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    topic = fresh_topic(kafka_newest, "queue")
    written = fill_with_sequences(kafka_newest, topic, CONSUMED_RECORDS)
    bootstrap = address(route, kafka_newest, request)

    job = java_workloads.share_consume(
        java_client(NEWEST, bootstrap, tmp_path),
        topic=topic, group=f"share-{uuid.uuid4().hex[:6]}", expected_records=CONSUMED_RECORDS,
    )  # fmt: skip

    assert job.run.succeeded, job.run.explain()
    received = {sequence_of(record.value) for record in job.records}
    assert received == set(written)


def test_a_kip_848_consumer_group_member_consumes_and_commits_everything(
    kafka_newest: Cluster, route: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    topic = fresh_topic(kafka_newest, "kip848")
    written = fill_with_sequences(kafka_newest, topic, CONSUMED_RECORDS)
    bootstrap = address(route, kafka_newest, request)
    group = f"kip848-{uuid.uuid4().hex[:6]}"

    job = java_workloads.group_consume(
        java_client(NEWEST, bootstrap, tmp_path),
        topic=topic, group=group, expected_records=CONSUMED_RECORDS, group_protocol="consumer",
    )  # fmt: skip

    assert job.run.succeeded, job.run.explain()
    assert sorted(sequence_of(record.value) for record in job.records) == written
    offsets, ends = java_workloads.committed_and_end_offsets(bootstrap, topic, group)
    assert job.committed == offsets == ends
