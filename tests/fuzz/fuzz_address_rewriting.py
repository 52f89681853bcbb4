"""Fuzz target: the broker address rewriter (failover_gateway.routing.address_rewriting).

The rewriter reads responses that come from the broker, the one peer whose bytes the gateway
decodes field by field. For any body, any address-bearing api key and any version, it must
either rewrite or refuse with a ``CodecError`` (which closes that one connection), never raise
anything else; and every address field of a rewritten body must be the gateway's. Seeded with
valid Metadata, FindCoordinator, DescribeCluster and KIP-951 Produce answers.
Run: ``python tests/fuzz/fuzz_address_rewriting.py -max_total_time=60``.
"""

from __future__ import annotations

from typing import Any

import atheris
import fuzzing

with atheris.instrument_imports():
    from failover_gateway.codec import errors, schema, specs
    from failover_gateway.routing import address_rewriting

API_KEYS = sorted(address_rewriting.REWRITTEN_MAX_VERSIONS)
REAL_HOST = "kafka-1.internal"
GATEWAY_HOST = "gateway.example.com"


def advertise(node_id: int, host: str, port: int) -> tuple[str, int]:
    return GATEWAY_HOST, 7000 + node_id % 1000


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    api_key = API_KEYS[data[0] % len(API_KEYS)]
    version = data[1] % (address_rewriting.REWRITTEN_MAX_VERSIONS[api_key] + 2)
    body = data[2:]
    try:
        result = address_rewriting.rewrite_response(api_key, version, body, advertise)
    except errors.CodecError:
        return
    assert result is not None
    if result.changed:  # read again, every address field must now be the gateway's
        again = address_rewriting.rewrite_response(api_key, version, result.body, advertise)
        assert again is not None
        leaked = [broker for broker in again.real_brokers if broker.host != GATEWAY_HOST]
        assert not leaked, f"a real broker address leaked: {leaked}"


def seed(api_key: int, version: int, body: dict[str, Any]) -> bytes:
    spec = specs.response(api_key)
    assert spec is not None
    return bytes([API_KEYS.index(api_key), version]) + schema.encode(spec, version, body)


BROKER = {"NodeId": 1, "Host": REAL_HOST, "Port": 9092, "Rack": None}


def seeds() -> list[bytes]:
    metadata = {"ThrottleTimeMs": 0, "Brokers": [BROKER], "ClusterId": "c", "ControllerId": 1,
                "Topics": [], "ClusterAuthorizedOperations": 0}  # fmt: skip
    coordinator = {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "NodeId": 1,
                   "Host": REAL_HOST, "Port": 9092}  # fmt: skip
    batched = {"ThrottleTimeMs": 0, "Coordinators": [{"Key": "g", **coordinator}]}
    cluster = {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "EndpointType": 1,
               "ClusterId": "c", "ControllerId": 1, "Brokers": [
                   {"BrokerId": 1, "Host": REAL_HOST, "Port": 9092, "Rack": None}],
               "ClusterAuthorizedOperations": 0}  # fmt: skip
    produce = {"Responses": [], "ThrottleTimeMs": 0, "NodeEndpoints": [BROKER]}
    return [
        seed(3, 1, metadata), seed(3, 12, metadata), seed(10, 3, coordinator),
        seed(10, 4, batched), seed(60, 1, cluster), seed(0, 10, produce),
    ]  # fmt: skip


if __name__ == "__main__":
    fuzzing.run(one_input, seeds())
