"""KIP-951 leader hints: broker addresses at the end of Produce, Fetch and share responses.

Produce and Fetch golden bodies come from kafka-python's encoder (an implementation independent
of ours), at every version; kafka-python has no share-group messages, so those are built from
the specs with our encoder and checked field by field.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.producer import ProduceResponse

from failover_gateway.codec import errors, schema, specs
from failover_gateway.routing import address_rewriting, response_rewriting
from failover_gateway.routing.address_rewriting import BrokerAddress

PRODUCE, FETCH, SHARE_FETCH, SHARE_ACKNOWLEDGE = 0, 1, 78, 79
RECORDS = bytes(range(256)) * 8  # opaque to the gateway: must come back byte for byte
REAL_ENDPOINTS = [(2, "kafka-2.primary.internal", 9093, "rack-b"), (3, "k3", 9094, None)]


def gateway_address(node_id: int, host: str, port: int) -> tuple[str, int]:
    return "gateway.example.com", 19_000 + node_id


def fetch_response(*, endpoints: bool) -> Any:
    partition = FetchResponse.FetchableTopicResponse.PartitionData
    topic = FetchResponse.FetchableTopicResponse
    return FetchResponse(
        throttle_time_ms=7,
        error_code=0,
        session_id=99,
        responses=[
            topic(
                topic=f"orders-{t}",
                topic_id=uuid.UUID(int=t + 1),
                partitions=[
                    partition(
                        partition_index=p,
                        error_code=6 if p == 1 else 0,  # NOT_LEADER_OR_FOLLOWER
                        high_watermark=1000 + p,
                        last_stable_offset=990 + p,
                        log_start_offset=p,
                        aborted_transactions=[
                            partition.AbortedTransaction(producer_id=5, first_offset=3)
                        ]
                        if p == 0
                        else None,
                        preferred_read_replica=-1,
                        records=None if p == 1 else RECORDS,
                        current_leader=partition.LeaderIdAndEpoch(leader_id=2, leader_epoch=9)
                        if p == 1
                        else None,
                    )
                    for p in range(3)
                ],
            )
            for t in range(2)
        ],
        node_endpoints=_kp_endpoints(FetchResponse.NodeEndpoint) if endpoints else None,
    )


def produce_response(*, endpoints: bool) -> Any:
    topic = ProduceResponse.TopicProduceResponse
    partition = topic.PartitionProduceResponse
    return ProduceResponse(
        responses=[
            topic(
                name="orders",
                topic_id=uuid.UUID(int=9),
                partition_responses=[
                    partition(
                        index=p,
                        error_code=6 if p == 1 else 0,
                        base_offset=100 * p,
                        log_append_time_ms=-1,
                        log_start_offset=0,
                        record_errors=[],
                        error_message=None,
                        current_leader=partition.LeaderIdAndEpoch(leader_id=3, leader_epoch=4)
                        if p == 1
                        else None,
                    )
                    for p in range(3)
                ],
            )
        ],
        throttle_time_ms=0,
        node_endpoints=_kp_endpoints(ProduceResponse.NodeEndpoint) if endpoints else None,
    )


def _kp_endpoints(kind: Any) -> list[Any]:
    return [kind(node_id=n, host=h, port=p, rack=r) for n, h, p, r in REAL_ENDPOINTS]


BUILDERS = {FETCH: (fetch_response, FetchResponse), PRODUCE: (produce_response, ProduceResponse)}
VERSIONS = [(FETCH, v) for v in range(4, 19)] + [(PRODUCE, v) for v in range(3, 14)]


@pytest.mark.parametrize(("api_key", "version"), VERSIONS)
def test_every_endpoint_is_rewritten_and_everything_else_kept_at_every_version(
    api_key: int, version: int
):
    build, kind = BUILDERS[api_key]
    body = build(endpoints=True).encode(version=version)

    result = address_rewriting.rewrite_response(api_key, version, body, gateway_address)

    assert result is not None
    before, after = kind.decode(body, version=version), kind.decode(result.body, version=version)
    if version < (16 if api_key == FETCH else 10):
        assert not result.changed and result.body is body
        return
    assert [(e.node_id, e.host, e.port, e.rack) for e in after.node_endpoints] == [
        (2, "gateway.example.com", 19_002, "rack-b"),
        (3, "gateway.example.com", 19_003, None),
    ]
    assert result.real_brokers == tuple(BrokerAddress(n, h, p) for n, h, p, _ in REAL_ENDPOINTS)
    before_dict, after_dict = before.to_dict(), after.to_dict()
    before_dict.pop("node_endpoints"), after_dict.pop("node_endpoints")
    assert after_dict == before_dict


@pytest.mark.parametrize(("api_key", "version"), VERSIONS)
def test_a_response_without_endpoints_is_passed_on_as_the_same_buffer(api_key: int, version: int):
    build, _ = BUILDERS[api_key]
    body = memoryview(build(endpoints=False).encode(version=version))

    result = address_rewriting.rewrite_response(api_key, version, body, gateway_address)

    assert result is not None and not result.changed and result.body is body


def test_record_bytes_are_not_touched_by_the_rewrite():
    body = fetch_response(endpoints=True).encode(version=18)

    result = address_rewriting.rewrite_response(FETCH, 18, body, gateway_address)

    assert result is not None
    assert bytes(result.body).count(RECORDS) == bytes(body).count(RECORDS) == 4


def test_unknown_tags_next_to_node_endpoints_are_kept():
    spec = specs.message("FetchResponse")
    values = schema.decode(spec, 17, fetch_response(endpoints=True).encode(version=17))
    values[schema.UNKNOWN_TAGS] = {5: b"\x01\x02"}
    values["NodeEndpoints"][0][schema.UNKNOWN_TAGS] = {3: b"\xff"}
    body = schema.encode(spec, 17, values)

    result = address_rewriting.rewrite_response(FETCH, 17, body, gateway_address)

    assert result is not None
    after = schema.decode(spec, 17, result.body)
    assert after[schema.UNKNOWN_TAGS] == {5: b"\x01\x02"}
    assert after["NodeEndpoints"][0][schema.UNKNOWN_TAGS] == {3: b"\xff"}
    assert after["NodeEndpoints"][0]["Host"] == "gateway.example.com"


def share_fetch_values(version: int) -> dict[str, Any]:
    return {
        "ThrottleTimeMs": 0,
        "ErrorCode": 0,
        "ErrorMessage": None,
        "AcquisitionLockTimeoutMs": 30_000,
        "Responses": [
            {
                "TopicId": uuid.UUID(int=4),
                "Partitions": [
                    {
                        "PartitionIndex": p,
                        "ErrorCode": 6 if p else 0,
                        "ErrorMessage": None,
                        "AcknowledgeErrorCode": 0,
                        "AcknowledgeErrorMessage": None,
                        "CurrentLeader": {"LeaderId": 2, "LeaderEpoch": 3},
                        "Records": None if p else RECORDS,
                        "AcquiredRecords": [
                            {"FirstOffset": 0, "LastOffset": 9, "DeliveryCount": 1}
                        ],
                    }
                    for p in range(2)
                ],
            }
        ],
        "NodeEndpoints": _endpoint_dicts(),
    }


def share_acknowledge_values(version: int) -> dict[str, Any]:
    return {
        "ThrottleTimeMs": 0,
        "ErrorCode": 0,
        "ErrorMessage": None,
        "AcquisitionLockTimeoutMs": 30_000,
        "Responses": [
            {
                "TopicId": uuid.UUID(int=4),
                "Partitions": [
                    {
                        "PartitionIndex": 0,
                        "ErrorCode": 6,
                        "ErrorMessage": "moved",
                        "CurrentLeader": {"LeaderId": 2, "LeaderEpoch": 3},
                    }
                ],
            }
        ],
        "NodeEndpoints": _endpoint_dicts(),
    }


def _endpoint_dicts() -> list[dict[str, Any]]:
    return [{"NodeId": n, "Host": h, "Port": p, "Rack": r} for n, h, p, r in REAL_ENDPOINTS]


SHARE_CASES = [
    (api_key, name, build, version)
    for api_key, name, build in (
        (SHARE_FETCH, "ShareFetchResponse", share_fetch_values),
        (SHARE_ACKNOWLEDGE, "ShareAcknowledgeResponse", share_acknowledge_values),
    )
    for version in (1, 2)
]


@pytest.mark.parametrize(("api_key", "name", "build", "version"), SHARE_CASES)
def test_share_responses_have_their_endpoints_rewritten_at_every_version(
    api_key: int, name: str, build: Any, version: int
):
    spec = specs.message(name)
    body = schema.encode(spec, version, build(version))

    result = address_rewriting.rewrite_response(api_key, version, body, gateway_address)

    assert result is not None and result.changed
    before, after = schema.decode(spec, version, body), schema.decode(spec, version, result.body)
    assert [(e["Host"], e["Port"]) for e in after["NodeEndpoints"]] == [
        ("gateway.example.com", 19_002),
        ("gateway.example.com", 19_003),
    ]
    before.pop("NodeEndpoints"), after.pop("NodeEndpoints")
    assert after == before


@pytest.mark.parametrize(("api_key", "name", "build", "version"), SHARE_CASES)
def test_share_responses_without_endpoints_stay_the_same_buffer(
    api_key: int, name: str, build: Any, version: int
):
    values = build(version)
    values["NodeEndpoints"] = []
    body = schema.encode(specs.message(name), version, values)

    result = address_rewriting.rewrite_response(api_key, version, body, gateway_address)

    assert result is not None and result.body is body


@pytest.mark.parametrize("cut", [1, 10, 200, -1])
def test_a_truncated_fetch_response_is_malformed(cut: int):
    body = fetch_response(endpoints=True).encode(version=16)

    with pytest.raises(errors.MalformedFrame):
        address_rewriting.rewrite_response(FETCH, 16, body[:cut], gateway_address)


def test_a_record_set_announcing_more_bytes_than_the_body_holds_is_malformed():
    spec = specs.message("FetchResponse")
    body = bytearray(schema.encode(spec, 16, {"ThrottleTimeMs": 0, "ErrorCode": 0,
                                              "SessionId": 0, "Responses": []}))  # fmt: skip
    body[-2] = 0x7F  # Responses: 126 topics announced, none there

    with pytest.raises(errors.MalformedFrame):
        address_rewriting.rewrite_response(FETCH, 16, bytes(body), gateway_address)


@pytest.mark.parametrize(("api_key", "version"), [(PRODUCE, 14), (FETCH, 19), (SHARE_FETCH, 3)])
def test_a_version_above_the_reviewed_one_is_refused(api_key: int, version: int):
    with pytest.raises(errors.UnsupportedVersion):
        address_rewriting.rewrite_response(api_key, version, b"", gateway_address)


def test_a_whole_fetch_frame_without_endpoints_comes_back_as_the_same_object():
    header = (42).to_bytes(4, "big") + b"\x00"  # correlation id, header v1 tags
    payload = header + fetch_response(endpoints=False).encode(version=17)
    frame = len(payload).to_bytes(4, "big") + payload

    assert response_rewriting.rewrite_frame(FETCH, 17, frame, gateway_address) is frame


def test_a_whole_fetch_frame_with_endpoints_is_reframed_with_its_new_size():
    header = (42).to_bytes(4, "big") + b"\x00"
    payload = header + fetch_response(endpoints=True).encode(version=17)
    frame = len(payload).to_bytes(4, "big") + payload

    rewritten = bytes(response_rewriting.rewrite_frame(FETCH, 17, frame, gateway_address))

    assert int.from_bytes(rewritten[:4], "big") == len(rewritten) - 4
    assert rewritten[4:9] == header
    decoded = FetchResponse.decode(rewritten[9:], version=17)
    assert {e.host for e in decoded.node_endpoints} == {"gateway.example.com"}
