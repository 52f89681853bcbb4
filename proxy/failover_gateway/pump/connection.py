"""One client connection and its upstream broker connection: the gateway's data path.

Why it exists: all socket I/O of the data path lives here, in ``asyncio.Protocol`` callbacks that
never await (as uvicorn does): bytes from the client are split into frames, their headers parsed
and recorded in the in-flight table, and the frames streamed upstream untouched; bytes from the
broker are matched to their request and either streamed back untouched or, for the few responses
that carry broker addresses, collected and rewritten. Flow control runs both ways: when one side's
write buffer passes the high-water mark, reading from the other side pauses.

A connection belongs to the cluster that was active when it was accepted. A switch moves it when
nothing is in flight on it (:meth:`ClientConnection.move`): the broker connection under it is
replaced by one to the new cluster, and the client keeps its socket. A connection that cannot
move is closed; the client reconnects and is routed to the new cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

from failover_gateway.codec import errors, headers, transactional
from failover_gateway.codec.primitives import Buffer
from failover_gateway.config import HostPort, LimitsConfig, TimeoutsConfig
from failover_gateway.pump import client_auth, client_deadlines, framing, inflight, response_bound
from failover_gateway.pump.dial_queue import DialQueue
from failover_gateway.pump.internal_requests import InternalRequests
from failover_gateway.pump.rejoin_gate import FETCH, GROUP_MEMBERSHIP, OFFSET_FETCH, RejoinGate
from failover_gateway.pump.write_fence import WriteFence
from failover_gateway.routing import (
    adopted_sequences,
    group_leaving,
    leader_epochs,
    producer_identity,
    request_policy,
    topic_ids,
    upstream_sasl,
)
from failover_gateway.routing.producer_ids import ProducerIdCodec
from failover_gateway.routing.topic_ids import TopicIdTable

log = logging.getLogger("failover_gateway.connection")
audit = logging.getLogger("failover_gateway.audit")
REAUTHENTICATE_AT = 0.8  # of the broker's session lifetime
TLS_HANDSHAKE_SECONDS = 10.0
# How long a request naming a topic id the pod does not know waits for the pod to look.
TOPIC_LEARN_SECONDS = 5.0

# Enough for every request header we see in practice plus Produce's acks; a longer header (a
# client id of kilobytes) makes the frame be collected whole instead, which is still correct.
_REQUEST_PREFIX_BYTES = 512
# Read whole by the rejoin gate (group membership, a rejoined consumer asking for its offsets).
_GATE_WATCHED = GROUP_MEMBERSHIP | {OFFSET_FETCH}
_GATE_READS = _GATE_WATCHED | {FETCH}
# Correlation id plus, for a v0 response header, the error code that opens a raw SASL exchange.
_RESPONSE_PREFIX_BYTES = 6
_CORRELATION_ID_BYTES = 4
# Requests a moving connection may leave unanswered by the old cluster: the gateway answers them
# itself (a fetch waiting for data, answered with none; ApiVersions, with the versions every
# cluster supports, which is what the old broker's answer would have been cut to; see
# ClientConnection.move).
_ANSWERED_AT_MOVE = frozenset({FETCH, client_auth.API_VERSIONS})
PRODUCE = request_policy.PRODUCE


class Gateway(Protocol):
    """What a connection needs from the running gateway (implemented by the server layer)."""

    @property
    def limits(self) -> LimitsConfig: ...

    @property
    def timeouts(self) -> TimeoutsConfig: ...

    @property
    def connect_timeout(self) -> float: ...

    @property
    def response_frame_timeout(self) -> float:
        """Seconds a broker may take over one begun response frame (0: no bound)."""
        ...

    def route(self, slot: int | None) -> tuple[str, list[HostPort]]: ...

    @property
    def dial_queue(self) -> DialQueue:
        """Where broker dials wait their turn (:mod:`.dial_queue`)."""
        ...

    async def dial(
        self, cluster: str, target: HostPort, factory: Callable[[], asyncio.BaseProtocol]
    ) -> tuple[asyncio.BaseTransport, int]:
        """Open an authenticated connection to a broker; returns it and the broker's SASL
        session lifetime in ms (0: none). A seam: protocol tests dial fake transports."""

    async def reauthenticate(self, cluster: str, exchange: upstream_sasl.Exchange) -> int:
        """KIP-368: authenticate again on a live connection; returns the new lifetime."""

    def client_authenticator(self) -> client_auth.ClientAuthenticator | None:
        """A fresh authenticator when the listener terminates SASL, else None."""

    def listener_tls(self) -> ssl.SSLContext | None:
        """The client listener's TLS context, or None for plaintext listeners."""

    def certificate_principal(self, transport: asyncio.BaseTransport) -> str | None:
        """The principal of a TLS client certificate (mapping rules applied), if any."""

    def api_versions_answer(self, cluster: str, version: int, correlation_id: int) -> bytes:
        """A framed ApiVersions answer the gateway gives itself (before authentication)."""

    def connection_opened(self, connection: ClientConnection) -> bool: ...

    def connection_closed(self, connection: ClientConnection) -> None: ...

    def count_slow_client(self, bound: client_deadlines.Bound) -> None:
        """A connection was closed for overrunning one of the client bounds."""

    def rewrite_response(
        self, cluster: str, request: inflight.PendingRequest, frame: Buffer
    ) -> Buffer: ...

    def count_request(self, cluster: str, api_key: int, size: int) -> None: ...

    def count_response(self, cluster: str, api_key: int, size: int) -> None: ...

    def producer_ids(self, cluster: str) -> ProducerIdCodec:
        """The producer ids ``cluster`` issued, as clients see them (:mod:`.producer_ids`)."""

    def count_stale_producer(self, cluster: str, api_key: int, *, adopted: bool) -> None:
        """A request carried a stale producer id: adopted, or refused (a transaction)."""

    @property
    def topic_ids(self) -> TopicIdTable:
        """What this pod knows of every cluster's topic ids (:mod:`.topic_ids`)."""

    async def learn_topic_ids(self, cluster: str) -> None:
        """Return once this pod has looked at ``cluster``'s topic ids since the call."""

    @property
    def write_fence(self) -> WriteFence:
        """Writes to the fenced cluster are held (a planned switchover catching up)."""
        ...

    @property
    def rejoin_gate(self) -> RejoinGate:
        """Fetches of group members wait for their rejoin after a planned switch."""
        ...

    @property
    def left_members(self) -> group_leaving.LeftMembers:
        """The group members this pod left at switches (:mod:`..routing.group_leaving`)."""
        ...

    def leave_groups_apart(self, cluster: str, members: Mapping[str, str]) -> None:
        """Leave ``members`` (group -> member id) on ``cluster`` through connections of the
        gateway's own, in the background."""

    @property
    def last_switch_at(self) -> float:
        """When this pod last switched (event loop time; minus infinity before any switch)."""
        ...

    async def transaction_open(self, cluster: str, transactional_id: str) -> bool:
        """Whether ``cluster`` says ``transactional_id`` has a transaction open now (False when
        it cannot say): its writes pass the fence, so that it can end."""
        ...


