"""Stepping over fields to find where one starts, without decoding what comes before it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from failover_gateway.codec import errors, schema, skipping, specs

FETCH = specs.message("FetchResponse")


def partition(index: int, records: bytes | None, aborted: int | None) -> dict[str, Any]:
    return {
        "PartitionIndex": index,
        "ErrorCode": 0,
        "HighWatermark": 1,
        "LastStableOffset": 1,
        "LogStartOffset": 0,
        "AbortedTransactions": None
        if aborted is None
        else [{"ProducerId": p, "FirstOffset": p} for p in range(aborted)],
        "PreferredReadReplica": -1,
        "Records": records,
    }


def fetch_values(partitions: int, records: bytes | None, aborted: int | None) -> dict[str, Any]:
    return {
        "ThrottleTimeMs": 0,
        "ErrorCode": 0,
        "SessionId": 0,
        "Responses": [
            {
                "Topic": "t" * 200,  # a name longer than a one-byte varint length
                "TopicId": uuid.UUID(int=3),
                "Partitions": [partition(i, records, aborted) for i in range(partitions)],
            }
        ],
        "NodeEndpoints": [{"NodeId": 1, "Host": "h", "Port": 1, "Rack": None}],
    }


def tags_section_start(version: int, values: dict[str, Any]) -> int:
    """Where the top-level tags begin, from our encoder: the body without them, minus nothing."""
    without_tags = dict(values)
    without_tags.pop("NodeEndpoints")
    return len(schema.encode(FETCH, version, without_tags)) - 1  # an empty tag section is 1 byte


@pytest.mark.parametrize("version", [16, 17, 18])
@pytest.mark.parametrize(
    ("partitions", "records", "aborted"),
    [(0, None, None), (1, None, 0), (3, b"x" * 10, 2), (130, b"y" * 300, None)],
)
def test_the_tag_section_of_a_fetch_answer_is_found_whatever_its_shape(
    version: int, partitions: int, records: bytes | None, aborted: int | None
):
    values = fetch_values(partitions, records, aborted)
    body = schema.encode(FETCH, version, values)

    offset = skipping.field_offset(FETCH, version, body, "NodeEndpoints")

    assert offset == tags_section_start(version, values)


def test_an_untagged_field_is_found_at_its_first_byte():
    spec = specs.message("ShareAcknowledgeResponse")
    values = {
        "ThrottleTimeMs": 0,
        "ErrorCode": 0,
        "ErrorMessage": "e" * 300,
        "AcquisitionLockTimeoutMs": 1,
        "Responses": [],
        "NodeEndpoints": [],
    }
    body = schema.encode(spec, 2, values)

    assert skipping.field_offset(spec, 2, body, "NodeEndpoints") == len(body) - 2  # [] + tags


def test_fixed_width_fields_are_stepped_over_in_one_addition():
    source = skipping.walker_source(FETCH, 17, "NodeEndpoints")

    assert "pos += 30\n" in source  # PartitionIndex .. LogStartOffset of each partition


def test_a_non_flexible_version_reads_classic_lengths():
    values = fetch_values(2, b"z" * 5, 1)
    values.pop("NodeEndpoints")
    values["Responses"][0]["Topic"] = "orders"
    body = schema.encode(FETCH, 11, values)

    assert skipping.field_offset(FETCH, 11, body, "Responses") == 10  # throttle, error, session


@pytest.mark.parametrize("cut", [1, 5, 20, 60])
def test_a_body_that_ends_early_is_malformed(cut: int):
    body = schema.encode(FETCH, 16, fetch_values(2, b"r" * 40, 1))

    with pytest.raises(errors.MalformedFrame):
        skipping.field_offset(FETCH, 16, body[:cut], "NodeEndpoints")


def test_an_array_announcing_more_elements_than_bytes_left_is_malformed():
    body = bytes.fromhex("00000000 0000 00000000") + bytes([0xFF, 0x7F])  # 16382 topics

    with pytest.raises(errors.MalformedFrame, match="array of 16382 elements"):
        skipping.field_offset(FETCH, 16, body, "NodeEndpoints")


def test_a_negative_classic_length_below_null_is_malformed():
    spec = specs.message("ProduceResponse")
    partition = {
        "Index": 0,
        "ErrorCode": 0,
        "BaseOffset": 0,
        "LogAppendTimeMs": -1,
        "LogStartOffset": 0,
        "RecordErrors": [],
        "ErrorMessage": "",
    }
    values = {"Responses": [{"Name": "t", "PartitionResponses": [partition]}], "ThrottleTimeMs": 0}
    body = bytearray(schema.encode(spec, 8, values))
    body[-6:-4] = (-7).to_bytes(2, "big", signed=True)  # ErrorMessage, before ThrottleTimeMs

    with pytest.raises(errors.MalformedFrame, match="length -7"):
        skipping.field_offset(spec, 8, bytes(body), "ThrottleTimeMs")


def test_a_field_the_version_lacks_is_a_programming_error():
    with pytest.raises(ValueError, match="no field NodeEndpoints"):
        skipping.field_offset(FETCH, 15, b"", "NodeEndpoints")


def test_a_version_outside_the_spec_is_unsupported():
    with pytest.raises(errors.UnsupportedVersion):
        skipping.field_offset(FETCH, 99, b"", "NodeEndpoints")


@pytest.mark.parametrize("version", [4, 12, 16])
def test_tagged_spans_are_each_paths_value_spans_interleaved_in_body_order(version: int):
    values = fetch_values(3, b"r" * 20, 1)
    body = schema.encode(FETCH, version, values)
    paths = (("Responses", "Topic"), ("Responses", "Partitions", "PartitionIndex"))
    if version >= 13:
        paths = (("Responses", "TopicId"), paths[1])
    records = ("Responses", "Partitions", "Records")

    tagged = skipping.tagged_spans(FETCH, version, body, *paths, records)

    for number, path in enumerate((*paths, records)):
        spans = [(start, end) for tag, start, end in tagged if tag == number]
        assert spans == skipping.value_spans(FETCH, version, body, path)
    assert [tag for tag, _, _ in tagged] == [0, 1, 2, 1, 2, 1, 2]
    assert [start for _, start, _ in tagged] == sorted(start for _, start, _ in tagged)
