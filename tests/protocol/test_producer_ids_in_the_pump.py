"""Producer ids through the pump: translated, adopted, refused in order, free for plain producers.

The fake gateway serves cluster "main"; ids tagged for "failover" are stale there.
"""

from __future__ import annotations

from typing import Any

from kafka.record.default_records import DefaultRecordBatch
from pump_fakes import (
    METADATA,
    METADATA_ANSWER,
    METADATA_REQUEST,
    PRODUCE,
    connected,
    decode_response,
    from_broker,
    record_batch,
    request,
    response,
)

from failover_gateway.codec import headers, schema, specs
from failover_gateway.routing import producer_ids

FAILOVER = producer_ids.codecs(["main", "failover"], generation=1)["failover"]


def produce(
    correlation_id: int,
    producer_id: int,
    acks: int = -1,
    value: bytes = b"v",
    txn: str | None = None,
    *,
    sequence: int = 0,
) -> bytes:
    batch = record_batch(value, producer_id, sequence=sequence, transactional=txn is not None)
    partition = {"Index": 0, "Records": batch}
    body = {
        "TransactionalId": txn,
        "Acks": acks,
        "TimeoutMs": 1000,
        "TopicData": [{"Name": "t", "PartitionData": [partition]}],
    }
    return request(PRODUCE, 9, correlation_id, body)


def sent_records(frame: bytes) -> Any:
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    values = schema.decode(specs.message("ProduceRequest"), 9, view[header.body_offset :])
    return DefaultRecordBatch(values["TopicData"][0]["PartitionData"][0]["Records"])


async def test_a_produce_with_this_clusters_id_reaches_the_broker_with_the_real_id() -> None:
    connection, _, gateway = await connected()
    tagged = gateway.codecs["main"].to_client(17)

    connection.data_received(produce(3, tagged))

    batch = sent_records(bytes(gateway.upstream.written))
    assert batch.producer_id == 17 and batch.validate_crc()


async def test_a_stale_idempotent_produce_goes_upstream_under_its_adopted_id() -> None:
    connection, client, gateway = await connected()
    stale = FAILOVER.to_client(17)

    connection.data_received(produce(3, stale))

    batch = sent_records(bytes(gateway.upstream.written))
    assert batch.producer_id == gateway.codecs["main"].adopted(stale) and batch.validate_crc()
    assert bytes(client.written) == b""
    assert gateway.stale_producers == [("main", PRODUCE, True)]


async def test_a_stale_transaction_is_answered_after_earlier_answers_and_never_forwarded() -> None:
    connection, client, gateway = await connected()
    connection.data_received(request(METADATA, 12, 1, METADATA_REQUEST))
    forwarded = bytes(gateway.upstream.written)

    connection.data_received(produce(2, FAILOVER.to_client(17), txn="t"))

    assert bytes(gateway.upstream.written) == forwarded  # the produce never left the gateway
    assert bytes(client.written) == b""  # and its answer waits for the metadata answer
    from_broker(gateway, response(METADATA, 12, 1, METADATA_ANSWER))
    written = bytes(client.written)
    first_size = int.from_bytes(written[:4], "big")
    first, second = written[: 4 + first_size], written[4 + first_size :]
    assert decode_response(METADATA, 12, first)[0] == 1
    correlation_id, answer = decode_response(PRODUCE, 9, second)
    assert correlation_id == 2
    assert answer["Responses"][0]["PartitionResponses"][0]["ErrorCode"] == 59
    assert gateway.stale_producers == [("main", PRODUCE, False)]


async def test_a_stale_transaction_with_nothing_in_flight_is_answered_at_once() -> None:
    connection, client, _ = await connected()

    connection.data_received(produce(4, FAILOVER.to_client(17), txn="t"))

    assert decode_response(PRODUCE, 9, bytes(client.written))[0] == 4


async def test_a_refused_produce_with_acks_zero_gets_no_answer() -> None:
    connection, client, gateway = await connected()

    connection.data_received(produce(5, FAILOVER.to_client(17), acks=0, txn="t"))

    assert bytes(client.written) == b"" and bytes(gateway.upstream.written) == b""
    assert len(connection.in_flight) == 0


async def test_a_produce_without_idempotence_streams_through_before_it_is_whole() -> None:
    connection, _, gateway = await connected()
    frame = produce(6, -1, value=b"x" * 20_000)

    connection.data_received(frame[:5000])

    assert bytes(gateway.upstream.written) == frame[:5000]


async def test_an_idempotent_produce_is_held_until_it_is_whole() -> None:
    connection, _, gateway = await connected()
    frame = produce(7, gateway.codecs["main"].to_client(3), value=b"x" * 20_000)

    connection.data_received(frame[:5000])
    assert bytes(gateway.upstream.written) == b""
    connection.data_received(frame[5000:])

    assert sent_records(bytes(gateway.upstream.written)).producer_id == 3


async def test_a_malformed_idempotent_produce_closes_only_that_connection() -> None:
    connection, _, gateway = await connected()
    tagged = gateway.codecs["main"].to_client(3)
    frame = bytearray(produce(8, tagged))
    batch_at = bytes(frame).find(record_batch(b"v", tagged, sequence=0))
    frame[batch_at + 8 : batch_at + 12] = (10_000).to_bytes(4, "big")  # batchLength: too long

    connection.data_received(bytes(frame))

    assert connection.is_closing
    assert "malformed api key 0" in (connection.closing_reason or "")


def produce_answer(correlation_id: int, error: int) -> bytes:
    partition = {
        "Index": 0,
        "ErrorCode": error,
        "BaseOffset": -1 if error else 40,
        "LogAppendTimeMs": -1,
        "LogStartOffset": -1,
        "RecordErrors": [],
        "ErrorMessage": None,
    }
    body = {"Responses": [{"Name": "t", "PartitionResponses": [partition]}], "ThrottleTimeMs": 0}
    return response(PRODUCE, 9, correlation_id, body)


def answered_errors(written: bytes) -> list[int]:
    errors, view = [], memoryview(written)
    while view:
        size = 4 + int.from_bytes(view[:4], "big")
        _, answer = decode_response(PRODUCE, 9, bytes(view[:size]))
        errors.append(answer["Responses"][0]["PartitionResponses"][0]["ErrorCode"])
        view = view[size:]
    return errors


async def test_an_adopted_batch_behind_an_acknowledged_later_one_is_told_unknown_producer_id() -> (
    None
):
    connection, client, gateway = await connected()
    stale = FAILOVER.to_client(17)
    connection.data_received(produce(3, stale, sequence=10))
    from_broker(gateway, produce_answer(3, 0))  # the later batch came first: the cluster took it

    connection.data_received(produce(4, stale, sequence=0))
    from_broker(gateway, produce_answer(4, 45))

    assert answered_errors(bytes(client.written)) == [0, 59]


async def test_an_out_of_order_answer_for_an_id_the_cluster_issued_passes_unchanged() -> None:
    connection, client, gateway = await connected()
    current = gateway.codecs["main"].to_client(17)
    connection.data_received(produce(3, current, sequence=10))
    from_broker(gateway, produce_answer(3, 0))

    connection.data_received(produce(4, current, sequence=0))
    from_broker(gateway, produce_answer(4, 45))

    assert answered_errors(bytes(client.written)) == [0, 45]
