"""The connection pump without sockets: fake transports on both sides, bytes in, bytes out.

The gateway side is real (routing, rewriting, request policy); only the network is replaced, so
these tests show what a client would receive for what it sent, byte for byte.
"""

from __future__ import annotations

import asyncio
import gc
import struct
import weakref
from typing import Any

import pytest
from pump_fakes import (
    API_VERSIONS,
    METADATA,
    METADATA_ANSWER,
    METADATA_REQUEST,
    PRODUCE,
    FakeGateway,
    FakeTransport,
    connected,
    decode_response,
    deliver,
    framed,
    from_broker,
    produce_request,
    produce_response,
    record_batch,
    request,
    response,
)

from failover_gateway.auth.users import UserStore
from failover_gateway.codec import schema, specs
from failover_gateway.config import LimitsConfig
from failover_gateway.pump.connection import ClientConnection


async def test_requests_are_forwarded_byte_for_byte_and_plain_responses_come_back_unchanged() -> (
    None
):
    connection, client, gateway = await connected()
    sent = produce_request(7, acks=-1)
    connection.data_received(sent)
    assert bytes(gateway.upstream.written) == sent
    assert len(connection.in_flight) == 1
    answer = produce_response(7)
    from_broker(gateway, answer)
    assert bytes(client.written) == answer
    assert len(connection.in_flight) == 0


async def test_a_closed_connection_is_freed_without_the_cycle_collector() -> None:
    """Hundreds of connections close at once when a broker restarts; their objects must be
    free for the ones that reopen, not wait for the cycle collector's next full run."""
    connection, client, gateway = await connected()
    connection.data_received(produce_request(7, acks=-1))
    from_broker(gateway, produce_response(7))
    for _ in range(10):  # the dial queue's worker ends, and lets go of the dial
        await asyncio.sleep(0)
    freed = weakref.ref(connection)
    collecting = gc.isenabled()
    gc.disable()
    try:
        connection.connection_lost(None)  # the client left
        upstream, protocol = gateway.upstream, gateway.upstream_protocol
        assert upstream.closed and protocol is not None
        protocol.connection_lost(None)  # what the loop does once the broker socket is closed
        # Real transports drop their protocol once it has been told; the fakes are told to.
        client.protocol = upstream.protocol = gateway.upstream_protocol = None
        gateway.dialled.clear()
        del connection, protocol
        assert freed() is None, "only the cycle collector would free it"
    finally:
        if collecting:
            gc.enable()


async def test_requests_read_by_a_buffered_transport_reach_the_broker_whole_and_in_order() -> None:
    connection, _, gateway = await connected()
    idempotent = request(
        PRODUCE, 9, 8,
        {"TransactionalId": None, "Acks": -1, "TimeoutMs": 1000, "TopicData": [
            {"Name": "t", "PartitionData": [
                {"Index": 0, "Records": record_batch(b"v" * 5000, producer_id=1, sequence=0)}
            ]}
        ]},
    )  # fmt: skip
    stream = produce_request(7, acks=-1) + idempotent + request(METADATA, 12, 9, METADATA_REQUEST)
    for start in range(0, len(stream), 1000):  # reads that cut frames anywhere
        deliver(connection, stream[start : start + 1000])
    assert len(connection.in_flight) == 3
    assert bytes(gateway.upstream.written)[: len(produce_request(7, acks=-1))] == (
        produce_request(7, acks=-1)
    )
    assert bytes(gateway.upstream.written).endswith(request(METADATA, 12, 9, METADATA_REQUEST))


async def test_produce_with_acks_zero_expects_no_response() -> None:
    connection, client, gateway = await connected()
    connection.data_received(produce_request(1, acks=0) + produce_request(2, acks=0))
    assert len(connection.in_flight) == 0
    connection.data_received(request(METADATA, 12, 3, METADATA_REQUEST))
    assert len(connection.in_flight) == 1
    from_broker(gateway, response(METADATA, 12, 3, METADATA_ANSWER))
    assert not connection.is_closing
    assert decode_response(METADATA, 12, bytes(client.written))[0] == 3


@pytest.mark.parametrize("version", [1, 9, 12, 13])
async def test_metadata_answers_reach_the_client_with_gateway_addresses(version: int) -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(METADATA, version, 11, METADATA_REQUEST))
    from_broker(gateway, response(METADATA, version, 11, METADATA_ANSWER))
    correlation_id, answer = decode_response(METADATA, version, bytes(client.written))
    assert correlation_id == 11
    assert [(b["NodeId"], b["Host"], b["Port"]) for b in answer["Brokers"]] == [
        (1, "gateway.example.com", 7001),
        (2, "gateway.example.com", 7002),
    ]


