"""The spec-driven codec against kafka-python's encoder and hand-written golden bytes."""

from __future__ import annotations

from typing import Any

import kafka.protocol.admin
import kafka.protocol.consumer
import kafka.protocol.metadata
import kafka.protocol.producer
import pytest
from golden import kafka_python_messages as kp
from golden.fixtures import load_hex
from kafka.protocol.api_message import ApiMessage

from failover_gateway.codec import errors, schema, specs

UNKNOWN = schema.UNKNOWN_TAGS


def _kafka_python_classes() -> dict[str, Any]:
    assert kafka.protocol.admin and kafka.protocol.consumer and kafka.protocol.producer
    found: dict[str, Any] = {}
    pending = list(ApiMessage.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls._class_version is None:
            found[cls.__name__] = cls
    return found


def _every_message_version() -> list[tuple[str, int]]:
    names = sorted(_kafka_python_classes())
    return [
        (name, version)
        for name in names
        for version in range(
            specs.message(name).valid_versions.low, specs.message(name).max_version + 1
        )
    ]


@pytest.mark.parametrize(("name", "version"), _every_message_version())
def test_every_bundled_message_version_round_trips_kafka_pythons_bytes(name: str, version: int):
    encoded = _kafka_python_classes()[name](version=version).encode(version=version)
    spec = specs.message(name)
    assert schema.encode(spec, version, schema.decode(spec, version, encoded)) == encoded


GOLDEN_MESSAGES = [
    ("MetadataResponse", kp.metadata_response, 13),
    ("FindCoordinatorResponse", kp.find_coordinator_response, 6),
    ("DescribeClusterResponse", kp.describe_cluster_response, 2),
    ("ApiVersionsResponse", lambda: kp.api_versions_response([(0, 0, 11), (1, 4, 18)]), 4),
]


@pytest.mark.parametrize(
    ("name", "build", "version"),
    [(name, build, v) for name, build, top in GOLDEN_MESSAGES for v in range(top + 1)],
    ids=lambda value: value if isinstance(value, (str, int)) else "",
)
def test_rewritten_messages_decode_like_kafka_python_and_reencode_identically(
    name: str, build: Any, version: int
):
    message = build()
    encoded = message.encode(version=version)
    spec = specs.message(name)

    ours = schema.decode(spec, version, encoded)

    kp.assert_same_values(ours, type(message).decode(encoded, version=version).to_dict())
    assert schema.encode(spec, version, ours) == encoded


def test_metadata_decodes_brokers_and_topics_by_spec_field_names():
    encoded = kp.metadata_response(topics=1, partitions=1).encode(version=12)

    values = schema.decode(specs.message("MetadataResponse"), 12, encoded)

    assert values["Brokers"][0] == {
        "NodeId": 1,
        "Host": "kafka-1.primary.internal",
        "Port": 9092,
        "Rack": "rack-a",
    }
    assert values["Topics"][0]["Partitions"][0]["ReplicaNodes"] == [1, 2, 3]


FIXTURES = [
    ("metadata_v12_unknown_tags", "MetadataResponse", 12),
    ("find_coordinator_v4_unknown_tags", "FindCoordinatorResponse", 4),
    ("describe_cluster_v2_unknown_tags", "DescribeClusterResponse", 2),
    ("api_versions_v3_unknown_tags", "ApiVersionsResponse", 3),
]


@pytest.mark.parametrize(("fixture", "name", "version"), FIXTURES)
def test_unknown_tagged_fields_survive_decode_and_encode_byte_for_byte(
    fixture: str, name: str, version: int
):
    body = load_hex(fixture)
    spec = specs.message(name)
    assert schema.encode(spec, version, schema.decode(spec, version, body)) == body


def test_unknown_tagged_fields_are_kept_as_raw_bytes_keyed_by_tag():
    values = schema.decode(
        specs.message("MetadataResponse"), 12, load_hex("metadata_v12_unknown_tags")
    )

    assert values["Brokers"][0][UNKNOWN] == {99: bytes.fromhex("aabbcc")}
    assert UNKNOWN not in values["Brokers"][1]
    assert values[UNKNOWN] == {5: b"\xff", 99: bytes.fromhex("dead")}


def test_known_tagged_fields_absent_from_the_wire_are_absent_from_the_values():
    values = schema.decode(
        specs.message("ApiVersionsResponse"), 3, load_hex("api_versions_v3_unknown_tags")
    )

    assert values["FinalizedFeaturesEpoch"] == 42
    assert "FinalizedFeatures" not in values and "ZkMigrationReady" not in values


_TAGGED_SPEC = specs.parse_message(
    """
    // A made-up message: known tags 1 and 5, so an unknown tag 3 must land between them.
    {
      "type": "data", "name": "Tagged", "validVersions": "0", "flexibleVersions": "0+",
      "fields": [
        { "name": "Id", "type": "int32", "versions": "0+" },
        { "name": "Five", "type": "string", "versions": "0+", "tag": 5, "taggedVersions": "0+" },
        { "name": "One", "type": "int8", "versions": "0+", "tag": 1, "taggedVersions": "0+" },
        { "name": "Cursor", "type": "Cursor", "versions": "0+", "nullableVersions": "0+",
          "fields": [ { "name": "Url", "type": "string", "versions": "0+",
                        "about": "http://not-a-comment" } ] }
      ]
    }
    """
)


def test_known_and_unknown_tags_are_written_merged_in_ascending_tag_order():
    values = {"Id": 7, "Five": "v", "One": 1, "Cursor": None, UNKNOWN: {3: b"\x33"}}

    encoded = schema.encode(_TAGGED_SPEC, 0, values)

    # Id, Cursor null marker, then 3 tags: 1 (1 byte), 3 (1 byte), 5 (compact string "v").
    assert encoded.hex() == "00000007" + "ff" + "03" + "010101" + "030133" + "05020276"
    assert schema.decode(_TAGGED_SPEC, 0, encoded) == values


def test_nullable_struct_is_prefixed_with_a_presence_byte():
    values = {"Id": 1, "Cursor": {"Url": "u"}}

    encoded = schema.encode(_TAGGED_SPEC, 0, values)

    assert encoded.hex() == "00000001" + "01" + "027500" + "00"
    assert schema.decode(_TAGGED_SPEC, 0, encoded) == values


def test_a_tag_kept_raw_that_the_spec_knows_cannot_be_encoded():
    values = {"Id": 1, "Cursor": None, UNKNOWN: {5: b"\x00"}}

    with pytest.raises(errors.UnencodableValue):
        schema.encode(_TAGGED_SPEC, 0, values)


def test_decode_prefix_stops_after_the_named_field_and_says_where_the_rest_begins():
    body = load_hex("metadata_v12_unknown_tags")
    spec = specs.message("MetadataResponse")

    head, rest_at = schema.decode_prefix(spec, 12, body, stop_after_field="Brokers")

    assert list(head) == ["ThrottleTimeMs", "Brokers"]
    assert body[rest_at:].startswith(bytes.fromhex("036331"))  # ClusterId "c1" comes next
    assert schema.encode_prefix(spec, 12, head, stop_after_field="Brokers") == body[:rest_at]


def test_decode_prefix_accepts_a_memoryview():
    body = kp.metadata_response().encode(version=9)
    spec = specs.message("MetadataResponse")

    head, rest_at = schema.decode_prefix(spec, 9, memoryview(body), stop_after_field="Brokers")

    assert schema.encode_prefix(spec, 9, head, stop_after_field="Brokers") + body[rest_at:] == body


def test_decode_prefix_of_a_field_the_version_lacks_is_a_programming_error():
    with pytest.raises(ValueError, match="ClusterId"):
        schema.decode_prefix(
            specs.message("MetadataResponse"), 0, b"", stop_after_field="ClusterId"
        )


@pytest.mark.parametrize(("fixture", "name", "version"), FIXTURES)
def test_every_truncation_of_a_body_raises_malformed_frame(fixture: str, name: str, version: int):
    body = load_hex(fixture)
    for cut in range(len(body)):
        with pytest.raises(errors.MalformedFrame):
            schema.decode(specs.message(name), version, body[:cut])


def test_trailing_bytes_after_a_body_raise_malformed_frame():
    body = load_hex("describe_cluster_v2_unknown_tags") + b"\x00"

    with pytest.raises(errors.MalformedFrame, match="trailing"):
        schema.decode(specs.message("DescribeClusterResponse"), 2, body)


def test_an_array_count_larger_than_the_body_is_malformed_without_allocating():
    body = bytes.fromhex("7fffffff")  # Metadata v0 starts with Brokers: 2^31-1 of them

    with pytest.raises(errors.MalformedFrame, match="array"):
        schema.decode(specs.message("MetadataResponse"), 0, body)


def test_invalid_utf8_in_a_string_is_malformed():
    body = bytearray(load_hex("describe_cluster_v2_unknown_tags"))
    body[9:11] = b"\xff\xfe"  # ClusterId "c1" -> invalid UTF-8

    with pytest.raises(errors.MalformedFrame):
        schema.decode(specs.message("DescribeClusterResponse"), 2, bytes(body))


def test_a_varint_longer_than_five_bytes_is_malformed():
    body = bytes.fromhex("00000000" + "0000" + "ffffffffffff01")  # ErrorMessage length

    with pytest.raises(errors.MalformedFrame, match="varint"):
        schema.decode(specs.message("DescribeClusterResponse"), 2, body)


def test_a_version_outside_the_spec_raises_unsupported_version():
    with pytest.raises(errors.UnsupportedVersion) as raised:
        schema.decode(specs.message("MetadataResponse"), 14, b"")

    assert raised.value.api_key == 3 and raised.value.api_version == 14


def test_a_value_of_the_wrong_type_raises_unencodable_value():
    values = {"ThrottleTimeMs": None, "Brokers": []}

    with pytest.raises(errors.UnencodableValue):
        schema.encode_prefix(
            specs.message("MetadataResponse"), 9, values, stop_after_field="Brokers"
        )


def test_plans_are_compiled_once_per_message_and_version():
    spec = specs.message("MetadataResponse")

    assert schema.plan(spec, 12) is schema.plan(spec, 12)
    assert schema.plan(spec, 12, "Brokers") is schema.plan(spec, 12, "Brokers")
    assert schema.plan(spec, 12) is not schema.plan(spec, 11)
