"""Client workloads that say, record by record, what happened around a switch.

Why it exists: the demo, the switch-latency benchmark and the DR drill all ask the same questions —
was every record acknowledged, when, on which cluster did it land, when did the consumer group
resume. A delivery report only says "acknowledged", never by which cluster, so every record
carries a sequence number in its value and :class:`ClusterTail` reads each cluster *directly*
(not through the gateway): the set of clusters holding a sequence number is the ground truth.

Three producer libraries sit behind one small :class:`ProducerClient` protocol (confluent-kafka,
kafka-python, aiokafka), so one pacing loop (:class:`SequencedProducer`) drives them all at a
steady rate; the same three libraries' group members (:data:`CONSUMER_CLIENTS`) say when each
record was received. Client libraries are imported lazily. Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from kafka_testbed.errors import TestbedError

SEQUENCE_DIGITS = 12
JOIN_TIMEOUT_SECONDS = 30.0
MAX_CATCH_UP_SECONDS = 1.0
"""A pacing loop that fell further behind than this (a blocked send) skips ahead, no burst."""

DoneCallback = Callable[[str | None], None]
"""Called once per record with ``None`` (acknowledged) or a description of the error."""
T = TypeVar("T")


def encode_value(seq: int, size: int = 0) -> bytes:
    """A record value carrying ``seq``, padded with dots to ``size`` bytes."""
    return f"{seq:0{SEQUENCE_DIGITS}d}".encode().ljust(size, b".")


def decode_seq(value: bytes | None) -> int | None:
    """The sequence number in a value written by :func:`encode_value`; ``None`` for others."""
    head = (value or b"")[:SEQUENCE_DIGITS]
    return int(head) if len(head) == SEQUENCE_DIGITS and head.isdigit() else None


def record_key(seq: int, keys: int = 16) -> bytes:
    """Keyed records, as applications write them: ``keys`` distinct keys, round robin."""
    return f"key-{seq % keys}".encode()


# -- Producers ------------------------------------------------------------------------------------


class ProducerClient(Protocol):
    """What the pacing loop needs from a client library."""

    name: str

    def send(self, topic: str, key: bytes, value: bytes, on_done: DoneCallback) -> None: ...

    def serve(self, seconds: float) -> None:
        """Wait up to ``seconds``, serving delivery callbacks if the library needs it."""

    def close(self, timeout: float) -> None:
        """Flush what is buffered (up to ``timeout``) and release the client."""


@dataclass
class ProducerLog:
    """When each sequence number was sent and acknowledged (monotonic clock); thread safe."""

    sent_at: dict[int, float] = field(default_factory=dict)
    acked_at: dict[int, float] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self, seq: int, *, at: float | None = None) -> None:
        """``at`` (monotonic) defaults to now; a producer in another process passes its own."""
        with self._lock:
            self.sent_at[seq] = time.monotonic() if at is None else at

    def done(self, seq: int, error: str | None, *, at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        with self._lock:
            if error is None:
                self.acked_at[seq] = now
                self.errors.pop(seq, None)
            elif seq not in self.acked_at:
                self.errors[seq] = error

    def snapshot(self) -> tuple[dict[int, float], dict[int, float], dict[int, str]]:
        """Copies of (sent_at, acked_at, errors), safe to read while the producer runs."""
        with self._lock:
            return dict(self.sent_at), dict(self.acked_at), dict(self.errors)


class SequencedProducer:
    """Sends sequence-numbered keyed records at a steady rate from a thread of its own."""

    def __init__(
        self,
        client: ProducerClient,
        topic: str,
        *,
        rate: float,
        value_size: int = 0,
        first_seq: int = 0,
    ) -> None:
        """``first_seq`` keeps the numbers of several producers on one topic apart."""
        self.client = client
        self.first_seq = first_seq
        self.topic = topic
        self.interval = 1.0 / rate
        self.value_size = value_size
        self.log = ProducerLog()
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"producer-{client.name}")
        self._thread.daemon = True

    def start(self) -> SequencedProducer:
        self._thread.start()
        return self

    def stop(self, flush_timeout: float = 30.0) -> None:
        """Stop sending, wait up to ``flush_timeout`` for outstanding acknowledgements."""
        self._stop.set()
        self._thread.join(JOIN_TIMEOUT_SECONDS)
        self.client.close(flush_timeout)
        if self.failure is not None:
            raise TestbedError(f"{self.client.name} producer failed") from self.failure

    def pause(self) -> None:
        """Stop sending new records (callbacks are still served) until :meth:`resume`."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def wait_acked(self, count: int, timeout: float) -> bool:
        """True once at least ``count`` records are acknowledged in all; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.log.snapshot()[1]) >= count:
                return True
            time.sleep(0.05)
        return False

    def wait_settled(self, timeout: float) -> bool:
        """True once every record sent so far is acknowledged or failed (use while paused)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent, acked, errors = self.log.snapshot()
            if set(sent) <= set(acked) | set(errors):
                return True
            time.sleep(0.05)
        return False

    def _run(self) -> None:
        seq, next_at = self.first_seq, time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if self._paused.is_set():
                    self.client.serve(0.05)
                    next_at = time.monotonic()
                    continue
                if now < next_at:
                    self.client.serve(min(next_at - now, 0.05))
                    continue
                self._send(seq)
                seq += 1
                next_at = max(next_at + self.interval, now - MAX_CATCH_UP_SECONDS)
        except BaseException as error:  # reported by stop(); a thread cannot raise to its owner
            self.failure = error

    def _send(self, seq: int) -> None:
        def done(error: str | None) -> None:
            self.log.done(seq, error)

        self.log.sent(seq)
        self.client.send(self.topic, record_key(seq), encode_value(seq, self.value_size), done)


