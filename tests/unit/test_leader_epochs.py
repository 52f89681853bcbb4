"""Leader epochs: clients see none, brokers are asked to check none, nothing else changes."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from failover_gateway.codec import headers, schema, specs
from failover_gateway.routing import leader_epochs, response_rewriting
from failover_gateway.routing.leader_epochs import REQUEST_FIELDS, RESPONSE_FIELDS

FETCH, LIST_OFFSETS, METADATA, OFFSET_FETCH, OFFSET_FOR_LEADER_EPOCH = 1, 2, 3, 9, 23
EPOCH = 41  # every number in a filled message: epochs and the fields beside them alike


def filled(fields: tuple[specs.FieldSpec, ...], version: int, flexible: bool) -> dict[str, Any]:
    """A value for every untagged field of this version: numbers EPOCH, two of each struct."""
    values: dict[str, Any] = {}
    for field in fields:
        if not field.present_in(version) or (flexible and field.tagged_in(version)):
            continue
        values[field.name] = _value(field, version, flexible)
    return values


def _value(field: specs.FieldSpec, version: int, flexible: bool) -> Any:
    if field.is_array and field.is_struct:
        return [filled(field.fields, version, flexible) for _ in range(2)]
    if field.is_array:
        return []
    if field.is_struct:
        return filled(field.fields, version, flexible)
    return {
        "bool": False,
        "string": "t",
        "bytes": b"",
        "records": b"",
        "uuid": uuid.UUID(int=7),
        "float64": 0.0,
    }.get(field.type, EPOCH)


def frame_of(kind: str, api_key: int, version: int) -> tuple[bytes, dict[str, Any]]:
    spec = specs.request(api_key) if kind == "request" else specs.response(api_key)
    assert spec is not None
    body = filled(spec.fields, version, spec.is_flexible(version))
    if kind == "request":
        head = headers.encode_request_header(api_key, version, 5, "c")
    else:
        head = headers.encode_response_header(5, api_key, version)
    payload = head + schema.encode(spec, version, body)
    return len(payload).to_bytes(4, "big") + payload, body


def decoded(kind: str, api_key: int, version: int, frame: Any) -> dict[str, Any]:
    view = memoryview(frame)[4:]
    if kind == "request":
        header = headers.parse_request_header(view)
        spec = specs.request(api_key)
    else:
        header = headers.parse_response_header(view, api_key, version)
        spec = specs.response(api_key)
    assert spec is not None
    return schema.decode(spec, version, view[header.body_offset :])


def with_unknown_epochs(values: Any, path: tuple[str, ...]) -> None:
    if isinstance(values, list):
        for item in values:
            with_unknown_epochs(item, path)
    elif len(path) == 1:
        values[path[0]] = -1
    elif values.get(path[0]) is not None:
        with_unknown_epochs(values[path[0]], path[1:])


def every_version(kind: str, table: dict[int, Any]) -> list[tuple[int, int]]:
    cases = []
    for api_key in table:
        spec = specs.request(api_key) if kind == "request" else specs.response(api_key)
        assert spec is not None and spec.valid_versions is not None
        cases += [(api_key, v) for v in range(spec.valid_versions.low, spec.max_version + 1)]
    return cases


def hidden(kind: str, api_key: int, version: int, frame: bytes) -> Any:
    if kind == "request":
        return leader_epochs.hide_in_request(api_key, bytearray(frame))
    return leader_epochs.hide_in_response(api_key, version, frame)


@pytest.mark.parametrize(
    ("kind", "api_key", "version"),
    [("response", *case) for case in every_version("response", dict(RESPONSE_FIELDS))]
    + [("request", *case) for case in every_version("request", dict(REQUEST_FIELDS))],
)
def test_every_epoch_clients_see_or_brokers_fence_with_becomes_unknown_and_nothing_else_changes(
    kind: str, api_key: int, version: int
) -> None:
    frame, _ = frame_of(kind, api_key, version)
    expected = decoded(kind, api_key, version, frame)
    for path in leader_epochs.paths_in(kind, api_key, version):
        with_unknown_epochs(expected, path)

    result = hidden(kind, api_key, version, frame)

    assert decoded(kind, api_key, version, result) == expected
    assert len(result) == len(frame)
    if kind == "response" and not leader_epochs.paths_in(kind, api_key, version):
        assert result is frame


def test_the_epochs_clients_see_are_found_where_kip_320_put_them() -> None:
    assert leader_epochs.paths_in("response", METADATA, 6) == ()
    assert leader_epochs.paths_in("response", METADATA, 7)
    assert leader_epochs.paths_in("response", LIST_OFFSETS, 4)
    assert leader_epochs.paths_in("response", OFFSET_FETCH, 5)
    assert leader_epochs.paths_in("response", OFFSET_FETCH, 8) == (
        ("Groups", "Topics", "Partitions", "CommittedLeaderEpoch"),
    )
    assert leader_epochs.paths_in("request", FETCH, 8) == ()
    assert len(leader_epochs.paths_in("request", FETCH, 12)) == 2
    assert not leader_epochs.carries_leader_epochs("request", METADATA, 12)


def test_the_epoch_an_offset_for_leader_epoch_request_asks_about_is_left_as_it_is() -> None:
    frame, _ = frame_of("request", OFFSET_FOR_LEADER_EPOCH, 4)

    hidden = leader_epochs.hide_in_request(OFFSET_FOR_LEADER_EPOCH, frame)

    partition = decoded("request", OFFSET_FOR_LEADER_EPOCH, 4, hidden)["Topics"][0]["Partitions"][0]
    assert (partition["CurrentLeaderEpoch"], partition["LeaderEpoch"]) == (-1, EPOCH)


def test_a_frame_without_a_known_epoch_is_returned_as_the_same_object() -> None:
    frame, _ = frame_of("response", METADATA, 12)
    once = leader_epochs.hide_in_response(METADATA, 12, frame)

    assert leader_epochs.hide_in_response(METADATA, 12, once) is once
    assert leader_epochs.hide_in_response(METADATA, 6, frame_of("response", METADATA, 6)[0])


def test_a_metadata_answer_relayed_to_a_client_names_no_epoch_and_the_gateways_addresses() -> None:
    spec = specs.response(METADATA)
    assert spec is not None
    frame, body = frame_of("response", METADATA, 12)
    body = copy.deepcopy(body)
    body["Brokers"] = [{"NodeId": 1, "Host": "kafka-1.internal", "Port": 9092, "Rack": None}]
    payload = headers.encode_response_header(5, METADATA, 12) + schema.encode(spec, 12, body)
    frame = len(payload).to_bytes(4, "big") + payload

    relayed = response_rewriting.rewrite_frame(
        METADATA, 12, frame, lambda node, host, port: ("127.0.0.1", 19000 + node)
    )

    answer = decoded("response", METADATA, 12, relayed)
    assert answer["Brokers"][0]["Host"] == "127.0.0.1"
    epochs = {p["LeaderEpoch"] for t in answer["Topics"] for p in t["Partitions"]}
    assert epochs == {-1}
