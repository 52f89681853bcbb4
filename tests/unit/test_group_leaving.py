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


def test_a_first_join_names_its_group_and_no_member_yet() -> None:
    frame = framed(11, 9, {**JOIN, "MemberId": "", "GroupInstanceId": None})
    assert group_leaving.membership(11, frame) == ("readers", "")


@pytest.mark.parametrize("version", [5, 9])
def test_the_member_id_a_join_answer_gives_is_read_even_with_member_id_required(
    version: int,
) -> None:
    spec = specs.response(11)
    assert spec is not None
    body = {
        "ThrottleTimeMs": 0,
        "ErrorCode": 79,  # MEMBER_ID_REQUIRED: the broker already holds this pending member
        "GenerationId": -1,
        "ProtocolType": None,
        "ProtocolName": None,
        "Leader": "",
        "SkipAssignment": False,
        "MemberId": "m-9",
        "Members": [],
    }
    payload = headers.encode_response_header(5, 11, version) + schema.encode(spec, version, body)
    frame = len(payload).to_bytes(4, "big") + payload
    assert group_leaving.joined_member(version, frame) == "m-9"


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


def test_a_left_member_is_gone_until_its_time_runs_out() -> None:
    left = group_leaving.LeftMembers(seconds=10.0)
    left.left("readers", "m-1", now=100.0)
    assert left.gone("readers", "m-1", now=109.9)
    assert not left.gone("readers", "m-2", now=109.9)
    assert not left.gone("writers", "m-1", now=109.9)
    assert not left.gone("readers", "m-1", now=110.0)
    assert len(left) == 0, "expired entries are dropped"


def test_left_members_keep_only_the_newest_when_full() -> None:
    left = group_leaving.LeftMembers(seconds=10.0, kept=2)
    for number in range(3):
        left.left("readers", f"m-{number}", now=1.0)
    assert [left.gone("readers", f"m-{n}", now=2.0) for n in range(3)] == [False, True, True]


@pytest.mark.parametrize(("api_key", "version"), [(12, 0), (12, 4), (14, 0), (14, 3), (14, 5)])
def test_the_rejoin_answer_is_rebalance_in_progress_for_the_request_it_answers(
    api_key: int, version: int
) -> None:
    body = {
        "GroupId": "readers",
        "GenerationId": 3,
        "MemberId": "m-1",
        "GroupInstanceId": None,
        "ProtocolType": "consumer",
        "ProtocolName": "range",
        "Assignments": [],
    }
    answer = memoryview(group_leaving.rejoin_answer(api_key, framed(api_key, version, body)))
    assert int.from_bytes(answer[:4], "big") == len(answer) - 4
    header = headers.parse_response_header(answer[4:], api_key, version)
    spec = specs.response(api_key)
    assert spec is not None
    values = schema.decode(spec, version, answer[4 + header.body_offset :])
    assert (header.correlation_id, values["ErrorCode"]) == (5, 27)


@pytest.mark.parametrize("version", [0, 4, 5, 6, 9])
def test_a_join_without_its_member_id_keeps_everything_else(version: int) -> None:
    join = {**JOIN, "MemberId": "m-1", "GroupInstanceId": None, "Reason": None}
    join["Protocols"] = [{"Name": "range", "Metadata": b"\x00\x01"}]
    rewritten = group_leaving.without_member_id(framed(11, version, join))
    assert rewritten == framed(11, version, {**join, "MemberId": ""})


@pytest.mark.parametrize(("api_key", "version"), [(12, 0), (12, 4), (14, 0), (14, 5)])
@pytest.mark.parametrize(("code", "unknown"), [(25, True), (27, False), (0, False)])
def test_an_unknown_member_answer_is_recognised_in_every_version(
    api_key: int, version: int, code: int, unknown: bool
) -> None:
    spec = specs.response(api_key)
    assert spec is not None
    body = {
        "ThrottleTimeMs": 0,
        "ErrorCode": code,
        "ProtocolType": None,
        "ProtocolName": None,
        "Assignment": b"",
    }
    payload = headers.encode_response_header(5, api_key, version) + schema.encode(
        spec, version, body
    )
    frame = len(payload).to_bytes(4, "big") + payload
    assert group_leaving.member_unknown(api_key, version, frame) is unknown
