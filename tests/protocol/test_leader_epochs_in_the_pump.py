"""Leader epochs through a real connection: none reaches a client, none fences upstream.

Why this module: the unit tests show each message rewritten; these show that the pump holds the
requests and answers that carry epochs and rewrites them on their way (a Fetch of a version
without topic ids used to stream through untouched), with a fake dialer and a fake broker.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pump_fakes import (
    FETCH_BODY,
    METADATA_ANSWER,
    METADATA_REQUEST,
    connected,
    decode_response,
    from_broker,
    request,
    response,
)

from failover_gateway.codec import headers, schema, specs

FETCH, LIST_OFFSETS, METADATA = 1, 2, 3
OLD_CLUSTERS_EPOCH = 40


def upstream_body(api_key: int, frame: Any) -> dict[str, Any]:
    view = memoryview(bytes(frame))[4:]
    header = headers.parse_request_header(view)
    spec = specs.request(api_key)
    assert spec is not None
    return schema.decode(spec, header.api_version, view[header.body_offset :])


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_fetch_goes_upstream_without_the_epochs_a_client_learned_elsewhere() -> None:
    connection, _, gateway = await connected()
    partition = {
        "Partition": 0, "CurrentLeaderEpoch": OLD_CLUSTERS_EPOCH, "FetchOffset": 1234,
        "LastFetchedEpoch": OLD_CLUSTERS_EPOCH - 1, "LogStartOffset": -1, "PartitionMaxBytes": 1024,
    }  # fmt: skip
    body = {**FETCH_BODY, "Topics": [{"Topic": "orders", "Partitions": [partition]}]}

    connection.data_received(request(FETCH, 12, 7, body))
    await settle()

    (sent,) = upstream_body(FETCH, gateway.upstream.written)["Topics"][0]["Partitions"]
    assert (sent["CurrentLeaderEpoch"], sent["LastFetchedEpoch"]) == (-1, -1)
    assert sent["FetchOffset"] == 1234


async def test_a_list_offsets_goes_upstream_unfenced_and_its_answer_names_no_epoch() -> None:
    connection, client, gateway = await connected()
    asked = {"PartitionIndex": 0, "CurrentLeaderEpoch": OLD_CLUSTERS_EPOCH, "Timestamp": -1}
    body = {"ReplicaId": -1, "IsolationLevel": 0, "Topics": [{"Name": "t", "Partitions": [asked]}]}
    connection.data_received(request(LIST_OFFSETS, 7, 8, body))
    await settle()
    (sent,) = upstream_body(LIST_OFFSETS, gateway.upstream.written)["Topics"][0]["Partitions"]
    assert sent["CurrentLeaderEpoch"] == -1

    answered = {
        "PartitionIndex": 0, "ErrorCode": 0, "Timestamp": -1, "Offset": 99, "LeaderEpoch": 3,
    }  # fmt: skip
    answer = {"ThrottleTimeMs": 0, "Topics": [{"Name": "t", "Partitions": [answered]}]}
    from_broker(gateway, response(LIST_OFFSETS, 7, 8, answer))

    _, relayed = decode_response(LIST_OFFSETS, 7, bytes(client.written))
    (partition,) = relayed["Topics"][0]["Partitions"]
    assert (partition["Offset"], partition["LeaderEpoch"]) == (99, -1)


async def test_a_metadata_answer_reaches_the_client_with_every_leader_epoch_unknown() -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(METADATA, 12, 9, METADATA_REQUEST))
    await settle()
    partitions = [
        {"ErrorCode": 0, "PartitionIndex": p, "LeaderId": 1, "LeaderEpoch": 17 + p,
         "ReplicaNodes": [1], "IsrNodes": [1], "OfflineReplicas": []}
        for p in range(3)
    ]  # fmt: skip
    topic = {
        "ErrorCode": 0, "Name": "orders", "TopicId": uuid.UUID(int=0),
        "IsInternal": False, "Partitions": partitions, "TopicAuthorizedOperations": -2147483648,
    }  # fmt: skip

    from_broker(gateway, response(METADATA, 12, 9, {**METADATA_ANSWER, "Topics": [topic]}))

    _, relayed = decode_response(METADATA, 12, bytes(client.written))
    assert [p["LeaderEpoch"] for p in relayed["Topics"][0]["Partitions"]] == [-1, -1, -1]
    assert [p["LeaderId"] for p in relayed["Topics"][0]["Partitions"]] == [1, 1, 1]
