"""A one-broker Kafka cluster that misbehaves on purpose, for testing the gateway against it.

Why it exists: the gateway sits between every client and a broker it does not control. A broker
(or whatever answers at its address: a half-dead process, a middlebox, a bug) may send a frame
and never finish it, announce a frame larger than any limit, answer pipelined requests out of
order or with a correlation id nobody sent, send garbage, trickle a byte a second, or close in
the middle of a frame. Each must end only the client connection concerned, never the gateway.
Real brokers do none of this on demand, so this server does, speaking the wire protocol with the
gateway's own pure codec (headers, schema, specs).

It answers well enough for the gateway to take it for a cluster: ApiVersions (every api key of
the shipped specs, at its spec's stable range, so it narrows nothing the gateway offers clients
of other clusters) and Metadata naming itself as node :attr:`HostileBroker.node_id`. Any other
request closes that connection (nothing here needs more).

Which requests get a fault is chosen per connection by the request's client id (the gateway
forwards it untouched): ``fault:<name>`` (a :class:`Fault` value) misbehaves at the first
request, and :attr:`HostileBroker.triggers` maps any client id to a :class:`Trigger` (only some
api keys, or after a number of good answers). Everyone else, the gateway's own probes included,
is answered properly. Runs its own asyncio loop in a thread (:meth:`start`, :meth:`stop`); binds
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from dataclasses import dataclass
from typing import Any

from failover_gateway.codec import errors, headers, schema, specs
from kafka_testbed import loop_threads
from kafka_testbed.networking import HOST

API_VERSIONS, METADATA = 18, 3
UNSUPPORTED_VERSION = 35
UNKNOWN_TOPIC_OR_PARTITION = 3
CLUSTER_ID = "hostile-broker-cluster"
FAULT_PREFIX = "fault:"
GARBAGE = b"\xff" * 64
"""A body no spec decodes: every length and count read from it is -1 or runs past the end."""

log = logging.getLogger("kafka_testbed.hostile_broker")


class Fault(enum.Enum):
    """One way of answering a request wrongly."""

    TRUNCATED = "truncated"  # the first half of the answer, then silence (connection kept)
    OVERSIZED = "oversized"  # a size prefix above any gateway's maxFrameBytes, then the body
    REVERSED = "reversed"  # two pipelined requests answered last first
    WRONG_CORRELATION_ID = "wrong-correlation-id"  # a correlation id no request carried
    GARBAGE = "garbage"  # the right correlation id, then a body of garbage
    SLOW = "slow"  # the answer one byte per ``slow_seconds``
    CLOSE_MID_FRAME = "close-mid-frame"  # the first half of the answer, then a close


@dataclass(frozen=True)
class Trigger:
    """When a connection misbehaves: at requests with one of ``api_keys`` (None: any), once
    ``after`` requests have been answered properly on it. A fault fires once per connection."""

    fault: Fault
    api_keys: frozenset[int] | None = None
    after: int = 0

    def fires(self, api_key: int, answered: int) -> bool:
        return answered >= self.after and (self.api_keys is None or api_key in self.api_keys)


class HostileBroker:
    """The server; tests read :attr:`open_by_client` and :attr:`faults_sent`."""

    def __init__(
        self,
        *,
        node_id: int = 1,
        slow_seconds: float = 1.0,
        oversized_bytes: int = 2**31 - 1,
    ) -> None:
        self.node_id = node_id
        self.slow_seconds = slow_seconds
        self.oversized_bytes = oversized_bytes
        self.triggers: dict[str, Trigger] = {}
        self.port = 0
        self.connections_open = 0
        # Open connections by the client id of their first request (the gateway's probes are
        # "kafka-failover-gateway"): a test sees the gateway drop the one its client used.
        self.open_by_client: collections.Counter[str] = collections.Counter()
        self.faults_sent: list[tuple[str, Fault]] = []  # (client id, fault), in order
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = loop_threads.LoopThread("hostile-broker")

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> HostileBroker:
        self._loop.start(self._listen())
        return self

    def stop(self) -> None:
        self._loop.stop(self._close())

    def __enter__(self) -> HostileBroker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accepted, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):  # every session then ends at its next read or write
            writer.transport.abort()
        for _ in range(100):
            if not self._writers:
                return
            await asyncio.sleep(0.01)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections_open += 1
        try:
            await _Session(self, reader, writer).serve()
        except (OSError, asyncio.IncompleteReadError, errors.CodecError) as error:
            log.debug("hostile broker connection ended: %r", error)
        finally:
            self.connections_open -= 1
            self._writers.discard(writer)
            writer.close()

    def trigger_for(self, client_id: str | None) -> Trigger | None:
        client_id = client_id or ""
        if client_id in self.triggers:
            return self.triggers[client_id]
        if client_id.startswith(FAULT_PREFIX):
            return Trigger(Fault(client_id.removeprefix(FAULT_PREFIX)))
        return None

    def answer(self, header: headers.RequestHeader, body: memoryview) -> bytes | None:
        """The proper framed answer, or None for a request this broker does not serve."""
        if header.api_key == API_VERSIONS:
            return self._api_versions(header)
        if header.api_key == METADATA:
            request = _decode_request(header, body)
            return _framed(header, self._metadata(request.get("Topics") or []))
        return None

    def _api_versions(self, header: headers.RequestHeader) -> bytes:
        version = header.api_version
        values: dict[str, Any] = {"ErrorCode": 0, "ApiKeys": _api_ranges(), "ThrottleTimeMs": 0}
        spec = specs.response(API_VERSIONS)
        assert spec is not None
        if not spec.is_valid(version):  # KIP-511: answered with a v0 body naming our range
            version, values["ErrorCode"] = 0, UNSUPPORTED_VERSION
        head = headers.encode_response_header(header.correlation_id, API_VERSIONS, version)
        payload = head + schema.encode(spec, version, values)
        return len(payload).to_bytes(4, "big") + payload

    def _metadata(self, topics: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "ThrottleTimeMs": 0,
            "Brokers": [{"NodeId": self.node_id, "Host": HOST, "Port": self.port, "Rack": None}],
            "ClusterId": CLUSTER_ID,
            "ControllerId": self.node_id,
            "Topics": [
                {
                    "ErrorCode": UNKNOWN_TOPIC_OR_PARTITION,
                    "Name": topic.get("Name"),
                    "TopicId": topic.get("TopicId"),
                    "IsInternal": False,
                    "Partitions": [],
                    "TopicAuthorizedOperations": -2147483648,
                }
                for topic in topics
            ],
            "ClusterAuthorizedOperations": -2147483648,
            "ErrorCode": 0,
        }


class _Session:
    """One connection: reads requests, answers them, misbehaves once when its trigger fires."""

    def __init__(
        self, broker: HostileBroker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._broker = broker
        self._reader = reader
        self._writer = writer
        self._answered = 0
        self._fault_done = False
        self._reversed: list[bytes] = []  # answers held back, to be sent last first
        self._client: str | None = None  # the client id of the first request

    async def serve(self) -> None:
        try:
            await self._serve()
        finally:
            if self._client is not None:
                self._broker.open_by_client[self._client] -= 1

    async def _serve(self) -> None:
        while True:
            size = int.from_bytes(await self._reader.readexactly(4), "big", signed=True)
            body = memoryview(await self._reader.readexactly(size))
            header = headers.parse_request_header(body)
            if self._client is None:
                self._client = header.client_id or ""
                self._broker.open_by_client[self._client] += 1
            answer = self._broker.answer(header, body[header.body_offset :])
            if answer is None:
                log.info("hostile broker does not serve api key %d: closing", header.api_key)
                return
            trigger = self._broker.trigger_for(header.client_id)
            if (
                trigger is None
                or self._fault_done
                or not trigger.fires(header.api_key, self._answered)
            ):
                self._writer.write(answer)
                self._answered += 1
                continue
            if not await self._misbehave(trigger.fault, header, answer):
                return

    async def _misbehave(self, fault: Fault, header: headers.RequestHeader, answer: bytes) -> bool:
        """Send ``answer`` wrongly; False when the connection is to end (closed or silent)."""
        if fault is Fault.REVERSED:
            self._reversed.append(answer)
            if len(self._reversed) < 2:
                return True
        self._fault_done = True
        self._broker.faults_sent.append((header.client_id or "", fault))
        half = answer[: len(answer) // 2]
        if fault is Fault.TRUNCATED:
            self._writer.write(half)
            await self._reader.read()  # silence until the peer gives up
            return False
        if fault is Fault.CLOSE_MID_FRAME:
            self._writer.write(half)
            await self._writer.drain()
            return False
        if fault is Fault.SLOW:
            await self._trickle(answer)
            return not self._writer.is_closing()
        self._writer.write(self._wrong(fault, header, answer))
        return True

    def _wrong(self, fault: Fault, header: headers.RequestHeader, answer: bytes) -> bytes:
        if fault is Fault.OVERSIZED:
            return self._broker.oversized_bytes.to_bytes(4, "big") + answer[4:]
        if fault is Fault.WRONG_CORRELATION_ID:
            unknown = (header.correlation_id + 1_000_000) % 2**31
            return answer[:4] + unknown.to_bytes(4, "big") + answer[8:]
        if fault is Fault.GARBAGE:
            payload = answer[4:8] + GARBAGE
            return len(payload).to_bytes(4, "big") + payload
        assert fault is Fault.REVERSED
        first, second = self._reversed
        self._reversed.clear()
        return second + first

    async def _trickle(self, answer: bytes) -> None:
        for index in range(len(answer)):
            if self._writer.is_closing():
                return
            self._writer.write(answer[index : index + 1])
            await self._writer.drain()
            await asyncio.sleep(self._broker.slow_seconds)


def _decode_request(header: headers.RequestHeader, body: memoryview) -> dict[str, Any]:
    spec = specs.request(header.api_key)
    assert spec is not None
    return schema.decode(spec, header.api_version, body)


def _framed(header: headers.RequestHeader, values: dict[str, Any]) -> bytes:
    spec = specs.response(header.api_key)
    assert spec is not None
    head = headers.encode_response_header(header.correlation_id, header.api_key, header.api_version)
    payload = head + schema.encode(spec, header.api_version, values)
    return len(payload).to_bytes(4, "big") + payload


def _api_ranges() -> list[dict[str, int]]:
    """Every api key of the shipped specs at its stable range, like a current broker."""
    ranges = []
    for api_key in specs.api_keys():
        spec = specs.request(api_key)
        if spec is None or spec.valid_versions is None or spec.max_stable_version < 0:
            continue
        low = spec.valid_versions.low
        ranges.append({"ApiKey": api_key, "MinVersion": low, "MaxVersion": spec.max_stable_version})
    return ranges
