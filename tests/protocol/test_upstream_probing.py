"""Probing a cluster's versions and features against a scripted broker on a loopback socket.

The probe asks the newest ApiVersions the gateway knows (v4 lists every supported feature,
``transaction.version`` included, which v3 answers leave out) and falls back to v3 when an
older broker refuses v4 with a v0-encoded UNSUPPORTED_VERSION answer (KIP-511).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from failover_gateway.codec import headers, schema, specs
from failover_gateway.config import ClusterConfig, HostPort
from failover_gateway.server import upstream_probing

API_VERSIONS, METADATA = 18, 3
FEATURES = {
    "SupportedFeatures": [{"Name": "transaction.version", "MinVersion": 0, "MaxVersion": 2}],
    "FinalizedFeaturesEpoch": 9,
    "FinalizedFeatures": [
        {"Name": "transaction.version", "MinVersionLevel": 2, "MaxVersionLevel": 2}
    ],
}
KEYS = [
    {"ApiKey": 0, "MinVersion": 0, "MaxVersion": 13},
    {"ApiKey": API_VERSIONS, "MinVersion": 0, "MaxVersion": 3},
]


class ScriptedBroker:
    """Answers ApiVersions (refusing versions above ``top``) and an empty Metadata."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.asked: list[int] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                size = int.from_bytes(await reader.readexactly(4), "big")
            except asyncio.IncompleteReadError:
                return
            frame = await reader.readexactly(size)
            header = headers.parse_request_header(frame)
            answer = self.answer(header.api_key, header.api_version, header.correlation_id)
            writer.write(len(answer).to_bytes(4, "big") + answer)
            await writer.drain()

    def answer(self, api_key: int, version: int, correlation_id: int) -> bytes:
        spec = specs.response(api_key)
        assert spec is not None
        if api_key == API_VERSIONS:
            self.asked.append(version)
            head = headers.encode_response_header(correlation_id, API_VERSIONS, 0)
            if version > self.top:
                body: dict[str, Any] = {"ErrorCode": 35, "ApiKeys": KEYS}
                return head + schema.encode(spec, 0, body)
            body = {"ErrorCode": 0, "ApiKeys": KEYS, "ThrottleTimeMs": 0, **FEATURES}
            return head + schema.encode(spec, version, body)
        values = {"ThrottleTimeMs": 0, "Brokers": [], "ClusterId": "c", "ControllerId": 1}
        values["Topics"] = []
        head = headers.encode_response_header(correlation_id, METADATA, version)
        return head + schema.encode(spec, version, values)


@pytest.fixture
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ScriptedBroker, int]]:
    scripted = ScriptedBroker(top=request.param)
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield scripted, port
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("broker", [4], indirect=True)
async def test_a_kafka_4_broker_is_asked_api_versions_v4(broker: tuple[ScriptedBroker, int]):
    scripted, port = broker
    cluster = ClusterConfig(name="main", bootstrap_servers=(HostPort("127.0.0.1", port),))

    answer = await upstream_probing.probe_cluster(cluster, None, timeout=5)

    assert scripted.asked == [4]
    assert answer.offer.supported_features == {"transaction.version": (0, 2)}
    assert answer.offer.finalized_features == {"transaction.version": 2}
    assert answer.offer.finalized_epoch == 9


@pytest.mark.parametrize("broker", [3], indirect=True)
async def test_an_older_broker_that_refuses_v4_is_asked_v3(broker: tuple[ScriptedBroker, int]):
    scripted, port = broker
    cluster = ClusterConfig(name="main", bootstrap_servers=(HostPort("127.0.0.1", port),))

    answer = await upstream_probing.probe_cluster(cluster, None, timeout=5)

    assert scripted.asked == [4, 3]
    assert answer.offer.api_ranges[0] == (0, 12)
    assert answer.offer.finalized_features == {"transaction.version": 2}


LIST_OFFSETS = 2


class CanaryCluster(ScriptedBroker):
    """A controller answering Metadata with ``canary``-0 led by node 2 at ``leader_port``; the
    leader (a second listener of this class) answers ListOffsets unless ``leader_hangs``."""

    def __init__(self, leader_hangs: bool) -> None:
        super().__init__(top=4)
        self.leader_port = 0
        self.leader_hangs = leader_hangs
        self.offsets_asked = 0

    def answer(self, api_key: int, version: int, correlation_id: int) -> bytes:
        spec = specs.response(api_key)
        assert spec is not None
        if api_key == METADATA:
            values = {
                "ThrottleTimeMs": 0,
                "ClusterId": "c",
                "ControllerId": 1,
                "Brokers": [
                    {"NodeId": 2, "Host": "127.0.0.1", "Port": self.leader_port, "Rack": None}
                ],
                "Topics": [
                    {
                        "ErrorCode": 0,
                        "Name": "canary",
                        "IsInternal": False,
                        "Partitions": [
                            {
                                "ErrorCode": 0,
                                "PartitionIndex": 0,
                                "LeaderId": 2,
                                "ReplicaNodes": [2],
                                "IsrNodes": [2],
                            }
                        ],
                    }
                ],
            }
            head = headers.encode_response_header(correlation_id, METADATA, version)
            return head + schema.encode(spec, version, values)
        if api_key == LIST_OFFSETS:
            self.offsets_asked += 1
            partition = {
                "PartitionIndex": 0,
                "ErrorCode": 0,
                "Timestamp": -1,
                "Offset": 42,
                "LeaderEpoch": 0,
            }
            values = {
                "ThrottleTimeMs": 0,
                "Topics": [{"Name": "canary", "Partitions": [partition]}],
            }
            head = headers.encode_response_header(correlation_id, LIST_OFFSETS, version)
            return head + schema.encode(spec, version, values)
        return super().answer(api_key, version, correlation_id)

    async def serve_leader(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.leader_hangs:
            await reader.read()  # accepts, never answers: a hung partition leader
            return
        await self.serve(reader, writer)


async def canary_probe(leader_hangs: bool) -> tuple[upstream_probing.Reachability, int]:
    scripted = CanaryCluster(leader_hangs)
    controller = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    leader = await asyncio.start_server(scripted.serve_leader, "127.0.0.1", 0)
    scripted.leader_port = leader.sockets[0].getsockname()[1]
    port = controller.sockets[0].getsockname()[1]
    cluster = ClusterConfig(name="main", bootstrap_servers=(HostPort("127.0.0.1", port),))
    state = upstream_probing.Reachability()
    try:
        await upstream_probing.probe_once(cluster, state, None, 0.5, canary="canary")
    finally:
        for server in (controller, leader):
            server.close()
    return state, scripted.offsets_asked


async def test_a_canary_whose_leader_answers_keeps_the_cluster_healthy() -> None:
    state, asked = await canary_probe(leader_hangs=False)
    assert state.verdict == "healthy" and asked == 1


async def test_a_canary_leader_that_never_answers_judges_the_cluster_down_naming_it() -> None:
    state, _ = await canary_probe(leader_hangs=True)
    assert state.verdict == "down" and state.down_since is not None
    assert "canary canary-0: leader 2" in (state.error or ""), state.error
    assert "did not answer ListOffsets" in (state.error or ""), state.error
