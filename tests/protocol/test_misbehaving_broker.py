"""The pump against a broker that misbehaves: each fault ends only the client connection concerned.

Two clients share one fake gateway, each with its own broker connection; the broker of the first
answers wrongly (truncated, oversized, out of order, unknown correlation id, garbage, slow,
closed mid-frame). The first client's connection must close with one warning naming the broker
(cluster and address) and the fault, nothing wrong must reach that client, and the bystander
must go on being served. The same faults from a real server against a real gateway process are
in ``tests/integration/test_hostile_broker.py``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest
from pump_fakes import (
    METADATA,
    METADATA_ANSWER,
    METADATA_REQUEST,
    FakeGateway,
    FakeTransport,
    connected,
    decode_response,
    deliver,
    produce_request,
    produce_response,
    request,
    response,
)

from failover_gateway.pump.connection import ClientConnection

BROKER = "broker main 127.0.0.1:9092"
WAIT_SECONDS = 5.0


@dataclass
class Side:
    connection: ClientConnection
    client: FakeTransport
    upstream: FakeTransport

    def from_broker(self, data: bytes) -> None:
        deliver(self.upstream.get_protocol(), data)


async def two_clients(gateway: FakeGateway | None = None) -> tuple[Side, Side]:
    """A client whose broker will misbehave, and a bystander on the same gateway."""
    gateway = gateway or FakeGateway()
    first, first_client, _ = await connected(gateway)
    first_upstream = gateway.upstream
    second, second_client, _ = await connected(gateway)
    return (
        Side(first, first_client, first_upstream),
        Side(second, second_client, gateway.upstream),
    )


def metadata_answer(correlation_id: int) -> bytes:
    return response(METADATA, 12, correlation_id, METADATA_ANSWER)


def assert_bystander_served(bystander: Side) -> None:
    bystander.connection.data_received(request(METADATA, 12, 40, METADATA_REQUEST))
    bystander.from_broker(metadata_answer(40))
    correlation_id, body = decode_response(METADATA, 12, bytes(bystander.client.written))
    assert correlation_id == 40 and body["Brokers"][0]["Host"] == "gateway.example.com"
    assert not bystander.connection.is_closing


def broker_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and BROKER in record.getMessage()
    ]


def assert_one_warning(caplog: pytest.LogCaptureFixture, *fault_words: str) -> str:
    [line] = broker_warnings(caplog)
    for words in fault_words:
        assert words in line
    return line


async def wait_closing(connection: ClientConnection) -> None:
    for _ in range(int(WAIT_SECONDS / 0.01)):
        if connection.is_closing:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the connection was not closed")


def garbage_metadata_answer(correlation_id: int) -> bytes:
    payload = correlation_id.to_bytes(4, "big") + b"\xff" * 64
    return len(payload).to_bytes(4, "big") + payload


METADATA_1 = request(METADATA, 12, 1, METADATA_REQUEST)
METADATA_2 = request(METADATA, 12, 2, METADATA_REQUEST)
# What the client sent, what the broker answered, and the words of the gateway's warning.
BAD_ANSWERS = {
    "oversized": (
        METADATA_1,
        (2**31 - 1).to_bytes(4, "big") + metadata_answer(1)[4:],
        "exceeds the maximum of 104857600",
    ),
    "reversed": (
        METADATA_1 + METADATA_2,
        metadata_answer(2) + metadata_answer(1),
        "correlation id 2 answers a later request first (out of order)",
    ),
    "wrong-correlation-id": (
        produce_request(5, acks=-1),
        produce_response(1_000_005),
        "correlation id 1000005 answers no request in flight (unknown correlation id)",
    ),
    "garbage": (
        METADATA_1,
        garbage_metadata_answer(1),
        "sent a bad response: malformed api key 3 v12 response",
    ),
    "too-short": (  # would read as correlation id 1
        produce_request(1, acks=-1),
        b"\x00\x00\x00\x02\x00\x01",
        "frame of 2 bytes has no room for a response header",
    ),
}


@pytest.mark.parametrize("fault", BAD_ANSWERS)
async def test_a_bad_answer_ends_only_its_client_and_none_of_it_is_forwarded(
    caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    sent, answered, warning = BAD_ANSWERS[fault]
    hostile, bystander = await two_clients()
    hostile.connection.data_received(sent)
    hostile.from_broker(answered)
    assert hostile.connection.is_closing and hostile.upstream.closed
    assert hostile.client.written == b""
    assert_one_warning(caplog, warning)
    assert_bystander_served(bystander)


async def test_a_broker_closing_mid_frame_is_named_with_what_was_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile, bystander = await two_clients()
    hostile.connection.data_received(request(METADATA, 12, 1, METADATA_REQUEST))
    answer = metadata_answer(1)
    hostile.from_broker(answer[:20])
    hostile.upstream.get_protocol().connection_lost(None)
    assert hostile.connection.is_closing and hostile.client.closed
    assert_one_warning(caplog, "closed the connection mid-frame", f"{len(answer) - 20} bytes")
    assert_bystander_served(bystander)


@pytest.mark.parametrize("leaving", ["eof", "lost"])
async def test_a_client_giving_up_on_a_half_sent_response_drops_the_broker_and_names_it(
    caplog: pytest.LogCaptureFixture, leaving: str
) -> None:
    hostile, bystander = await two_clients()
    hostile.connection.data_received(produce_request(1, acks=-1))
    answer = produce_response(1)
    for index in range(5):  # a broker trickling its answer, a byte at a time
        hostile.from_broker(answer[index : index + 1])
    if leaving == "eof":  # the client's request timeout ran out: it closes its socket
        hostile.connection.eof_received()
    hostile.connection.connection_lost(None)
    assert hostile.upstream.closed
    assert_one_warning(caplog, "left a response frame unfinished", "until the client gave up")
    assert_bystander_served(bystander)


async def test_a_client_leaving_between_responses_blames_no_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile, _ = await two_clients()
    hostile.connection.data_received(produce_request(1, acks=-1))  # unanswered: not begun
    hostile.connection.eof_received()
    hostile.connection.connection_lost(None)
    assert hostile.upstream.closed
    assert broker_warnings(caplog) == []


async def test_a_response_frame_stalled_past_its_bound_ends_that_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = FakeGateway()
    gateway.response_frame_timeout = 0.05
    hostile, bystander = await two_clients(gateway)
    hostile.connection.data_received(request(METADATA, 12, 1, METADATA_REQUEST))
    hostile.from_broker(metadata_answer(1)[:20])
    await wait_closing(hostile.connection)
    assert hostile.upstream.closed and hostile.client.written == b""
    assert_one_warning(caplog, "stalled", "timeouts.responseFrameMs")
    assert_bystander_served(bystander)


async def test_a_response_held_back_for_a_slow_client_is_not_counted_against_the_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = FakeGateway()
    gateway.response_frame_timeout = 0.02
    connection, _, _ = await connected(gateway)
    connection.data_received(produce_request(1, acks=-1))
    connection.pause_writing()  # the client's socket is full: the gateway stops reading
    answer = produce_response(1)
    deliver(gateway.upstream.get_protocol(), answer[:10])
    await asyncio.sleep(0.2)  # many bounds pass while the gateway holds the broker back
    assert not connection.is_closing
    connection.resume_writing()
    deliver(gateway.upstream.get_protocol(), answer[10:])
    assert not connection.is_closing and broker_warnings(caplog) == []


async def test_frames_that_each_finish_in_time_are_never_cut_by_the_bound() -> None:
    gateway = FakeGateway()
    gateway.response_frame_timeout = 0.05
    connection, client, _ = await connected(gateway)
    answers = b""
    for correlation_id in range(1, 5):
        connection.data_received(produce_request(correlation_id, acks=-1))
        answer = produce_response(correlation_id)
        answers += answer
        deliver(gateway.upstream.get_protocol(), answer[:7])  # begun, unfinished
        await asyncio.sleep(0.03)  # under one bound per frame, more than one bound in all
        deliver(gateway.upstream.get_protocol(), answer[7:])
    assert not connection.is_closing
    assert bytes(client.written) == answers