class ConfluentProducer:
    """librdkafka through confluent-kafka; callbacks are served by ``poll``."""

    name = "confluent-kafka"

    def __init__(self, bootstrap: str, settings: Mapping[str, Any] | None = None) -> None:
        from confluent_kafka import Producer

        self._producer = Producer({"bootstrap.servers": bootstrap, **(settings or {})})

    def send(self, topic: str, key: bytes, value: bytes, on_done: DoneCallback) -> None:
        def delivered(error: Any, _message: Any) -> None:
            on_done(None if error is None else str(error))

        deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=delivered)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise
                self._producer.poll(0.05)

    def serve(self, seconds: float) -> None:
        self._producer.poll(seconds)

    def close(self, timeout: float) -> None:
        self._producer.flush(timeout)


class KafkaPythonProducer:
    """kafka-python; its sender thread runs the callbacks."""

    name = "kafka-python"

    def __init__(self, bootstrap: str, settings: Mapping[str, Any] | None = None) -> None:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(bootstrap_servers=bootstrap, **(settings or {}))

    def send(self, topic: str, key: bytes, value: bytes, on_done: DoneCallback) -> None:
        future = self._producer.send(topic, value=value, key=key)
        future.add_callback(lambda _metadata: on_done(None))
        future.add_errback(lambda error: on_done(repr(error)))

    def serve(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self, timeout: float) -> None:
        self._producer.close(timeout=timeout)


class AiokafkaProducer:
    """aiokafka on an event loop of its own, in a thread, so the pacing loop stays synchronous."""

    name = "aiokafka"

    def __init__(self, bootstrap: str, settings: Mapping[str, Any] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aiokafka-loop")
        self._thread.daemon = True
        self._thread.start()
        self._producer: Any = self._call(self._start(bootstrap, dict(settings or {})), 60.0)

    async def _start(self, bootstrap: str, settings: dict[str, Any]) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings)
        await producer.start()
        return producer

    def send(self, topic: str, key: bytes, value: bytes, on_done: DoneCallback) -> None:
        asyncio.run_coroutine_threadsafe(self._send(topic, key, value, on_done), self._loop)

    async def _send(self, topic: str, key: bytes, value: bytes, on_done: DoneCallback) -> None:
        try:
            delivery = await self._producer.send(topic, value, key=key)
            await delivery
        except Exception as error:
            on_done(repr(error))
            return
        on_done(None)

    def serve(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self, timeout: float) -> None:
        try:
            self._call(self._producer.stop(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(JOIN_TIMEOUT_SECONDS)

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)


PRODUCER_CLIENTS: dict[str, Callable[[str, Mapping[str, Any] | None], ProducerClient]] = {
    ConfluentProducer.name: ConfluentProducer,
    KafkaPythonProducer.name: KafkaPythonProducer,
    AiokafkaProducer.name: AiokafkaProducer,
}
"""Client library name -> factory taking (bootstrap, settings)."""


# -- Reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """One record a consumer received."""

    seq: int
    at: float  # monotonic
    partition: int
    offset: int


class _PollingThread:
    """A confluent-kafka consumer polled by a daemon thread until :meth:`stop`."""

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        from confluent_kafka import Consumer

        self.consumer: Any = Consumer(dict(settings))
        self.receipts: list[Receipt] = []
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name)
        self._thread.daemon = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(JOIN_TIMEOUT_SECONDS)

    def received(self) -> list[Receipt]:
        with self._lock:
            return list(self.receipts)

    def _run(self) -> None:
        try:
            self._prepare()
            while not self._stop.is_set():
                self._take(self.consumer.consume(num_messages=500, timeout=0.1))
                self._tick()
        except BaseException as error:  # kept for the owner; a thread cannot raise to it
            self.failure = error
        finally:
            self.consumer.close()

    def _take(self, messages: Iterable[Any]) -> None:
        now = time.monotonic()
        fresh = []
        for message in messages:
            seq = None if message.error() else decode_seq(message.value())
            if seq is not None:
                fresh.append(Receipt(seq, now, message.partition(), message.offset()))
        with self._lock:
            self.receipts.extend(fresh)

    def _prepare(self) -> None:
        """Subscribe or assign, in the polling thread."""

    def _tick(self) -> None:
        """Housekeeping after each poll."""


