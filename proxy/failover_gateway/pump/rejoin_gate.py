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
rejoin of one lets the other's fetches through: no worse than without the gate).

With several gateway pods behind one Service, a client's group traffic and its fetches may pass
through different pods, so what one pod saw is not enough. The cluster is the state every pod
shares: when fenced, each pod also reads who is a member of which group on the old cluster (by
``client.id``: the broker sees the gateway's address, not the client's), and holds the fetches
of those clients from any address; and while fetches wait, it asks the new cluster which of
them hold an assignment there again (they rejoined through whichever pod), which lets them go
as an OffsetFetch seen here would. A standalone consumer sharing a member's ``client.id`` waits
with it (at most the bound).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

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
        # Members of the old cluster's groups by client.id (any address), and their groups.
        self._gated_ids: dict[str, float] = {}
        self._released_hosts: dict[str, set[str]] = {}
        self._groups_of: dict[str, frozenset[str]] = {}
        self._rejoined: dict[Client, asyncio.Event] = {}
        self._old_cluster: str | None = None
        self._until: float | None = None  # every hold of the last arming ends then
        self.fetches_held = 0
        self.rejoins_seen_on_cluster = 0  # released because the new cluster listed the client

    def saw_member(self, cluster: str, client: Client) -> None:
        self._members.setdefault(cluster, set()).add(client)

    def arm(
        self,
        old_cluster: str,
        seconds: float,
        groups_of: Mapping[str, Iterable[str]] | None = None,
    ) -> int:
        """Hold the fetches of every member seen on ``old_cluster`` for at most ``seconds``:
        clients seen here in a group, and the ``client.id`` s the cluster listed in
        ``groups_of`` (client.id -> its groups). What was seen is forgotten (membership is
        learned again on the new cluster). Returns how many clients and ids are held."""
        until = self._until = self._clock() + seconds
        self._old_cluster = old_cluster
        members = self._members.pop(old_cluster, set())
        self._members.clear()
        for client in members:
            self._gated[client] = until
        self._groups_of = {cid: frozenset(groups) for cid, groups in (groups_of or {}).items()}
        self._released_hosts = {}
        self._gated_ids = dict.fromkeys(self._groups_of, until)
        return len(members) + len(self._gated_ids)

    @property
    def armed(self) -> bool:
        """Whether any fetch may wait (once the bound passed, nobody's does: forgotten)."""
        if self._until is not None and self._clock() >= self._until:
            self._until = None
            self.disarm()
        return bool(self._gated or self._gated_ids)

    def disarm(self) -> None:
        """The switch did not happen: nobody waits."""
        for client_id in list(self._gated_ids):
            self.rejoined_elsewhere(client_id)
        for client in list(self._gated):
            self.rejoined(client)

    def _bound(self, client: Client) -> float | None:
        host, client_id = client
        until = self._gated.get(client)
        if until is not None or client_id is None:
            return until
        if host in self._released_hosts.get(client_id, ()):
            return None
        return self._gated_ids.get(client_id)

    def holds(self, client: Client, cluster: str) -> bool:
        """Whether a Fetch of ``client`` to ``cluster`` waits (never one to the old cluster)."""
        if cluster == self._old_cluster:
            return False
        until = self._bound(client)
        if until is None:
            return False
        if self._clock() >= until:
            self.rejoined(client)
            return False
        return True

    def rejoined(self, client: Client) -> None:
        """The client asked for its committed offsets: it is a member again."""
        self._gated.pop(client, None)
        host, client_id = client
        if client_id in self._gated_ids:
            self._released_hosts.setdefault(client_id, set()).add(host)
        event = self._rejoined.pop(client, None)
        if event is not None:
            event.set()

    def rejoined_elsewhere(self, client_id: str) -> None:
        """The new cluster lists ``client_id`` with an assignment: every client with that id
        rejoined, through whichever gateway pod."""
        if self._gated_ids.pop(client_id, None) is not None:
            self.rejoins_seen_on_cluster += 1
        self._released_hosts.pop(client_id, None)
        for client in [c for c in (*self._gated, *self._rejoined) if c[1] == client_id]:
            self.rejoined(client)

    def awaited_groups(self) -> dict[str, frozenset[str]]:
        """The client ids whose fetches wait now, with their groups on the old cluster: what
        to look for on the new one."""
        waiting = {client_id for _, client_id in self._rejoined if client_id is not None}
        return {cid: self._groups_of[cid] for cid in waiting if cid in self._groups_of}

    async def wait(self, client: Client) -> None:
        """Return when ``client`` has rejoined, or its time bound passed."""
        until = self._bound(client)
        if until is None:
            return
        self.fetches_held += 1
        event = self._rejoined.setdefault(client, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), max(0.0, until - self._clock()))
        except TimeoutError:
            self.rejoined(client)
