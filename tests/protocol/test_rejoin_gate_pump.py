"""The rejoin gate in the pump: after a planned switch, a group member's Fetch waits until the
same client asks for its committed offsets, on any connection; other traffic never waits."""

from __future__ import annotations

import asyncio
from typing import Any

from pump_fakes import FETCH_BODY, FakeGateway, connected, framed

from failover_gateway.codec import headers, schema, specs
from failover_gateway.config import HostPort

FETCH, OFFSET_FETCH, HEARTBEAT = 1, 9, 12
HEARTBEAT_BODY = {"GroupId": "g", "GenerationId": 3, "MemberId": "m-1", "GroupInstanceId": None}
OFFSET_FETCH_BODY = {"Groups": [{"GroupId": "g", "Topics": None}], "RequireStable": False}


def request(api_key: int, version: int, correlation_id: int, body: dict[str, Any], client: str):
    spec = specs.request(api_key)
    assert spec is not None
    header = headers.encode_request_header(api_key, version, correlation_id, client)
    return framed(header + schema.encode(spec, version, body))


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def switched_gateway() -> FakeGateway:
    """A member heartbeats through main, then a planned switch arms the gate, then failover."""
    gateway = FakeGateway()
    member, _, _ = await connected(gateway)
    member.data_received(request(HEARTBEAT, 4, 1, HEARTBEAT_BODY, "billing"))
    await settle()
    assert gateway.rejoin_gate.arm("main", 30) == 1
    gateway.route = lambda slot: ("failover", [HostPort("127.0.0.1", 9093)])  # type: ignore[method-assign]
    gateway.upstream.written.clear()
    return gateway


async def test_a_members_fetch_waits_until_it_asks_for_its_committed_offsets() -> None:
    gateway = await switched_gateway()
    fetcher, client, _ = await connected(gateway)
    fetcher_broker = gateway.upstream
    fetch = request(FETCH, 12, 2, FETCH_BODY, "billing")
    fetcher.data_received(fetch)
    await settle()
    assert bytes(fetcher_broker.written) == b"", "held: it would read with its old positions"
    assert not client.reading
    coordinator, _, _ = await connected(gateway)
    offsets = request(OFFSET_FETCH, 8, 3, OFFSET_FETCH_BODY, "billing")
    coordinator.data_received(offsets)
    await settle()
    assert bytes(gateway.upstream.written) == offsets
    assert bytes(fetcher_broker.written) == fetch
    assert client.reading


async def test_fetches_of_clients_never_seen_in_a_group_pass_at_once() -> None:
    gateway = await switched_gateway()
    fetcher, _, _ = await connected(gateway)
    fetch = request(FETCH, 12, 2, FETCH_BODY, "standalone-reader")
    fetcher.data_received(fetch)
    await settle()
    assert bytes(gateway.upstream.written) == fetch
