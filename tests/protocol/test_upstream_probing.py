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
