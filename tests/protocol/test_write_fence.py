"""The write fence in the pump: writes to the fenced cluster are held in order, never lost.

Fake transports on both sides; the connection, request policy and fence are the real ones.
"""

from __future__ import annotations

import asyncio

import pytest
from pump_fakes import (
    METADATA,
    METADATA_REQUEST,
    PRODUCE,
    connected,
    from_broker,
    produce_request,
    produce_response,
    request,
)

from failover_gateway.pump.write_fence import FENCED_WRITES, WriteFence

END_TXN = 26


def end_txn_request(correlation_id: int, producer_id: int) -> bytes:
    body = {"TransactionalId": "t", "ProducerId": producer_id, "ProducerEpoch": 0}
    body["Committed"] = True
    return request(END_TXN, 3, correlation_id, body)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_write_to_the_fenced_cluster_and_everything_behind_it_wait_for_the_lift() -> None:
    connection, client, gateway = await connected()
    gateway.write_fence.fence("main", 30)
    produce = produce_request(1, acks=-1)
    metadata = request(METADATA, 12, 2, METADATA_REQUEST)
    connection.data_received(produce + metadata)  # one read: the second must not overtake
    await settle()
    assert bytes(gateway.upstream.written) == b""
    assert not client.reading, "reading pauses while writes are held"
    gateway.write_fence.lift()
    await settle()
    assert bytes(gateway.upstream.written) == produce + metadata
    assert client.reading
    assert len(connection.in_flight) == 2


async def test_a_write_forwarded_before_the_fence_counts_as_in_flight_until_answered() -> None:
    connection, _, gateway = await connected()
    connection.data_received(produce_request(1, acks=-1))
    gateway.write_fence.fence("main", 30)
    assert connection.in_flight.count(FENCED_WRITES) == 1
    from_broker(gateway, produce_response(1))
    assert connection.in_flight.count(FENCED_WRITES) == 0


async def test_held_writes_of_a_closed_connection_never_reach_the_cluster() -> None:
    """What a switch does: the connection closes, the client sends the write again elsewhere."""
    connection, _, gateway = await connected()
    gateway.write_fence.fence("main", 30)
    connection.data_received(produce_request(1, acks=1))
    await settle()
    connection.close("switch to failover")
    gateway.write_fence.lift()
    await settle()
    assert bytes(gateway.upstream.written) == b""


async def test_end_txn_and_reads_pass_the_fence() -> None:
    connection, _, gateway = await connected()
    gateway.write_fence.fence("main", 30)
    issued = gateway.codecs["main"].to_client(17)  # as main's InitProducerId answer showed it
    sent = end_txn_request(1, issued) + request(METADATA, 12, 2, METADATA_REQUEST)
    connection.data_received(sent)
    await settle()
    # EndTxn goes on with its producer id made main's (so not byte for byte), then Metadata.
    assert [p.api_key for p in connection.in_flight._pending] == [END_TXN, METADATA]
    assert len(gateway.upstream.written) == len(sent)


async def test_a_fence_on_another_cluster_holds_nothing_here() -> None:
    connection, _, gateway = await connected()
    gateway.write_fence.fence("failover", 30)
    sent = produce_request(1, acks=-1)
    connection.data_received(sent)
    await settle()
    assert bytes(gateway.upstream.written) == sent


async def test_a_fence_nobody_lifts_lifts_itself_after_its_limit() -> None:
    connection, _, gateway = await connected()
    gateway.write_fence.fence("main", 0.05)
    sent = produce_request(1, acks=-1)
    connection.data_received(sent)
    await asyncio.sleep(0.1)
    await settle()
    assert bytes(gateway.upstream.written) == sent
    assert gateway.write_fence.state().lifted_by_expiry == 1


async def test_a_fence_raised_again_while_held_writes_flow_holds_the_rest() -> None:
    connection, _, gateway = await connected()
    gateway.write_fence.fence("main", 30)
    first, second = produce_request(1, acks=-1), produce_request(2, acks=-1)
    connection.data_received(first)
    await settle()
    gateway.write_fence.lift()
    gateway.write_fence.fence("main", 30)  # before the held write went on
    connection.data_received(second)
    await settle()
    assert bytes(gateway.upstream.written) == b""
    gateway.write_fence.lift()
    await settle()
    assert bytes(gateway.upstream.written) == first + second


async def test_a_fence_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="positive limit"):
        WriteFence().fence("main", 0)


async def test_fencing_another_cluster_lifts_the_first_and_state_says_which() -> None:
    fence = WriteFence()
    fence.fence("main", 30)
    fence.fence("failover", 10)
    assert not fence.holds("main", 0) and fence.holds("failover", 0)
    state = fence.state().as_json()
    assert state["fenced"] and state["cluster"] == "failover"
    fence.lift()
    assert fence.state().as_json()["fenced"] is False


def transactional_produce(correlation_id: int, transactional_id: str) -> bytes:
    body = {"TransactionalId": transactional_id, "Acks": -1, "TimeoutMs": 1000, "TopicData": []}
    return request(PRODUCE, 9, correlation_id, body)


async def test_a_write_of_a_transaction_open_before_the_fence_goes_on_so_it_can_end() -> None:
    connection, _, gateway = await connected()
    gateway.open_transactions = {"billing"}
    gateway.write_fence.fence("main", 30)
    write = transactional_produce(1, "billing")
    connection.data_received(write)
    await settle()
    assert bytes(gateway.upstream.written) == write, "not held: main said it is ongoing"
    assert gateway.transaction_checks == [("main", "billing")]
    assert gateway.write_fence.cluster == "main", "the fence stays up for everyone else"


async def test_a_write_that_would_begin_a_transaction_waits_for_the_lift() -> None:
    connection, _, gateway = await connected()
    gateway.open_transactions = {"billing"}
    gateway.write_fence.fence("main", 30)
    write = transactional_produce(1, "payments")
    metadata = request(METADATA, 12, 2, METADATA_REQUEST)
    connection.data_received(write + metadata)
    await settle()
    assert bytes(gateway.upstream.written) == b""
    assert gateway.transaction_checks == [("main", "payments")]
    gateway.write_fence.lift()
    await settle()
    assert bytes(gateway.upstream.written) == write + metadata
