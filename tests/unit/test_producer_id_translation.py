"""Producer ids in whole frames: translated on the way in and out, foreign ones refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from failover_gateway.codec import headers, schema, specs
from failover_gateway.routing import producer_identity, producer_ids

CODECS = producer_ids.codecs(["main", "failover"], generation=3)
MAIN, FAILOVER = CODECS["main"], CODECS["failover"]
PRODUCE, INIT_PRODUCER_ID, ADD_PARTITIONS, ADD_OFFSETS, END_TXN, TXN_OFFSET_COMMIT = (
    0, 22, 24, 25, 26, 28,
)  # fmt: skip
DESCRIBE_PRODUCERS, LIST_TRANSACTIONS = 61, 66


def request_frame(
    api_key: int, version: int, body: dict[str, Any], correlation_id: int = 9
) -> bytes:
    spec = specs.request(api_key)
    assert spec is not None
    payload = headers.encode_request_header(api_key, version, correlation_id, "c")
    payload += schema.encode(spec, version, body)
    return len(payload).to_bytes(4, "big") + payload


def response_frame(api_key: int, version: int, body: dict[str, Any]) -> bytes:
    spec = specs.response(api_key)
    assert spec is not None
    payload = headers.encode_response_header(9, api_key, version) + schema.encode(
        spec, version, body
    )
    return len(payload).to_bytes(4, "big") + payload


def decode_request(api_key: int, frame: bytes | bytearray | memoryview) -> dict[str, Any]:
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    spec = specs.request(api_key)
    assert spec is not None
    return schema.decode(spec, header.api_version, view[header.body_offset :])


def decode_response(api_key: int, version: int, frame: bytes | memoryview) -> dict[str, Any]:
    view = memoryview(frame)[4:]
    header = headers.parse_response_header(view, api_key, version)
    spec = specs.response(api_key)
    assert spec is not None
    return schema.decode(spec, version, view[header.body_offset :])


def batch(producer_id: int, transactional: bool = False) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=int(transactional), producer_id=producer_id,
        producer_epoch=0, base_sequence=0, batch_size=1 << 20,
    )  # fmt: skip
    builder.append(0, timestamp=1, key=None, value=b"value", headers=[])
    return bytes(builder.build())


def produce(version: int, producer_id: int, partitions: int = 2, txn: str | None = None) -> bytes:
    records = [batch(producer_id, transactional=txn is not None) for _ in range(partitions)]
    topic: dict[str, Any] = {
        "Name": "orders",
        "TopicId": uuid.UUID(int=7),
        "PartitionData": [{"Index": p, "Records": records[p]} for p in range(partitions)],
    }
    body = {"TransactionalId": txn, "Acks": -1, "TimeoutMs": 1000, "TopicData": [topic]}
    return request_frame(PRODUCE, version, body)


def producer_ids_sent(frame: bytes | bytearray | memoryview) -> set[int]:
    found = set()
    for topic in decode_request(PRODUCE, frame)["TopicData"]:
        for partition in topic["PartitionData"]:
            decoded = DefaultRecordBatch(partition["Records"])
            assert decoded.validate_crc()
            found.add(decoded.producer_id)
    return found


@pytest.mark.parametrize("version", [3, 8, 9, 12, 13])
def test_a_produce_with_this_clusters_id_reaches_it_with_the_real_id_and_valid_crcs(version: int):
    outcome = producer_identity.translate_request(
        PRODUCE, produce(version, MAIN.to_client(5)), MAIN
    )

    assert outcome.answer is None
    for topic in decode_request(PRODUCE, outcome.frame)["TopicData"]:
        for partition in topic["PartitionData"]:
            decoded = DefaultRecordBatch(partition["Records"])
            assert decoded.producer_id == 5 and decoded.validate_crc()


@pytest.mark.parametrize("version", [3, 9, 13])
def test_an_idempotent_produce_with_another_clusters_id_is_written_under_its_adopted_id(
    version: int,
):
    stale = MAIN.to_client(5)

    outcome = producer_identity.translate_request(PRODUCE, produce(version, stale), FAILOVER)

    assert outcome.answer is None and outcome.adopted and outcome.stale_id == stale
    assert producer_ids_sent(outcome.frame) == {FAILOVER.adopted(stale)}


def test_an_idempotent_produce_from_before_a_switch_away_and_back_is_adopted_too():
    before = producer_ids.codecs(["main", "failover"], generation=1)["main"]
    stale = before.to_client(5)

    outcome = producer_identity.translate_request(PRODUCE, produce(9, stale), MAIN)

    assert producer_ids_sent(outcome.frame) == {MAIN.adopted(stale)} != {5}


@pytest.mark.parametrize("version", [3, 9, 13])
def test_a_transactional_produce_with_a_stale_id_is_answered_unknown_producer_id(version: int):
    frame = produce(version, MAIN.to_client(5), txn="copy-job")

    outcome = producer_identity.translate_request(PRODUCE, frame, FAILOVER)

    assert outcome.answer is not None and outcome.stale_id == MAIN.to_client(5)
    answer = decode_response(PRODUCE, version, outcome.answer)
    partitions = answer["Responses"][0]["PartitionResponses"]
    assert [(p["Index"], p["ErrorCode"]) for p in partitions] == [(0, 59), (1, 59)]
    assert int.from_bytes(outcome.answer[4:8], "big") == 9  # the request's correlation id


def test_a_transactional_produce_with_a_current_id_reaches_the_cluster_real():
    frame = produce(9, MAIN.to_client(5), txn="copy-job")

    outcome = producer_identity.translate_request(PRODUCE, frame, MAIN)

    assert outcome.answer is None and producer_ids_sent(outcome.frame) == {5}


def test_a_produce_without_a_producer_id_passes_as_the_same_frame():
    frame = produce(9, -1)

    assert producer_identity.translate_request(PRODUCE, frame, MAIN).frame is frame


def test_an_untagged_id_from_before_the_gateway_tagged_ids_is_adopted():
    outcome = producer_identity.translate_request(PRODUCE, produce(9, 5), MAIN)

    assert outcome.adopted and producer_ids_sent(outcome.frame) == {MAIN.adopted(5)}


def init_producer_id(producer_id: int, epoch: int, txn: str | None = None) -> bytes:
    body = {
        "TransactionalId": txn,
        "TransactionTimeoutMs": 60_000,
        "ProducerId": producer_id,
        "ProducerEpoch": epoch,
    }
    return request_frame(INIT_PRODUCER_ID, 5, body)


def test_a_first_init_producer_id_passes_unchanged():
    frame = init_producer_id(-1, -1)

    assert producer_identity.translate_request(INIT_PRODUCER_ID, frame, MAIN).frame is frame


def test_an_epoch_bump_of_this_clusters_id_reaches_it_with_the_real_id():
    frame = init_producer_id(MAIN.to_client(5), 3, "txn")

    outcome = producer_identity.translate_request(INIT_PRODUCER_ID, frame, MAIN)

    assert outcome.answer is None
    sent = decode_request(INIT_PRODUCER_ID, outcome.frame)
    assert (sent["ProducerId"], sent["ProducerEpoch"], sent["TransactionalId"]) == (5, 3, "txn")


def test_an_epoch_bump_of_another_clusters_id_becomes_a_first_init():
    frame = init_producer_id(MAIN.to_client(5), 3, "txn")

    outcome = producer_identity.translate_request(INIT_PRODUCER_ID, frame, FAILOVER)

    assert outcome.answer is None
    sent = decode_request(INIT_PRODUCER_ID, outcome.frame)
    assert (sent["ProducerId"], sent["ProducerEpoch"]) == (-1, -1)


def test_the_id_a_cluster_issues_reaches_the_client_tagged():
    frame = response_frame(
        INIT_PRODUCER_ID,
        5,
        {"ThrottleTimeMs": 0, "ErrorCode": 0, "ProducerId": 5, "ProducerEpoch": 0},
    )

    seen = producer_identity.translate_response(INIT_PRODUCER_ID, 5, frame, FAILOVER)

    assert decode_response(INIT_PRODUCER_ID, 5, seen)["ProducerId"] == FAILOVER.to_client(5)


def test_an_error_answer_without_an_id_is_passed_as_it_came():
    frame = response_frame(
        INIT_PRODUCER_ID,
        5,
        {"ThrottleTimeMs": 0, "ErrorCode": 15, "ProducerId": -1, "ProducerEpoch": -1},
    )

    assert producer_identity.translate_response(INIT_PRODUCER_ID, 5, frame, MAIN) is frame


@pytest.mark.parametrize(
    ("api_key", "version", "body"),
    [
        (END_TXN, 4, {"TransactionalId": "t", "ProducerEpoch": 0, "Committed": True}),
        (ADD_OFFSETS, 4, {"TransactionalId": "t", "ProducerEpoch": 0, "GroupId": "g"}),
    ],
)
def test_transaction_requests_with_another_clusters_id_are_refused(
    api_key: int, version: int, body: dict[str, Any]
):
    frame = request_frame(api_key, version, {**body, "ProducerId": MAIN.to_client(3)})

    outcome = producer_identity.translate_request(api_key, frame, FAILOVER)

    assert outcome.answer is not None
    assert decode_response(api_key, version, outcome.answer)["ErrorCode"] == 59


def test_add_partitions_with_another_clusters_id_refuses_every_partition():
    body = {
        "V3AndBelowTransactionalId": "t",
        "V3AndBelowProducerId": MAIN.to_client(3),
        "V3AndBelowProducerEpoch": 0,
        "V3AndBelowTopics": [{"Name": "orders", "Partitions": [0, 2]}],
    }

    outcome = producer_identity.translate_request(
        ADD_PARTITIONS, request_frame(ADD_PARTITIONS, 3, body), FAILOVER
    )

    assert outcome.answer is not None
    answer = decode_response(ADD_PARTITIONS, 3, outcome.answer)
    results = answer["ResultsByTopicV3AndBelow"][0]["ResultsByPartition"]
    assert [(r["PartitionIndex"], r["PartitionErrorCode"]) for r in results] == [(0, 59), (2, 59)]


def test_txn_offset_commit_with_this_clusters_id_reaches_it_real():
    offset = {
        "PartitionIndex": 0, "CommittedOffset": 10, "CommittedLeaderEpoch": -1,
        "CommittedMetadata": "",
    }  # fmt: skip
    body = {
        "TransactionalId": "t", "GroupId": "g", "ProducerId": MAIN.to_client(3), "ProducerEpoch": 0,
        "GenerationId": -1, "MemberId": "", "GroupInstanceId": None,
        "Topics": [{"Name": "orders", "Partitions": [offset]}],
    }  # fmt: skip

    outcome = producer_identity.translate_request(
        TXN_OFFSET_COMMIT, request_frame(TXN_OFFSET_COMMIT, 3, body), MAIN
    )

    assert decode_request(TXN_OFFSET_COMMIT, outcome.frame)["ProducerId"] == 3


def test_list_transactions_filters_are_translated_and_foreign_ones_dropped():
    body = {"StateFilters": [], "ProducerIdFilters": [MAIN.to_client(3), FAILOVER.to_client(4)],
            "DurationFilter": -1, "TransactionalIdPattern": None}  # fmt: skip

    outcome = producer_identity.translate_request(
        LIST_TRANSACTIONS, request_frame(LIST_TRANSACTIONS, 2, body), MAIN
    )

    assert decode_request(LIST_TRANSACTIONS, outcome.frame)["ProducerIdFilters"] == [3]


def test_describe_producers_shows_the_ids_clients_hold():
    state = {"ProducerId": 3, "ProducerEpoch": 0, "LastSequence": 4, "LastTimestamp": 1,
             "CoordinatorEpoch": 0, "CurrentTxnStartOffset": -1}  # fmt: skip
    body = {"ThrottleTimeMs": 0, "Topics": [{"Name": "orders", "Partitions": [
        {"PartitionIndex": 0, "ErrorCode": 0, "ErrorMessage": None, "ActiveProducers": [state]}
    ]}]}  # fmt: skip

    seen = producer_identity.translate_response(
        DESCRIBE_PRODUCERS, 0, response_frame(DESCRIBE_PRODUCERS, 0, body), MAIN
    )

    partition = decode_response(DESCRIBE_PRODUCERS, 0, seen)["Topics"][0]["Partitions"][0]
    assert partition["ActiveProducers"][0]["ProducerId"] == MAIN.to_client(3)
