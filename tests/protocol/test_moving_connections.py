"""A switch moves a connection at rest to the new cluster under its client, and closes the rest.

Real ClientConnection and Switchboard, fake sockets: what reaches which broker, and what the
client sees, when a switch re-dials the broker side of a connection instead of closing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pump_fakes
import pytest
from pump_fakes import (
    API_VERSIONS,
    METADATA,
    METADATA_REQUEST,
    FakeGateway,
    connected,
    decode_response,
    from_broker,
    produce_request,
    produce_response,
    request,
    response,
)

from failover_gateway.codec import headers, schema, specs
from failover_gateway.config import LimitsConfig
from failover_gateway.pump.connection import ClientConnection
from failover_gateway.server.switching import Switchboard, SwitchRecord

FETCH, SASL_HANDSHAKE = 1, 17


async def settle(connection: ClientConnection) -> None:
    for _ in range(100):
        if connection.upstream_connected:
            return
        await asyncio.sleep(0)


def switching(
    gateway: FakeGateway,
    connection: ClientConnection,
    *,
    may_move: bool = True,
    drain_ms: int | None = None,
) -> Coroutine[Any, Any, SwitchRecord]:
    """A switch main -> failover of a board holding ``connection``, to be awaited."""
    switchboard = Switchboard(
        clusters=["main", "failover"], active="main", may_move=lambda: may_move
    )
    switchboard.connections.add(connection)
    gateway.active = "failover"  # the runtime routes to the active cluster
    return switchboard.switch("failover", epoch=1, drain_ms=drain_ms, source="test")


async def switched(
    gateway: FakeGateway, connection: ClientConnection, *, may_move: bool = True
) -> SwitchRecord:
    record = await switching(gateway, connection, may_move=may_move)
    await settle(connection)
    return record


async def test_an_idle_connection_moves_and_its_next_request_reaches_the_new_cluster() -> None:
    connection, client, gateway = await connected()
    old = gateway.upstream
    record = await switched(gateway, connection)
    assert record.moved_connections == 1 and record.closed_connections == 0
    assert old.closed and not client.closed, "the broker side is replaced, the client's kept"
    assert connection.cluster == "failover"
    assert [cluster for cluster, _ in gateway.dialled] == ["main", "failover"]
    new = gateway.upstream
    assert new is not old
    frame = produce_request(7, acks=1)
    connection.data_received(frame)
    assert bytes(new.written) == frame and frame not in bytes(old.written)
    from_broker(gateway, produce_response(7))
    assert bytes(client.written) == produce_response(7)


async def test_a_connection_with_a_request_in_flight_is_closed_not_moved() -> None:
    connection, client, gateway = await connected()
    connection.data_received(produce_request(1, acks=1))
    assert connection.move_blocker() == "requests in flight"
    record = await switched(gateway, connection)
    assert record.moved_connections == 0 and record.closed_connections == 1
    assert client.closed and gateway.dials == 1


async def test_a_late_answer_from_the_old_broker_never_reaches_the_moved_client() -> None:
    connection, client, gateway = await connected()
    old = gateway.upstream
    await switched(gateway, connection)
    old_protocol = old.get_protocol()  # what the old socket now reports to
    assert isinstance(old_protocol, asyncio.Protocol)
    old_protocol.data_received(produce_response(99))  # nothing asked it: dropped, not an error
    old_protocol.connection_lost(None)
    assert bytes(client.written) == b"" and not connection.is_closing


async def test_requests_sent_while_the_new_broker_is_dialled_wait_and_go_there_in_order() -> None:
    connection, _, gateway = await connected()
    gateway.dial_gate.clear()
    await switching(gateway, connection)
    first, second = produce_request(1, acks=1), request(METADATA, 12, 2, METADATA_REQUEST)
    connection.data_received(first + second)
    assert not connection.upstream_connected
    gateway.dial_gate.set()
    await settle(connection)
    assert bytes(gateway.upstream.written) == first + second
    assert gateway.dialled[-1][0] == "failover"


API_VERSIONS_BODY = {"ClientSoftwareName": "kgo", "ClientSoftwareVersion": "1.22.3"}


async def test_a_connection_still_dialling_its_first_broker_is_rerouted_not_closed() -> None:
    connection, client, gateway = await connected_while_dialling()
    first_request = request(API_VERSIONS, 3, 1, API_VERSIONS_BODY)
    connection.data_received(first_request)
    record = await switching(gateway, connection)
    assert record.moved_connections == 1 and record.closed_connections == 0
    assert connection.cluster == "failover" and not client.closed
    gateway.dial_gate.set()
    await settle(connection)
    await asyncio.sleep(0)
    (_, stale), (cluster, fresh) = gateway.dialled
    assert cluster == "failover"
    assert stale.closed and bytes(stale.written) == b"", "the dial to main is dropped unused"
    assert bytes(fresh.written) == first_request
    from_broker(
        gateway, response(API_VERSIONS, 3, 1, {"ErrorCode": 0, "ApiKeys": [], "ThrottleTimeMs": 0})
    )
    assert not connection.is_closing and decode_response(API_VERSIONS, 3, bytes(client.written))


async def test_a_connection_dialling_with_more_than_api_versions_queued_is_closed() -> None:
    connection, client, gateway = await connected_while_dialling()
    connection.data_received(produce_request(1, acks=1))  # translated for main: cannot go on
    record = await switching(gateway, connection)
    assert record.closed_connections == 1 and client.closed
    gateway.dial_gate.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert all(transport.closed for _, transport in gateway.dialled)


async def test_a_first_api_versions_unanswered_at_a_switch_is_answered_by_the_gateway() -> None:
    connection, client, gateway = await connected()
    old = gateway.upstream
    connection.data_received(request(API_VERSIONS, 3, 1, API_VERSIONS_BODY))
    assert connection.move_blocker() is None
    record = await switched(gateway, connection)
    assert record.moved_connections == 1 and old.closed and not client.closed
    correlation_id, answer = decode_response(API_VERSIONS, 3, bytes(client.written))
    assert correlation_id == 1 and answer["ErrorCode"] == 0 and answer["ApiKeys"]
    metadata = request(METADATA, 12, 2, METADATA_REQUEST)
    connection.data_received(metadata)
    assert bytes(gateway.upstream.written) == metadata and gateway.dialled[-1][0] == "failover"


async def test_a_client_logging_in_to_the_gateway_at_a_switch_reaches_the_new_cluster() -> None:
    from test_client_connection import authenticate, handshake, plain_store

    gateway = FakeGateway()
    gateway.users = plain_store()
    connection, client, gateway = await connected(gateway)
    connection.data_received(handshake("PLAIN", 1))
    record = await switching(gateway, connection)
    assert record.moved_connections == 1 and not client.closed
    connection.data_received(authenticate(b"\x00alice\x00alice-pw", 2))
    await settle(connection)
    assert [cluster for cluster, _ in gateway.dialled] == ["failover"]


async def test_a_first_api_versions_closed_at_a_switch_is_reset_not_closed_in_order() -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(API_VERSIONS, 3, 1, API_VERSIONS_BODY))
    record = await switched(gateway, connection, may_move=False)
    assert record.closed_connections == 1 and client.closed and client.reset


async def test_a_connection_that_had_answers_closes_in_order_at_a_switch() -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(API_VERSIONS, 3, 1, API_VERSIONS_BODY))
    from_broker(
        gateway, response(API_VERSIONS, 3, 1, {"ErrorCode": 0, "ApiKeys": [], "ThrottleTimeMs": 0})
    )
    record = await switched(gateway, connection, may_move=False)
    assert record.closed_connections == 1 and client.closed and not client.reset


async def connected_while_dialling() -> tuple[ClientConnection, Any, FakeGateway]:
    gateway = FakeGateway()
    gateway.dial_gate.clear()
    connection, client, gateway = await connected(gateway)
    for _ in range(5):  # the dial task reaches the gate and waits there
        await asyncio.sleep(0)
    return connection, client, gateway


async def test_a_connection_whose_client_logged_in_to_the_broker_itself_is_closed() -> None:
    connection, client, gateway = await connected()
    handshake = request(SASL_HANDSHAKE, 1, 1, {"Mechanism": "PLAIN"})
    connection.data_received(handshake)
    from_broker(gateway, response(SASL_HANDSHAKE, 1, 1, {"ErrorCode": 0, "Mechanisms": ["PLAIN"]}))
    assert connection.move_blocker() == "the client logged in to the broker itself"
    record = await switched(gateway, connection)
    assert record.closed_connections == 1 and client.closed


async def test_without_permission_to_move_every_connection_of_the_old_cluster_closes() -> None:
    connection, client, gateway = await connected()
    record = await switched(gateway, connection, may_move=False)
    assert record.moved_connections == 0 and record.closed_connections == 1 and client.closed


async def test_a_drained_connection_moves_once_its_answers_are_in() -> None:
    connection, client, gateway = await connected()
    connection.data_received(produce_request(5, acks=1))
    old = gateway.upstream
    draining = asyncio.create_task(switching(gateway, connection, drain_ms=2000))
    await asyncio.sleep(0.02)
    from_broker(gateway, produce_response(5))  # answered by main: it was sent before the switch
    record = await draining
    await settle(connection)
    assert record.moved_connections == 1 and old.closed and not client.closed
    assert bytes(client.written) == produce_response(5)
    assert client.reading, "the drain's pause is lifted when the connection moves"


FETCH_BODY = {**pump_fakes.FETCH_BODY, "SessionId": 77, "SessionEpoch": 3}  # incremental


@pytest.mark.parametrize("version", [4, 12, 13])
async def test_a_fetch_waiting_for_data_is_answered_empty_and_its_connection_moves(
    version: int,
) -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(FETCH, version, 41, FETCH_BODY))
    record = await switched(gateway, connection)
    assert record.moved_connections == 1 and not client.closed
    correlation_id, answer = decode_response(FETCH, version, bytes(client.written))
    assert correlation_id == 41 and answer["Responses"] == []
    if version >= 7:
        assert answer["ErrorCode"] == 0 and answer["SessionId"] == 0, "the session is over"
    connection.data_received(request(FETCH, version, 42, FETCH_BODY))
    assert gateway.dialled[-1][0] == "failover" and len(gateway.upstream.written) > 0


async def test_a_fetch_behind_a_produce_in_flight_keeps_the_connection_from_moving() -> None:
    connection, client, gateway = await connected()
    connection.data_received(produce_request(1, acks=1) + request(FETCH, 12, 2, FETCH_BODY))
    record = await switched(gateway, connection)
    assert record.closed_connections == 1 and client.closed


JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
JOIN = {
    "GroupId": "readers",
    "SessionTimeoutMs": 45000,
    "RebalanceTimeoutMs": 300000,
    "MemberId": "",
    "GroupInstanceId": None,
    "ProtocolType": "consumer",
    "Protocols": [{"Name": "range", "Metadata": b"x"}],
    "Reason": None,
}


def heartbeat(correlation_id: int, member: str, instance: str | None = None) -> bytes:
    body = {"GroupId": "readers", "GenerationId": 3, "MemberId": member}
    return request(HEARTBEAT, 4, correlation_id, {**body, "GroupInstanceId": instance})


def requests_sent(written: bytes, api_key: int) -> list[dict[str, Any]]:
    """The requests of ``api_key`` among the frames written to a broker, decoded."""
    found, view, pos = [], memoryview(written), 0
    while pos < len(written):
        size = int.from_bytes(written[pos : pos + 4], "big")
        frame = view[pos + 4 : pos + 4 + size]
        header = headers.parse_request_header(frame)
        if header.api_key == api_key:
            spec = specs.request(api_key)
            assert spec is not None
            found.append(schema.decode(spec, header.api_version, frame[header.body_offset :]))
        pos += 4 + size
    return found


def leave_groups_sent(written: bytes) -> list[dict[str, Any]]:
    """The LeaveGroup requests among the frames written to a broker."""
    return requests_sent(written, LEAVE_GROUP)


async def test_a_switch_tells_the_old_coordinator_that_the_clients_member_left_its_group() -> None:
    connection, _, gateway = await connected()
    old = gateway.upstream
    connection.data_received(heartbeat(1, "member-1"))
    from_broker(gateway, response(HEARTBEAT, 4, 1, {"ThrottleTimeMs": 0, "ErrorCode": 0}))
    await switched(gateway, connection)
    left = leave_groups_sent(bytes(old.written))
    assert left == [
        {"GroupId": "readers", "Members": [{"MemberId": "member-1", "GroupInstanceId": None}]}
    ]
    assert leave_groups_sent(bytes(gateway.upstream.written)) == [], "nothing left on failover"


async def test_a_static_member_is_not_made_to_leave_at_a_switch() -> None:
    connection, _, gateway = await connected()
    old = gateway.upstream
    connection.data_received(heartbeat(1, "member-1", instance="reader-a"))
    from_broker(gateway, response(HEARTBEAT, 4, 1, {"ThrottleTimeMs": 0, "ErrorCode": 0}))
    await switched(gateway, connection)
    assert leave_groups_sent(bytes(old.written)) == []


async def test_a_member_the_broker_named_in_a_join_answer_is_left_at_a_switch() -> None:
    """KIP-394: a first join (no member id) is answered MEMBER_ID_REQUIRED with the id of a
    pending member the broker now holds; a switch before the second join must still leave it."""
    connection, client, gateway = await connected()
    old = gateway.upstream
    connection.data_received(request(JOIN_GROUP, 5, 1, JOIN))
    answer = {
        "ThrottleTimeMs": 0,
        "ErrorCode": 79,
        "GenerationId": -1,
        "ProtocolName": "",
        "Leader": "",
        "MemberId": "pending-7",
        "Members": [],
    }
    from_broker(gateway, response(11, 5, 1, answer))
    assert bytes(client.written) == response(11, 5, 1, answer), "forwarded unchanged"
    await switched(gateway, connection)
    assert leave_groups_sent(bytes(old.written)) == [
        {"GroupId": "readers", "Members": [{"MemberId": "pending-7", "GroupInstanceId": None}]}
    ]


async def member_left_at_a_switch() -> tuple[
    ClientConnection, pump_fakes.FakeTransport, FakeGateway
]:
    connection, client, gateway = await connected()
    connection.data_received(heartbeat(1, "member-1"))
    from_broker(gateway, response(HEARTBEAT, 4, 1, {"ThrottleTimeMs": 0, "ErrorCode": 0}))
    await switched(gateway, connection)
    client.written.clear()
    return connection, client, gateway


async def test_a_heartbeat_of_a_member_left_at_a_switch_is_told_to_rejoin_by_the_gateway() -> None:
    """The new cluster never knew the member: the gateway answers REBALANCE_IN_PROGRESS, which
    every client takes as "rejoin" (the cluster's UNKNOWN_MEMBER_ID is an error to franz-go)."""
    connection, client, gateway = await member_left_at_a_switch()
    connection.data_received(heartbeat(2, "member-1"))
    assert decode_response(HEARTBEAT, 4, bytes(client.written)) == (
        2,
        {"ThrottleTimeMs": 0, "ErrorCode": 27},
    )
    assert requests_sent(bytes(gateway.upstream.written), HEARTBEAT) == []


async def test_a_sync_of_a_member_left_at_a_switch_is_told_to_rejoin_by_the_gateway() -> None:
    connection, client, gateway = await member_left_at_a_switch()
    sync = {
        "GroupId": "readers",
        "GenerationId": 3,
        "MemberId": "member-1",
        "GroupInstanceId": None,
        "ProtocolType": "consumer",
        "ProtocolName": "range",
        "Assignments": [],
    }
    connection.data_received(request(SYNC_GROUP, 5, 2, sync))
    correlation_id, answer = decode_response(SYNC_GROUP, 5, bytes(client.written))
    assert (correlation_id, answer["ErrorCode"]) == (2, 27)
    assert requests_sent(bytes(gateway.upstream.written), SYNC_GROUP) == []


async def test_a_join_of_a_member_left_at_a_switch_reaches_the_new_cluster_as_a_first_join() -> (
    None
):
    connection, _, gateway = await member_left_at_a_switch()
    connection.data_received(request(JOIN_GROUP, 9, 2, {**JOIN, "MemberId": "member-1"}))
    await asyncio.sleep(0)
    joins = requests_sent(bytes(gateway.upstream.written), JOIN_GROUP)
    assert joins == [{**JOIN, "MemberId": ""}]


async def test_a_member_left_through_one_connection_is_told_to_rejoin_on_another() -> None:
    """The client's other connection (or its next one) to the same pod gets the same answer."""
    _, _, gateway = await member_left_at_a_switch()
    other, client, _ = await connected(gateway)
    other.data_received(heartbeat(7, "member-1"))
    assert decode_response(HEARTBEAT, 4, bytes(client.written))[1]["ErrorCode"] == 27


async def test_a_heartbeat_of_a_member_never_left_goes_to_the_cluster() -> None:
    connection, client, gateway = await member_left_at_a_switch()
    connection.data_received(heartbeat(2, "member-2"))
    assert client.written == b""
    assert [h["MemberId"] for h in requests_sent(bytes(gateway.upstream.written), HEARTBEAT)] == [
        "member-2"
    ]


async def test_a_member_with_a_join_in_flight_is_left_on_a_connection_of_the_gateways_own() -> None:
    """A broker reads nothing behind a request it has not answered (a JoinGroup may wait for a
    rebalance), so a LeaveGroup written behind it would be lost with the closing connection."""
    connection, client, gateway = await connected()
    old = gateway.upstream
    connection.data_received(request(JOIN_GROUP, 5, 1, {**JOIN, "MemberId": "pending-7"}))
    record = await switched(gateway, connection)
    assert record.closed_connections == 1 and client.closed
    assert leave_groups_sent(bytes(old.written)) == []
    assert gateway.left_apart == [("main", {"readers": "pending-7"})]


@pytest.mark.parametrize(("switched_ago", "seen"), [(5.0, 27), (600.0, 25)])
async def test_the_new_clusters_unknown_member_answer_soon_after_a_switch_says_rejoin(
    switched_ago: float, seen: int
) -> None:
    """The member may have been left by another pod, which this one cannot know: for a while
    after its own switch, the pod passes the cluster's UNKNOWN_MEMBER_ID on as the rejoin signal
    (franz-go counts the former as an error of its session); later it goes through as it is."""
    connection, client, gateway = await connected()
    gateway.last_switch_at = asyncio.get_running_loop().time() - switched_ago
    connection.data_received(heartbeat(1, "member-of-another-pod"))
    from_broker(gateway, response(HEARTBEAT, 4, 1, {"ThrottleTimeMs": 0, "ErrorCode": 25}))
    assert decode_response(HEARTBEAT, 4, bytes(client.written)) == (
        1,
        {"ThrottleTimeMs": 0, "ErrorCode": seen},
    )


async def test_a_moving_connection_that_sends_a_request_is_dialled_before_idle_ones() -> None:
    gateway = FakeGateway(LimitsConfig(maxConcurrentDials=1))
    switchboard = Switchboard(clusters=["main", "failover"], active="main", may_move=lambda: True)
    connections = [(await connected(gateway))[0] for _ in range(3)]
    switchboard.connections.update(connections)
    moved = list(switchboard.connections)  # the order the switch moves them in (same set)
    gateway.active = "failover"
    gateway.dial_gate.clear()  # the first re-dial holds the only worker; the others queue
    record = await switchboard.switch("failover", epoch=1, source="test")
    assert record.moved_connections == 3
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(gateway.dial_queue) == 2 and gateway.dial_queue.running == 1
    last = moved[-1]
    last.data_received(request(METADATA, 12, 3, METADATA_REQUEST))  # its client asks for something
    gateway.dial_gate.set()
    order: list[ClientConnection] = []
    for _ in range(200):
        order += [c for c in moved if c.upstream_connected and c not in order]
        await asyncio.sleep(0)
    assert order == [moved[0], last, moved[1]], "the connection with a request waiting went first"
    redials = gateway.dialled[-3:]
    assert [cluster for cluster, _ in redials] == ["failover"] * 3
    assert redials[1][1].written and not redials[2][1].written, "its request reached failover"
