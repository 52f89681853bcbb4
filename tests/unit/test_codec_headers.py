"""Request and response headers of every version, and what truncated or garbage input raises."""

from __future__ import annotations

import pytest
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest

from failover_gateway.codec import errors, headers


def _metadata_request_frame(version: int, client_id: str | None = "app-1") -> bytes:
    request = MetadataRequest(topics=None, allow_auto_topic_creation=False)
    request.with_header(correlation_id=7, client_id=client_id)
    frame: bytes = request.encode(version=version, header=True)
    return frame


def test_request_header_v1_has_a_client_id_and_no_tagged_fields():
    frame = _metadata_request_frame(version=1)

    header = headers.parse_request_header(frame)

    assert header == headers.RequestHeader(3, 1, 7, "app-1", body_offset=15)
    assert frame[header.body_offset :] == bytes.fromhex("ffffffff")  # topics: null (all)


def test_request_header_v2_keeps_a_classic_client_id_then_skips_tagged_fields():
    frame = _metadata_request_frame(version=12)

    header = headers.parse_request_header(frame)

    assert (header.api_key, header.api_version, header.client_id) == (3, 12, "app-1")
    assert header.body_offset == 16  # 8 fixed + 2 + 5 ("app-1") + 1 empty tag section


def test_request_header_v2_with_tagged_fields_is_skipped_entirely():
    # ApiVersions v3, client_id "c", header tags: one field, tag 3, two bytes.
    frame = bytes.fromhex("0012 0003 00000009 0001 63 01 03 02 abcd".replace(" ", "")) + b"BODY"

    header = headers.parse_request_header(frame)

    assert header.client_id == "c"
    assert frame[header.body_offset :] == b"BODY"


def test_a_null_client_id_is_read_as_none():
    request = ApiVersionsRequest(client_software_name="x", client_software_version="1")
    request.with_header(correlation_id=1, client_id=None)

    header = headers.parse_request_header(request.encode(version=3, header=True))

    assert header.client_id is None and header.body_offset == 11


def test_controlled_shutdown_v0_uses_request_header_v0_without_client_id():
    frame = bytes.fromhex("0007 0000 0000002a".replace(" ", "")) + bytes.fromhex("00000001")

    header = headers.parse_request_header(frame)

    assert header == headers.RequestHeader(7, 0, 42, None, body_offset=8)


def test_request_ids_can_be_peeked_for_api_keys_the_codec_does_not_know():
    frame = bytes.fromhex("270f 0001 00000005 0000".replace(" ", ""))

    assert headers.peek_request_ids(frame) == (9999, 1, 5)
    with pytest.raises(errors.UnsupportedVersion) as raised:
        headers.parse_request_header(frame)
    assert (raised.value.api_key, raised.value.api_version) == (9999, 1)


@pytest.mark.parametrize("version", [1, 12])
def test_every_truncation_of_a_request_header_raises_malformed_frame(version: int):
    frame = _metadata_request_frame(version)
    header_length = headers.parse_request_header(frame).body_offset
    for cut in range(header_length):
        with pytest.raises(errors.MalformedFrame):
            headers.parse_request_header(frame[:cut])


def test_a_client_id_longer_than_the_frame_raises_malformed_frame():
    frame = bytes.fromhex("0003 0001 00000007 7fff 6162".replace(" ", ""))

    with pytest.raises(errors.MalformedFrame):
        headers.parse_request_header(frame)


def test_a_client_id_that_is_not_utf8_raises_malformed_frame():
    frame = bytes.fromhex("0003 0001 00000007 0002 fffe".replace(" ", ""))

    with pytest.raises(errors.MalformedFrame):
        headers.parse_request_header(memoryview(frame))


@pytest.mark.parametrize("version", [1, 12])
def test_encoded_request_headers_match_kafka_pythons(version: int):
    frame = _metadata_request_frame(version)

    ours = headers.encode_request_header(3, version, 7, "app-1")

    assert frame[: headers.parse_request_header(frame).body_offset] == ours


@pytest.mark.parametrize(
    ("api_key", "api_version", "header_version"),
    [(3, 8, 0), (3, 9, 1), (10, 3, 1), (60, 0, 1), (18, 0, 0), (18, 3, 0), (18, 4, 0)],
)
def test_response_header_is_v1_when_flexible_except_for_api_versions(
    api_key: int, api_version: int, header_version: int
):
    assert headers.response_header_version(api_key, api_version) == header_version


def test_response_header_v0_is_only_the_correlation_id():
    frame = bytes.fromhex("0000002a") + b"BODY"

    header = headers.parse_response_header(frame, api_key=3, api_version=8)

    assert header == headers.ResponseHeader(correlation_id=42, body_offset=4)


def test_response_header_v1_tagged_fields_are_skipped():
    frame = bytes.fromhex("0000002a 01 05 01 ff".replace(" ", "")) + b"BODY"

    header = headers.parse_response_header(frame, api_key=3, api_version=12)

    assert frame[header.body_offset :] == b"BODY"


def test_api_versions_v3_response_body_starts_right_after_the_correlation_id():
    frame = bytes.fromhex("0000002a 0000".replace(" ", ""))

    assert headers.parse_response_header(frame, api_key=18, api_version=3).body_offset == 4


@pytest.mark.parametrize("frame", [b"", b"\x00\x00\x00", bytes.fromhex("0000002a 02 05 03 ff")])
def test_truncated_response_headers_raise_malformed_frame(frame: bytes):
    with pytest.raises(errors.MalformedFrame):
        headers.parse_response_header(frame, api_key=3, api_version=12)


@pytest.mark.parametrize(("api_key", "api_version"), [(3, 8), (3, 12), (18, 3)])
def test_encoded_response_headers_parse_back(api_key: int, api_version: int):
    encoded = headers.encode_response_header(99, api_key, api_version)

    parsed = headers.parse_response_header(encoded + b"x", api_key, api_version)

    assert parsed == headers.ResponseHeader(99, len(encoded))
    assert headers.peek_correlation_id(encoded) == 99
