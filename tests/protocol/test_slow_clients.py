"""Slowloris and half-open clients against a real connection pump: the bounds of
:mod:`failover_gateway.pump.client_deadlines`, with the time handed in (no sleeping)."""

from __future__ import annotations

import asyncio

from pump_fakes import (
    METADATA,
    METADATA_REQUEST,
    FakeGateway,
    FakeTransport,
    connected,
    deliver,
    produce_request,
    request,
)

from failover_gateway.auth.users import UserStore
from failover_gateway.config import LimitsConfig
from failover_gateway.pump.client_deadlines import Bound
from failover_gateway.pump.connection import ClientConnection


def deadline(connection: ClientConnection) -> float:
    assert connection.deadlines is not None
    when = connection.deadlines.next_deadline()
    assert when is not None
    return when


async def test_a_client_that_connects_and_sends_nothing_is_closed_at_the_first_request_bound() -> (
    None
):
    connection, client, gateway = await connected()
    when = deadline(connection)
    connection.enforce_deadlines(when - 0.001)
    assert not connection.is_closing
    connection.enforce_deadlines(when)
    assert client.closed and gateway.upstream.closed
    assert gateway.slow_clients == [Bound.FIRST_REQUEST]
    assert "clientFirstRequestMs" in (connection.closing_reason or "")


async def test_a_client_that_sent_a_whole_request_is_not_bounded_while_idle() -> None:
    connection, _, gateway = await connected()
    connection.data_received(produce_request(1, acks=0))
    assert connection.deadlines is not None
    assert connection.deadlines.next_deadline() is None
    connection.enforce_deadlines(asyncio.get_running_loop().time() + 3600)
    assert not connection.is_closing and gateway.slow_clients == []


async def test_a_frame_sent_one_byte_at_a_time_and_never_finished_is_closed() -> None:
    connection, client, gateway = await connected()
    connection.data_received(produce_request(1, acks=0))
    partial = produce_request(2, acks=0)
    for byte in range(len(partial) - 1):
        deliver(connection, partial[byte : byte + 1])
    connection.enforce_deadlines(deadline(connection))
    assert client.closed and gateway.slow_clients == [Bound.FRAME]
    assert "did not finish a frame it started" in (connection.closing_reason or "")


async def test_frames_that_straddle_reads_each_get_their_own_bound() -> None:
    connection, _, _ = await connected()
    frames = produce_request(1, acks=0) + produce_request(2, acks=0) + produce_request(3, acks=0)
    cut = len(frames) // 3 + 5  # the first read ends inside the second frame
    deliver(connection, frames[:cut])
    first = deadline(connection)
    await asyncio.sleep(0.01)
    deliver(connection, frames[cut : 2 * cut])  # ends inside the third frame
    assert deadline(connection) > first, "the third frame's clock started with it"


async def test_a_frame_paused_by_the_gateway_is_not_held_against_the_client() -> None:
    gateway = FakeGateway(LimitsConfig(maxInFlight=1))
    connection, client, gateway = await connected(gateway)
    connection.data_received(produce_request(1, acks=-1) + produce_request(2, acks=-1)[:5])
    assert client.reading is False  # the in-flight limit: the client cannot send
    assert connection.deadlines is not None
    assert connection.deadlines.next_deadline() is None
    connection.enforce_deadlines(asyncio.get_running_loop().time() + 3600)
    assert not connection.is_closing


def store() -> UserStore:
    from failover_gateway.auth import users

    entry = users.entry_for("PLAIN", "alice-pw")
    return users.parse({"users": {"alice": {"PLAIN": entry}}}, "test")


async def test_a_sasl_client_that_never_authenticates_is_closed_at_the_authentication_bound() -> (
    None
):
    gateway = FakeGateway()
    gateway.users = store()
    connection, client, gateway = await connected(gateway)
    body = {"ClientSoftwareName": "t", "ClientSoftwareVersion": "1"}
    connection.data_received(request(18, 3, 1, body))  # ApiVersions: a first request, no login
    when = deadline(connection)
    connection.enforce_deadlines(when)
    assert client.closed and gateway.slow_clients == [Bound.AUTHENTICATION]
    assert gateway.dials == 0


async def test_a_sasl_client_that_authenticates_in_time_keeps_its_connection() -> None:
    gateway = FakeGateway()
    gateway.users = store()
    connection, _, gateway = await connected(gateway)
    connection.data_received(request(17, 1, 1, {"Mechanism": "PLAIN"}))
    connection.data_received(request(36, 1, 2, {"AuthBytes": b"\x00alice\x00alice-pw"}))
    for _ in range(50):
        await asyncio.sleep(0)
    assert connection.principal == "alice"
    connection.enforce_deadlines(asyncio.get_running_loop().time() + 3600)
    assert not connection.is_closing
    connection.data_received(request(METADATA, 12, 3, METADATA_REQUEST))
    assert not connection.is_closing


async def test_the_bound_is_enforced_by_the_event_loop_timer_itself() -> None:
    from failover_gateway.config import TimeoutsConfig

    gateway = FakeGateway(timeouts=TimeoutsConfig(clientFirstRequestMs=100))
    client = FakeTransport()
    connection = ClientConnection(gateway=gateway, slot=None, listener_port=6969)
    connection.connection_made(client)
    async with asyncio.timeout(10):
        while not client.closed:  # noqa: ASYNC110 - a fake transport has no event to wait on
            await asyncio.sleep(0.02)
    assert gateway.slow_clients == [Bound.FIRST_REQUEST]
