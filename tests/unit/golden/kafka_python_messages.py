"""Golden inputs built with kafka-python's own encoder, an implementation independent of ours.

Why: bytes produced by a second codec from the same specs catch mistakes our decoder and
encoder would agree on with each other. Helpers here also translate our dicts (spec names,
``NodeId``) to kafka-python's ``to_dict`` view (``node_id``) so values can be compared.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from kafka.protocol.admin import DescribeClusterResponse
from kafka.protocol.metadata import ApiVersionsResponse, FindCoordinatorResponse, MetadataResponse

from failover_gateway.codec import schema

AUTHORIZED_OPERATIONS_UNSET = -(2**31)  # kafka-python shows this bitfield value as None

REAL_BROKERS = [
    (1, "kafka-1.primary.internal", 9092, "rack-a"),
    (2, "kafka-2.primary.internal", 9093, None),
    (3, "kafka-3.primary.internal", 9094, "rack-c"),
]


def metadata_response(*, topics: int = 2, partitions: int = 3) -> Any:
    broker = MetadataResponse.MetadataResponseBroker
    topic = MetadataResponse.MetadataResponseTopic
    partition = topic.MetadataResponsePartition
    return MetadataResponse(
        throttle_time_ms=12,
        brokers=[broker(node_id=n, host=h, port=p, rack=r) for n, h, p, r in REAL_BROKERS],
        cluster_id="primary-cluster-id",
        controller_id=2,
        topics=[
            topic(
                error_code=0,
                name=f"orders-{t}",
                topic_id=uuid.UUID(int=t + 1),
                is_internal=t == 1,
                partitions=[
                    partition(
                        error_code=0,
                        partition_index=i,
                        leader_id=1 + i % 3,
                        leader_epoch=7,
                        replica_nodes=[1, 2, 3],
                        isr_nodes=[1, 2],
                        offline_replicas=[3] if i == 0 else [],
                    )
                    for i in range(partitions)
                ],
                authorized_operations=None,
            )
            for t in range(topics)
        ],
        authorized_operations=None,
        error_code=0,
    )


def find_coordinator_response(*, error: bool = False) -> Any:
    coordinator = FindCoordinatorResponse.Coordinator
    return FindCoordinatorResponse(
        throttle_time_ms=3,
        error_code=15 if error else 0,  # COORDINATOR_NOT_AVAILABLE
        error_message="not available" if error else None,
        node_id=-1 if error else 2,
        host="" if error else "kafka-2.primary.internal",
        port=-1 if error else 9093,
        coordinators=[
            coordinator(
                key="group-a",
                node_id=2,
                host="kafka-2.primary.internal",
                port=9093,
                error_code=0,
                error_message=None,
            ),
            coordinator(
                key="group-b", node_id=-1, host="", port=-1, error_code=15, error_message="busy"
            ),
            coordinator(
                key="txn-c",
                node_id=3,
                host="kafka-3.primary.internal",
                port=9094,
                error_code=0,
                error_message=None,
            ),
        ],
    )


def describe_cluster_response() -> Any:
    broker = DescribeClusterResponse.DescribeClusterBroker
    return DescribeClusterResponse(
        throttle_time_ms=0,
        error_code=0,
        error_message=None,
        endpoint_type=1,
        cluster_id="primary-cluster-id",
        controller_id=1,
        brokers=[
            broker(broker_id=n, host=h, port=p, rack=r, is_fenced=n == 3)
            for n, h, p, r in REAL_BROKERS
        ],
        authorized_operations=None,
    )


def api_versions_response(ranges: list[tuple[int, int, int]]) -> Any:
    response = ApiVersionsResponse
    return response(
        error_code=0,
        api_keys=[
            response.ApiVersion(api_key=k, min_version=lo, max_version=hi) for k, lo, hi in ranges
        ],
        throttle_time_ms=5,
        supported_features=[
            response.SupportedFeatureKey(name="metadata.version", min_version=7, max_version=27)
        ],
        finalized_features_epoch=42,
        finalized_features=[
            response.FinalizedFeatureKey(
                name="metadata.version", max_version_level=27, min_version_level=27
            )
        ],
    )


def snake_case(name: str) -> str:
    if name.endswith("AuthorizedOperations"):
        return "authorized_operations"  # kafka-python renames these bitfields
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def as_kafka_python(value: Any, name: str = "") -> Any:
    """Our decoded value in the shape of kafka-python's ``to_dict()``."""
    if isinstance(value, dict):
        return {
            snake_case(key): as_kafka_python(item, key)
            for key, item in value.items()
            if key != schema.UNKNOWN_TAGS
        }
    if isinstance(value, list):
        return [as_kafka_python(item, name) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if name.endswith("AuthorizedOperations") and value == AUTHORIZED_OPERATIONS_UNSET:
        return None
    return value


def assert_same_values(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Every field we decoded equals kafka-python's view of it.

    kafka-python also lists tagged fields that were not on the wire (at their defaults); we
    list only what was sent, so the comparison runs over our keys.
    """
    mine = as_kafka_python(ours)
    _assert_subset(mine, theirs, path="")


def _assert_subset(mine: Any, theirs: Any, path: str) -> None:
    if isinstance(mine, dict):
        assert isinstance(theirs, dict), path
        for key, value in mine.items():
            assert key in theirs, f"{path}.{key} missing from kafka-python's decode"
            _assert_subset(value, theirs[key], f"{path}.{key}")
    elif isinstance(mine, list):
        assert isinstance(theirs, list) and len(mine) == len(theirs), path
        for index, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            _assert_subset(a, b, f"{path}[{index}]")
    else:
        assert mine == theirs, f"{path}: ours {mine!r} != kafka-python {theirs!r}"
