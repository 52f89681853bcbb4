"""Holding a consumer's fetches on the new cluster until it has rejoined its group there.

Why it exists: after a planned switch every group's committed offsets are on the new cluster, but
a consumer that reconnects still holds its assignment and the positions it reached on the old
one. It fetches with them at once, hands those records to its application, and only learns at
its next heartbeat (up to ``heartbeat.interval.ms``, 3 s by default) that it is no member on the
new cluster; its commits meanwhile fail, so after rejoining it goes back to the handed-off offset
and reads again everything it read in between (1.5-2.5 s of records in the drill). So, after a
switch made under the write fence, a client that took part in a group on the old cluster
(JoinGroup, SyncGroup, Heartbeat or ConsumerGroupHeartbeat seen through this gateway) has its
Fetch held until it asks for its committed offsets (OffsetFetch: it has rejoined and been
assigned), or a time bound passes. The held Fetch then goes on: its answer carries the old
positions, which a client that rejoined discards (its positions changed).

A client is its address and ``client.id``; clients that share both are one to the gate (a
rejoin of one lets the other's fetches through: no worse than without the gate). With several
gateway pods behind one Service, a client's group traffic and its fetches may pass through
different pods: a pod only holds fetches of clients it saw in a group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

Client = tuple[str, str | None]  # (client host, client.id)
JOIN_GROUP, HEARTBEAT, SYNC_GROUP, CONSUMER_GROUP_HEARTBEAT = 11, 12, 14, 68
GROUP_MEMBERSHIP = frozenset({JOIN_GROUP, HEARTBEAT, SYNC_GROUP, CONSUMER_GROUP_HEARTBEAT})
OFFSET_FETCH, FETCH = 9, 1


class RejoinGate:
    """Group members seen per cluster; after a planned switch, the ones whose fetches wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._members: dict[str, set[Client]] = {}
        self._gated: dict[Client, float] = {}
        self._rejoined: dict[Client, asyncio.Event] = {}
        self._old_cluster: str | None = None
        self.fetches_held = 0

    def saw_member(self, cluster: str, client: Client) -> None:
        self._members.setdefault(cluster, set()).add(client)

    def arm(self, old_cluster: str, seconds: float) -> int:
        """Hold the fetches of every member seen on ``old_cluster`` for at most ``seconds``;
        what was seen is forgotten (membership is learned again on the new cluster)."""
        until = self._clock() + seconds
        self._old_cluster = old_cluster
        members = self._members.pop(old_cluster, set())
        self._members.clear()
        for client in members:
            self._gated[client] = until
        return len(members)

    @property
    def armed(self) -> bool:
        """Whether any fetch may wait (once the bound passed, nobody's does: forgotten)."""
        if self._gated and self._clock() >= max(self._gated.values()):
            self.disarm()
        return bool(self._gated)

    def disarm(self) -> None:
        """The switch did not happen: nobody waits."""
        for client in list(self._gated):
            self.rejoined(client)

    def holds(self, client: Client, cluster: str) -> bool:
        """Whether a Fetch of ``client`` to ``cluster`` waits (never one to the old cluster)."""
        if cluster == self._old_cluster:
            return False
        until = self._gated.get(client)
        if until is None:
            return False
        if self._clock() >= until:
            self.rejoined(client)
            return False
        return True

    def rejoined(self, client: Client) -> None:
        """The client asked for its committed offsets: it is a member again."""
        self._gated.pop(client, None)
        event = self._rejoined.pop(client, None)
        if event is not None:
            event.set()

    async def wait(self, client: Client) -> None:
        """Return when ``client`` has rejoined, or its time bound passed."""
        until = self._gated.get(client)
        if until is None:
            return
        self.fetches_held += 1
        event = self._rejoined.setdefault(client, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), max(0.0, until - self._clock()))
        except TimeoutError:
            self.rejoined(client)