class GroupConsumer(_PollingThread):
    """A consumer group member, as an application runs it (through the gateway)."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, settings: Mapping[str, Any] | None = None
    ) -> None:
        defaults = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
        }
        super().__init__(f"consumer-{group}", {**defaults, **(settings or {})})
        self.topic = topic

    def start(self) -> GroupConsumer:
        self._thread.start()
        return self

    def _prepare(self) -> None:
        self.consumer.subscribe([self.topic])


class _ReceivingThread:
    """A group member of ``library`` (defaults but ``auto_offset_reset="earliest"``), polled by a
    daemon thread until :meth:`stop`."""

    library = ""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        name = f"{self.library}-{group}"
        self._settings = {"bootstrap_servers": bootstrap, "group_id": group}
        self.topic = topic
        self.receipts: list[Receipt] = []
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(JOIN_TIMEOUT_SECONDS)

    def received(self) -> list[Receipt]:
        with self._lock:
            return list(self.receipts)

    def _keep_polled(self, polled: Mapping[Any, Iterable[Any]]) -> None:
        """What kafka-python's ``poll`` or aiokafka's ``getmany`` returned: records by partition."""
        now = time.monotonic()
        fresh = [
            Receipt(seq, now, message.partition, message.offset)
            for messages in polled.values()
            for message in messages
            if (seq := decode_seq(message.value)) is not None
        ]
        with self._lock:
            self.receipts.extend(fresh)

    def _run(self) -> None:
        raise NotImplementedError


class KafkaPythonGroupConsumer(_ReceivingThread):
    """kafka-python's KafkaConsumer in a group, defaults but ``auto_offset_reset='earliest'``."""

    library = "kafka-python"

    def _run(self) -> None:
        from kafka import KafkaConsumer

        try:
            consumer = KafkaConsumer(self.topic, auto_offset_reset="earliest", **self._settings)
        except BaseException as error:
            self.failure = error
            return
        try:
            while not self._stop.is_set():
                polled = consumer.poll(timeout_ms=100)
                self._keep_polled(polled)
        except BaseException as error:  # kept for the owner; a thread cannot raise to it
            self.failure = error
        finally:
            consumer.close()


class AiokafkaGroupConsumer(_ReceivingThread):
    """aiokafka's AIOKafkaConsumer in a group on a loop of its own, defaults but
    ``auto_offset_reset='earliest'``."""

    library = "aiokafka"

    def _run(self) -> None:
        try:
            asyncio.run(self._consume())
        except BaseException as error:  # kept for the owner; a thread cannot raise to it
            self.failure = error

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(self.topic, auto_offset_reset="earliest", **self._settings)
        await consumer.start()
        try:
            while not self._stop.is_set():
                polled = await consumer.getmany(timeout_ms=100)
                self._keep_polled(polled)
        finally:
            await consumer.stop()


class ConsumerClient(Protocol):
    """A consumer group member of one library, reading sequence-numbered records."""

    failure: BaseException | None

    def received(self) -> list[Receipt]: ...

    def stop(self) -> None: ...


CONSUMER_CLIENTS: dict[str, Callable[[str, str, str], GroupConsumer | _ReceivingThread]] = {
    "confluent-kafka": GroupConsumer,
    "kafka-python": KafkaPythonGroupConsumer,
    "aiokafka": AiokafkaGroupConsumer,
}
"""Client library name -> group member, from (bootstrap, topic, group), not yet started; each
reads from the earliest offset where its group has none, and is otherwise the library's default."""


