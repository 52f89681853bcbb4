"""The running gateway: listeners, connections, switch, probes and the admin API in one object.

Why it exists: every part of the gateway needs a little of the others (a connection asks where to
dial and how to rewrite; the admin API asks to switch and for state; metrics read everything).
This is the one place that wires them, so each of those modules can stay small and testable.
Shutdown is scripted as uvicorn does it: stop listening, close client connections, wait a grace
period, abort what remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from failover_gateway.codec import errors, headers
from failover_gateway.codec.primitives import Buffer
from failover_gateway.config import (
    AdminCredentials,
    GatewayConfig,
    HostPort,
    LimitsConfig,
    TimeoutsConfig,
)
from failover_gateway.pump import client_deadlines, inflight
from failover_gateway.pump.client_auth import ClientAuthenticator
from failover_gateway.pump.connection import ClientConnection
from failover_gateway.pump.dial_queue import DialQueue
from failover_gateway.pump.rejoin_gate import RejoinGate
from failover_gateway.pump.write_fence import FENCED_WRITES, WriteFence
from failover_gateway.routing import (
    api_versions,
    group_leaving,
    producer_ids,
    response_rewriting,
    topic_ids,
    upstream_sasl,
)
from failover_gateway.routing.broker_directory import BrokerDirectory
from failover_gateway.server import (
    active_file,
    admin_api,
    admin_guarding,
    cluster_admin,
    heap,
    metrics,
    security_setup,
    switchover,
    unreplicated,
    upstream_connecting,
    upstream_probing,
)
from failover_gateway.server.switching import (
    FenceAnswer,
    Switchboard,
    SwitchRecord,
    SwitchRefused,
)

log = logging.getLogger("failover_gateway")

_SHUTDOWN_GRACE_SECONDS = 5.0
_LEAVING_AT_ONCE = 8  # admin connections leaving groups apart at once, after a switch
_REFUSALS_LOGGED_EVERY = 10.0  # seconds between the summary lines of refused connections
_FENCE_POLL_SECONDS = 0.005
# After a planned switch, a group member's fetches wait at most this long for its rejoin: more
# than a heartbeat interval (3 s in librdkafka and Java, 5 s with KIP-848's protocol).
REJOIN_GATE_SECONDS = 8.0
# While fetches wait for their clients' rejoin, the new cluster's groups are read this often.
_REJOIN_LOOK_SECONDS = 0.1
_TOPIC_WATCH_SECONDS = 0.5
_TOPIC_MISS_REFETCH_SECONDS = 2.0
# Fetches asked for by requests with an unknown topic id start at most this often per cluster:
# waiting requests share one, and a client naming ids nobody has cannot flood a cluster.
_TOPIC_LEARN_GAP_SECONDS = 0.1


class GatewayRuntime:
    """Implements the connection's ``Gateway`` and the admin API's ``AdminBackend``."""

    def __init__(
        self,
        config: GatewayConfig,
        credentials: AdminCredentials,
        *,
        epoch: int = 0,
        security: security_setup.GatewaySecurity | None = None,
    ) -> None:
        self.config = config
        self.security = security or security_setup.build(config)
        # What each cluster offered at its last successful probe: every ApiVersions answer is
        # cut to what all of them support (a client may be switched to any of them).
        self._offers: dict[str, api_versions.ClusterOffer] = {}
        self._credentials = credentials
        settings = config.gateway
        self.directory = BrokerDirectory(config)
        # Producer ids carry the generation: the epoch, and active changes within it.
        self._generation_at = (epoch, 0)
        self._producer_ids = producer_ids.codecs(config.clusters, producer_ids.generation(epoch, 0))
        self.topic_ids = topic_ids.TopicIdTable()
        self._topics_fetched_at: dict[str, float] = {}
        self._topic_fetches: dict[str, asyncio.Task[None]] = {}
        self.traffic = metrics.Traffic()
        self.switchboard = Switchboard(
            clusters=config.clusters,
            active=settings.active,
            epoch=epoch,
            default_drain_ms=settings.timeouts.drain_ms,
            on_switch=self._switched,
            on_activate=self._activated,
            may_move=self._may_move_connections,
        )
        self.reachability = {name: upstream_probing.Reachability() for name in config.clusters}
        self._write_fence = WriteFence()
        self._dial_queue = DialQueue(settings.limits.max_concurrent_dials)
        # The fenced cluster's admin connection, for the writes of open transactions (one call
        # at a time on it); closed when the fence ends.
        self._fence_admin: cluster_admin.ClusterAdmin | None = None
        self._fence_admin_lock = asyncio.Lock()
        self.transactional_writes_admitted = 0
        self._rejoin_gate = RejoinGate()
        self._left_members = group_leaving.LeftMembers()
        self._leaving: set[asyncio.Task[None]] = set()
        self._leave_slots = asyncio.Semaphore(_LEAVING_AT_ONCE)
        self.last_switch_at = -math.inf  # event loop time of this pod's last switch
        self._refusals_logged_at, self._refusals_logged = -math.inf, 0
        # Who is a member of which group on the fenced cluster (client.id -> groups), read when
        # the fence goes up, so every pod holds the fetches of members seen through any pod.
        self._fenced_members: asyncio.Task[dict[str, set[str]]] | None = None
        self._rejoin_look: asyncio.Task[None] | None = None
        self.last_switchover: dict[str, Any] | None = None
        self.registry = metrics.build_registry(self.traffic, self._snapshot)
        self.started_at = time.time()
        self._servers: list[asyncio.Server] = []
        self._admin_runner: web.AppRunner | None = None
        self._admin_server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self.listening = False

    # -- Gateway (for connections) ------------------------------------------------------------

    @property
    def write_fence(self) -> WriteFence:
        return self._write_fence

    @property
    def dial_queue(self) -> DialQueue:
        return self._dial_queue

    @property
    def limits(self) -> LimitsConfig:
        return self.config.gateway.limits

    @property
    def timeouts(self) -> TimeoutsConfig:
        return self.config.gateway.timeouts

    @property
    def connect_timeout(self) -> float:
        return self.config.gateway.timeouts.upstream_connect_ms / 1000

    @property
    def response_frame_timeout(self) -> float:
        return self.config.gateway.timeouts.response_frame_ms / 1000

    def route(self, slot: int | None) -> tuple[str, list[HostPort]]:
        cluster = self.switchboard.active
        if slot is not None and not self.directory.brokers(cluster):
            self._refresh_soon(cluster)
        return cluster, self.directory.targets(cluster, slot)

    async def dial(
        self, cluster: str, target: HostPort, factory: Callable[[], asyncio.BaseProtocol]
    ) -> tuple[asyncio.BaseTransport, int]:
        settings = self.config.clusters[cluster]
        if settings.security.protocol == "PLAINTEXT":
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_connection(factory, target.host, target.port)
            return transport, 0
        connection = await upstream_connecting.open_stream(
            settings, target, self.security.upstream.get(cluster), self.connect_timeout
        )
        return upstream_connecting.adopt(connection, factory), connection.session_lifetime_ms

    async def reauthenticate(self, cluster: str, exchange: upstream_sasl.Exchange) -> int:
        credentials = self.config.clusters[cluster].security.sasl
        if credentials is None:
            return 0
        return await upstream_sasl.authenticate(exchange, credentials)

    def client_authenticator(self) -> ClientAuthenticator | None:
        return self.security.client_authenticator()

    def listener_tls(self) -> ssl.SSLContext | None:
        return self.security.listener

    def certificate_principal(self, transport: asyncio.BaseTransport) -> str | None:
        return self.security.certificate_principal(transport)

    def api_versions_answer(self, cluster: str, version: int, correlation_id: int) -> bytes:
        known = [
            self._offers[name] for name in self._clusters_first(cluster) if name in self._offers
        ]
        top = api_versions.GATEWAY_MAX_VERSIONS[api_versions.API_VERSIONS]
        body = api_versions.own_answer_body(min(version, top), known)
        payload = headers.encode_response_header(correlation_id, 18, 0) + body
        return len(payload).to_bytes(4, "big") + payload

    def _may_move_connections(self) -> bool:
        """Connections move under their clients only when ApiVersions has been cut to every
        cluster's offer: what a client negotiated on one must be valid on the other."""
        return self.config.gateway.move_idle_connections and all(
            name in self._offers for name in self.config.clusters
        )

    def connection_opened(self, connection: ClientConnection) -> bool:
        if len(self.switchboard.connections) >= self.limits.max_connections:
            self.traffic.connections_refused += 1
            self._log_refusals()
            return False
        self.switchboard.connections.add(connection)
        self.traffic.connections_total[self.switchboard.active] += 1
        return True

    def _log_refusals(self) -> None:
        """One WARNING per :data:`_REFUSALS_LOGGED_EVERY` seconds in a storm, not one a
        connection: the count since the last line (the metric has every one)."""
        now = time.monotonic()
        if now - self._refusals_logged_at < _REFUSALS_LOGGED_EVERY:
            return
        refused = self.traffic.connections_refused - self._refusals_logged
        self._refusals_logged_at, self._refusals_logged = now, self.traffic.connections_refused
        log.warning(
            "refused %d client connection(s) since the last such line: "
            "gateway.limits.maxConnections=%d reached",
            refused,
            self.limits.max_connections,
        )

    def connection_closed(self, connection: ClientConnection) -> None:
        self.switchboard.connections.discard(connection)

    def count_slow_client(self, bound: client_deadlines.Bound) -> None:
        self.traffic.slow_clients_closed[bound.value] += 1

    def rewrite_response(
        self, cluster: str, request: inflight.PendingRequest, frame: Buffer
    ) -> Buffer:
        def advertise(node_id: int, host: str, port: int) -> tuple[str, int]:
            return self.directory.advertise(cluster, node_id, host, port)

        others = [offer for name, offer in self._offers.items() if name != cluster]
        return response_rewriting.rewrite_frame(
            request.api_key,
            request.api_version,
            frame,
            advertise,
            other_clusters=others,
            producer_ids=self._producer_ids[cluster],
            topics=(self.topic_ids, cluster),
        )

    def producer_ids(self, cluster: str) -> producer_ids.ProducerIdCodec:
        return self._producer_ids[cluster]

    def count_stale_producer(self, cluster: str, api_key: int, *, adopted: bool) -> None:
        outcome = "adopted" if adopted else "refused"
        self.traffic.stale_producer_ids[(cluster, outcome)] += 1

    def _clusters_first(self, cluster: str) -> list[str]:
        return [cluster, *(name for name in self.config.clusters if name != cluster)]

    def count_request(self, cluster: str, api_key: int, size: int) -> None:
        key = (cluster, api_key)
        self.traffic.requests[key] += 1
        self.traffic.request_bytes[key] += size

    def count_response(self, cluster: str, api_key: int, size: int) -> None:
        self.traffic.response_bytes[(cluster, api_key)] += size

    # -- AdminBackend -------------------------------------------------------------------------

    @property
    def cluster_names(self) -> tuple[str, ...]:
        return self.switchboard.clusters

    async def switch(
        self, to: str, *, epoch: int | None, drain_ms: int | None, source: str
    ) -> SwitchRecord:
        fenced = self._write_fence.cluster
        if fenced is not None and fenced != to:  # a planned switch: offsets were handed over
            members = self._members_read_at_fence()
            held = self._rejoin_gate.arm(fenced, REJOIN_GATE_SECONDS, members)
            log.info("fetches of %d group member(s) wait for their rejoin on %s", held, to)
            self._look_for_rejoins(to)
        try:
            record = await self.switchboard.switch(
                to, epoch=epoch, drain_ms=drain_ms, source=source
            )
        except SwitchRefused:
            self._rejoin_gate.disarm()
            raise
        # A switch ends any fence, after the old connections closed with the writes they held
        # (their clients send them again to the new cluster); a refused switch keeps it.
        self._end_fence()
        return record

    async def fence(self, *, max_seconds: float, drain_timeout: float) -> FenceAnswer:
        """Hold writes to the active cluster; acknowledged once every write forwarded before
        has been answered (nothing more reaches the cluster through this pod), or not, when
        some are still unanswered after ``drain_timeout`` (the fence stays up either way)."""
        cluster = self.switchboard.active
        self._write_fence.fence(cluster, max_seconds)
        started = time.monotonic()
        if self._fenced_members is not None:
            self._fenced_members.cancel()
        self._fenced_members = asyncio.create_task(self._group_members_of(cluster))
        # Polled: a notification would put fence bookkeeping on every answer of the data path.
        while (pending := self._writes_in_flight(cluster)) and (  # noqa: ASYNC110
            time.monotonic() - started < drain_timeout
        ):
            await asyncio.sleep(_FENCE_POLL_SECONDS)
        return FenceAnswer(cluster, pending == 0, pending, (time.monotonic() - started) * 1000)

    async def planned_switch(
        self, to: str, *, epoch: int | None, drain_ms: int | None, source: str
    ) -> tuple[SwitchRecord, dict[str, Any]]:
        """Fence, let consumers finish, catch up, hand offsets off, then switch
        (:mod:`.switchover`); a refusal or abort raises SwitchRefused naming why."""
        self._known(to)
        active = self.switchboard.active
        if to == active:
            record = await self.switch(to, epoch=epoch, drain_ms=drain_ms, source=source)
            return record, {"mode": "planned", "outcome": "already active"}
        try:
            record, report = await switchover.run(
                self, self.config.gateway.switchover, source=active, target=to, epoch=epoch,
                drain_ms=drain_ms, caller=source,
            )  # fmt: skip
        except SwitchRefused as refused:
            self.last_switchover = {"mode": "planned", "outcome": "aborted", "reason": str(refused)}
            if refused.status == 409:  # an abort (a refusal of bad input is not counted)
                self.traffic.planned_switches["aborted"] += 1
            raise
        self.last_switchover = report.as_json()
        self.traffic.planned_switches["switched"] += 1
        self.traffic.last_fence_seconds = self.last_switchover["fenceMs"] / 1000
        self.traffic.last_catch_up_lag_records = report.catch_up_lag
        log.info("planned switch %s -> %s: %s", active, to, self.last_switchover)
        return record, self.last_switchover

    async def prepare_switchover(self, to: str, replication: str | None = None) -> dict[str, Any]:
        """The planned switch's middle steps under a fence the caller holds on every gateway
        (:func:`.switchover.prepare`); nothing is switched. Aborts raise SwitchRefused (409).
        ``replication`` names what copies the active cluster to ``to`` when it is not the
        configured kind (a failback over reverse replication)."""
        active = self._other_than_active(to)
        settings = self.config.gateway.switchover
        if replication is not None:
            settings = settings.model_copy(update={"replication": replication})
        try:
            report = await switchover.prepare(self, settings, source=active, target=to)
        except SwitchRefused as refused:
            self.last_switchover = {"mode": "planned", "outcome": "aborted", "reason": str(refused)}
            if refused.status == 409:
                self.traffic.planned_switches["aborted"] += 1
            raise
        self.last_switchover = report.as_json()
        self.traffic.last_catch_up_lag_records = report.catch_up_lag
        log.info("planned switch %s -> %s prepared: %s", active, to, self.last_switchover)
        return self.last_switchover

    async def unreplicated(self, source: str, target: str) -> dict[str, Any]:
        """Records ``source`` holds that ``target`` never got (:mod:`.unreplicated`): the RPO
        of an unplanned switch, once the cluster left answers again."""
        self._known(source)
        self._known(target)
        try:
            return await unreplicated.measure(
                self, self.config.gateway.switchover, source=source, target=target
            )
        except (cluster_admin.ClusterCallFailed, errors.CodecError) as error:
            raise SwitchRefused(f"records left on {source} not counted: {error}", 503) from None

    def _known(self, cluster: str) -> None:
        """A 400 naming the valid clusters, for a request naming another."""
        if cluster not in self.switchboard.clusters:
            raise SwitchRefused(
                f"unknown cluster {cluster!r}; valid: {', '.join(self.switchboard.clusters)}", 400
            )

    def _other_than_active(self, to: str) -> str:
        self._known(to)
        active = self.switchboard.active
        if to == active:
            raise SwitchRefused(f"{to} is already the active cluster: nothing to prepare", 409)
        return active

    @property
    def fenced_cluster(self) -> str | None:
        return self._write_fence.cluster

    def cluster_admin(self, cluster: str) -> cluster_admin.ClusterAdmin:
        return cluster_admin.ClusterAdmin(
            cluster,
            self.config.clusters[cluster],
            self.security.upstream.get(cluster),
            self.connect_timeout,
        )

    @property
    def rejoin_gate(self) -> RejoinGate:
        return self._rejoin_gate

    @property
    def left_members(self) -> group_leaving.LeftMembers:
        return self._left_members

    def lift_fence(self) -> None:
        """Let held writes go on to the cluster they were bound to (an aborted switchover)."""
        self._end_fence()

    async def _group_members_of(self, cluster: str) -> dict[str, set[str]]:
        """client.id -> its groups, of every member of a group on ``cluster`` now (empty when
        the cluster cannot say: then only members seen through this pod are held)."""
        groups_of: dict[str, set[str]] = {}
        try:
            async with self.cluster_admin(cluster) as admin:
                described = await admin.group_members(await admin.group_ids())
        except (cluster_admin.ClusterCallFailed, errors.CodecError) as error:
            log.warning("group members on %s unknown, fetches held by what this pod saw: %s",
                        cluster, error)  # fmt: skip
            return groups_of
        for group, members in described.items():
            for member in members:
                groups_of.setdefault(member.client_id, set()).add(group)
        return groups_of

    def _members_read_at_fence(self) -> dict[str, set[str]]:
        task, self._fenced_members = self._fenced_members, None
        if task is None:
            return {}
        if not task.done():
            task.cancel()
            log.warning("group members of the fenced cluster not read yet at the switch")
            return {}
        return {} if task.cancelled() or task.exception() else task.result()

    def _look_for_rejoins(self, cluster: str) -> None:
        if self._rejoin_look is not None:
            self._rejoin_look.cancel()
        self._rejoin_look = asyncio.create_task(self._rejoins_on(cluster))

    async def _rejoins_on(self, cluster: str) -> None:
        """While the rejoin gate holds fetches, let go those of clients ``cluster`` lists with
        an assignment again (they rejoined through any gateway pod)."""
        gate = self._rejoin_gate
        async with self.cluster_admin(cluster) as admin:
            while gate.armed:
                awaited = gate.awaited_groups()
                if awaited:
                    try:
                        described = await admin.group_members(set().union(*awaited.values()))
                    except (cluster_admin.ClusterCallFailed, errors.CodecError) as error:
                        log.debug("rejoins on %s not read: %s", cluster, error)
                        described = {}
                    for client_id, groups in awaited.items():
                        if any(m.client_id == client_id and m.assigned
                               for g in groups for m in described.get(g, ())):  # fmt: skip
                            gate.rejoined_elsewhere(client_id)
                await asyncio.sleep(_REJOIN_LOOK_SECONDS)

    def _end_fence(self) -> None:
        self._write_fence.lift()
        if self._fenced_members is not None:
            self._fenced_members.cancel()
            self._fenced_members = None
        if self._fence_admin is not None:
            self._fence_admin.close()
            self._fence_admin = None

    def leave_groups_apart(self, cluster: str, members: Mapping[str, str]) -> None:
        """Send ``cluster`` a LeaveGroup for each group -> member id, on connections of the
        gateway's own: the client's connection had a request in flight, behind which the broker
        would not read a LeaveGroup before the connection closes
        (:mod:`..routing.group_leaving`)."""
        task = asyncio.get_running_loop().create_task(self._leave(cluster, dict(members)))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def _leave(self, cluster: str, members: dict[str, str]) -> None:
        async with self._leave_slots, self.cluster_admin(cluster) as admin:
            for group, member_id in members.items():
                try:
                    await admin.leave_group(group, member_id)
                except (cluster_admin.ClusterCallFailed, errors.CodecError) as error:
                    log.info("could not leave group %s as member %s: %s", group, member_id, error)
                else:
                    log.info("left group %s as member %s on %s", group, member_id, cluster)

    async def transaction_open(self, cluster: str, transactional_id: str) -> bool:
        """Whether ``cluster``'s transaction coordinator says ``transactional_id`` has a
        transaction ongoing (then its fenced writes pass, so it can end); False when it cannot
        say (the write stays held: safe)."""
        async with self._fence_admin_lock:
            admin = self._fence_admin
            if admin is None or admin.name != cluster:
                if admin is not None:
                    admin.close()
                admin = self._fence_admin = self.cluster_admin(cluster)
            try:
                state = await admin.transaction_state(transactional_id)
            except (cluster_admin.ClusterCallFailed, errors.CodecError) as error:
                log.warning("fenced write of %r held: %s", transactional_id, error)
                return False
        if state == "Ongoing":
            self.transactional_writes_admitted += 1
            return True
        return False

    def _writes_in_flight(self, cluster: str) -> int:
        return sum(
            c.in_flight.count(FENCED_WRITES)
            for c in self.switchboard.connections
            if c.cluster == cluster and not c.is_closing
        )

    def state(self) -> dict[str, Any]:
        board = self.switchboard
        return {
            "active": board.active,
            "epoch": board.epoch,
            "clusters": list(board.clusters),
            "lastSwitch": board.last_switch.as_json() if board.last_switch else None,
            "openConnections": board.open_connections(),
            "inFlightRequests": sum(len(c.in_flight) for c in board.connections),
            "upstreams": {name: r.as_json() for name, r in self.reachability.items()},
            "brokers": {
                name: {
                    str(node): str(address)
                    for node, address in self.directory.brokers(name).items()
                }
                for name in board.clusters
            },
            "listening": self.listening,
            "startedAt": self.started_at,
            "writeFence": self._write_fence.state().as_json()
            | {"transactionalWritesAdmitted": self.transactional_writes_admitted},
            "fetchesHeldForRejoin": self._rejoin_gate.fetches_held,
            "rejoinsSeenOnCluster": self._rejoin_gate.rejoins_seen_on_cluster,
            "lastSwitchover": self.last_switchover,
        }

    def is_ready(self) -> tuple[bool, str]:
        # Readiness deliberately ignores upstream reachability: when main dies, every pod must
        # stay in the Service so clients can still reach it and be switched to failover.
        if not self.listening:
            return False, "listeners not bound yet"
        return True, f"listening; active cluster {self.switchboard.active}"

    def metrics_text(self) -> bytes:
        return metrics.render(self.registry)

    def _snapshot(self) -> metrics.Snapshot:
        board = self.switchboard
        return metrics.Snapshot(
            epoch=board.epoch,
            active=board.active,
            clusters=board.clusters,
            open_connections=board.open_connections(),
            reachable={name: r.reachable for name, r in self.reachability.items()},
            down_for_seconds={name: r.down_for() for name, r in self.reachability.items()},
            fenced_for_seconds=(
                fence.held_for_seconds if (fence := self._write_fence.state()).cluster else None
            ),
        )

    def _activated(self, cluster: str, epoch: int) -> None:
        previous_epoch, changes = self._generation_at
        self._generation_at = (epoch, changes + 1 if epoch == previous_epoch else 0)
        current = producer_ids.generation(*self._generation_at)
        for codec in self._producer_ids.values():
            codec.generation = current  # ids issued before this change are stale from now

    def _switched(self, record: SwitchRecord) -> None:
        self.last_switch_at = asyncio.get_running_loop().time()
        self.traffic.switches += 1
        self.traffic.last_switch_seconds = record.duration_ms / 1000
        self.traffic.switched_connections["moved"] += record.moved_connections
        self.traffic.switched_connections["closed"] += record.closed_connections

    # -- probes -------------------------------------------------------------------------------

    async def probe(self, cluster: str) -> None:
        timeout = self.connect_timeout
        answer = await upstream_probing.probe_once(
            self.config.clusters[cluster],
            self.reachability[cluster],
            self.security.upstream.get(cluster),
            timeout,
            self.config.gateway.canary_topic,
        )
        if answer:
            self._offers[cluster] = answer.offer
            displaced = self.directory.learn(cluster, answer.brokers)
            if displaced:
                log.error(
                    "cluster %s: node ids %s collide on broker ports (brokerPortCount=%d); "
                    "they got the next free ports; raise listener.brokerPortCount",
                    cluster,
                    list(displaced),
                    self.directory.slot_count,
                )

    def _refresh_soon(self, cluster: str) -> None:
        running = self._refreshing.get(cluster)
        if running is None or running.done():
            self._refreshing[cluster] = asyncio.get_running_loop().create_task(self.probe(cluster))

    async def _probe_forever(self, cluster: str) -> None:
        interval = self.config.gateway.timeouts.probe_interval_ms / 1000
        while True:
            with contextlib.suppress(Exception):
                await self.probe(cluster)
            await asyncio.sleep(interval)

    async def _trim_heap_forever(self) -> None:
        """Return the heap's free pages every :data:`heap.TRIM_EVERY_SECONDS` (the peaks of
        switches and fences would otherwise stay resident)."""
        while True:
            await asyncio.sleep(heap.TRIM_EVERY_SECONDS)
            heap.trim()

    async def _keep_topic_ids(self) -> None:
        """Learn every cluster's topic ids at start, again when a lookup misses (at most once per
        :data:`_TOPIC_MISS_REFETCH_SECONDS`), and at least every topic refresh interval."""
        every = self.config.gateway.timeouts.topic_refresh_ms / 1000
        while True:
            now = time.monotonic()
            for cluster in self.config.clusters:
                age = now - self._topics_fetched_at.get(cluster, -math.inf)
                missed = cluster in self.topic_ids.misses
                if age >= every or (missed and age >= _TOPIC_MISS_REFETCH_SECONDS):
                    await self.learn_topic_ids(cluster)
            await asyncio.sleep(_TOPIC_WATCH_SECONDS)

    async def learn_topic_ids(self, cluster: str) -> None:
        """Return once a fetch of ``cluster``'s topic ids begun after this call has ended.

        Callers asking at the same time share one fetch; fetches start at most every
        :data:`_TOPIC_LEARN_GAP_SECONDS`. A fetch that fails (cluster down) ends the wait too."""
        asked = time.monotonic()
        while self._topics_fetched_at.get(cluster, -math.inf) < asked:
            fetch = self._topic_fetches.get(cluster)
            if fetch is None or fetch.done():
                last = self._topics_fetched_at.get(cluster, -math.inf)
                gap = last + _TOPIC_LEARN_GAP_SECONDS - time.monotonic()
                if gap > 0:
                    await asyncio.sleep(gap)
                    continue
                fetch = asyncio.get_running_loop().create_task(self._fetch_topic_ids(cluster))
                self._topic_fetches[cluster] = fetch
            await asyncio.shield(fetch)

    async def _fetch_topic_ids(self, cluster: str) -> None:
        self._topics_fetched_at[cluster] = time.monotonic()
        try:
            topics = await upstream_probing.fetch_topic_ids(
                self.config.clusters[cluster],
                self.security.upstream.get(cluster),
                self.connect_timeout,
            )
        except upstream_probing.ProbeFailed as error:
            log.debug("cluster %s: topic ids not fetched: %s", cluster, error)
            return
        self.topic_ids.replace(cluster, topics)

    async def _apply_active_file(self, choice: active_file.ActiveChoice) -> None:
        if choice.cluster not in self.switchboard.clusters:
            log.error(
                "active file names unknown cluster %r; valid: %s",
                choice.cluster,
                ", ".join(self.switchboard.clusters),
            )
            return
        try:
            await self.switch(
                choice.cluster, epoch=choice.epoch, drain_ms=None, source="active file"
            )
        except Exception as error:  # a bad file must never stop the gateway
            log.error("active file switch to %s refused: %s", choice.cluster, error)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener and the admin API, then start probes and the file watcher."""
        await self._start_listeners()
        await self._start_admin()
        self.listening = True
        for name in self.config.clusters:
            self._tasks.append(asyncio.create_task(self._probe_forever(name)))
        self._tasks.append(asyncio.create_task(self._keep_topic_ids()))
        self._tasks.append(asyncio.create_task(self._trim_heap_forever()))
        settings = self.config.gateway
        if settings.active_file is not None:
            self._tasks.append(
                asyncio.create_task(
                    active_file.follow(
                        settings.active_file,
                        self._apply_active_file,
                        interval=settings.timeouts.active_file_poll_ms / 1000,
                    )
                )
            )

    async def _start_listeners(self) -> None:
        loop = asyncio.get_running_loop()
        listener = self.config.gateway.listener
        ports = [(listener.port, None)] + [
            (listener.first_broker_port + slot, slot) for slot in range(listener.broker_port_count)
        ]
        for port, slot in ports:
            server = await loop.create_server(
                lambda port=port, slot=slot: ClientConnection(  # type: ignore[misc]
                    gateway=self, slot=slot, listener_port=port
                ),
                listener.host,
                port,
                reuse_address=True,
                backlog=1024,
            )
            self._servers.append(server)
        log.info(
            "listening on %s:%d (bootstrap) and broker ports %d-%d, advertised as %s",
            listener.host,
            listener.port,
            listener.first_broker_port,
            listener.first_broker_port + listener.broker_port_count - 1,
            listener.advertised_host,
        )

    async def _start_admin(self) -> None:
        admin = self.config.gateway.admin
        guard = admin_guarding.AdminGuard(admin, self.traffic.admin)
        app = admin_api.build_app(self, self._credentials, guard)
        self._admin_runner = web.AppRunner(app, access_log=None)
        await self._admin_runner.setup()
        self._admin_server = await admin_guarding.serve(
            self._admin_runner,
            guard,
            host=admin.host,
            port=admin.port,
            ssl_context=self.security.admin,
        )
        log.info("admin API on %s:%d", admin.host, admin.port)

    async def stop(self) -> None:
        self.listening = False
        for server in self._servers:
            server.close()
        lookups = [t for t in (self._fenced_members, self._rejoin_look) if t is not None]
        for task in [*self._tasks, *self._refreshing.values(), *self._topic_fetches.values(),
                     *lookups, *self._leaving]:  # fmt: skip
            task.cancel()
        self._dial_queue.close()
        connections = list(self.switchboard.connections)
        for connection in connections:
            connection.close("gateway shutting down")
        deadline = time.monotonic() + _SHUTDOWN_GRACE_SECONDS
        while self.switchboard.connections and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll of a plain set
            await asyncio.sleep(0.05)
        for connection in list(self.switchboard.connections):
            log.warning(
                "aborting connection of %s after the shutdown grace period", connection.peer
            )
            connection.abort()
        if self._admin_server is not None:
            self._admin_server.close()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
