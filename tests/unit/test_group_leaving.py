"""Which requests make a client a group member the gateway leaves for, and the LeaveGroup sent."""

from __future__ import annotations

from typing import Any

import pytest

from failover_gateway.codec import headers, schema, specs
from failover_gateway.routing import group_leaving

JOIN = {
    "GroupId": "readers",
    "SessionTimeoutMs": 45000,
    "RebalanceTimeoutMs": 300000,
    "ProtocolType": "consumer",
    "Protocols": [],
    "Reason": None,
}


def framed(api_key: int, version: int, body: dict[str, Any]) -> bytes:
    spec = specs.request(api_key)
    assert spec is not None
    payload = headers.encode_request_header(api_key, version, 5, "app") + schema.encode(
        spec, version, body
    )
    return len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize("version", [5, 9])
def test_a_join_with_the_member_id_the_broker_gave_names_the_member(version: int) -> None:
    frame = framed(11, version, {**JOIN, "MemberId": "m-1", "GroupInstanceId": None})
    assert group_leaving.membership(11, frame) == ("readers", "m-1")


def test_a_first_join_without_a_member_id_names_nobody() -> None:
    frame = framed(11, 9, {**JOIN, "MemberId": "", "GroupInstanceId": None})
    assert group_leaving.membership(11, frame) is None


@pytest.mark.parametrize("api_key", [11, 12])
def test_a_static_member_is_never_named(api_key: int) -> None:
    body = {"GroupId": "readers", "GenerationId": 1, "MemberId": "m-1", "GroupInstanceId": "a"}
    if api_key == 11:
        body = {**JOIN, "MemberId": "m-1", "GroupInstanceId": "a"}
    version = 5 if api_key == 11 else 4  # the first versions with GroupInstanceId are 5 and 3
    assert group_leaving.membership(api_key, framed(api_key, version, body)) is None


def test_the_leave_request_is_a_v3_leave_group_for_that_one_member() -> None:
    frame = group_leaving.leave_request("readers", "m-1")
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    header = headers.parse_request_header(frame[4:])
    assert (header.api_key, header.api_version) == (13, 3)
    spec = specs.request(13)
    assert spec is not None
    body = schema.decode(spec, 3, memoryview(frame)[4 + header.body_offset :])
    assert body == {
        "GroupId": "readers",
        "Members": [{"MemberId": "m-1", "GroupInstanceId": None}],
    }
