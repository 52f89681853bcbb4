"""A TLS listener on a real event loop: the client's hello may arrive before TLS is set up.

Why this module: the gateway starts TLS itself, after ``connection_made``, so that a refused
handshake is logged with the client's address. uvloop starts reading a new connection right
after ``connection_made`` even when the protocol paused it, so a client that sends its hello at
once (librdkafka, the JVM) used to have it parsed as a Kafka frame and the handshake stalled.
These tests send the hello before the server has even accepted, on both event loops the
gateway runs on, through a real listening socket.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import trustme
import uvloop
from pump_fakes import API_VERSIONS, FakeGateway, decode_response

from failover_gateway.pump.connection import ClientConnection

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


class TlsGateway(FakeGateway):
    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context = context

    def listener_tls(self) -> Any:
        return self.context


def run_on(loop_name: str, coroutine: Coroutine[Any, Any, None]) -> None:
    # A Runner cancels the tasks left (the gateway's dial workers) before closing its loop.
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(asyncio.wait_for(coroutine, timeout=20))


async def api_versions_over_tls(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, clients: int
) -> list[int]:
    """Open ``clients`` TLS connections whose hello is queued before the server accepts."""
    loop = asyncio.get_running_loop()
    gateway = TlsGateway(server_context)
    server = await loop.create_server(
        lambda: ClientConnection(gateway=gateway, slot=None, listener_port=6969), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    answered: list[int] = []
    try:
        for correlation_id in range(clients):
            answered.append(await one_client(port, client_context, correlation_id))
    finally:
        server.close()
    return answered


async def one_client(port: int, context: ssl.SSLContext, correlation_id: int) -> int:
    loop = asyncio.get_running_loop()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # The kernel completes the TCP handshake; the hello is written before the event loop
        # has had a chance to accept, so it is already waiting when connection_made runs.
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        sock.sendall(outgoing.read())
        sock.setblocking(False)

        async def pump_once() -> None:
            data = await loop.sock_recv(sock, 65536)
            if not data:
                raise ConnectionError("the gateway closed the connection")
            incoming.write(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await loop.sock_sendall(sock, outgoing.read())
                await pump_once()
        header = struct.pack(">hhih", API_VERSIONS, 99, correlation_id, -1)
        tls.write(struct.pack(">i", len(header)) + header)
        await loop.sock_sendall(sock, outgoing.read())
        answer = b""
        while len(answer) < 4 or len(answer) < 4 + struct.unpack(">i", answer[:4])[0]:
            try:
                answer += tls.read(65536)
            except ssl.SSLWantReadError:
                await pump_once()
        got, _ = decode_response(API_VERSIONS, 0, answer)
        return got


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_tls_hello_sent_before_the_gateway_accepts_is_handshaken_and_served(
    loop_name: str, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server, client = contexts
    answered: list[int] = []

    async def scenario() -> None:
        answered.extend(await api_versions_over_tls(server, client, clients=10))

    run_on(loop_name, scenario())
    assert answered == list(range(10))
