"""Holding writes to one cluster while a planned switchover lets replication catch up.

Why it exists: a zero-loss switch needs a moment from which nothing more is written to the old
cluster, without asking any producer to pause. While the fence is up, a connection bound to the
fenced cluster holds every write request (Produce, AddPartitionsToTxn, AddOffsetsToTxn,
TxnOffsetCommit) it receives, and every later request behind it (Kafka answers a connection's
requests in order), and stops reading from that client, so memory stays bounded by the client's
own in-flight limit. Holding rather than answering a retriable error: every client family waits
for a held request the same way (up to its request timeout), while each maps error codes to its
own retries and state machines, and an ``acks=0`` Produce has no answer to carry an error.

EndTxn passes, and so does a held write whose transaction the fenced cluster says is already
ongoing (the connection asks, :meth:`ClientConnection._hold_write`): a transaction open at the
fence can finish, so main's last stable offset reaches its end; a write that would begin a new
transaction waits. When the fence lifts without a switch (an abort), held requests
go on to the cluster in order; at a switch their connections close and the clients send them again
to the new cluster. A fence left up by an orchestrator that died lifts itself after its limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

PRODUCE, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, TXN_OFFSET_COMMIT = 0, 24, 25, 28
FENCED_WRITES = frozenset({PRODUCE, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, TXN_OFFSET_COMMIT})


@dataclass(frozen=True)
class FenceState:
    """What ``/api/v1/state`` shows of the fence."""

    cluster: str | None
    held_for_seconds: float
    expires_in_seconds: float | None
    lifted_by_expiry: int  # fences that lifted themselves because no one lifted them in time

    def as_json(self) -> dict[str, object]:
        return {
            "fenced": self.cluster is not None,
            "cluster": self.cluster,
            "heldForSeconds": round(self.held_for_seconds, 3),
            "expiresInSeconds": (
                None if self.expires_in_seconds is None else round(self.expires_in_seconds, 3)
            ),
            "liftedByExpiry": self.lifted_by_expiry,
        }


class WriteFence:
    """At most one fenced cluster; connections bound to it hold their writes until the lift."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cluster: str | None = None
        self._since = 0.0
        self._until = 0.0
        self._lifted = asyncio.Event()
        self._lifted.set()
        self._expiry: asyncio.TimerHandle | None = None
        self.lifted_by_expiry = 0

    def holds(self, cluster: str, api_key: int) -> bool:
        """Whether a request with ``api_key`` on a connection bound to ``cluster`` is held."""
        return self._cluster == cluster and api_key in FENCED_WRITES

    @property
    def cluster(self) -> str | None:
        return self._cluster

    def fence(self, cluster: str, max_seconds: float) -> None:
        """Hold writes to ``cluster`` from now until :meth:`lift` or ``max_seconds`` pass.

        Fencing the fenced cluster again moves its limit; fencing another lifts the first.
        """
        if max_seconds <= 0:
            raise ValueError(f"a fence needs a positive limit in seconds, got {max_seconds}")
        if self._cluster not in (None, cluster):
            self.lift()
        now = self._clock()
        if self._cluster is None:
            self._since = now
            self._lifted = asyncio.Event()
        self._cluster, self._until = cluster, now + max_seconds
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(max_seconds, self._expire)

    def lift(self) -> None:
        """Let held writes go on (to the cluster they were bound to, if still connected)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._cluster = None
        self._lifted.set()

    def _expire(self) -> None:
        self._expiry = None
        if self._cluster is not None:
            self.lifted_by_expiry += 1
            self.lift()

    async def wait_lifted(self) -> None:
        await self._lifted.wait()

    def state(self) -> FenceState:
        if self._cluster is None:
            return FenceState(None, 0.0, None, self.lifted_by_expiry)
        now = self._clock()
        held, left = now - self._since, self._until - now
        return FenceState(self._cluster, held, left, self.lifted_by_expiry)
