"""The gateway's own partition reads (a planned switchover reading MirrorMaker 2's offset syncs
and the records it counts) against a scripted broker: a leader that moved or is not elected yet
is looked up again, not an abort; other errors still end the read, naming the partition."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from failover_gateway.codec import headers, schema, specs
from failover_gateway.config import ClusterConfig, HostPort
from failover_gateway.server.cluster_admin import ClusterAdmin, ClusterCallFailed

METADATA, FETCH = 3, 1
TOPIC = "mm2-offset-syncs.failover.internal"


class ScriptedBroker:
    """One broker (node 1) leading ``TOPIC``-0, answering Fetch with the next scripted error
    code (then 0 with ``records``)."""

    def __init__(self, fetch_errors: list[int], records: bytes = b"batches") -> None:
        self.fetch_errors = list(fetch_errors)
        self.records = records
        self.metadata_asked = 0
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                frame = await reader.readexactly(size)
                header = headers.parse_request_header(frame)
                values = self.answer(header.api_key)
                spec = specs.response(header.api_key)
                assert spec is not None
                payload = headers.encode_response_header(
                    header.correlation_id, header.api_key, header.api_version
                ) + schema.encode(spec, header.api_version, values)
                writer.write(len(payload).to_bytes(4, "big") + payload)
        except asyncio.IncompleteReadError:
            writer.close()

    def answer(self, api_key: int) -> dict[str, Any]:
        if api_key == METADATA:
            self.metadata_asked += 1
            return metadata_answer(self.port)
        assert api_key == FETCH
        code = self.fetch_errors.pop(0) if self.fetch_errors else 0
        return fetch_answer(code, b"" if code else self.records)


def metadata_answer(port: int) -> dict[str, Any]:
    partition = {
        "ErrorCode": 0,
        "PartitionIndex": 0,
        "LeaderId": 1,
        "LeaderEpoch": 0,
        "ReplicaNodes": [1],
        "IsrNodes": [1],
        "OfflineReplicas": [],
    }
    return {
        "ThrottleTimeMs": 0,
        "Brokers": [{"NodeId": 1, "Host": "127.0.0.1", "Port": port, "Rack": None}],
        "ClusterId": "scripted",
        "ControllerId": 1,
        "Topics": [
            {
                "ErrorCode": 0,
                "Name": TOPIC,
                "TopicId": uuid.uuid4(),
                "IsInternal": False,
                "Partitions": [partition],
                "TopicAuthorizedOperations": 0,
            }
        ],
    }


def fetch_answer(code: int, records: bytes) -> dict[str, Any]:
    partition = {
        "PartitionIndex": 0,
        "ErrorCode": code,
        "HighWatermark": 10,
        "LastStableOffset": 10,
        "LogStartOffset": 0,
        "AbortedTransactions": [],
        "PreferredReadReplica": -1,
        "Records": records,
    }
    return {
        "ThrottleTimeMs": 0,
        "ErrorCode": 0,
        "SessionId": 0,
        "Responses": [{"Topic": TOPIC, "Partitions": [partition]}],
    }


@contextlib.asynccontextmanager
async def admin_of(broker: ScriptedBroker) -> AsyncIterator[ClusterAdmin]:
    server = await asyncio.start_server(broker.serve, "127.0.0.1", 0)
    broker.port = server.sockets[0].getsockname()[1]
    config = ClusterConfig(name="main", bootstrap_servers=(HostPort("127.0.0.1", broker.port),))
    admin = ClusterAdmin("main", config, None, timeout=5.0)
    try:
        yield admin
    finally:
        admin.close()
        server.close()


async def read_through(broker: ScriptedBroker) -> bytes:
    async with admin_of(broker) as admin:
        return await admin.read((TOPIC, 0), 0)


@pytest.mark.parametrize("code", [5, 6, 74, 75])
async def test_a_read_whose_leader_moved_looks_it_up_again_and_returns_the_records(
    code: int,
) -> None:
    broker = ScriptedBroker(fetch_errors=[code, code])
    assert await read_through(broker) == b"batches"
    assert broker.metadata_asked == 3, "the layout was looked up again after each refusal"


async def test_a_read_refused_for_another_reason_ends_naming_the_partition_and_error() -> None:
    broker = ScriptedBroker(fetch_errors=[29])  # topic authorization failed
    with pytest.raises(ClusterCallFailed, match=f"Fetch {TOPIC}-0: Kafka error 29"):
        await read_through(broker)
