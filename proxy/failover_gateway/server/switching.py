"""The switch: which cluster is active, under which epoch, and moving every client at once.

Why it exists: a switch must be atomic from a client's point of view. The moment the active
cluster changes, new connections are routed to it; then every connection still bound to another
cluster (after an optional drain of in-flight responses) is moved to the new cluster under its
client when nothing is in flight on it, or else closed so its client reconnects and lands on the
new cluster. Moving matters because some clients (librdkafka >= 2.10) start over from their
bootstrap servers, and wait for a timer, when every connection they have closes at once. A
connection no broker has answered yet (its TLS handshake, its login, its first dial) is always
rerouted, never closed: franz-go fails its records on an EOF in a connection's first exchange.
One that must close before the client had a byte from the gateway (its first ApiVersions in
flight when connections may not move) is reset instead, which franz-go retries.
Commands carry an epoch (the operator uses the KafkaFailover's ``metadata.generation``): a
command older than the current epoch is refused and changes nothing, so a delayed retry can
never flip a gateway back. Switches are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from failover_gateway.pump.connection import ClientConnection

log = logging.getLogger("failover_gateway.switch")

# A client that does not read its socket must not hold a switch: after this, drop it hard.
_CLOSE_GRACE_SECONDS = 2.0
_DRAIN_POLL_SECONDS = 0.005


class SwitchRefused(Exception):
    """The command cannot be applied; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SwitchRecord:
    """What one switch did; returned to the caller and kept as the last switch."""

    from_cluster: str
    to_cluster: str
    epoch: int
    changed: bool
    closed_connections: int
    started_at: float  # wall clock, seconds since the epoch
    duration_ms: float
    source: str
    moved_connections: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "from": self.from_cluster,
            "to": self.to_cluster,
            "epoch": self.epoch,
            "changed": self.changed,
            "closedConnections": self.closed_connections,
            "movedConnections": self.moved_connections,
            "startedAt": _iso(self.started_at),
            "durationMs": round(self.duration_ms, 3),
            "source": self.source,
        }


@dataclass(frozen=True)
class FenceAnswer:
    """A pod's answer to a fence: acknowledged once no write it forwarded is unanswered."""

    cluster: str
    acknowledged: bool
    writes_in_flight: int
    drained_ms: float

    def as_json(self) -> dict[str, object]:
        return {
            "fenced": True,
            "cluster": self.cluster,
            "acknowledged": self.acknowledged,
            "writesInFlight": self.writes_in_flight,
            "drainedMs": round(self.drained_ms, 3),
        }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + (
        f".{int(timestamp * 1000) % 1000:03d}Z"
    )


class Switchboard:
    """Holds the active cluster and epoch and the set of open client connections."""

    def __init__(
        self,
        *,
        clusters: Iterable[str],
        active: str,
        epoch: int = 0,
        default_drain_ms: int = 0,
        on_switch: Callable[[SwitchRecord], None] | None = None,
        on_activate: Callable[[str, int], None] | None = None,
        may_move: Callable[[], bool] | None = None,
    ) -> None:
        """``on_activate(cluster, epoch)`` runs the moment the active cluster changes, before any
        connection is drained or closed; ``on_switch`` once the switch is done; ``may_move()``
        says whether connections at rest may move rather than close (never, without it)."""
        self.clusters = tuple(clusters)
        self.active = active
        self.epoch = epoch
        self.default_drain_ms = default_drain_ms
        self.last_switch: SwitchRecord | None = None
        self.connections: set[ClientConnection] = set()
        self._lock = asyncio.Lock()
        self._on_switch = on_switch
        self._on_activate = on_activate
        self._may_move = may_move

    def open_connections(self) -> dict[str, int]:
        counts = dict.fromkeys(self.clusters, 0)
        for connection in self.connections:
            if connection.cluster in counts and not connection.is_closing:
                counts[connection.cluster] += 1
        return counts

    async def switch(
        self, to: str, *, epoch: int | None, drain_ms: int | None = None, source: str
    ) -> SwitchRecord:
        """Make ``to`` active and close every connection bound to another cluster."""
        if to not in self.clusters:
            raise SwitchRefused(
                f"unknown cluster {to!r}; configured clusters: {', '.join(self.clusters)}", 400
            )
        async with self._lock:
            return await self._switch_locked(to, epoch, drain_ms, source)

    async def _switch_locked(
        self, to: str, epoch: int | None, drain_ms: int | None, source: str
    ) -> SwitchRecord:
        if epoch is not None and epoch < self.epoch:
            raise SwitchRefused(
                f"stale epoch {epoch}: the gateway is at epoch {self.epoch} (active "
                f"{self.active!r}); nothing changed",
                409,
            )
        started, clock = time.time(), time.perf_counter()
        previous = self.active
        new_epoch = self.epoch if epoch is None else epoch
        if to == previous:
            self.epoch = new_epoch
            return SwitchRecord(previous, to, new_epoch, False, 0, started, 0.0, source)
        self.active, self.epoch = to, new_epoch
        if self._on_activate is not None:
            self._on_activate(to, new_epoch)
        victims = [c for c in self.connections if c.cluster != to and not c.is_closing]
        await _drain(victims, self.default_drain_ms if drain_ms is None else drain_ms)
        reason = f"switch {previous} -> {to} (epoch {new_epoch})"
        for connection in victims:
            connection.leave_groups()  # before its old broker connection goes
        moving = self._may_move is not None and self._may_move()
        closed = [c for c in victims if not (c.reroute(reason) or (moving and c.move(reason)))]
        for connection in closed:
            connection.close(reason)  # reset when it had no answer yet (see its close)
        asyncio.get_running_loop().call_later(_CLOSE_GRACE_SECONDS, _abort_stragglers, closed)
        record = SwitchRecord(
            previous,
            to,
            new_epoch,
            True,
            len(closed),
            started,
            (time.perf_counter() - clock) * 1000,
            source,
            moved_connections=len(victims) - len(closed),
        )
        self.last_switch = record
        log.info(
            "switched %s -> %s epoch=%d moved=%d closed=%d connections in %.1f ms (by %s)",
            previous,
            to,
            new_epoch,
            record.moved_connections,
            len(closed),
            record.duration_ms,
            source,
        )
        if self._on_switch is not None:
            self._on_switch(record)
        return record


async def _drain(victims: list[ClientConnection], drain_ms: int) -> None:
    """Stop reading new requests and give in-flight responses up to ``drain_ms`` to arrive."""
    if drain_ms <= 0 or not victims:
        return
    for connection in victims:
        connection.pause_reading("switch-drain")
    deadline = time.monotonic() + drain_ms / 1000
    while time.monotonic() < deadline:
        if all(len(c.in_flight) == 0 or c.is_closing for c in victims):
            return
        await asyncio.sleep(_DRAIN_POLL_SECONDS)


def _abort_stragglers(victims: list[ClientConnection]) -> None:
    for connection in victims:
        connection.abort()
