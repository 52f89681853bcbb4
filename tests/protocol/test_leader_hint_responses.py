"""KIP-951 responses through the pump: held whole only from the versions that can name brokers.

Produce v10+ and Fetch v16+ may end with ``NodeEndpoints`` (real broker addresses): the pump must
collect them whole and rewrite them; below those versions they must keep streaming through,
chunk by chunk, as the bulk of the gateway's bytes always did.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pump_fakes import (
    FETCH_BODY,
    FakeGateway,
    connected,
    decode_response,
    from_broker,
    request,
    response,
)

from failover_gateway.codec import schema, specs
from failover_gateway.routing.api_versions import ClusterOffer

FETCH, PRODUCE, API_VERSIONS = 1, 0, 18
RECORDS = b"r" * 50_000


def fetch_request(correlation_id: int, version: int) -> bytes:
    return request(FETCH, version, correlation_id, FETCH_BODY)


def fetch_answer(*, endpoints: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "ThrottleTimeMs": 0,
        "ErrorCode": 0,
        "SessionId": 0,
        "Responses": [
            {
                "Topic": "t",
                "TopicId": uuid.UUID(int=1),
                "Partitions": [
                    {
                        "PartitionIndex": 0,
                        "ErrorCode": 0,
                        "HighWatermark": 10,
                        "LastStableOffset": 10,
                        "LogStartOffset": 0,
                        "AbortedTransactions": None,
                        "PreferredReadReplica": -1,
                        "Records": RECORDS,
                    },
                    {
                        "PartitionIndex": 1,
                        "ErrorCode": 6,
                        "HighWatermark": -1,
                        "LastStableOffset": -1,
                        "LogStartOffset": -1,
                        "AbortedTransactions": None,
                        "PreferredReadReplica": -1,
                        "Records": None,
                        "CurrentLeader": {"LeaderId": 2, "LeaderEpoch": 5},
                    },
                ],
            }
        ],
    }
    if endpoints:
        answer["NodeEndpoints"] = [
            {"NodeId": 2, "Host": "kafka-2.internal", "Port": 9093, "Rack": None}
        ]
    return answer


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


@pytest.mark.parametrize("version", [16, 17, 18])
async def test_a_fetch_answer_naming_a_new_leader_reaches_the_client_with_a_gateway_address(
    version: int,
) -> None:
    connection, client, gateway = await connected()
    connection.data_received(fetch_request(5, version))

    for piece in chunks(response(FETCH, version, 5, fetch_answer(endpoints=True)), 4096):
        from_broker(gateway, piece)

    correlation_id, answer = decode_response(FETCH, version, bytes(client.written))
    assert correlation_id == 5
    assert answer["NodeEndpoints"] == [
        {"NodeId": 2, "Host": "gateway.example.com", "Port": 7002, "Rack": None}
    ]
    assert answer["Responses"][0]["Partitions"][0]["Records"] == RECORDS


async def test_a_kip_951_fetch_answer_without_leader_hints_arrives_byte_for_byte() -> None:
    connection, client, gateway = await connected()
    connection.data_received(fetch_request(6, 17))
    frame = response(FETCH, 17, 6, fetch_answer(endpoints=False))

    for piece in chunks(frame, 1000):
        from_broker(gateway, piece)

    assert bytes(client.written) == frame


async def test_a_kip_951_fetch_answer_is_held_until_it_is_whole() -> None:
    connection, client, gateway = await connected()
    connection.data_received(fetch_request(7, 16))
    frame = response(FETCH, 16, 7, fetch_answer(endpoints=False))

    from_broker(gateway, frame[:-1])
    assert bytes(client.written) == b""
    from_broker(gateway, frame[-1:])

    assert bytes(client.written) == frame


async def test_a_fetch_answer_before_topic_ids_streams_through_as_it_arrives() -> None:
    connection, client, gateway = await connected()
    connection.data_received(fetch_request(8, 12))
    answer = fetch_answer(endpoints=False)
    answer["Responses"][0]["Partitions"][1].pop("CurrentLeader")
    frame = response(FETCH, 12, 8, answer)

    from_broker(gateway, frame[:20_000])

    assert bytes(client.written) == frame[:20_000]


async def test_a_kip_951_produce_answer_naming_a_new_leader_is_rewritten() -> None:
    connection, client, gateway = await connected()
    body = {"TransactionalId": "tx", "Acks": -1, "TimeoutMs": 1000, "TopicData": []}
    connection.data_received(request(PRODUCE, 12, 9, body))
    answer = {
        "Responses": [],
        "ThrottleTimeMs": 0,
        "NodeEndpoints": [{"NodeId": 3, "Host": "kafka-3.internal", "Port": 9094, "Rack": "c"}],
    }

    from_broker(gateway, response(PRODUCE, 12, 9, answer))

    _, seen = decode_response(PRODUCE, 12, bytes(client.written))
    assert seen["NodeEndpoints"][0]["Host"] == "gateway.example.com"
    assert bytes(gateway.upstream.written).endswith(request(PRODUCE, 12, 9, body))


async def test_api_versions_through_the_pump_is_cut_to_what_another_cluster_offers() -> None:
    gateway = FakeGateway()
    gateway.offers = [ClusterOffer(api_ranges={PRODUCE: (0, 11), API_VERSIONS: (0, 4)})]
    connection, client, _ = await connected(gateway)
    ask = {"ClientSoftwareName": "t", "ClientSoftwareVersion": "1"}
    connection.data_received(request(API_VERSIONS, 3, 1, ask))
    answer = {
        "ErrorCode": 0,
        "ApiKeys": [
            {"ApiKey": PRODUCE, "MinVersion": 0, "MaxVersion": 13},
            {"ApiKey": API_VERSIONS, "MinVersion": 0, "MaxVersion": 4},
        ],
        "ThrottleTimeMs": 0,
        "FinalizedFeaturesEpoch": 3,
        "FinalizedFeatures": [
            {"Name": "transaction.version", "MinVersionLevel": 2, "MaxVersionLevel": 2}
        ],
    }

    from_broker(gateway, response(API_VERSIONS, 3, 1, answer))

    payload = bytes(client.written)[8:]  # ApiVersions answers always use response header v0
    seen = schema.decode(specs.message("ApiVersionsResponse"), 3, payload)
    assert [(k["ApiKey"], k["MaxVersion"]) for k in seen["ApiKeys"]] == [(0, 11), (18, 4)]
    assert seen["FinalizedFeatures"] == []  # the other cluster finalized no transaction.version