def start_group_consumer(library: str, bootstrap: str, topic: str, group: str) -> ConsumerClient:
    consumer = CONSUMER_CLIENTS[library](bootstrap, topic, group)
    consumer.start()
    return consumer


class ClusterTail(_PollingThread):
    """Reads every partition of a topic straight from one cluster: where each record landed."""

    WATERMARK_CHECK_SECONDS = 0.5

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        *,
        cluster: str,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """``settings`` adds client settings, e.g. SASL/TLS for a secured cluster."""
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": f"kafka-testbed-tail-{cluster}",  # required by the library; never joined
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
            "log_level": 2,
            **(settings or {}),
        }
        super().__init__(f"tail-{cluster}", settings)
        self.cluster = cluster
        self.topic = topic
        self.partitions = partitions
        self._next: dict[int, int] = {}
        self._caught_up_at = 0.0
        self._checked_at = 0.0

    def start(self) -> ClusterTail:
        self._thread.start()
        return self

    def sequences(self) -> set[int]:
        return {receipt.seq for receipt in self.received()}

    def placements(self) -> set[tuple[int, int, int]]:
        """``(seq, partition, offset)`` of every record read: tells a duplicate's copies apart."""
        return {(r.seq, r.partition, r.offset) for r in self.received()}

    def wait_caught_up(self, timeout: float) -> bool:
        """True once everything below the high watermarks read *after* this call was consumed."""
        since, deadline = time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.failure is not None:
                raise TestbedError(f"reading {self.cluster} failed") from self.failure
            if self._caught_up_at > since:
                return True
            time.sleep(0.05)
        return False

    def _prepare(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        self.consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)]
        )

    def _take(self, messages: Iterable[Any]) -> None:
        kept = [message for message in messages if not message.error()]
        for message in kept:
            self._next[message.partition()] = message.offset() + 1
        super()._take(kept)

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.WATERMARK_CHECK_SECONDS:
            return
        self._checked_at = now
        from confluent_kafka import KafkaException

        try:
            highs = [self._high_watermark(p) for p in range(self.partitions)]
        except KafkaException:
            return  # a transient broker or network hiccup: ask again at the next tick
        if all(self._next.get(p, 0) >= high for p, high in enumerate(highs)):
            self._caught_up_at = now

    def _high_watermark(self, partition: int) -> int:
        from confluent_kafka import TopicPartition

        tp = TopicPartition(self.topic, partition)
        _low, high = self.consumer.get_watermark_offsets(tp, timeout=2.0, cached=False)
        return int(high)


# -- Attribution --------------------------------------------------------------------------------


def landed(tails: Iterable[ClusterTail]) -> dict[int, frozenset[str]]:
    """Sequence number -> names of the clusters holding it (both after a duplicate)."""
    where: dict[int, set[str]] = {}
    for tail in tails:
        for seq in tail.sequences():
            where.setdefault(seq, set()).add(tail.cluster)
    return {seq: frozenset(clusters) for seq, clusters in where.items()}


def wait_until_landed(
    tails: Iterable[ClusterTail], seqs: Iterable[int], timeout: float
) -> set[int]:
    """Wait until every ``seq`` is on some cluster and each tail caught up; return the missing."""
    tails, wanted = list(tails), set(seqs)
    deadline = time.monotonic() + timeout
    missing = wanted - set(landed(tails))
    while missing and time.monotonic() < deadline:
        time.sleep(0.1)
        missing = wanted - set(landed(tails))
    for tail in tails:
        tail.wait_caught_up(max(1.0, deadline - time.monotonic()))
    return wanted - set(landed(tails))


def first_ack_on(
    cluster: str,
    log: ProducerLog,
    where: Mapping[int, frozenset[str]],
    *,
    after: float,
    sent_after: float = float("-inf"),
    sent_before: float = float("inf"),
) -> float | None:
    """Monotonic time of the first acknowledgement after ``after`` of a record on ``cluster``.

    ``sent_after``/``sent_before`` restrict it to records sent in that window.
    """
    sent_at, acked_at, _ = log.snapshot()
    times = [
        at
        for seq, at in acked_at.items()
        if at >= after
        and sent_after <= sent_at.get(seq, float("-inf")) < sent_before
        and cluster in where.get(seq, ())
    ]
    return min(times, default=None)
