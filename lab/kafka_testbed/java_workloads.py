"""Kafka 4.x client capabilities as workloads: the Java programs of ``lab/java``, run and parsed.

Why it exists: what Kafka 4.x added for clients (KIP-890 part 2 transactions, Kafka Streams
exactly-once, KIP-932 share groups, KIP-848 consumer groups, KIP-1071 streams groups) is defined
by what the *Java* client does; librdkafka and the Python clients implement it late or not at all.
So the proof that a capability works straight against a broker, or through the gateway, runs the
Java client itself. Each program prints one machine-readable line per outcome (see the head of
each ``.java`` file); this module starts it through :mod:`java_programs`, waits a bounded time,
and parses those lines into typed results, so tests assert on records and counts, not log text.

What the programs wrote is read back with librdkafka (:func:`read_topic`), a client independent of
the one under test, in either isolation level: read_committed shows what a transaction committed,
read_uncommitted shows that aborted records really reached the log.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_testbed import fetching, java_programs, supervising, versions
from kafka_testbed.errors import TestbedError

EXIT_GRACE_SECONDS = 15.0
"""Each program halts itself at its ``--timeout-seconds``; past that plus this, it is killed."""
READ_TIMEOUT_SECONDS = 30.0
_FAILURE_LINE = re.compile(r"^(?:FAILED|CAUSE) .*$", re.M)


def client_jars(version: str) -> Path:
    """The jar folder of Java client ``version``: 3.7.2 alone, or a whole Kafka release."""
    if version == versions.OLD_CLIENTS_VERSION:
        return fetching.fetch_old_clients(version)
    return fetching.fetch_kafka_jars(version)


@dataclass(frozen=True)
class JavaClient:
    """Which Java client a program runs with, which address it is given, where its log goes."""

    jars: Path
    """A jar folder from :func:`client_jars`."""
    bootstrap: str
    """``bootstrap.servers``: a broker's or the gateway's."""
    log_dir: Path


@dataclass(frozen=True)
class ProgramRun:
    """One finished (or killed) run of a program: how it ended and everything it printed."""

    program: str
    exit_code: int | None
    """``None`` when the program outlived its bound and was killed."""
    output: str
    seconds: float

    @property
    def succeeded(self) -> bool:
        """Exit status 0 and a ``DONE`` line."""
        return self.exit_code == 0 and re.search(r"^DONE\b", self.output, re.M) is not None

    @property
    def failures(self) -> list[str]:
        """The ``FAILED`` line and its ``CAUSE`` lines: the client's own error, in its words."""
        return _FAILURE_LINE.findall(self.output)

    def explain(self) -> str:
        """A failure message for an assertion: the client's error, else the log tail."""
        detail = "\n".join(self.failures) or self.output[-3000:]
        return f"{self.program} exited {self.exit_code} after {self.seconds:.1f} s:\n{detail}"