async def test_a_rewritten_answer_split_across_many_reads_is_still_rewritten_whole() -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(METADATA, 12, 5, METADATA_REQUEST))
    answer = response(METADATA, 12, 5, METADATA_ANSWER)
    for index in range(len(answer)):
        from_broker(gateway, answer[index : index + 1])
    assert "gateway.example.com" in str(decode_response(METADATA, 12, bytes(client.written))[1])


async def test_api_versions_answers_use_header_v0_even_for_flexible_versions() -> None:
    connection, client, gateway = await connected()
    body = {"ClientSoftwareName": "t", "ClientSoftwareVersion": "1"}
    connection.data_received(request(API_VERSIONS, 3, 21, body))
    broker_answer = {
        "ErrorCode": 0,
        "ApiKeys": [
            {"ApiKey": 1, "MinVersion": 4, "MaxVersion": 18},
            {"ApiKey": 78, "MinVersion": 0, "MaxVersion": 1},
        ],
        "ThrottleTimeMs": 0,
    }
    from_broker(gateway, response(API_VERSIONS, 3, 21, broker_answer))
    written = bytes(client.written)
    assert struct.unpack(">i", written[4:8])[0] == 21
    values = schema.decode(specs.message("ApiVersionsResponse"), 3, written[8:])  # no header tags
    assert [(k["ApiKey"], k["MaxVersion"]) for k in values["ApiKeys"]] == [(1, 18), (78, 1)]


async def test_api_versions_above_what_the_gateway_reads_is_answered_by_the_gateway() -> None:
    connection, client, gateway = await connected()
    header = struct.pack(">hhih", API_VERSIONS, 99, 4, -1) + b"\x00"
    connection.data_received(framed(header + b"\x00\x00\x00"))
    assert bytes(gateway.upstream.written) == b""
    correlation_id, answer = decode_response(API_VERSIONS, 0, bytes(client.written))
    assert correlation_id == 4 and answer["ErrorCode"] == 35
    assert answer["ApiKeys"][0]["ApiKey"] == API_VERSIONS


async def test_a_response_that_answers_no_pending_request_closes_the_connection() -> None:
    connection, client, gateway = await connected()
    connection.data_received(produce_request(1, acks=-1))
    from_broker(gateway, produce_response(2))
    assert connection.is_closing and client.closed and gateway.upstream.closed
    assert "correlation id 2" in (connection.closing_reason or "")


async def test_bytes_sent_before_the_broker_connection_is_up_are_forwarded_in_order() -> None:
    gateway = FakeGateway()
    gateway.dial_gate.clear()
    connection, _, gateway = await connected(gateway)
    first, second = produce_request(1, acks=-1), produce_request(2, acks=-1)
    connection.data_received(first)
    connection.data_received(second)
    assert bytes(gateway.upstream.written) == b""
    gateway.dial_gate.set()
    await asyncio.sleep(0.01)
    assert bytes(gateway.upstream.written) == first + second


async def test_a_slow_broker_pauses_reading_from_the_client_until_it_drains() -> None:
    _connection, client, gateway = await connected()
    assert gateway.upstream_protocol is not None
    gateway.upstream_protocol.pause_writing()
    assert client.reading is False
    gateway.upstream_protocol.resume_writing()
    assert client.reading is True


async def test_a_slow_client_pauses_reading_from_the_broker() -> None:
    connection, _, gateway = await connected()
    connection.pause_writing()
    assert gateway.upstream.reading is False
    connection.resume_writing()
    assert gateway.upstream.reading is True


async def test_too_many_requests_in_flight_pause_the_client_until_answers_arrive() -> None:
    gateway = FakeGateway(LimitsConfig(maxInFlight=2))
    connection, client, gateway = await connected(gateway)
    connection.data_received(produce_request(1, acks=-1) + produce_request(2, acks=-1))
    assert client.reading is False
    from_broker(gateway, produce_response(1))
    assert client.reading is True


async def test_a_broker_that_closes_takes_the_client_connection_with_it() -> None:
    connection, client, gateway = await connected()
    assert gateway.upstream_protocol is not None
    gateway.upstream_protocol.connection_lost(None)
    assert client.closed and "closed the connection" in (connection.closing_reason or "")


async def test_sasl_handshake_v0_tokens_pass_through_raw_then_kafka_framing_resumes() -> None:
    connection, _client, gateway = await connected()
    handshake = request(17, 0, 1, {"Mechanism": "PLAIN"})
    connection.data_received(handshake)
    from_broker(gateway, response(17, 0, 1, {"ErrorCode": 0, "Mechanisms": ["PLAIN"]}))
    token = framed(b"\x00alice\x00alice-secret")  # no Kafka header: would not parse as one
    connection.data_received(token)
    from_broker(gateway, framed(b""))  # the broker's empty PLAIN answer
    assert not connection.is_closing
    connection.data_received(request(METADATA, 12, 2, METADATA_REQUEST))
    from_broker(gateway, response(METADATA, 12, 2, METADATA_ANSWER))
    assert bytes(gateway.upstream.written).startswith(handshake + token)
    assert not connection.is_closing and len(connection.in_flight) == 0


