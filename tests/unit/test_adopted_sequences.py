"""An adopted id's batch behind what the cluster acknowledged is told UNKNOWN_PRODUCER_ID; no other.

Record batches are built by kafka-python's independent encoder; requests and responses by the
gateway's spec codec.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder

from failover_gateway.codec import headers, schema, specs
from failover_gateway.routing import adopted_sequences
from failover_gateway.routing.adopted_sequences import AcknowledgedSequences, SentBatch

PRODUCE = 0
ADOPTED = (1 << 40) + 12345
OUT_OF_ORDER, UNKNOWN_PRODUCER_ID, NOT_LEADER = 45, 59, 6
TOPIC_ID = uuid.UUID(int=0xABCDEF)


def batch(first: int, records: int = 10, producer_id: int = ADOPTED, epoch: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=first,
        batch_size=1 << 20,
    )
    for offset in range(records):
        builder.append(offset, timestamp=1, key=None, value=b"v", headers=[])
    return bytes(builder.build())


def topic_key(version: int, name: str = "orders") -> dict[str, Any]:
    return {"TopicId": TOPIC_ID} if version >= 13 else {"Name": name}


def produce(version: int, partitions: dict[int, bytes]) -> bytes:
    body = {
        "TransactionalId": None,
        "Acks": -1,
        "TimeoutMs": 1000,
        "TopicData": [
            {
                **topic_key(version),
                "PartitionData": [{"Index": i, "Records": r} for i, r in partitions.items()],
            }
        ],
    }
    spec = specs.message("ProduceRequest")
    payload = headers.encode_request_header(PRODUCE, version, 7, "t") + schema.encode(
        spec, version, body
    )
    return len(payload).to_bytes(4, "big") + payload


def answer(version: int, errors: dict[int, int], log_start: int = -1) -> bytearray:
    body = {
        "ThrottleTimeMs": 0,
        "Responses": [
            {
                **topic_key(version),
                "PartitionResponses": [
                    {
                        "Index": index,
                        "ErrorCode": error,
                        "BaseOffset": -1 if error else 100,
                        "LogAppendTimeMs": -1,
                        "LogStartOffset": log_start,
                        "RecordErrors": [],
                        "ErrorMessage": None,
                    }
                    for index, error in errors.items()
                ],
            }
        ],
    }
    spec = specs.message("ProduceResponse")
    payload = headers.encode_response_header(7, PRODUCE, version) + schema.encode(
        spec, version, body
    )
    return bytearray(len(payload).to_bytes(4, "big") + payload)


def partition_answers(version: int, frame: bytearray) -> dict[int, tuple[int, int]]:
    view = memoryview(frame)[4:]
    parsed = headers.parse_response_header(view, PRODUCE, version)
    values = schema.decode(specs.message("ProduceResponse"), version, view[parsed.body_offset :])
    return {
        p["Index"]: (p["ErrorCode"], p.get("LogStartOffset", -1))
        for topic in values["Responses"]
        for p in topic["PartitionResponses"]
    }


def exchange(
    memory: AcknowledgedSequences, version: int, sent: dict[int, bytes], errors: dict[int, int]
) -> dict[int, tuple[int, int]]:
    request = adopted_sequences.sent_batches(produce(version, sent))
    frame = answer(version, errors)
    memory.settle(frame, version, request)
    return partition_answers(version, frame)


@pytest.mark.parametrize("version", [3, 8, 9, 12, 13])
def test_the_sequences_of_every_partition_are_read_from_the_request(version: int) -> None:
    sent = adopted_sequences.sent_batches(produce(version, {0: batch(10), 2: batch(0, 3)}))

    key = TOPIC_ID.bytes if version >= 13 else b"orders"
    assert sent == {
        (key, 0): SentBatch(ADOPTED, 0, 10, 19),
        (key, 2): SentBatch(ADOPTED, 0, 0, 2),
    }


@pytest.mark.parametrize("version", [5, 9, 12, 13])
def test_a_batch_behind_an_acknowledged_later_one_is_told_unknown_producer_id(
    version: int,
) -> None:
    memory = AcknowledgedSequences()
    exchange(memory, version, {0: batch(10)}, {0: 0})

    answers = exchange(memory, version, {0: batch(0)}, {0: OUT_OF_ORDER})

    error, log_start = answers[0]
    assert error == UNKNOWN_PRODUCER_ID
    assert log_start >= 0, "Java retries UNKNOWN_PRODUCER_ID with log start -1 without end"


def test_a_gap_above_what_was_acknowledged_stays_out_of_order() -> None:
    memory = AcknowledgedSequences()
    exchange(memory, 9, {0: batch(10)}, {0: 0})

    assert exchange(memory, 9, {0: batch(30)}, {0: OUT_OF_ORDER})[0][0] == OUT_OF_ORDER


def test_without_an_acknowledgement_of_the_same_id_epoch_and_partition_nothing_changes() -> None:
    memory = AcknowledgedSequences()
    exchange(memory, 9, {0: batch(10), 1: batch(50, epoch=1)}, {0: NOT_LEADER, 1: 0})

    answers = exchange(
        memory,
        9,
        {0: batch(0), 1: batch(0), 2: batch(0)},
        {0: OUT_OF_ORDER, 1: OUT_OF_ORDER, 2: OUT_OF_ORDER},
    )

    assert {index: error for index, (error, _) in answers.items()} == {
        0: OUT_OF_ORDER,  # 10 was refused, not acknowledged
        1: OUT_OF_ORDER,  # acknowledged under epoch 1; this batch is epoch 0's
        2: OUT_OF_ORDER,  # never acknowledged
    }


def test_other_errors_and_successes_pass_as_the_broker_sent_them() -> None:
    memory = AcknowledgedSequences()
    exchange(memory, 9, {0: batch(10)}, {0: 0})
    before = answer(9, {0: NOT_LEADER, 1: 0})
    frame = bytearray(before)

    patched = memory.settle(
        frame, 9, adopted_sequences.sent_batches(produce(9, {0: batch(0), 1: batch(0)}))
    )

    assert patched == 0 and frame == before


def test_the_memory_is_bounded_and_forgets_rather_than_misjudges() -> None:
    memory = AcknowledgedSequences()
    for partition in range(adopted_sequences.MAX_TRACKED + 1):
        exchange(memory, 9, {partition: batch(10)}, {partition: 0})

    assert exchange(memory, 9, {0: batch(0)}, {0: OUT_OF_ORDER})[0][0] == OUT_OF_ORDER
    last = adopted_sequences.MAX_TRACKED
    assert exchange(memory, 9, {last: batch(0)}, {last: OUT_OF_ORDER})[last][0] == (
        UNKNOWN_PRODUCER_ID
    )
