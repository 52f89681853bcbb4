"""Fakes for protocol tests of the pump: transports that record, and a gateway with a fake dialer.

Why a module of its own: every protocol test module drives a real :class:`ClientConnection`
between two fake transports; only the network is replaced, the routing, rewriting and request
policy are the real ones.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from failover_gateway.auth.users import UserStore
from failover_gateway.codec import headers, schema, specs
from failover_gateway.codec.primitives import Buffer
from failover_gateway.config import HostPort, LimitsConfig, TimeoutsConfig
from failover_gateway.pump import client_deadlines, inflight
from failover_gateway.pump.client_auth import ClientAuthenticator
from failover_gateway.pump.connection import ClientConnection
from failover_gateway.pump.dial_queue import DialQueue
from failover_gateway.pump.rejoin_gate import RejoinGate
from failover_gateway.pump.write_fence import WriteFence
from failover_gateway.routing import (
    api_versions,
    group_leaving,
    producer_ids,
    response_rewriting,
    topic_ids,
)
from failover_gateway.routing.producer_ids import ProducerIdCodec

PRODUCE, METADATA, API_VERSIONS = 0, 3, 18


class FakeSocket:
    """The socket a transport reports: records the options set on it."""

    def __init__(self) -> None:
        self.options: dict[tuple[int, int], bytes] = {}

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        self.options[(level, option)] = value


class FakeTransport(asyncio.Transport):
    """Records writes and flow-control calls."""

    def __init__(self, peer: tuple[str, int] = ("10.0.0.9", 5555)) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True
        self.peer = peer
        self.protocol: asyncio.BaseProtocol | None = None
        self.socket = FakeSocket()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.socket
        return self.peer if name == "peername" else default

    @property
    def reset(self) -> bool:
        """Closing sends a reset: SO_LINGER was set on, with a zero timeout."""
        linger = self.socket.options.get((socket.SOL_SOCKET, socket.SO_LINGER))
        return linger == struct.pack("ii", 1, 0)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class FakeGateway:
    """The server layer's side of the pump, with a fake dialer and the real rewrite."""

    def __init__(
        self, limits: LimitsConfig | None = None, timeouts: TimeoutsConfig | None = None
    ) -> None:
        self.limits = limits or LimitsConfig()
        self.timeouts = timeouts or TimeoutsConfig()
        self.slow_clients: list[client_deadlines.Bound] = []
        self.connect_timeout = 1.0
        self.response_frame_timeout = 0.0  # no bound unless a test sets one
        self.upstream = FakeTransport(("127.0.0.1", 9092))
        self.upstream_protocol: asyncio.Protocol | None = None
        self.dial_gate = asyncio.Event()
        self.dial_gate.set()
        self.counted: list[tuple[int, int]] = []
        self.dials = 0
        self.reauthentications = 0
        self.session_lifetime_ms = 0
        self.users: UserStore | None = None
        self.offers: Sequence[api_versions.ClusterOffer] = []  # other clusters' probe answers
        self.codecs = producer_ids.codecs(["main", "failover"], generation=1)
        self.stale_producers: list[tuple[str, int, bool]] = []
        self.topic_ids = topic_ids.TopicIdTable()
        self.cluster_topics: dict[str, uuid.UUID] = {}  # what a look at the cluster would find
        self.look_gate = asyncio.Event()
        self.look_gate.set()
        self.looks = 0
        self.write_fence = WriteFence()
        self.dial_queue = DialQueue(self.limits.max_concurrent_dials)
        self.rejoin_gate = RejoinGate()
        self.left_members = group_leaving.LeftMembers()
        self.left_apart: list[tuple[str, dict[str, str]]] = []  # (cluster, group -> member)
        self.last_switch_at = -math.inf
        self.open_transactions: set[str] = set()
        self.transaction_checks: list[tuple[str, str]] = []
        self.active = "main"
        self.dialled: list[tuple[str, FakeTransport]] = []  # (cluster, transport) per dial

    def route(self, slot: int | None) -> tuple[str, list[HostPort]]:
        return self.active, [HostPort("127.0.0.1", 9092 if self.active == "main" else 9093)]

    async def dial(
        self, cluster: str, target: HostPort, factory: Callable[[], asyncio.BaseProtocol]
    ) -> tuple[asyncio.BaseTransport, int]:
        await self.dial_gate.wait()
        if self.dials:  # every later dial gets a broker connection of its own
            self.upstream = FakeTransport(("127.0.0.1", target.port))
        self.dials += 1
        self.dialled.append((cluster, self.upstream))
        self.upstream_protocol = factory()
        self.upstream.set_protocol(self.upstream_protocol)
        self.upstream_protocol.connection_made(self.upstream)
        return self.upstream, self.session_lifetime_ms

    async def reauthenticate(self, cluster: str, exchange: Any) -> int:
        self.reauthentications += 1
        return 0

    def client_authenticator(self) -> ClientAuthenticator | None:
        return ClientAuthenticator(("PLAIN", "SCRAM-SHA-512"), self.users) if self.users else None

    def leave_groups_apart(self, cluster: str, members: Mapping[str, str]) -> None:
        self.left_apart.append((cluster, dict(members)))

    async def transaction_open(self, cluster: str, transactional_id: str) -> bool:
        self.transaction_checks.append((cluster, transactional_id))
        return transactional_id in self.open_transactions

    async def learn_topic_ids(self, cluster: str) -> None:
        await self.look_gate.wait()
        self.looks += 1
        self.topic_ids.replace(cluster, self.cluster_topics)

    def listener_tls(self) -> Any:
        return None

    def certificate_principal(self, transport: asyncio.BaseTransport) -> str | None:
        return None

    def api_versions_answer(self, cluster: str, version: int, correlation_id: int) -> bytes:
        body = api_versions.own_answer_body(version, self.offers)
        return framed(headers.encode_response_header(correlation_id, API_VERSIONS, 0) + body)

    def connection_opened(self, connection: ClientConnection) -> bool:
        return True

    def connection_closed(self, connection: ClientConnection) -> None:
        pass

    def count_slow_client(self, bound: client_deadlines.Bound) -> None:
        self.slow_clients.append(bound)

    def rewrite_response(
        self, cluster: str, request: inflight.PendingRequest, frame: Buffer
    ) -> Buffer:
        def advertise(node_id: int, host: str, port: int) -> tuple[str, int]:
            return "gateway.example.com", 7000 + node_id

        return response_rewriting.rewrite_frame(
            request.api_key,
            request.api_version,
            frame,
            advertise,
            other_clusters=self.offers,
            producer_ids=self.codecs[cluster],
            topics=(self.topic_ids, cluster),
        )

    def producer_ids(self, cluster: str) -> ProducerIdCodec:
        return self.codecs[cluster]

    def count_stale_producer(self, cluster: str, api_key: int, *, adopted: bool) -> None:
        self.stale_producers.append((cluster, api_key, adopted))

    def count_request(self, cluster: str, api_key: int, size: int) -> None:
        self.counted.append((api_key, size))

    def count_response(self, cluster: str, api_key: int, size: int) -> None:
        pass


def framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def request(api_key: int, version: int, correlation_id: int, body: dict[str, Any]) -> bytes:
    spec = specs.request(api_key)
    assert spec is not None
    header = headers.encode_request_header(api_key, version, correlation_id, "test-client")
    return framed(header + schema.encode(spec, version, body))


def response(api_key: int, version: int, correlation_id: int, body: dict[str, Any]) -> bytes:
    spec = specs.response(api_key)
    assert spec is not None
    header = headers.encode_response_header(correlation_id, api_key, version)
    return framed(header + schema.encode(spec, version, body))


def decode_response(api_key: int, version: int, frame: bytes) -> tuple[int, dict[str, Any]]:
    spec = specs.response(api_key)
    assert spec is not None
    payload = frame[4:]
    parsed = headers.parse_response_header(payload, api_key, version)
    return parsed.correlation_id, schema.decode(spec, version, payload[parsed.body_offset :])


def produce_request(correlation_id: int, acks: int, version: int = 9) -> bytes:
    body = {"TransactionalId": None, "Acks": acks, "TimeoutMs": 1000, "TopicData": []}
    return request(PRODUCE, version, correlation_id, body)


def produce_response(correlation_id: int, version: int = 9) -> bytes:
    return response(PRODUCE, version, correlation_id, {"Responses": [], "ThrottleTimeMs": 0})


FETCH_BODY: dict[str, Any] = {
    "ReplicaId": -1,
    "MaxWaitMs": 500,
    "MinBytes": 1,
    "MaxBytes": 1 << 20,
    "IsolationLevel": 0,
    "SessionId": 0,
    "SessionEpoch": -1,
    "Topics": [],
    "ForgottenTopicsData": [],
    "RackId": "",
}

METADATA_REQUEST = {
    "Topics": [],
    "AllowAutoTopicCreation": False,
    "IncludeClusterAuthorizedOperations": False,
    "IncludeTopicAuthorizedOperations": False,
}
METADATA_ANSWER = {
    "ThrottleTimeMs": 0,
    "Brokers": [
        {"NodeId": 1, "Host": "kafka-1.internal", "Port": 9092, "Rack": None},
        {"NodeId": 2, "Host": "kafka-2.internal", "Port": 9092, "Rack": "b"},
    ],
    "ClusterId": "cluster-a",
    "ControllerId": 1,
    "Topics": [],
    "ClusterAuthorizedOperations": -2147483648,
    "ErrorCode": 0,
}


async def connected(
    gateway: FakeGateway | None = None,
) -> tuple[ClientConnection, FakeTransport, FakeGateway]:
    gateway = gateway or FakeGateway()
    client = FakeTransport()
    connection = ClientConnection(gateway=gateway, slot=None, listener_port=6969)
    connection.connection_made(client)
    for _ in range(100):  # let the dial task run, if the gate is open
        if connection.upstream_connected or not gateway.dial_gate.is_set():
            break
        await asyncio.sleep(0)
    return connection, client, gateway


def from_broker(gateway: FakeGateway, data: bytes) -> None:
    assert gateway.upstream_protocol is not None
    deliver(gateway.upstream_protocol, data)


def deliver(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Hand ``data`` to ``protocol`` as an event loop's transport would: read into the buffers a
    buffered protocol gives (as many reads as it takes), else as one ``data_received``."""
    if not isinstance(protocol, asyncio.BufferedProtocol):
        assert isinstance(protocol, asyncio.Protocol)
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        taken = min(len(buffer), len(view))
        buffer[:taken] = view[:taken]
        protocol.buffer_updated(taken)
        view = view[taken:]


def record_batch(
    value: bytes = b"v", producer_id: int = -1, sequence: int = -1, transactional: bool = False
) -> bytes:
    """One record batch (magic 2), built by kafka-python's independent encoder."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=int(transactional),
        producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=sequence,
        batch_size=1 << 22,
    )
    builder.append(0, timestamp=1, key=b"k", value=value, headers=[])
    return bytes(builder.build())