async def test_sasl_handshake_v0_with_a_mechanism_that_cannot_be_followed_is_refused() -> None:
    connection, _client, _ = await connected()
    connection.data_received(request(17, 0, 1, {"Mechanism": "GSSAPI"}))
    assert connection.is_closing and "SaslHandshake v1" in (connection.closing_reason or "")


async def test_a_failed_sasl_handshake_v0_keeps_kafka_framing() -> None:
    connection, _client, gateway = await connected()
    connection.data_received(request(17, 0, 1, {"Mechanism": "PLAIN"}))
    from_broker(gateway, response(17, 0, 1, {"ErrorCode": 33, "Mechanisms": ["SCRAM-SHA-512"]}))
    connection.data_received(request(METADATA, 12, 2, METADATA_REQUEST))
    assert len(connection.in_flight) == 1 and not connection.is_closing


def plain_store() -> UserStore:
    from failover_gateway.auth import users

    return users.parse(
        {
            "users": {
                "alice": {
                    "PLAIN": users.entry_for("PLAIN", "alice-pw"),
                    "SCRAM-SHA-512": users.entry_for("SCRAM-SHA-512", "alice-pw"),
                }
            }
        },
        "test",
    )


async def sasl_gateway() -> tuple[ClientConnection, FakeTransport, FakeGateway]:
    gateway = FakeGateway()
    gateway.users = plain_store()
    return await connected(gateway)


def handshake(mechanism: str, correlation_id: int = 1) -> bytes:
    return request(17, 1, correlation_id, {"Mechanism": mechanism})


def authenticate(token: bytes, correlation_id: int) -> bytes:
    return request(36, 1, correlation_id, {"AuthBytes": token})


def answers(client: FakeTransport) -> list[bytes]:
    data, frames = bytes(client.written), []
    while data:
        size = struct.unpack(">i", data[:4])[0]
        frames.append(data[: 4 + size])
        data = data[4 + size :]
    return frames


async def test_a_sasl_client_is_answered_by_the_gateway_and_only_then_reaches_a_broker() -> None:
    connection, client, gateway = await sasl_gateway()
    body = {"ClientSoftwareName": "t", "ClientSoftwareVersion": "1"}
    connection.data_received(request(API_VERSIONS, 3, 1, body))
    connection.data_received(handshake("PLAIN", 2))
    await asyncio.sleep(0)
    assert gateway.dials == 0, "no broker connection before authentication"
    connection.data_received(authenticate(b"\x00alice\x00alice-pw", 3))
    for _ in range(50):
        await asyncio.sleep(0)
    assert gateway.dials == 1 and connection.principal == "alice"
    first, second, third = answers(client)
    assert decode_response(API_VERSIONS, 3, first)[1]["ErrorCode"] == 0
    assert decode_response(17, 1, second)[1]["ErrorCode"] == 0
    assert decode_response(36, 1, third)[1]["ErrorCode"] == 0
    connection.data_received(request(METADATA, 12, 4, METADATA_REQUEST))
    assert bytes(gateway.upstream.written).startswith(request(METADATA, 12, 4, METADATA_REQUEST))
    assert b"alice-pw" not in bytes(gateway.upstream.written)


async def test_a_wrong_password_gets_an_authentication_error_and_no_broker_connection() -> None:
    connection, client, gateway = await sasl_gateway()
    connection.data_received(handshake("PLAIN") + authenticate(b"\x00alice\x00nope", 2))
    await asyncio.sleep(0.01)
    _, answer = decode_response(36, 1, answers(client)[-1])
    assert answer["ErrorCode"] == 58 and "invalid user name or password" in answer["ErrorMessage"]
    assert connection.is_closing and gateway.dials == 0
    assert "nope" not in (connection.closing_reason or "")


async def test_a_request_before_authentication_is_refused() -> None:
    connection, _, gateway = await sasl_gateway()
    connection.data_received(request(METADATA, 12, 1, METADATA_REQUEST))
    assert connection.is_closing and "before SASL authentication" in (
        connection.closing_reason or ""
    )
    assert gateway.dials == 0