def run_program(
    client: JavaClient, program: str, arguments: Sequence[str], timeout_seconds: int
) -> ProgramRun:
    """Run ``program`` to its end; it is told ``timeout_seconds`` and killed a little after."""
    log = client.log_dir / f"{program}-{uuid.uuid4().hex[:6]}.log"
    started = time.monotonic()
    process = java_programs.start(
        program, client.jars, [*arguments, f"--timeout-seconds={timeout_seconds}"], log
    )
    exit_code: int | None
    try:
        exit_code = process.wait(timeout=timeout_seconds + EXIT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        supervising.kill(process)
        exit_code = None
    return ProgramRun(
        program, exit_code, log.read_text(errors="replace"), time.monotonic() - started
    )


@dataclass(frozen=True)
class Record:
    """A record as a program printed it or as :func:`read_topic` read it (text, not bytes)."""

    partition: int
    offset: int
    key: str | None
    """``None`` for records the Java consumers printed (they print no keys)."""
    value: str | None


# -- Transactions (TransactionalCopy.java) --------------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    """One transaction attempt as the program reported it."""

    attempt: int
    committed: bool
    sequences: tuple[int, ...]


@dataclass(frozen=True)
class TransactionsRun:
    run: ProgramRun
    transactions: tuple[Transaction, ...]
    attempts: Mapping[int, frozenset[int]] = field(default_factory=dict)
    """Attempt -> the input sequence numbers it copied (with ``recover``)."""

    @property
    def committed_sequences(self) -> list[int]:
        return [seq for txn in self.transactions if txn.committed for seq in txn.sequences]

    @property
    def aborted_sequences(self) -> list[int]:
        return [seq for txn in self.transactions if not txn.committed for seq in txn.sequences]

    @property
    def aborted_attempts(self) -> list[int]:
        return [txn.attempt for txn in self.transactions if not txn.committed]


def parse_transactions(output: str) -> tuple[Transaction, ...]:
    """``COMMITTED|ABORTED <attempt> <count> <seq,seq,...>`` lines, in order."""
    pattern = re.compile(r"^(COMMITTED|ABORTED) (\d+) (\d+) ?([\d,]*)$", re.M)
    return tuple(
        Transaction(
            int(match.group(2)),
            match.group(1) == "COMMITTED",
            tuple(int(seq) for seq in match.group(4).split(",") if seq),
        )
        for match in pattern.finditer(output)
    )


def transactional_copy(
    client: JavaClient,
    *,
    input_topic: str,
    output_topic: str,
    group: str,
    expected_records: int,
    batch: int,
    abort_every: int,
    timeout_seconds: int = 60,
    recover: bool = False,
    pause_ms: int = 0,
) -> TransactionsRun:
    """Consume-transform-produce ``expected_records`` from input to output, exactly once.

    ``recover`` handles failed attempts as applications do (abort or a new producer, then the
    batch again) and tags every copied value with its attempt (``<value>@<attempt>``, listed in
    :attr:`TransactionsRun.attempts`); ``pause_ms`` waits between attempts."""
    arguments = [
        "copy",
        f"--bootstrap={client.bootstrap}",
        f"--input={input_topic}",
        f"--output={output_topic}",
        f"--group={group}",
        f"--transactional-id={group}-copier",
        f"--expected-records={expected_records}",
        f"--batch={batch}",
        f"--abort-every={abort_every}",
        f"--pause-ms={pause_ms}",
        *(["--recover=true", "--tag-attempts=true"] if recover else []),
    ]
    run = run_program(client, "TransactionalCopy", arguments, timeout_seconds)
    return TransactionsRun(run, parse_transactions(run.output), parse_attempts(run.output))


def parse_attempts(output: str) -> Mapping[int, frozenset[int]]:
    """``ATTEMPT <attempt> <count> <seq,seq,...>`` lines: what each attempt set out to write."""
    pattern = re.compile(r"^ATTEMPT (\d+) (\d+) ?([\d,]*)$", re.M)
    return {
        int(match.group(1)): frozenset(int(seq) for seq in match.group(3).split(",") if seq)
        for match in pattern.finditer(output)
    }


def transactional_produce(
    client: JavaClient,
    *,
    topic: str,
    transactional_id: str,
    transactions: int,
    batch: int,
    abort_every: int,
    timeout_seconds: int = 60,
) -> TransactionsRun:
    """Produce ``transactions`` transactions of ``batch`` records, every k-th one aborted."""
    arguments = [
        "produce",
        f"--bootstrap={client.bootstrap}",
        f"--output={topic}",
        f"--transactional-id={transactional_id}",
        f"--transactions={transactions}",
        f"--batch={batch}",
        f"--abort-every={abort_every}",
    ]
    run = run_program(client, "TransactionalCopy", arguments, timeout_seconds)
    return TransactionsRun(run, parse_transactions(run.output))


# -- Kafka Streams (WordCountStreams.java) --------------------------------------------------------


@dataclass(frozen=True)
class WordCountRun:
    run: ProgramRun
    counts: dict[str, int]
    """The last count the topology emitted for each word."""
    states: tuple[str, ...]
    """Every state the KafkaStreams client went through, in order."""


def word_count(
    client: JavaClient,
    *,
    input_topic: str,
    output_topic: str,
    application_id: str,
    expected_words: int,
    group_protocol: str = "classic",
    timeout_seconds: int = 60,
) -> WordCountRun:
    """Count words with exactly_once_v2 until the counts add up to ``expected_words``."""
    state_dir = client.log_dir / f"streams-state-{application_id}"
    arguments = [
        f"--bootstrap={client.bootstrap}",
        f"--input={input_topic}",
        f"--output={output_topic}",
        f"--application-id={application_id}",
        f"--expected-words={expected_words}",
        f"--state-dir={state_dir}",
        f"--group-protocol={group_protocol}",
    ]
    run = run_program(client, "WordCountStreams", arguments, timeout_seconds)
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^COUNT (\S+) (\d+)$", run.output, re.M)}
    states = tuple(re.findall(r"^STATE (\w+)$", run.output, re.M))
    return WordCountRun(run, counts, states)


# -- Consumers (ShareConsumer.java, GroupConsumer.java) -------------------------------------------


@dataclass(frozen=True)
class ConsumerRun:
    run: ProgramRun
    records: tuple[Record, ...]
    """In the order received; a share consumer may receive a record more than once."""
    committed: dict[int, int]
    """Partition -> committed offset, read back after the commit (group consumers only)."""


def share_consume(
    client: JavaClient, *, topic: str, group: str, expected_records: int, timeout_seconds: int = 60
) -> ConsumerRun:
    """Read ``expected_records`` distinct records in share group ``group`` from the earliest
    (the program's default group config)."""
    arguments = [
        f"--bootstrap={client.bootstrap}",
        f"--topic={topic}",
        f"--group={group}",
        f"--expected-records={expected_records}",
    ]
    run = run_program(client, "ShareConsumer", arguments, timeout_seconds)
    return ConsumerRun(run, _printed_records(run.output, r"^RECORD (\d+) (\d+) \S+ (.*)$"), {})


def group_consume(
    client: JavaClient,
    *,
    topic: str,
    group: str,
    expected_records: int,
    group_protocol: str = "consumer",
    timeout_seconds: int = 60,
) -> ConsumerRun:
    """Read ``expected_records`` in consumer group ``group`` and commit them."""
    arguments = [
        f"--bootstrap={client.bootstrap}",
        f"--topic={topic}",
        f"--group={group}",
        f"--expected-records={expected_records}",
        f"--group-protocol={group_protocol}",
    ]
    run = run_program(client, "GroupConsumer", arguments, timeout_seconds)
    committed = re.findall(r"^COMMITTED (\d+) (\d+)$", run.output, re.M)
    return ConsumerRun(
        run,
        _printed_records(run.output, r"^RECORD (\d+) (\d+) (.*)$"),
        {int(partition): int(offset) for partition, offset in committed},
    )


def _printed_records(output: str, pattern: str) -> tuple[Record, ...]:
    """Records from lines whose groups are partition, offset and value."""
    return tuple(
        Record(int(m[1]), int(m[2]), None, m[3]) for m in re.finditer(pattern, output, re.M)
    )


# -- Reading back what the programs wrote (librdkafka) --------------------------------------------


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    isolation: str = "read_committed",
    at_least: int = 0,
    timeout: float = READ_TIMEOUT_SECONDS,
) -> list[Record]:
    """Every record of ``topic`` from the beginning, as a consumer in ``isolation`` sees it.

    Reads until each partition is at its end and at least ``at_least`` records arrived: a commit
    returns before its markers are written, so for a moment the end a read_committed consumer
    sees (the last stable offset) may lag what the program just committed. Gives up after
    ``timeout`` and returns what it read, so the caller's assertion shows the difference.
    """
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "log_level": 2,
        }
    )
    try:
        partitions = _assign_from_beginning(consumer, topic, timeout)
        return _read_to_end(consumer, partitions, at_least, time.monotonic() + timeout)
    finally:
        consumer.close()