class _Upstream(asyncio.BufferedProtocol):
    """The broker side; every event is handed to the owning client connection. Buffered: a
    response being collected is read straight into its frame (:mod:`.framing`)."""

    def __init__(self, owner: ClientConnection) -> None:
        self._owner = owner

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._owner.response_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self._owner.response_bytes_read(nbytes)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.upstream_lost(exc)

    def pause_writing(self) -> None:
        self._owner.pause_reading("upstream-backpressure")

    def resume_writing(self) -> None:
        self._owner.resume_reading("upstream-backpressure")


class _Detached(asyncio.Protocol):
    """A broker connection left behind by a move: whatever it still says is dropped."""


class ClientConnection(asyncio.BufferedProtocol):
    """A client socket accepted on a gateway port, and the broker connection serving it.

    Buffered: a request being collected (an idempotent producer's Produce, rewritten) is read
    straight into its frame (:mod:`.framing`); :meth:`data_received` takes bytes in hand."""

    def __init__(self, *, gateway: Gateway, slot: int | None, listener_port: int) -> None:
        self._gateway = gateway
        self.slot = slot
        self.listener_port = listener_port
        self.cluster = ""
        self.peer = "?"
        self._host = "?"
        self.opened_at = time.monotonic()
        self.closing_reason: str | None = None
        self.in_flight = inflight.InFlightTable()
        self._transport: asyncio.Transport | None = None
        self._upstream: asyncio.Transport | None = None
        self._upstream_address: HostPort | None = None
        self._early: list[Buffer] = []
        self._early_bytes = 0
        # Everything in _early is ApiVersions, which means the same to every cluster: while
        # the first broker is dialled a switch may route the connection elsewhere (reroute).
        self._early_only_api_versions = True
        # The client has had bytes from the gateway: closing now is not a refusal (see close).
        self.answered = False
        self._dial_generation = 0  # a dial started before the latest is dropped when it ends
        self._dial_started = 0  # the generation whose dial has begun (a queue entry runs once)
        self._dial_urgent = True
        self._pause_reasons: set[str] = set()
        self._buffered_request: inflight.PendingRequest | None = None
        self._inspected: request_policy.InspectedRequest | None = None
        # SaslHandshake v0: (correlation id, rounds) awaiting the handshake answer, then the
        # server tokens still to pass through raw before Kafka framing resumes.
        self._sasl_handshake: tuple[int, int] | None = None
        self._raw_sasl_rounds = 0
        self.principal = "ANONYMOUS"
        self._auth: client_auth.ClientAuthenticator | None = None
        self._authenticated = True
        self._targets: list[HostPort] = []
        self._internal = InternalRequests()
        self._stale_producers: set[int] = set()  # logged once per connection
        # What the cluster acknowledged under adopted producer ids; made at the first such write.
        self._acknowledged: adopted_sequences.AcknowledgedSequences | None = None
        self._adopted_since: float | None = None
        # The client sent SASL to the broker itself: that login belongs to the broker, so the
        # connection cannot move to another cluster.
        self._client_sasl_upstream = False
        self._held: bytearray | None = None  # bytes that came before TLS was in place
        # Requests that wait, in order, behind one naming a topic id the pod must look up, or
        # behind a write held by the write fence.
        self._parked: deque[bytes | bytearray] | None = None
        self._park_reason = ""
        self._reauth: asyncio.TimerHandle | None = None
        # The client reads slower than the broker sends: the gateway holds the broker back, so
        # an unfinished response frame is not the broker's doing.
        self._client_slow = False
        # Set once accepted under the connection limit (:mod:`.client_deadlines`); one timer.
        self.deadlines: client_deadlines.ClientDeadlines | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_at = 0.0
        # Group -> member id of this client's classic-protocol memberships seen here, and the
        # groups of its JoinGroup requests awaiting an answer, by correlation id.
        self._group_members: dict[str, str] = {}
        self._joins: dict[int, str] = {}
        self._frames_seen = 0
        limits = gateway.limits
        self._requests = framing.FrameSplitter(
            classify=self._classify_request,
            sink=self._send_upstream,
            on_frame=self._whole_request,
            max_frame_bytes=limits.max_frame_bytes,
            prefix_bytes=_REQUEST_PREFIX_BYTES,
        )
        self._responses = framing.FrameSplitter(
            classify=self._classify_response,
            sink=self._send_client,
            on_frame=self._whole_response,
            on_pass_end=self._send_local_answers,
            max_frame_bytes=limits.max_frame_bytes,
            prefix_bytes=_RESPONSE_PREFIX_BYTES,
        )
        self._frame_bound = response_bound.ResponseFrameBound(
            self._responses,
            gateway.response_frame_timeout,
            overdue=self._response_frame_overdue,
            held_back=lambda: self._client_slow,
        )

    # -- client side -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if not self._gateway.connection_opened(self):
            # Reset (nothing answered yet), as a refused connect looks; the gateway logs a summary.
            self.close("connection limit reached", logged=False)
            return
        self._start_deadlines()
        context = self._gateway.listener_tls()
        if context is None:
            self._accepted(transport)
            return
        # TLS is started here, not by the server, so that a refused handshake (expired or
        # unknown client certificate) can be logged with the client's address. Until the
        # handshake is over, bytes that reach data_received are held (:attr:`_held`): uvloop
        # starts reading after connection_made whatever it asked, so the client's hello may
        # come before start_tls has put its protocol in place (it is handed to that protocol),
        # and with TLS 1.3 the first request may be decrypted before start_tls has returned
        # the secure transport (it is replayed once that transport is known).
        transport.pause_reading()
        self._held = bytearray()
        asyncio.get_running_loop().create_task(self._start_tls(transport, context))

    async def _start_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        starting = loop.create_task(
            loop.start_tls(
                transport, self, context, server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_SECONDS,
            )
        )  # fmt: skip
        await asyncio.sleep(0)  # start_tls has set its protocol and queued its connection_made
        loop.call_soon(self._hand_early_bytes_to_tls, transport)
        try:
            secured = await starting
        except (ssl.SSLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", None) or type(error).__name__
            audit.warning("TLS handshake refused client=%s reason=%s", self.peer, reason)
            self.closing_reason = f"TLS handshake refused: {reason}"
            transport.abort()
            self._gateway.connection_closed(self)
            return
        if secured is None or self.closing_reason is not None:
            return
        self._accepted(secured)

    def _hand_early_bytes_to_tls(self, transport: asyncio.Transport) -> None:
        early, self._held = self._held, bytearray()
        if not early or self.closing_reason is not None:
            return
        # Both loops' SSL protocols are buffered (uvloop's without subclassing asyncio's).
        tls = cast(asyncio.BufferedProtocol, transport.get_protocol())
        view = memoryview(early)
        while view:
            buffer = memoryview(tls.get_buffer(len(view)))
            taken = min(len(buffer), len(view))
            buffer[:taken] = view[:taken]
            tls.buffer_updated(taken)
            view = view[taken:]

    def _accepted(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        high = self._gateway.limits.high_water_bytes
        transport.set_write_buffer_limits(high=high, low=high // 4)
        self.principal = self._gateway.certificate_principal(transport) or self.principal
        self._auth = self._gateway.client_authenticator()
        self._authenticated = self._auth is None
        if self._auth is not None and self.deadlines is not None:
            self.deadlines.expect_authentication()
            self._arm_deadline()
        self.cluster, self._targets = self._gateway.route(self.slot)
        audit.info(
            "open client=%s principal=%s port=%d cluster=%s",
            self.peer,
            self.principal,
            self.listener_port,
            self.cluster,
        )
        if self._authenticated:
            self._start_upstream()
        held, self._held = self._held, None
        if held:
            self.data_received(bytes(held))

    def _start_upstream(self, *, urgent: bool = True) -> None:
        """Queue a dial of the broker side (:mod:`.dial_queue`): ``urgent`` when a client
        waits on it (a new connection), not for a connection at rest moving at a switch."""
        self._dial_generation += 1
        self._dial_urgent = urgent
        self._gateway.dial_queue.submit(self._dial_upstream, self._dial_generation, urgent=urgent)

    def _hurry_dial(self) -> None:
        """A request arrived for a broker not dialled yet: let its dial go first."""
        if not self._dial_urgent and self._dial_started != self._dial_generation:
            self._dial_urgent = True
            self._gateway.dial_queue.submit(self._dial_upstream, self._dial_generation, urgent=True)

    async def _dial_upstream(self, generation: int) -> None:
        """The queue's turn for dial ``generation``: dropped when overtaken or already begun."""
        if generation != self._dial_generation or self._dial_started == generation:
            return
        self._dial_started = generation
        await self._connect_upstream(self._targets, generation)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._held is not None:
            return framing.SCRATCH  # held as bytes in buffer_updated
        return self._requests.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._held is not None:
            self.data_received(bytes(framing.SCRATCH[:nbytes]))
            return
        try:
            self._requests.buffer_updated(nbytes)
        except (framing.FrameError, request_policy.RequestRefused) as error:
            self.close(f"bad request from client: {error}")
            return
        self._frames_read()

    def data_received(self, data: bytes) -> None:
        """Bytes from the client in hand (held before TLS, or a test's)."""
        if self._held is not None:
            self._held += data
            if len(self._held) > self._gateway.limits.max_frame_bytes:
                self.close("client sent more than a frame's worth before its TLS handshake")
            return
        try:
            self._requests.feed(data)
        except (framing.FrameError, request_policy.RequestRefused) as error:
            self.close(f"bad request from client: {error}")
            return
        self._frames_read()

    def eof_received(self) -> bool | None:
        self.close(self._unfinished_response() or "client closed the connection")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing_reason is None:
            unfinished = self._unfinished_response()
            if unfinished is not None:
                self.close(unfinished)
            else:
                self.closing_reason = f"client connection lost: {exc}" if exc else "client left"
        self._stop_deadlines()
        if self._upstream is not None:
            self._upstream.close()
        self._gateway.connection_closed(self)
        self._release()

    def _release(self) -> None:
        """The client socket is gone, so no more bytes come from either side (the broker's
        transport was closed with it): break the reference cycles through the splitters' and
        the frame bound's callbacks (its timer is cancelled). Freed by reference counting, a
        closed connection's objects can be reused by the connections that open next; left to
        the cycle collector they lingered, long-lived by then, until its next full run (once
        the objects new since the last one reach a quarter of all long-lived objects). One
        gateway, 2,000 idle connections, a broker killed and restarted: the full runs found
        about 52,000 objects per restart before, about 1,000 after."""
        self._requests.release()
        self._responses.release()
        self._frame_bound.release()

    def _unfinished_response(self) -> str | None:
        """Why the client left, when the broker is to blame: it had begun a response and not
        finished it (a slow or stalled broker; the client's request timeout ran out)."""
        if self._upstream is None or self._responses.idle or self._client_slow:
            return None
        return (
            f"{self._broker} left a response frame unfinished ({self._missing_bytes()}) "
            "until the client gave up"
        )

    def pause_writing(self) -> None:
        self._client_slow = True
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        self._client_slow = False
        if self._upstream is not None and not self._upstream.is_closing():
            self._upstream.resume_reading()

    def _classify_request(self, prefix: memoryview, frame_size: int) -> framing.Decision:
        if not self._authenticated or self._terminates_sasl(prefix):
            return framing.Decision.BUFFER  # handled here, whole, never forwarded
        if self._raw_sasl_rounds:
            return framing.Decision.PASS  # a raw SASL token: no Kafka header to read
        if self._parked is not None:
            return framing.Decision.BUFFER  # waits, whole, behind the parked request
        request = request_policy.inspect_request(prefix, complete=len(prefix) == frame_size)
        # Kept for _whole_request: the frame this decision buffers is the next one it gets.
        self._inspected = request
        if request is None or request.answer_locally or request.held:
            return framing.Decision.BUFFER
        if self._gateway.write_fence.holds(self.cluster, request.api_key):
            return framing.Decision.BUFFER
        if request.api_key in _GATE_WATCHED or (
            request.api_key == FETCH and self._gateway.rejoin_gate.armed
        ):
            return framing.Decision.BUFFER  # small requests the rejoin gate reads whole
        self._inspected = None
        self._record(request, frame_size)
        return framing.Decision.PASS

    def _terminates_sasl(self, prefix: memoryview) -> bool:
        """Client SASL is answered here when the listener does SASL, also after login."""
        return (
            self._auth is not None
            and len(prefix) >= 2
            and int.from_bytes(prefix[:2], "big")
            in (client_auth.SASL_HANDSHAKE, client_auth.SASL_AUTHENTICATE)
        )

    def _whole_request(self, frame: bytes | bytearray) -> None:
        inspected, self._inspected = self._inspected, None
        if self._parked is not None:
            self._parked.append(frame)
            return
        self._handle_request(frame, may_wait=True, inspected=inspected)

    def _handle_request(
        self,
        frame: bytes | bytearray,
        *,
        may_wait: bool,
        admitted: bool = False,
        inspected: request_policy.InspectedRequest | None = None,
    ) -> None:
        """``inspected``: what the splitter's look at this frame's prefix found, if anything
        (the same as a look at the whole frame would; read once, not twice)."""
        if not self._authenticated or self._terminates_sasl(memoryview(frame)[4:6]):
            self._authenticate(frame)
            return
        request = inspected or request_policy.inspect_request(memoryview(frame)[4:], complete=True)
        assert request is not None  # complete frames always parse or raise
        if request.answer_locally:
            self._answer_locally(request, request_policy.unsupported_api_versions_answer(
                request.correlation_id
            ))  # fmt: skip
            return
        if not admitted and self._gateway.write_fence.holds(self.cluster, request.api_key):
            self._hold_write(frame)
            return
        if request.api_key in _GATE_READS and self._held_for_rejoin(request.api_key, frame):
            return
        if request.api_key in group_leaving.TRACKED:
            frame = self._membership(request, frame)
            if not frame:
                return  # answered: a member the gateway left at a switch must rejoin
        forwarded: Buffer = frame
        adopted = None
        if request.held:
            outcome = self._translate_ids(request, frame, may_wait=may_wait)
            if outcome is None:
                return  # parked until the pod has looked up a topic id
            if outcome.answer is not None:
                if request.expects_response:
                    self._answer_locally(request, outcome.answer)
                return
            forwarded = outcome.frame
            if outcome.adopted and request.api_key == PRODUCE and self._watching_adopted():
                adopted = adopted_sequences.sent_batches(forwarded) or None
        self._record(request, len(forwarded) - 4, adopted)
        self._send_upstream(forwarded)

    def _held_for_rejoin(self, api_key: int, frame: bytes | bytearray) -> bool:
        """Tell the rejoin gate of group traffic; park a Fetch it holds (:mod:`.rejoin_gate`)."""
        gate = self._gateway.rejoin_gate
        if api_key == FETCH and not gate.armed:
            return False
        try:
            client_id = headers.parse_request_header(memoryview(frame)[4:]).client_id
        except errors.CodecError as error:
            raise request_policy.RequestRefused(f"malformed request header: {error}") from error
        client = (self._host, client_id)
        if api_key in GROUP_MEMBERSHIP:
            gate.saw_member(self.cluster, client)
        elif api_key == OFFSET_FETCH:
            gate.rejoined(client)
        elif gate.holds(client, self.cluster):
            self._park(frame, "rejoin", lambda: gate.wait(client))
            return True
        return False

    def _membership(
        self, request: request_policy.InspectedRequest, frame: bytes | bytearray
    ) -> bytes | bytearray:
        """Note the member of a JoinGroup, SyncGroup or Heartbeat (to leave it at a switch); the
        frame to forward, or b"" when the request was answered here because its member is one
        this gateway left (:mod:`..routing.group_leaving`)."""
        api_key = request.api_key
        try:
            member = group_leaving.membership(api_key, frame)
            if (
                member is not None
                and member[1]
                and self._gateway.left_members.gone(*member, self._now())
            ):
                if api_key != group_leaving.JOIN_GROUP:
                    if request.expects_response:
                        self._answer_locally(request, self._rejoin_answer(request))
                    return b""
                frame, member = group_leaving.without_member_id(frame), (member[0], "")
        except errors.CodecError as error:
            raise request_policy.RequestRefused(f"malformed group request: {error}") from error
        if member is None:
            return frame
        group, member_id = member
        if member_id:
            self._group_members[group] = member_id
        if api_key == group_leaving.JOIN_GROUP:  # its answer may name a member: read it
            self._joins[request.correlation_id] = group
        return frame

    def _joined(self, request: inflight.PendingRequest, frame: bytes | bytearray) -> None:
        group = self._joins.pop(request.correlation_id, None)
        if group is None:
            return
        try:
            member_id = group_leaving.joined_member(request.api_version, frame)
        except errors.CodecError as error:
            raise errors.MalformedFrame(f"malformed JoinGroup response: {error}") from error
        if member_id:
            self._group_members[group] = member_id

    @staticmethod
    def _rejoin_answer(request: request_policy.InspectedRequest | inflight.PendingRequest) -> bytes:
        return group_leaving.rejoin_answer_to(
            request.api_key, request.api_version, request.correlation_id
        )

    def _just_switched(self) -> bool:
        return self._now() - self._gateway.last_switch_at < group_leaving.SWITCH_GRACE_SECONDS

    def _member_unknown(self, request: inflight.PendingRequest, frame: bytes | bytearray) -> bool:
        try:
            return group_leaving.member_unknown(request.api_key, request.api_version, frame)
        except errors.CodecError as error:
            raise errors.MalformedFrame(
                f"malformed api key {request.api_key} response: {error}"
            ) from error

    def leave_groups(self) -> int:
        """At a switch: tell the old coordinator this client's dynamic members left their groups
        (:mod:`..routing.group_leaving`); how many members were left.

        On this connection's own broker connection when nothing is in flight there; otherwise on
        connections of the gateway's own, since a broker reads no request behind one it has not
        answered (a JoinGroup can wait seconds for a rebalance) and this one is about to go."""
        members, self._group_members = self._group_members, {}
        self._joins.clear()
        if not members:
            return 0
        left = self._gateway.left_members
        for group, member_id in members.items():
            left.left(group, member_id, self._now())
        upstream = self._upstream
        if (
            upstream is None
            or upstream.is_closing()
            or len(self.in_flight)
            or not self._requests.at_frame_boundary
        ):
            self._gateway.leave_groups_apart(self.cluster, members)
            return len(members)
        for group, member_id in members.items():
            upstream.write(group_leaving.leave_request(group, member_id))
            log.info(
                "client %s (%s): left group %s as member %s on %s at the switch",
                self.peer,
                self.principal,
                group,
                member_id,
                self.cluster,
            )
        return len(members)

    def _hold_write(self, frame: bytes | bytearray) -> None:
        """A fenced write waits for the fence to lift, unless it belongs to a transaction that
        was already open on the fenced cluster: that one goes on, so the transaction can end
        (the switchover waits until none is open). Asked of the cluster, not remembered here:
        a producer's transaction requests and its Produce may pass through different pods."""
        try:
            txn = transactional.transactional_id(memoryview(frame)[4:])
        except errors.CodecError as error:
            raise request_policy.RequestRefused(
                f"malformed transactional write: {error}"
            ) from error
        fence = self._gateway.write_fence
        if txn is None:
            self._park(frame, "write-fence", fence.wait_lifted)
            return
        cluster = self.cluster
        self._park(frame, "write-fence", lambda: self._transaction_open_or_lifted(cluster, txn))

    async def _transaction_open_or_lifted(self, cluster: str, txn: str) -> bool:
        """True as soon as ``cluster`` says ``txn``'s transaction is open (admit the write);
        otherwise False once the fence lifts."""
        check = asyncio.ensure_future(self._gateway.transaction_open(cluster, txn))
        lifted = asyncio.ensure_future(self._gateway.write_fence.wait_lifted())
        try:
            done, _ = await asyncio.wait({check, lifted}, return_when=asyncio.FIRST_COMPLETED)
            if check in done and check.exception() is None and check.result():
                return True
            await lifted
            return False
        finally:
            check.cancel()
            lifted.cancel()

    def _translate_ids(
        self, request: request_policy.InspectedRequest, frame: bytes | bytearray, *, may_wait: bool
    ) -> producer_identity.RequestOutcome | None:
        """The request with client-facing ids made the cluster's and fencing leader epochs
        emptied (:mod:`.leader_epochs`), or None when it was parked."""
        codec = self._gateway.producer_ids(self.cluster)
        try:
            if topic_ids.carries_topic_ids("request", request.api_key, request.api_version):
                missed: list[uuid.UUID] = []
                translated = topic_ids.translate_request(
                    request.api_key, frame, self._gateway.topic_ids, self.cluster, missed
                )
                if missed and may_wait:
                    self._park(frame, "learning-topic-ids", self._learn_topic_ids)
                    return None
                frame = (
                    translated if isinstance(translated, bytes | bytearray) else bytes(translated)
                )
            if leader_epochs.carries_leader_epochs("request", request.api_key, request.api_version):
                frame = leader_epochs.hide_in_request(request.api_key, frame)
            if request.api_key not in producer_identity.REQUESTS_WITH_PRODUCER_IDS:
                return producer_identity.RequestOutcome(frame)
            outcome = producer_identity.translate_request(request.api_key, frame, codec)
        except errors.CodecError as error:
            raise request_policy.RequestRefused(
                f"malformed api key {request.api_key} v{request.api_version} request: {error}"
            ) from error
        stale = outcome.stale_id
        if stale is not None and stale not in self._stale_producers:
            self._stale_producers.add(stale)
            self._gateway.count_stale_producer(
                self.cluster, request.api_key, adopted=outcome.adopted
            )
            log.info(
                "client %s (%s): producer id %d is not %s's of this generation: %s",
                self.peer,
                self.principal,
                stale,
                self.cluster,
                "written under its adopted id" if outcome.adopted
                else f"api key {request.api_key} refused, the transaction must be aborted",
            )  # fmt: skip
        return outcome

    def _park(
        self,
        frame: bytes | bytearray,
        reason: str,
        until: Callable[[], Awaitable[bool | None]],
    ) -> None:
        """Hold ``frame`` and every later request until ``until`` returns: the pod looking up a
        topic id (:mod:`..routing.topic_ids` says why an unknown id is not passed on at once), or
        the write fence lifting (:mod:`.write_fence`), or a fenced write's transaction found open
        (``until`` returns True: ``frame`` passes the fence). Reading from the client pauses
        meanwhile."""
        self._parked, self._park_reason = deque([frame]), reason
        self.pause_reading(reason)
        asyncio.get_running_loop().create_task(self._unpark(reason, until))

    async def _learn_topic_ids(self) -> None:
        try:
            await asyncio.wait_for(self._gateway.learn_topic_ids(self.cluster), TOPIC_LEARN_SECONDS)
        except Exception as error:
            log.debug("client %s: topic ids of %s not learned: %r", self.peer, self.cluster, error)

    async def _unpark(self, reason: str, until: Callable[[], Awaitable[bool | None]]) -> None:
        admitted = bool(await until())
        parked, self._parked = self._parked or deque(), None
        first = True
        while parked and self.closing_reason is None:
            frame = parked.popleft()
            if self._parked is not None:  # a later request is waiting for a look of its own
                self._parked.append(frame)
                continue
            try:
                self._handle_request(frame, may_wait=not first, admitted=first and admitted)
            except request_policy.RequestRefused as error:
                self.close(f"bad request from client: {error}")
                return
            first = False
        if self._parked is None or self._park_reason != reason:
            self.resume_reading(reason)  # a request parked again keeps its own reason's pause

    def _authenticate(self, frame: bytes | bytearray) -> None:
        auth = self._auth
        assert auth is not None
        step: client_auth.AuthStep | None
        if auth.raw_tokens:
            step = auth.raw_token(bytes(frame[4:]))
            auth.raw_tokens = False
        else:
            step = self._authentication_request(auth, memoryview(frame)[4:])
            if step is None:
                return
        if step.answer:
            self._send_client(step.answer)
        if step.failure is not None:
            audit.warning("authentication failed client=%s reason=%s", self.peer, step.failure)
            self.close(f"client authentication failed: {step.failure}")
        elif step.principal is not None and not self._authenticated:
            self.principal, self._authenticated = step.principal, True
            if self.deadlines is not None:
                self.deadlines.authenticated()
            audit.info(
                "authenticated client=%s principal=%s mechanism=%s",
                self.peer,
                self.principal,
                auth.mechanism,
            )
            self._start_upstream()

    def _authentication_request(
        self, auth: client_auth.ClientAuthenticator, body: memoryview
    ) -> client_auth.AuthStep | None:
        try:
            header = headers.parse_request_header(body)
            payload = body[header.body_offset :]
            if header.api_key == client_auth.SASL_HANDSHAKE:
                return auth.handshake(header.api_version, header.correlation_id, payload)
            if header.api_key == client_auth.SASL_AUTHENTICATE:
                return auth.authenticate(header.api_version, header.correlation_id, payload)
        except errors.CodecError as error:  # closes this connection alone (buffer_updated)
            raise request_policy.RequestRefused(f"malformed SASL-phase request: {error}") from error
        if header.api_key == client_auth.API_VERSIONS:
            self._send_client(
                self._gateway.api_versions_answer(
                    self.cluster, header.api_version, header.correlation_id
                )
            )
            return None
        raise request_policy.RequestRefused(client_auth.refusal(header.api_key))

    def _answer_locally(self, request: request_policy.InspectedRequest, answer: bytes) -> None:
        """Send ``answer`` once every earlier request has been answered (never overtaking)."""
        self.in_flight.answer_locally(
            request.correlation_id, request.api_key, request.api_version, answer
        )
        self._send_local_answers()

    def _send_local_answers(self) -> None:
        if self._responses.idle:
            for answer in self.in_flight.take_local_answers():
                self._send_client(answer)

    def _record(
        self,
        request: request_policy.InspectedRequest,
        frame_size: int,
        adopted: Mapping[adopted_sequences.Partition, adopted_sequences.SentBatch] | None = None,
    ) -> None:
        self._gateway.count_request(self.cluster, request.api_key, frame_size)
        if self._upstream is None and request.api_key != client_auth.API_VERSIONS:
            self._early_only_api_versions = False
        if request.api_key in (client_auth.SASL_HANDSHAKE, client_auth.SASL_AUTHENTICATE):
            self._client_sasl_upstream = True
        if request.raw_sasl_rounds:
            self._sasl_handshake = (request.correlation_id, request.raw_sasl_rounds)
        if request.expects_response:
            self.in_flight.sent(
                request.correlation_id, request.api_key, request.api_version, adopted=adopted
            )
            if len(self.in_flight) >= self._gateway.limits.max_in_flight:
                self.pause_reading("in-flight-limit")

    def _send_upstream(self, chunk: Buffer) -> None:
        if self._upstream is not None:
            self._upstream.write(chunk)
            return
        if not self._early:
            self._hurry_dial()
        self._early.append(chunk)
        self._early_bytes += len(chunk)
        if self._early_bytes >= self._gateway.limits.high_water_bytes:
            self.pause_reading("upstream-connecting")

    # -- upstream side ---------------------------------------------------------------------

    async def _connect_upstream(self, targets: list[HostPort], generation: int) -> None:
        """Dial ``targets`` in turn; a dial overtaken by a newer one (the connection was
        rerouted by a switch meanwhile) ends without touching the connection."""
        cluster = self.cluster
        failures = []
        for target in targets:
            if self.closing_reason is not None or generation != self._dial_generation:
                return
            try:
                transport, lifetime_ms = await asyncio.wait_for(
                    self._gateway.dial(cluster, target, lambda: _Upstream(self)),
                    self._gateway.connect_timeout,
                )
            except (OSError, TimeoutError) as error:
                failures.append(f"{target}: {error or 'timed out'}")
                continue
            if generation != self._dial_generation:
                transport.set_protocol(_Detached())
                transport.close()
                return
            self._upstream_ready(transport, target)
            self._schedule_reauthentication(lifetime_ms)
            return
        if generation == self._dial_generation:
            self.close(
                f"no broker of cluster {cluster} reachable ({'; '.join(failures)})", reset=True
            )

    def _upstream_ready(self, transport: asyncio.BaseTransport, target: HostPort) -> None:
        transport = cast(asyncio.Transport, transport)
        if self.closing_reason is not None:
            transport.close()
            return
        self._upstream = transport
        self._upstream_address = target
        high = self._gateway.limits.high_water_bytes
        transport.set_write_buffer_limits(high=high, low=high // 4)
        if self._early:
            transport.writelines(self._early)
            self._early.clear()
            self._early_bytes = 0
        self._early_only_api_versions = True
        self.resume_reading("upstream-connecting")
        log.debug(
            "client %s on port %d -> %s (%s)", self.peer, self.listener_port, target, self.cluster
        )

    def _schedule_reauthentication(self, lifetime_ms: int) -> None:
        if lifetime_ms > 0 and self.closing_reason is None:
            delay = lifetime_ms * REAUTHENTICATE_AT / 1000
            self._reauth = asyncio.get_running_loop().call_later(delay, self._reauthenticate)

    def _reauthenticate(self) -> None:
        async def run() -> None:
            try:
                lifetime = await self._gateway.reauthenticate(self.cluster, self.exchange)
            except Exception as error:  # the broker will close us at expiry: say why
                log.warning(
                    "re-authentication to %s failed for client %s: %s",
                    self._upstream_address,
                    self.peer,
                    error,
                )
                return
            self._schedule_reauthentication(lifetime)

        asyncio.get_running_loop().create_task(run())

    async def exchange(self, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any]:
        """A request of the gateway's own on this live upstream connection (KIP-368)."""
        future = self._internal.prepare(api_key, version, body)
        self._send_internal_when_possible()
        return await asyncio.wait_for(future, self._gateway.connect_timeout)

    def _send_internal_when_possible(self) -> None:
        if self.closing_reason is not None or self._upstream is None:
            self._internal.fail_all(ConnectionError("connection closed"))
            return
        if not self._requests.at_frame_boundary:
            asyncio.get_running_loop().call_later(0.005, self._send_internal_when_possible)
            return
        for request in self._internal.take_ready():
            self.in_flight.sent(
                request.correlation_id,
                request.api_key,
                request.api_version,
                on_answer=request.answer,
            )
            self._upstream.write(request.frame)

    def response_buffer(self) -> memoryview:
        return self._responses.get_buffer()

    def response_bytes_read(self, nbytes: int) -> None:
        try:
            self._responses.buffer_updated(nbytes)
        except (
            framing.FrameError,
            inflight.OutOfSyncResponse,
            request_policy.RequestRefused,
            errors.CodecError,
        ) as error:
            self.close(f"{self._broker} sent a bad response: {error}")
            return
        self._frame_bound.bytes_read()

    def upstream_lost(self, exc: Exception | None) -> None:
        midway = "" if self._responses.idle else f" mid-frame ({self._missing_bytes()})"
        self._upstream = None
        self.close(f"{self._broker} closed the connection{midway}" + (f": {exc}" if exc else ""))

    @property
    def _broker(self) -> str:
        """The broker serving this connection, for log lines: cluster and address."""
        return f"broker {self.cluster} {self._upstream_address}"

    def _missing_bytes(self) -> str:
        missing = self._responses.missing
        return "its size incomplete" if missing is None else f"{missing} bytes still to come"

    def _response_frame_overdue(self) -> None:
        timeout_ms = round(self._frame_bound.seconds * 1000)
        self.close(
            f"{self._broker} stalled: a response frame unfinished after {timeout_ms} ms "
            f"({self._missing_bytes()}; timeouts.responseFrameMs)"
        )

    def _classify_response(self, prefix: memoryview, frame_size: int) -> framing.Decision:
        if self._raw_sasl_rounds:
            self._raw_sasl_rounds -= 1
            return framing.Decision.PASS
        if frame_size < _CORRELATION_ID_BYTES:
            raise framing.FrameError(
                f"frame of {frame_size} bytes has no room for a response header"
            )
        correlation_id = int.from_bytes(prefix[:4], "big", signed=True)
        for answer in self.in_flight.take_local_answers():  # earlier requests, answered here
            self._send_client(answer)
        request = self.in_flight.answered(correlation_id)
        if request.on_answer is not None:
            self._buffered_request = request
            return framing.Decision.BUFFER
        if self._sasl_handshake is not None and self._sasl_handshake[0] == correlation_id:
            self._start_raw_sasl(prefix)
        self._answered()
        self._gateway.count_response(self.cluster, request.api_key, frame_size)
        if (
            request.adopted is not None
            or request_policy.response_needs_rewrite(request.api_key, request.api_version)
            or (request.api_key == group_leaving.JOIN_GROUP and correlation_id in self._joins)
            or (request.api_key in group_leaving.REJOIN_ANSWERED and self._just_switched())
        ):
            self._buffered_request = request
            return framing.Decision.BUFFER
        return framing.Decision.PASS

    def _start_raw_sasl(self, prefix: memoryview) -> None:
        assert self._sasl_handshake is not None
        rounds = self._sasl_handshake[1]
        self._sasl_handshake = None
        error_code = int.from_bytes(prefix[4:6], "big", signed=True) if len(prefix) >= 6 else -1
        if error_code == 0:
            self._raw_sasl_rounds = rounds

    def _whole_response(self, frame: bytes | bytearray) -> None:
        request = self._buffered_request
        assert request is not None
        self._buffered_request = None
        if request.on_answer is not None:
            request.on_answer(bytes(frame))
        else:
            if request.api_key == group_leaving.JOIN_GROUP:
                self._joined(request, frame)
            elif request.api_key in group_leaving.REJOIN_ANSWERED and self._member_unknown(
                request, frame
            ):
                frame = bytearray(self._rejoin_answer(request))
            elif request.adopted is not None:
                frame = self._settle_adopted(request, frame)
            self._send_client(self._rewritten(request, frame))
        self._send_local_answers()

    def _watching_adopted(self) -> bool:
        """Whether this connection's writes under adopted ids are still read against their
        answers: for :data:`~..routing.adopted_sequences.WATCH_SECONDS` from its first such write
        since it opened or moved."""
        now = time.monotonic()
        if self._adopted_since is None:
            self._adopted_since = now
        return now - self._adopted_since < adopted_sequences.WATCH_SECONDS

    def _settle_adopted(
        self, request: inflight.PendingRequest, frame: bytes | bytearray
    ) -> bytearray:
        """Read a Produce answer under adopted producer ids (:mod:`..routing.adopted_sequences`):
        a batch behind what the cluster acknowledged is told UNKNOWN_PRODUCER_ID."""
        assert request.adopted is not None
        frame = frame if isinstance(frame, bytearray) else bytearray(frame)
        if self._acknowledged is None:
            self._acknowledged = adopted_sequences.AcknowledgedSequences()
        try:
            patched = self._acknowledged.settle(frame, request.api_version, request.adopted)
        except errors.CodecError as error:
            raise errors.MalformedFrame(
                f"malformed Produce v{request.api_version} response: {error}"
            ) from error
        if patched:
            log.info(
                "client %s (%s): %d batch(es) under an adopted producer id are behind the "
                "sequence %s acknowledged first: answered UNKNOWN_PRODUCER_ID so the producer "
                "renumbers them",
                self.peer,
                self.principal,
                patched,
                self.cluster,
            )
        return frame

    def _rewritten(self, request: inflight.PendingRequest, frame: bytes | bytearray) -> Buffer:
        try:
            return self._gateway.rewrite_response(self.cluster, request, frame)
        except errors.CodecError as error:
            raise errors.MalformedFrame(
                f"malformed api key {request.api_key} v{request.api_version} response: {error}"
            ) from error

    def _answered(self) -> None:
        if len(self.in_flight) < self._gateway.limits.max_in_flight:
            self.resume_reading("in-flight-limit")

    def _send_client(self, chunk: Buffer) -> None:
        if self._transport is not None:
            self._transport.write(chunk)
            self.answered = True

    # -- slow and half-open clients ------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _start_deadlines(self) -> None:
        timeouts = self._gateway.timeouts
        self.deadlines = client_deadlines.ClientDeadlines(
            opened_at=self._now(),
            first_request=timeouts.client_first_request_ms / 1000,
            frame=timeouts.client_frame_ms / 1000,
            authentication=timeouts.client_authentication_ms / 1000,
        )
        self._arm_deadline()

    def _frames_read(self) -> None:
        """After a read: a frame that ended stops its clock, a frame begun starts one."""
        deadlines = self.deadlines
        if deadlines is None:
            return
        splitter = self._requests
        if splitter.completed != self._frames_seen:
            self._frames_seen = splitter.completed
            deadlines.request_completed()
            deadlines.frame_ended()
        if not deadlines.in_frame and not splitter.idle:
            deadlines.frame_started(self._now())
            self._arm_deadline()

    def _arm_deadline(self) -> None:
        """Keep one timer at or before the next deadline (an early one looks and re-arms)."""
        deadlines = self.deadlines
        if deadlines is None or self.closing_reason is not None:
            return
        when = deadlines.next_deadline()
        timer = self._deadline_timer
        if when is None or (timer is not None and self._deadline_at <= when):
            return
        if timer is not None:
            timer.cancel()
        self._deadline_at = when
        loop = asyncio.get_running_loop()
        self._deadline_timer = loop.call_at(when, lambda: self.enforce_deadlines(loop.time()))

    def enforce_deadlines(self, now: float) -> None:
        """Close the connection if it overran a bound at ``now``, else look again later."""
        self._deadline_timer = None
        deadlines = self.deadlines
        if deadlines is None or self.closing_reason is not None:
            return
        overrun = deadlines.overrun(now)
        if overrun is None:
            self._arm_deadline()
            return
        self._gateway.count_slow_client(overrun.bound)
        self.close(overrun.describe())

    def _stop_deadlines(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    # -- flow control and closing ----------------------------------------------------------

    def pause_reading(self, reason: str) -> None:
        if not self._pause_reasons and self._transport is not None:
            self._transport.pause_reading()
            if self.deadlines is not None:
                self.deadlines.paused(self._now())
        self._pause_reasons.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        transport = self._transport
        if not self._pause_reasons and transport is not None and not transport.is_closing():
            transport.resume_reading()
            if self.deadlines is not None:
                self.deadlines.resumed(self._now())
                self._arm_deadline()

    # -- moving to another cluster -----------------------------------------------------------

    def move_blocker(self) -> str | None:
        """Why the connection cannot move to another cluster under its client now, or None.

        Only a connection at rest moves: every request answered (but fetches waiting for data,
        which the gateway answers with none, and ApiVersions, which it answers itself), no
        frame half through either way, nothing held,
        and no state the old broker holds for this socket alone that the client would go on
        using (its own SASL login). What the new cluster does not know and clients recover from
        (a fetch session, a producer id) is answered by the new cluster with the errors every
        client handles."""
        if self.closing_reason is not None:
            return "closing"
        if self._upstream is None or not self._authenticated:
            return "not connected to a broker yet"
        if self._internal.pending or not self.in_flight.only(_ANSWERED_AT_MOVE):
            return "requests in flight"
        if self._parked is not None or self._early:
            return "requests held"
        if not (self._requests.at_frame_boundary and self._responses.idle):
            return "a frame half through"
        if self._client_sasl_upstream:  # set by any SASL request forwarded, v0 raw ones too
            return "the client logged in to the broker itself"
        return None

    def reroute(self, reason: str) -> bool:
        """Route a connection no broker has heard from yet to the cluster the gateway routes to
        now; False (and nothing changed) when it has a broker connection or cannot be rerouted.

        Such a connection is in its first exchange: its TLS handshake, its login to the gateway,
        or waiting for its first broker with at most ApiVersions sent, which means the same to
        every cluster. Closing it would end that exchange with an EOF, which franz-go takes for
        a TLS or SASL mistake and fails its buffered records on (``ErrFirstReadEOF``, not
        retried by default). A dial still running is dropped when it ends (the dial
        generation)."""
        if self.closing_reason is not None or self._upstream is not None:
            return False
        if not self.cluster:
            return True  # TLS handshake still running: routed when it ends
        if self._internal.pending or self._parked is not None or not self._early_only_api_versions:
            return False
        self._route_anew(f"{reason} (before any broker answered)")
        if self._authenticated:
            self._start_upstream()
        return True

    def move(self, reason: str) -> bool:
        """Re-dial the broker side to the cluster the gateway routes to now; False (and nothing
        changed) when :meth:`move_blocker` says the connection cannot move.

        The client keeps its socket, so it never sees every broker go down at once (librdkafka
        re-bootstraps then and waits for its metadata timer). Requests it sends meanwhile wait
        in order for the new broker connection, as at a first connect."""
        if self.move_blocker() is not None:
            return False
        old = self._upstream
        assert old is not None
        self._upstream = None
        old.set_protocol(_Detached())
        old.close()
        self._route_anew(reason)
        for pending in self.in_flight.take_all():  # fetches waiting for data, and local answers
            self._send_client(pending.local_answer or self._answer_at_move(pending))
        self._answered()
        self.resume_reading("upstream-backpressure")  # that broker connection is gone
        if self._reauth is not None:
            self._reauth.cancel()
            self._reauth = None
        self._stale_producers.clear()
        self._acknowledged, self._adopted_since = None, None
        self._start_upstream(urgent=False)  # at rest: its dial may wait for those awaited
        return True

    def _route_anew(self, reason: str) -> None:
        """Take the cluster and brokers the gateway routes to now, and let reading go on."""
        previous = self.cluster
        self.cluster, self._targets = self._gateway.route(self.slot)
        self.resume_reading("switch-drain")
        audit.info(
            "move client=%s principal=%s from=%s to=%s reason=%s",
            self.peer,
            self.principal,
            previous,
            self.cluster,
            reason,
        )

    def _answer_at_move(self, pending: inflight.PendingRequest) -> bytes:
        if pending.api_key == client_auth.API_VERSIONS:
            return self._gateway.api_versions_answer(
                self.cluster, pending.api_version, pending.correlation_id
            )
        return request_policy.empty_fetch_answer(pending.api_version, pending.correlation_id)

    @property
    def upstream_connected(self) -> bool:
        return self._upstream is not None

    @property
    def is_closing(self) -> bool:
        return self.closing_reason is not None

    def close(self, reason: str, *, logged: bool = True, reset: bool = False) -> None:
        """Close both sides; pending response bytes already buffered still reach the client.
        ``logged``: with a line of its own (a refusal in a storm is counted, not logged).

        ``reset``: end the client's socket with a reset, as a connect to a down broker or a full
        server fails, not with an orderly close. An orderly close before the first answer is
        what a broker does to a client whose TLS or SASL settings are wrong: franz-go says so
        (``ErrFirstReadEOF``) and fails its buffered records rather than retry; a reset it
        retries, as every other client does. So every close before the first answer is a
        reset, whoever ends the connection (a broker killed during the client's first request
        made franz-go fail a record in the one-hour soak)."""
        if self.closing_reason is not None:
            return
        if (reset or not self.answered) and self._transport is not None:
            _reset_on_close(self._transport)
        self.closing_reason = reason
        self._stop_deadlines()
        if self._reauth is not None:
            self._reauth.cancel()
        self._frame_bound.cancel()
        self._internal.fail_all(ConnectionError(reason))
        if reason.startswith("switch"):
            audit.info(
                "disconnect client=%s principal=%s reason=%s", self.peer, self.principal, reason
            )
        level = logging.INFO if reason.startswith(("switch", "client")) else logging.WARNING
        log.log(
            level if logged else logging.DEBUG,
            "closing client %s principal=%s (%s, port %d): %s",
            self.peer,
            self.principal,
            self.cluster or "-",
            self.listener_port,
            reason,
        )
        if self._upstream is not None:
            self._upstream.close()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop both sides at once (a stalled client must not hold a switch)."""
        if self._upstream is not None:
            self._upstream.abort()
        if self._transport is not None:
            self._transport.abort()


def _reset_on_close(transport: asyncio.BaseTransport) -> None:
    """SO_LINGER zero: closing the socket sends a reset and drops whatever is unsent."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