async def test_a_scram_client_authenticates_to_the_gateway() -> None:
    from failover_gateway.auth import scram

    connection, client, gateway = await sasl_gateway()
    scram_client = scram.ScramClient("SCRAM-SHA-512", "alice", "alice-pw")
    connection.data_received(handshake("SCRAM-SHA-512"))
    connection.data_received(authenticate(scram_client.first(), 2))
    server_first = decode_response(36, 1, answers(client)[-1])[1]["AuthBytes"]
    connection.data_received(authenticate(scram_client.final(server_first), 3))
    scram_client.verify(decode_response(36, 1, answers(client)[-1])[1]["AuthBytes"])
    for _ in range(50):
        await asyncio.sleep(0)
    assert connection.principal == "alice" and gateway.dials == 1


async def test_an_unknown_mechanism_is_refused_naming_the_enabled_ones() -> None:
    connection, client, _ = await sasl_gateway()
    connection.data_received(handshake("GSSAPI"))
    _, answer = decode_response(17, 1, answers(client)[-1])
    assert answer["ErrorCode"] == 33 and answer["Mechanisms"] == ["PLAIN", "SCRAM-SHA-512"]
    assert connection.is_closing


async def test_the_gateways_own_requests_slip_in_at_a_frame_boundary_and_stay_hidden() -> None:
    connection, client, gateway = await connected()
    records = {"Name": "t", "PartitionData": [{"Index": 0, "Records": record_batch(b"x" * 4000)}]}
    big = request(
        PRODUCE,
        9,
        7,
        {"TransactionalId": None, "Acks": -1, "TimeoutMs": 1000, "TopicData": [records]},
    )
    connection.data_received(big[:1000])  # a frame half forwarded: nothing may be inserted now
    waiting = asyncio.ensure_future(connection.exchange(17, 1, {"Mechanism": "PLAIN"}))
    await asyncio.sleep(0.02)
    assert bytes(gateway.upstream.written) == big[:1000]
    connection.data_received(big[1000:])
    await asyncio.sleep(0.02)
    written = bytes(gateway.upstream.written)
    assert written.startswith(big) and len(written) > len(big)
    internal_id = struct.unpack(">i", written[len(big) + 8 : len(big) + 12])[0]
    assert internal_id < 0
    from_broker(gateway, produce_response(7))
    from_broker(gateway, response(17, 1, internal_id, {"ErrorCode": 0, "Mechanisms": ["PLAIN"]}))
    assert (await asyncio.wait_for(waiting, 1))["Mechanisms"] == ["PLAIN"]
    assert bytes(client.written) == produce_response(7), "the client sees only its own answer"


async def test_a_malformed_request_before_authentication_closes_only_that_connection() -> None:
    connection, client, gateway = await sasl_gateway()
    bad_client_id = b"\x00\x11\x00\x01\x00\x00\x00\x01\x00\x02\xe0\x80"  # not UTF-8
    deliver(connection, len(bad_client_id).to_bytes(4, "big") + bad_client_id)
    assert client.closed and gateway.dials == 0
    assert "malformed SASL-phase request" in (connection.closing_reason or "")


async def test_a_client_whose_broker_cannot_be_reached_gets_a_reset_as_from_a_down_broker() -> None:
    gateway = FakeGateway()

    async def refused(*_: Any) -> tuple[asyncio.BaseTransport, int]:
        raise ConnectionRefusedError("connection refused")

    gateway.dial = refused  # type: ignore[method-assign]
    connection, client, _ = await connected(gateway)
    for _ in range(20):
        await asyncio.sleep(0)
    assert connection.is_closing and "no broker of cluster main reachable" in str(
        connection.closing_reason
    )
    assert client.closed and client.reset


API_VERSIONS_BODY = {"ClientSoftwareName": "kgo", "ClientSoftwareVersion": "1.22.3"}


async def test_a_broker_that_leaves_before_the_first_answer_gets_the_client_a_reset() -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(API_VERSIONS, 3, 1, API_VERSIONS_BODY))
    assert gateway.upstream_protocol is not None
    gateway.upstream_protocol.connection_lost(None)  # the broker was killed
    assert "closed the connection" in str(connection.closing_reason)
    assert client.closed and client.reset, "an orderly close here tells franz-go to give up"


async def test_a_broker_that_leaves_after_answering_gets_the_client_an_orderly_close() -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(API_VERSIONS, 3, 1, API_VERSIONS_BODY))
    from_broker(
        gateway, response(API_VERSIONS, 3, 1, {"ErrorCode": 0, "ApiKeys": [], "ThrottleTimeMs": 0})
    )
    assert gateway.upstream_protocol is not None
    gateway.upstream_protocol.connection_lost(None)
    assert client.closed and not client.reset


async def test_a_client_over_the_connection_limit_gets_a_reset() -> None:
    gateway = FakeGateway()
    gateway.connection_opened = lambda _connection: False  # type: ignore[method-assign]
    connection, client, _ = await connected(gateway)
    assert connection.closing_reason == "connection limit reached"
    assert client.closed and client.reset
