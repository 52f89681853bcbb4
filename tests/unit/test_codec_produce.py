"""Reading ``acks`` from Produce requests of every version, records left unread."""

from __future__ import annotations

import pytest
from kafka.protocol.producer import ProduceRequest

from failover_gateway.codec import errors, headers, produce


def _produce_frame(version: int, acks: int, transactional_id: str | None) -> bytes:
    request = ProduceRequest(
        transactional_id=transactional_id, acks=acks, timeout_ms=30_000, topic_data=[]
    )
    request.with_header(correlation_id=11, client_id="producer-1")
    frame: bytes = request.encode(version=version, header=True)
    return frame


@pytest.mark.parametrize("version", range(3, 14))
@pytest.mark.parametrize("acks", [-1, 0, 1])
@pytest.mark.parametrize("transactional_id", [None, "", "txn-é-1"])
def test_acks_is_read_from_produce_v3_and_later(
    version: int, acks: int, transactional_id: str | None
):
    frame = _produce_frame(version, acks, transactional_id)

    assert produce.read_acks(frame) == acks


@pytest.mark.parametrize("version", [0, 1, 2])
def test_acks_comes_first_in_produce_v0_to_v2(version: int):
    body = bytes.fromhex("0000 00007530 00000000")  # acks=0, timeout, no topics
    frame = headers.encode_request_header(0, version, 11, "producer-1") + body

    assert produce.read_acks(frame) == 0


def test_a_parsed_header_can_be_reused():
    frame = _produce_frame(9, 0, "txn")
    header = headers.parse_request_header(frame)

    assert produce.read_acks(frame, header) == 0
    assert produce.read_acks(memoryview(frame), header) == 0


def test_only_produce_with_acks_zero_expects_no_response():
    fire_and_forget = _produce_frame(9, 0, None)
    acknowledged = _produce_frame(9, 1, None)
    metadata = headers.encode_request_header(3, 12, 1, "c") + b"\x01\x00\x00\x00"

    assert not produce.expects_response(
        fire_and_forget, headers.parse_request_header(fire_and_forget)
    )
    assert produce.expects_response(acknowledged, headers.parse_request_header(acknowledged))
    assert produce.expects_response(metadata, headers.parse_request_header(metadata))


@pytest.mark.parametrize("version", [3, 9])
def test_a_prefix_too_short_to_hold_acks_raises_malformed_frame(version: int):
    frame = _produce_frame(version, 1, "txn-1")
    length_prefix = 1 if version >= 9 else 2  # compact vs classic transactional_id length
    acks_end = headers.parse_request_header(frame).body_offset + length_prefix + len("txn-1") + 2
    for cut in range(acks_end):
        with pytest.raises(errors.MalformedFrame):
            produce.read_acks(frame[:cut])
    assert produce.read_acks(frame[:acks_end]) == 1


def test_reading_acks_of_another_api_is_a_programming_error():
    frame = headers.encode_request_header(3, 12, 1, "c")

    with pytest.raises(ValueError, match="not Produce"):
        produce.read_acks(frame)
