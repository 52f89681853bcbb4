"""A request naming a topic id the pod does not know waits for the pod to look, then goes on.

Why this module: behind one Service, a client's Metadata may be answered by one gateway pod and
its Fetch sent to another that has not seen the topic yet (it was created a moment ago). A
broker keeps the ids of a fetch session's first request, so passing the unknown id on would
leave the session answering UNKNOWN_TOPIC_ID forever (seen with the Java consumer). These tests
drive a real connection with a fake dialer and a fake look at the cluster.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pump_fakes import FakeGateway, connected, produce_request, request

from failover_gateway.codec import headers, schema, specs
from failover_gateway.routing import topic_ids

FETCH = 1
MAIN_ID = uuid.UUID(int=0xAAAA)
ORDERS = topic_ids.virtual_id("orders")


def fetch_request(correlation_id: int, topic_id: uuid.UUID, version: int = 17) -> bytes:
    partition = {
        "Partition": 0, "CurrentLeaderEpoch": -1, "FetchOffset": 0, "LastFetchedEpoch": -1,
        "LogStartOffset": -1, "PartitionMaxBytes": 1024,
    }  # fmt: skip
    body = {
        "ReplicaId": -1, "MaxWaitMs": 100, "MinBytes": 1, "MaxBytes": 1 << 20,
        "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": 0,
        "Topics": [{"Topic": "", "TopicId": topic_id, "Partitions": [partition]}],
        "ForgottenTopicsData": [], "RackId": "",
    }  # fmt: skip
    return request(FETCH, version, correlation_id, body)


def fetched_ids(frame: Any) -> list[uuid.UUID]:
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    spec = specs.request(FETCH)
    assert spec is not None
    values = schema.decode(spec, header.api_version, view[header.body_offset :])
    return [topic["TopicId"] for topic in values["Topics"]]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_fetch_naming_a_topic_the_pod_has_not_seen_goes_on_with_the_real_id() -> None:
    gateway = FakeGateway()
    gateway.cluster_topics = {"orders": MAIN_ID}  # created through another pod a moment ago
    gateway.look_gate.clear()
    connection, _, gateway = await connected(gateway)
    fetch = fetch_request(7, ORDERS)

    connection.data_received(fetch)
    await settle()
    assert bytes(gateway.upstream.written) == b""  # not passed on with an id the broker lacks

    gateway.look_gate.set()
    await settle()
    assert gateway.looks == 1
    assert fetched_ids(gateway.upstream.written) == [MAIN_ID]


async def test_requests_behind_a_waiting_fetch_keep_their_order_and_reading_resumes() -> None:
    gateway = FakeGateway()
    gateway.cluster_topics = {"orders": MAIN_ID}
    gateway.look_gate.clear()
    connection, client, gateway = await connected(gateway)
    fetch, produce = fetch_request(7, ORDERS), produce_request(8, acks=-1)

    connection.data_received(fetch + produce)
    await settle()
    assert not client.reading and bytes(gateway.upstream.written) == b""

    gateway.look_gate.set()
    await settle()
    written = bytes(gateway.upstream.written)
    assert written.endswith(produce) and len(written) == len(fetch) + len(produce)
    assert fetched_ids(written[: len(fetch)]) == [MAIN_ID]
    assert client.reading


async def test_an_id_the_cluster_does_not_know_either_goes_on_as_it_is_after_one_look() -> None:
    gateway = FakeGateway()
    connection, _, gateway = await connected(gateway)
    fetch = fetch_request(7, ORDERS)

    connection.data_received(fetch)
    await settle()

    assert gateway.looks == 1
    assert bytes(gateway.upstream.written) == fetch


async def test_a_known_id_is_translated_without_a_look() -> None:
    gateway = FakeGateway()
    gateway.topic_ids.learn("main", "orders", MAIN_ID)
    connection, _, gateway = await connected(gateway)

    connection.data_received(fetch_request(7, ORDERS))
    await settle()

    assert gateway.looks == 0
    assert fetched_ids(gateway.upstream.written) == [MAIN_ID]
