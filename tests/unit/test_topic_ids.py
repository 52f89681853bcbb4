"""Topic ids clients see: one per topic name on every cluster, translated on the way in and out."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from failover_gateway.codec import headers, schema, specs
from failover_gateway.routing import topic_ids
from failover_gateway.routing.topic_ids import TopicIdTable

FETCH, METADATA, OFFSET_COMMIT, CONSUMER_GROUP_HEARTBEAT = 1, 3, 8, 68
MAIN_ID, FAILOVER_ID = uuid.UUID(int=0xAAAA), uuid.UUID(int=0xBBBB)
ORDERS = topic_ids.virtual_id("orders")


def table() -> TopicIdTable:
    known = TopicIdTable()
    known.learn("main", "orders", MAIN_ID)
    known.learn("failover", "orders", FAILOVER_ID)
    return known


def request_frame(api_key: int, version: int, body: dict[str, Any]) -> bytes:
    spec = specs.request(api_key)
    assert spec is not None
    payload = headers.encode_request_header(api_key, version, 5, "c") + schema.encode(
        spec, version, body
    )
    return len(payload).to_bytes(4, "big") + payload


def response_frame(api_key: int, version: int, body: dict[str, Any]) -> bytes:
    spec = specs.response(api_key)
    assert spec is not None
    payload = headers.encode_response_header(5, api_key, version) + schema.encode(
        spec, version, body
    )
    return len(payload).to_bytes(4, "big") + payload


def decoded_request(api_key: int, frame: Any) -> dict[str, Any]:
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    spec = specs.request(api_key)
    assert spec is not None
    return schema.decode(spec, header.api_version, view[header.body_offset :])


def decoded_response(api_key: int, version: int, frame: Any) -> dict[str, Any]:
    view = memoryview(frame)[4:]
    header = headers.parse_response_header(view, api_key, version)
    spec = specs.response(api_key)
    assert spec is not None
    return schema.decode(spec, version, view[header.body_offset :])


def test_a_topic_has_the_same_client_facing_id_everywhere_and_never_a_reserved_one():
    assert topic_ids.virtual_id("orders") == topic_ids.virtual_id("orders")
    assert topic_ids.virtual_id("orders") != topic_ids.virtual_id("payments")
    assert topic_ids.virtual_id("orders") not in (uuid.UUID(int=0), uuid.UUID(int=1))


def test_a_client_facing_id_maps_to_each_clusters_own_real_id():
    known = table()

    assert known.to_cluster("main", ORDERS) == MAIN_ID
    assert known.to_cluster("failover", ORDERS) == FAILOVER_ID
    assert known.to_client("failover", FAILOVER_ID) == ORDERS


def test_a_recreated_topic_forgets_its_old_id():
    known = table()
    known.learn("main", "orders", uuid.UUID(int=0xCCCC))

    assert known.to_client("main", MAIN_ID) is None
    assert known.to_cluster("main", ORDERS) == uuid.UUID(int=0xCCCC)


def test_a_full_answer_replaces_what_a_cluster_had_and_clears_its_misses():
    known = table()
    known.misses.add("main")

    known.replace("main", {"payments": uuid.UUID(int=7)})

    assert known.to_cluster("main", ORDERS) is None
    assert known.to_client("main", uuid.UUID(int=7)) == topic_ids.virtual_id("payments")
    assert "main" not in known.misses


def metadata_answer(topic_id: uuid.UUID) -> dict[str, Any]:
    return {
        "ThrottleTimeMs": 0, "Brokers": [], "ClusterId": "c", "ControllerId": 1,
        "Topics": [{
            "ErrorCode": 0, "Name": "orders", "TopicId": topic_id, "IsInternal": False,
            "Partitions": [], "TopicAuthorizedOperations": -2147483648,
        }],
        "ClusterAuthorizedOperations": -2147483648, "ErrorCode": 0,
    }  # fmt: skip


@pytest.mark.parametrize("version", [10, 12, 13])
def test_metadata_teaches_the_real_id_and_shows_the_client_facing_one(version: int):
    known = TopicIdTable()
    frame = response_frame(METADATA, version, metadata_answer(FAILOVER_ID))

    seen = topic_ids.translate_response(METADATA, version, frame, known, "failover")

    assert decoded_response(METADATA, version, seen)["Topics"][0]["TopicId"] == ORDERS
    assert known.to_cluster("failover", ORDERS) == FAILOVER_ID


def fetch_request(version: int, topic_id: uuid.UUID) -> bytes:
    partition = {
        "Partition": 0, "CurrentLeaderEpoch": -1, "FetchOffset": 0, "LastFetchedEpoch": -1,
        "LogStartOffset": -1, "PartitionMaxBytes": 1024,
    }  # fmt: skip
    body = {
        "ReplicaId": -1, "MaxWaitMs": 100, "MinBytes": 1, "MaxBytes": 1 << 20,
        "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": -1,
        "Topics": [{"Topic": "orders", "TopicId": topic_id, "Partitions": [partition]}],
        "ForgottenTopicsData": [{"Topic": "orders", "TopicId": topic_id, "Partitions": [1]}],
        "RackId": "",
    }  # fmt: skip
    return request_frame(FETCH, version, body)


@pytest.mark.parametrize("version", [13, 16, 18])
def test_a_fetch_names_the_active_clusters_real_topic_in_place(version: int):
    frame = fetch_request(version, ORDERS)

    sent = topic_ids.translate_request(FETCH, frame, table(), "failover")

    values = decoded_request(FETCH, sent)
    assert values["Topics"][0]["TopicId"] == FAILOVER_ID
    assert values["ForgottenTopicsData"][0]["TopicId"] == FAILOVER_ID
    assert len(sent) == len(frame)


def test_an_id_the_pod_cannot_translate_is_passed_on_and_noted():
    known = TopicIdTable()
    frame = fetch_request(13, ORDERS)

    sent = topic_ids.translate_request(FETCH, frame, known, "failover")

    assert sent is frame and "failover" in known.misses


def fetch_answer(topic_id: uuid.UUID) -> dict[str, Any]:
    partition = {"PartitionIndex": 0, "ErrorCode": 0, "HighWatermark": 1, "LastStableOffset": 1,
                 "LogStartOffset": 0, "AbortedTransactions": None, "PreferredReadReplica": -1,
                 "Records": b"r" * 100}  # fmt: skip
    return {"ThrottleTimeMs": 0, "ErrorCode": 0, "SessionId": 1,
            "Responses": [{"TopicId": topic_id, "Partitions": [partition]}]}  # fmt: skip


@pytest.mark.parametrize("version", [13, 15, 17])
def test_a_fetch_answer_shows_the_client_facing_topic_id(version: int):
    frame = response_frame(FETCH, version, fetch_answer(FAILOVER_ID))

    seen = topic_ids.translate_response(FETCH, version, frame, table(), "failover")

    answer = decoded_response(FETCH, version, seen)
    assert answer["Responses"][0]["TopicId"] == ORDERS
    assert answer["Responses"][0]["Partitions"][0]["Records"] == b"r" * 100


def test_an_offset_commit_by_topic_id_reaches_the_active_cluster_real():
    body = {
        "GroupId": "g", "GenerationIdOrMemberEpoch": 1, "MemberId": "m", "GroupInstanceId": None,
        "Topics": [{"Name": "", "TopicId": ORDERS, "Partitions": [
            {"PartitionIndex": 0, "CommittedOffset": 5, "CommittedLeaderEpoch": -1,
             "CommittedMetadata": ""}]}],
    }  # fmt: skip

    sent = topic_ids.translate_request(
        OFFSET_COMMIT, request_frame(OFFSET_COMMIT, 10, body), table(), "main"
    )

    assert decoded_request(OFFSET_COMMIT, sent)["Topics"][0]["TopicId"] == MAIN_ID


def test_a_kip_848_assignment_names_client_facing_topics():
    assignment = {"TopicPartitions": [{"TopicId": FAILOVER_ID, "Partitions": [0, 1]}]}
    body = {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None, "MemberId": "m",
            "MemberEpoch": 3, "HeartbeatIntervalMs": 500, "Assignment": assignment}  # fmt: skip

    seen = topic_ids.translate_response(
        CONSUMER_GROUP_HEARTBEAT,
        1,
        response_frame(CONSUMER_GROUP_HEARTBEAT, 1, body),
        table(),
        "failover",
    )

    answer = decoded_response(CONSUMER_GROUP_HEARTBEAT, 1, seen)
    assert answer["Assignment"]["TopicPartitions"][0]["TopicId"] == ORDERS


def test_the_apis_that_carry_topic_ids_are_known_from_the_specs():
    assert topic_ids.carries_topic_ids("request", FETCH, 13)
    assert not topic_ids.carries_topic_ids("request", FETCH, 12)
    assert topic_ids.carries_topic_ids("response", METADATA, 10)
    assert not topic_ids.carries_topic_ids("response", METADATA, 9)
    assert not topic_ids.carries_topic_ids("request", 0, 12)  # Produce, as the gateway caps it


def test_bytes_after_a_requests_last_field_are_kept_as_brokers_ignore_them():
    # librdkafka's all-topics Metadata v9+ request: four zero bytes where the array count was
    # reserved, then its real last fields, which the broker never reads.
    header = headers.encode_request_header(METADATA, 13, 3, "rdkafka")
    payload = header + bytes.fromhex("00000000010000")
    frame = len(payload).to_bytes(4, "big") + payload

    assert topic_ids.translate_request(METADATA, frame, table(), "main") is frame


def test_a_request_with_trailing_bytes_keeps_them_when_its_ids_change():
    body = {"Topics": [{"TopicId": ORDERS, "Name": None}], "AllowAutoTopicCreation": False,
            "IncludeTopicAuthorizedOperations": False}  # fmt: skip
    frame = request_frame(METADATA, 12, body) + b"\xab\xcd"
    frame = (len(frame) - 4).to_bytes(4, "big") + frame[4:]

    sent = bytes(topic_ids.translate_request(METADATA, frame, table(), "main"))

    assert sent.endswith(b"\xab\xcd") and len(sent) == len(frame)
    assert MAIN_ID.bytes in sent
