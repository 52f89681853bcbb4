"""Broker addresses in Metadata, FindCoordinator and DescribeCluster become gateway addresses.

Inputs come from kafka-python's encoder and from hand-written hex; outputs are read back with
kafka-python, so a mistake shared by our decoder and encoder cannot hide.
"""

from __future__ import annotations

from typing import Any

import pytest
from golden import kafka_python_messages as kp
from golden.fixtures import load_hex
from kafka.protocol.admin import DescribeClusterResponse
from kafka.protocol.metadata import FindCoordinatorResponse, MetadataResponse

from failover_gateway.codec import errors, schema, specs
from failover_gateway.routing import address_rewriting
from failover_gateway.routing.address_rewriting import BrokerAddress

METADATA, FIND_COORDINATOR, DESCRIBE_CLUSTER = 3, 10, 60
REAL = tuple(BrokerAddress(n, h, p) for n, h, p, _ in kp.REAL_BROKERS)


def same_address(node_id: int, host: str, port: int) -> tuple[str, int]:
    return host, port


def gateway_address(node_id: int, host: str, port: int) -> tuple[str, int]:
    return "gateway.example.com", 19_000 + node_id


def _without_addresses(value: Any) -> Any:
    """kafka-python's to_dict with every host/port blanked, to compare everything else."""
    if isinstance(value, dict):
        return {
            k: None if k in ("host", "port") else _without_addresses(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_addresses(v) for v in value]
    return value


@pytest.mark.parametrize("version", range(14))
def test_metadata_rewrite_with_unchanged_addresses_is_byte_identical(version: int):
    body = kp.metadata_response().encode(version=version)

    result = address_rewriting.rewrite_response(METADATA, version, body, same_address)

    assert result is not None
    assert result.body == body
    assert result.real_brokers == REAL


@pytest.mark.parametrize("version", range(14))
def test_metadata_rewrite_puts_gateway_addresses_in_brokers_and_changes_nothing_else(version: int):
    body = kp.metadata_response().encode(version=version)

    result = address_rewriting.rewrite_response(METADATA, version, body, gateway_address)

    assert result is not None
    before = MetadataResponse.decode(body, version=version).to_dict()
    after = MetadataResponse.decode(result.body, version=version).to_dict()
    assert [(b["host"], b["port"]) for b in after["brokers"]] == [
        ("gateway.example.com", 19_001),
        ("gateway.example.com", 19_002),
        ("gateway.example.com", 19_003),
    ]
    assert _without_addresses(after) == _without_addresses(before)


def test_metadata_rewrite_keeps_unknown_tagged_fields_byte_for_byte():
    body = load_hex("metadata_v12_unknown_tags")
    spec = specs.message("MetadataResponse")

    unchanged = address_rewriting.rewrite_metadata(12, body, same_address)
    rewritten = address_rewriting.rewrite_metadata(12, body, gateway_address)

    assert unchanged.body == body
    values = schema.decode(spec, 12, rewritten.body)
    assert values["Brokers"][0][schema.UNKNOWN_TAGS] == {99: bytes.fromhex("aabbcc")}
    assert values[schema.UNKNOWN_TAGS] == {5: b"\xff", 99: bytes.fromhex("dead")}
    assert values["Brokers"][0]["Host"] == "gateway.example.com"


def test_metadata_rewrite_never_decodes_what_follows_the_brokers():
    body = kp.metadata_response().encode(version=12)
    _, rest_at = schema.decode_prefix(
        specs.message("MetadataResponse"), 12, body, stop_after_field="Brokers"
    )
    garbage_after_brokers = body[:rest_at] + b"\xff" * 64

    result = address_rewriting.rewrite_metadata(12, garbage_after_brokers, same_address)

    assert result.body == garbage_after_brokers


def test_metadata_rewrite_accepts_a_memoryview_body():
    body = kp.metadata_response().encode(version=13)

    result = address_rewriting.rewrite_metadata(13, memoryview(body), same_address)

    assert result.body == body


def test_advertise_is_asked_with_the_real_node_id_host_and_port():
    asked = []

    def advertise(node_id: int, host: str, port: int) -> tuple[str, int]:
        asked.append((node_id, host, port))
        return host, port

    address_rewriting.rewrite_metadata(1, kp.metadata_response().encode(version=1), advertise)

    assert asked == [(n, h, p) for n, h, p, _ in kp.REAL_BROKERS]


@pytest.mark.parametrize("version", range(7))
def test_find_coordinator_rewrite_with_unchanged_addresses_is_byte_identical(version: int):
    body = kp.find_coordinator_response().encode(version=version)

    result = address_rewriting.rewrite_response(FIND_COORDINATOR, version, body, same_address)

    assert result is not None and result.body == body


@pytest.mark.parametrize("version", range(4))
def test_find_coordinator_v0_to_v3_rewrites_the_single_coordinator(version: int):
    body = kp.find_coordinator_response().encode(version=version)

    result = address_rewriting.rewrite_find_coordinator(version, body, gateway_address)

    after = FindCoordinatorResponse.decode(result.body, version=version).to_dict()
    before = FindCoordinatorResponse.decode(body, version=version).to_dict()
    assert (after["node_id"], after["host"], after["port"]) == (2, "gateway.example.com", 19_002)
    assert _without_addresses(after) == _without_addresses(before)
    assert result.real_brokers == (BrokerAddress(2, "kafka-2.primary.internal", 9093),)


@pytest.mark.parametrize("version", range(4))
def test_find_coordinator_error_answers_are_left_exactly_as_they_are(version: int):
    body = kp.find_coordinator_response(error=True).encode(version=version)

    result = address_rewriting.rewrite_find_coordinator(version, body, gateway_address)

    assert result.body == body and result.real_brokers == ()


@pytest.mark.parametrize("version", range(4, 7))
def test_find_coordinator_v4_and_later_rewrite_each_found_coordinator_only(version: int):
    body = kp.find_coordinator_response().encode(version=version)

    result = address_rewriting.rewrite_find_coordinator(version, body, gateway_address)

    after = FindCoordinatorResponse.decode(result.body, version=version).to_dict()
    before = FindCoordinatorResponse.decode(body, version=version).to_dict()
    assert [(c["key"], c["host"], c["port"]) for c in after["coordinators"]] == [
        ("group-a", "gateway.example.com", 19_002),
        ("group-b", "", -1),
        ("txn-c", "gateway.example.com", 19_003),
    ]
    assert _without_addresses(after) == _without_addresses(before)
    assert [b.node_id for b in result.real_brokers] == [2, 3]


def test_find_coordinator_rewrite_keeps_unknown_tagged_fields_byte_for_byte():
    body = load_hex("find_coordinator_v4_unknown_tags")

    unchanged = address_rewriting.rewrite_find_coordinator(4, body, same_address)
    rewritten = address_rewriting.rewrite_find_coordinator(4, body, gateway_address)

    assert unchanged.body == body
    values = schema.decode(specs.message("FindCoordinatorResponse"), 4, rewritten.body)
    assert values["Coordinators"][0][schema.UNKNOWN_TAGS] == {42: b"\x01\x02"}
    assert values[schema.UNKNOWN_TAGS] == {7: b"\x99"}


@pytest.mark.parametrize("version", range(3))
def test_describe_cluster_rewrite_with_unchanged_addresses_is_byte_identical(version: int):
    body = kp.describe_cluster_response().encode(version=version)

    result = address_rewriting.rewrite_response(DESCRIBE_CLUSTER, version, body, same_address)

    assert result is not None and result.body == body and result.real_brokers == REAL


@pytest.mark.parametrize("version", range(3))
def test_describe_cluster_rewrite_puts_gateway_addresses_in_brokers(version: int):
    body = kp.describe_cluster_response().encode(version=version)

    result = address_rewriting.rewrite_describe_cluster(version, body, gateway_address)

    after = DescribeClusterResponse.decode(result.body, version=version).to_dict()
    before = DescribeClusterResponse.decode(body, version=version).to_dict()
    assert {b["host"] for b in after["brokers"]} == {"gateway.example.com"}
    assert [b["port"] for b in after["brokers"]] == [19_001, 19_002, 19_003]
    assert _without_addresses(after) == _without_addresses(before)


def test_describe_cluster_rewrite_keeps_unknown_tagged_fields_byte_for_byte():
    body = load_hex("describe_cluster_v2_unknown_tags")

    unchanged = address_rewriting.rewrite_describe_cluster(2, body, same_address)
    rewritten = address_rewriting.rewrite_describe_cluster(2, body, gateway_address)

    assert unchanged.body == body
    values = schema.decode(specs.message("DescribeClusterResponse"), 2, rewritten.body)
    assert values["Brokers"][0][schema.UNKNOWN_TAGS] == {12: bytes.fromhex("01020304")}
    assert values[schema.UNKNOWN_TAGS] == {1: b"abc"}
    assert (values["Brokers"][0]["Host"], values["Brokers"][0]["Port"]) == (
        "gateway.example.com",
        19_003,
    )


@pytest.mark.parametrize("api_key", [2, 8, 9, 11, 18, 19, 32, 75])
def test_responses_without_broker_addresses_are_not_rewritten(api_key: int):
    assert address_rewriting.rewrite_response(api_key, 0, b"opaque", gateway_address) is None


@pytest.mark.parametrize(("api_key", "version"), [(0, 9), (1, 15)])
def test_produce_and_fetch_before_kip_951_are_returned_unread(api_key: int, version: int):
    body = b"opaque"

    result = address_rewriting.rewrite_response(api_key, version, body, gateway_address)

    assert result is not None and not result.changed and result.body is body


@pytest.mark.parametrize(("api_key", "version"), [(3, 14), (10, 7), (60, 3)])
def test_an_address_bearing_response_above_the_rewritten_versions_is_refused(
    api_key: int, version: int
):
    with pytest.raises(errors.UnsupportedVersion) as raised:
        address_rewriting.rewrite_response(api_key, version, b"", gateway_address)

    assert (raised.value.api_key, raised.value.api_version) == (api_key, version)


@pytest.mark.parametrize(("api_key", "version"), [(3, 12), (10, 4), (60, 2)])
def test_a_truncated_address_bearing_response_raises_malformed_frame(api_key: int, version: int):
    with pytest.raises(errors.MalformedFrame):
        address_rewriting.rewrite_response(api_key, version, b"\x00\x00\x00", gateway_address)


NULL_BROKER_LISTS = {
    "metadata": (3, 4, {"ThrottleTimeMs": 0, "Brokers": None, "ClusterId": None,
                        "ControllerId": 1, "Topics": []}),
    "find-coordinator": (10, 4, {"ThrottleTimeMs": 0, "Coordinators": None}),
    "describe-cluster": (60, 0, {"ThrottleTimeMs": 0, "ErrorCode": 0, "ErrorMessage": None,
                                 "ClusterId": "c", "ControllerId": 1, "Brokers": None,
                                 "ClusterAuthorizedOperations": 0}),
}  # fmt: skip


@pytest.mark.parametrize("name", NULL_BROKER_LISTS)
def test_a_null_broker_list_from_a_broken_broker_is_a_codec_error_never_a_crash(
    name: str,
) -> None:
    api_key, version, values = NULL_BROKER_LISTS[name]
    spec = specs.response(api_key)
    assert spec is not None
    body = schema.encode(spec, version, values)  # writes the list's length as -1
    with pytest.raises(errors.MalformedFrame, match="is null, which the spec does not allow"):
        address_rewriting.rewrite_response(api_key, version, body, gateway_address)


def test_a_broker_with_a_null_host_is_refused_as_a_malformed_frame() -> None:
    spec = specs.response(3)
    assert spec is not None
    broker = {"NodeId": 1, "Host": None, "Port": 9092, "Rack": None}
    values = {"Brokers": [broker], "ControllerId": 1, "Topics": []}
    body = schema.encode(spec, 1, values)  # writes the host's length as -1
    with pytest.raises(errors.MalformedFrame, match="null host"):
        address_rewriting.rewrite_response(3, 1, body, gateway_address)