def _assign_from_beginning(consumer: Any, topic: str, timeout: float) -> set[int]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    found = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise TestbedError(f"topic {topic!r} has no partitions to read: {found}")
    partitions = set(found.partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)])
    return partitions


def _read_to_end(
    consumer: Any, partitions: set[int], at_least: int, deadline: float
) -> list[Record]:
    from confluent_kafka import KafkaError

    records: list[Record] = []
    at_end: set[int] = set()
    while time.monotonic() < deadline and (at_end != partitions or len(records) < at_least):
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            at_end.add(message.partition())
        elif error is not None:
            raise TestbedError(f"reading {message.topic()}: {error}")
        else:
            at_end.discard(message.partition())
            records.append(_stored(message))
    return records


def _stored(message: Any) -> Record:
    key, value = message.key(), message.value()
    return Record(
        message.partition(),
        message.offset(),
        None if key is None else key.decode(errors="replace"),
        None if value is None else value.decode(errors="replace"),
    )


def committed_and_end_offsets(
    bootstrap: str, topic: str, group: str, timeout: float = READ_TIMEOUT_SECONDS
) -> tuple[dict[int, int], dict[int, int]]:
    """``group``'s committed offset and the end offset (high watermark) of each partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 2})
    try:
        found = consumer.list_topics(topic, timeout=timeout).topics[topic]
        wanted = [TopicPartition(topic, p) for p in sorted(found.partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=timeout)}
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout)[1] for tp in wanted
        }
    finally:
        with contextlib.suppress(RuntimeError):
            consumer.close()
    return committed, ends


def latest_by_key(records: Sequence[Record]) -> Mapping[str | None, str | None]:
    """The last value written for each key (a compacted view, e.g. of a table's changelog)."""
    return {record.key: record.value for record in records}
