"""Opening an authenticated connection to a broker of one cluster.

Why it exists: an upstream connection is ready for client bytes only once TCP, TLS (per the
cluster's settings) and SASL (with the gateway's own credentials for that cluster) are done.
This runs that sequence on asyncio streams with a deadline, then hands the transport to the
pump's protocol. Probes use the same path, so health reports exactly what clients would hit
(e.g. a wrong upstream password).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from failover_gateway.codec import errors, headers, schema, specs
from failover_gateway.config import ClusterConfig, HostPort
from failover_gateway.routing import upstream_sasl

_ids = itertools.count(1)
CLIENT_ID = "kafka-failover-gateway"
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class UpstreamUnavailable(ConnectionError):
    """The broker could not be reached, did not complete TLS, or refused authentication."""


class _HandshakeProtocol(asyncio.Protocol):
    """Reads whole frames while the gateway authenticates; replaced by the pump afterwards.

    (Not asyncio streams: a dropped StreamWriter closes its transport, and this transport must
    outlive the handshake.)"""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionResetError("broker closed the connection")
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read_frame(self) -> bytes:
        while True:
            if len(self._buffer) >= 4:
                size = int.from_bytes(self._buffer[:4], "big", signed=True)
                if not 0 <= size <= MAX_ANSWER_BYTES:
                    raise UpstreamUnavailable(f"broker sent a frame of {size} bytes")
                if len(self._buffer) >= 4 + size:
                    frame = bytes(self._buffer[4 : 4 + size])
                    del self._buffer[: 4 + size]
                    return frame
            if self._lost is not None:
                raise self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


API_VERSIONS = 18
UNSUPPORTED_VERSION = (35).to_bytes(2, "big")


@dataclass
class StreamConnection:
    transport: asyncio.Transport
    protocol: _HandshakeProtocol
    session_lifetime_ms: int = 0

    async def exchange(self, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any]:
        """One request and its answer, encoded and decoded from the specs."""
        request_spec, response_spec = specs.request(api_key), specs.response(api_key)
        assert request_spec is not None and response_spec is not None
        correlation_id = next(_ids) % 2**31
        payload = headers.encode_request_header(api_key, version, correlation_id, CLIENT_ID)
        payload += schema.encode(request_spec, version, body)
        self.transport.write(len(payload).to_bytes(4, "big") + payload)
        frame = await self.protocol.read_frame()
        header = headers.parse_response_header(frame, api_key, version)
        if header.correlation_id != correlation_id:
            raise UpstreamUnavailable("broker answered another request")
        answer = memoryview(frame)[header.body_offset :]
        if api_key == API_VERSIONS and bytes(answer[:2]) == UNSUPPORTED_VERSION:
            version = 0  # KIP-511: a refused ApiVersions version is answered with a v0 body
        return schema.decode(response_spec, version, answer)

    def close(self) -> None:
        self.transport.close()


async def open_stream(
    cluster: ClusterConfig, target: HostPort, context: ssl.SSLContext | None, timeout: float
) -> StreamConnection:
    """Connect, do TLS and SASL; raise UpstreamUnavailable naming the step that failed."""
    try:
        loop = asyncio.get_running_loop()
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(
                _HandshakeProtocol,
                target.host,
                target.port,
                ssl=context,
                server_hostname=target.host if context is not None else None,
            ),
            timeout,
        )
    except ssl.SSLError as error:
        raise UpstreamUnavailable(f"{target}: TLS handshake failed: {error.reason}") from None
    except (OSError, TimeoutError) as error:
        raise UpstreamUnavailable(f"{target}: {error or 'connect timed out'}") from None
    connection = StreamConnection(transport, protocol)
    credentials = cluster.security.sasl
    if credentials is None:
        return connection
    try:
        connection.session_lifetime_ms = await asyncio.wait_for(
            upstream_sasl.authenticate(connection.exchange, credentials), timeout
        )
    except upstream_sasl.UpstreamAuthError as error:
        connection.close()
        raise UpstreamUnavailable(f"{target}: {error}") from None
    except (OSError, TimeoutError, asyncio.IncompleteReadError, errors.CodecError) as error:
        connection.close()
        raise UpstreamUnavailable(
            f"{target}: SASL exchange failed: {type(error).__name__} {error}".rstrip()
        ) from None
    return connection


def adopt(
    connection: StreamConnection, factory: Callable[[], asyncio.BaseProtocol]
) -> asyncio.BaseTransport:
    """Hand an authenticated connection's transport to the pump's protocol."""
    transport = connection.transport
    protocol = factory()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    return transport
