"""The in-flight request table of one client connection.

Why it exists: Kafka responses carry only the correlation id, so the gateway must remember the
(api key, api version) of every request awaiting a response to know how to read the answer.
Kafka answers in order per connection, so a FIFO is enough and a mismatch means the stream is out
of sync: the connection is closed with a typed error rather than guessing. Produce with acks=0 gets
no response and is never recorded (recording it is the leak that bit other proxies).

Some requests the gateway answers itself (a Produce carrying a producer id another cluster
issued). Their answers must not overtake the broker's answers to earlier requests on the same
connection, so they wait in the table, in order, and leave it when they reach the head.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from failover_gateway.routing.adopted_sequences import Partition, SentBatch


class OutOfSyncResponse(Exception):
    """A response arrived that does not answer the oldest request in flight."""


# Not frozen (one per frame; a frozen one builds 4x slower): treat as read-only.
@dataclass(slots=True)
class PendingRequest:
    correlation_id: int
    api_key: int
    api_version: int
    # Set for the gateway's own requests (re-authentication): the answer goes here, not to
    # the client.
    on_answer: Callable[[bytes], None] | None = None
    # Set for requests the gateway answers itself: this frame goes to the client when every
    # earlier request has been answered.
    local_answer: bytes | None = None
    # Set for a Produce written under adopted producer ids: what it sent, by partition
    # (:mod:`..routing.adopted_sequences` reads the answer against it).
    adopted: Mapping[Partition, SentBatch] | None = None


class InFlightTable:
    """FIFO of requests sent upstream and not yet answered."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: deque[PendingRequest] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def sent(
        self,
        correlation_id: int,
        api_key: int,
        api_version: int,
        on_answer: Callable[[bytes], None] | None = None,
        adopted: Mapping[Partition, SentBatch] | None = None,
    ) -> None:
        self._pending.append(
            PendingRequest(correlation_id, api_key, api_version, on_answer, adopted=adopted)
        )

    def count(self, api_keys: frozenset[int]) -> int:
        """How many requests with one of ``api_keys`` await their broker's answer."""
        return sum(1 for p in self._pending if p.api_key in api_keys and p.local_answer is None)

    def answer_locally(
        self, correlation_id: int, api_key: int, api_version: int, answer: bytes
    ) -> None:
        """Queue ``answer`` behind the requests already in flight."""
        self._pending.append(PendingRequest(correlation_id, api_key, api_version, None, answer))

    def only(self, api_keys: frozenset[int]) -> bool:
        """Whether every entry is a local answer or a client's request with one of
        ``api_keys`` (never one of the gateway's own)."""
        return all(
            p.local_answer is not None or (p.api_key in api_keys and p.on_answer is None)
            for p in self._pending
        )

    def take_all(self) -> list[PendingRequest]:
        """Every entry, removed, oldest first (their answers will not come from upstream)."""
        taken = list(self._pending)
        self._pending.clear()
        return taken

    def take_local_answers(self) -> list[bytes]:
        """The local answers now at the head of the table, removed from it, in order."""
        ready = []
        while self._pending and self._pending[0].local_answer is not None:
            answer = self._pending.popleft().local_answer
            assert answer is not None
            ready.append(answer)
        return ready

    def answered(self, correlation_id: int) -> PendingRequest:
        """Pop the oldest request; it must carry the response's correlation id."""
        if not self._pending:
            raise OutOfSyncResponse(
                f"response with correlation id {correlation_id} but no request is in flight"
            )
        oldest = self._pending[0]
        if oldest.correlation_id != correlation_id:
            later = any(p.correlation_id == correlation_id for p in self._pending)
            raise OutOfSyncResponse(
                f"response with correlation id {correlation_id} "
                + ("answers a later request first (out of order)" if later
                   else "answers no request in flight (unknown correlation id)")
                + f"; the oldest request in flight has {oldest.correlation_id} "
                f"(api key {oldest.api_key})"
            )  # fmt: skip
        return self._pending.popleft()
