"""The versions clients may use through the gateway: every api key classified, no address leaked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from golden import kafka_python_messages as kp
from golden.fixtures import load_hex
from kafka.protocol.metadata import ApiVersionsResponse

from failover_gateway.codec import errors, headers, schema, specs
from failover_gateway.routing import address_rewriting, api_versions, version_policy
from failover_gateway.routing.version_policy import Treatment

PRODUCE, FETCH, METADATA, FIND_COORDINATOR, API_VERSIONS = 0, 1, 3, 10, 18
DESCRIBE_QUORUM, DESCRIBE_CLUSTER, SHARE_FETCH, SHARE_ACKNOWLEDGE = 55, 60, 78, 79

# The reviewed table, written out: a spec update that moves any of these must be re-reviewed
# (new versions may add address fields), not picked up silently.
REVIEWED_MAX_VERSIONS = {
    0: 12, 1: 18, 2: 11, 3: 13, 8: 10, 9: 10, 10: 6, 11: 9, 12: 4, 13: 5, 14: 5, 15: 6, 16: 5,
    17: 1, 18: 4, 19: 7, 20: 6, 21: 2, 22: 5, 23: 4, 24: 5, 25: 4, 26: 5, 28: 5, 29: 3, 30: 3,
    31: 3, 32: 4, 33: 2, 34: 2, 35: 5, 36: 2, 37: 3, 38: 3, 39: 2, 40: 2, 41: 3, 42: 2, 43: 2,
    44: 1, 45: 1, 46: 0, 47: 0, 48: 1, 49: 1, 50: 0, 51: 0, 55: 1, 57: 2, 60: 2, 61: 0, 64: 0,
    65: 0, 66: 2, 68: 1, 69: 1, 71: 0, 72: 0, 74: 1, 75: 0, 76: 1, 77: 1, 78: 2, 79: 2, 80: 1,
    81: 0, 88: 0, 89: 0, 90: 1, 91: 0, 92: 0,
}  # fmt: skip

BROKER_RANGES = [
    (PRODUCE, 0, 13),
    (FETCH, 0, 18),
    (METADATA, 0, 13),
    (FIND_COORDINATOR, 0, 6),
    (API_VERSIONS, 0, 4),
    (DESCRIBE_QUORUM, 0, 2),
    (DESCRIBE_CLUSTER, 0, 2),
    (27, 0, 1),
    (68, 0, 1),
    (75, 0, 0),
    (SHARE_FETCH, 1, 2),
    (SHARE_ACKNOWLEDGE, 1, 2),
    (85, 0, 1),
    (88, 0, 1),
    (93, 0, 0),
    (9999, 0, 3),
]


def _client_view(version: int, body: bytes) -> dict[int, tuple[int, int]]:
    decoded = ApiVersionsResponse.decode(body, version=version)
    return {k.api_key: (k.min_version, k.max_version) for k in decoded.api_keys}


def test_the_gateway_table_is_the_reviewed_one():
    assert dict(api_versions.GATEWAY_MAX_VERSIONS) == REVIEWED_MAX_VERSIONS


def test_every_api_key_of_the_shipped_specs_has_a_decision():
    # A spec update that brings a new api key fails here until someone classifies it.
    assert set(specs.api_keys()) == set(version_policy.DECISIONS)


def test_every_decision_says_why():
    assert all(decision.why for decision in version_policy.DECISIONS.values())


@pytest.mark.parametrize("version", range(5))
def test_clients_see_the_intersection_of_broker_and_gateway_versions(version: int):
    body = kp.api_versions_response(BROKER_RANGES).encode(version=version)

    seen = _client_view(version, api_versions.rewrite_api_versions_response(version, body))

    assert seen == {
        PRODUCE: (0, 12),
        FETCH: (0, 18),
        METADATA: (0, 13),
        FIND_COORDINATOR: (0, 6),
        API_VERSIONS: (0, 4),
        DESCRIBE_QUORUM: (0, 1),
        DESCRIBE_CLUSTER: (0, 2),
        68: (0, 1),
        75: (0, 0),
        SHARE_FETCH: (1, 2),
        SHARE_ACKNOWLEDGE: (1, 2),
        88: (0, 0),
    }


@pytest.mark.parametrize("version", range(5))
def test_everything_but_the_api_key_list_is_kept_when_features_need_no_change(version: int):
    body = kp.api_versions_response(BROKER_RANGES).encode(version=version)

    rewritten = api_versions.rewrite_api_versions_response(version, body)

    before = ApiVersionsResponse.decode(body, version=version).to_dict()
    after = ApiVersionsResponse.decode(rewritten, version=version).to_dict()
    before.pop("api_keys"), after.pop("api_keys")
    assert after == before


def test_the_broker_minimum_version_is_preserved():
    assert api_versions.allowed_range(FETCH, 4, 18) == (4, 18)
    assert api_versions.allowed_range(METADATA, 1, 12) == (1, 12)


def test_an_api_whose_broker_minimum_is_above_the_gateway_maximum_is_removed():
    assert api_versions.allowed_range(DESCRIBE_QUORUM, 2, 2) is None


def test_describe_quorum_is_capped_below_the_version_that_names_controller_endpoints():
    assert api_versions.allowed_range(DESCRIBE_QUORUM, 0, 2) == (0, 1)
    response = specs.response(DESCRIBE_QUORUM)
    assert response is not None
    assert not list(_address_fields(response.fields, 1))
    assert list(_address_fields(response.fields, 2))


@pytest.mark.parametrize("api_key", [9999, 93, 4, 27, 52, 58, 62, 67, 82, 83, 85, 87])
def test_unknown_and_inter_broker_apis_are_removed(api_key: int):
    assert api_versions.allowed_range(api_key, 0, 5) is None


@pytest.mark.parametrize("api_key", [SHARE_FETCH, SHARE_ACKNOWLEDGE, 76, 77, 88, 89, 68, 69])
def test_share_streams_and_consumer_group_apis_are_forwarded(api_key: int):
    assert api_versions.allowed_range(api_key, 0, 1) is not None


def test_an_unstable_latest_version_is_not_offered():
    # InitProducerId v6 (KIP-939 two-phase commit) is still unstable in the shipped specs.
    assert api_versions.allowed_range(22, 0, 6) == (0, 5)


def test_features_and_unknown_tagged_fields_survive_the_rewrite():
    body = load_hex("api_versions_v3_unknown_tags")
    spec = specs.message("ApiVersionsResponse")

    values = schema.decode(spec, 3, api_versions.rewrite_api_versions_response(3, body))

    assert values["ApiKeys"] == [
        {"ApiKey": FETCH, "MinVersion": 4, "MaxVersion": 18, schema.UNKNOWN_TAGS: {4: b"\xee"}},
        {"ApiKey": METADATA, "MinVersion": 0, "MaxVersion": 13},
        {"ApiKey": DESCRIBE_QUORUM, "MinVersion": 0, "MaxVersion": 1},
    ]
    original = schema.decode(spec, 3, body)
    for kept in ("ErrorCode", "ThrottleTimeMs", "SupportedFeatures", "FinalizedFeaturesEpoch"):
        assert values[kept] == original[kept]
    assert values[schema.UNKNOWN_TAGS] == {9: bytes.fromhex("abcd")}


def test_an_answer_already_within_policy_is_byte_identical():
    ranges = [(PRODUCE, 3, 12), (METADATA, 0, 13), (API_VERSIONS, 0, 4)]
    body = kp.api_versions_response(ranges).encode(version=3)

    assert api_versions.rewrite_api_versions_response(3, body) == body


def test_an_unsupported_version_error_is_read_as_the_v0_body_brokers_send():
    # A client asked ApiVersions v4 of an older broker: the broker answered with a v0 body.
    error = ApiVersionsResponse(
        error_code=api_versions.UNSUPPORTED_VERSION,
        api_keys=[
            ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=2),
            ApiVersionsResponse.ApiVersion(api_key=27, min_version=0, max_version=1),
        ],
    )
    body = error.encode(version=0)

    rewritten = api_versions.rewrite_api_versions_response(4, body)

    decoded = ApiVersionsResponse.decode(rewritten, version=0)
    assert decoded.error_code == api_versions.UNSUPPORTED_VERSION
    assert _client_view(0, rewritten) == {API_VERSIONS: (0, 2)}


def test_the_gateways_own_unsupported_version_answer_names_its_api_versions_range():
    body = api_versions.unsupported_version_body()

    decoded = ApiVersionsResponse.decode(body, version=0)

    assert decoded.error_code == api_versions.UNSUPPORTED_VERSION
    assert _client_view(0, body) == {API_VERSIONS: (0, 4)}


def test_an_api_versions_body_above_the_shipped_spec_is_refused():
    with pytest.raises(errors.UnsupportedVersion):
        api_versions.rewrite_api_versions_response(5, bytes.fromhex("0000 01 00000000 00"))


def test_an_empty_api_versions_body_is_malformed():
    with pytest.raises(errors.MalformedFrame):
        api_versions.rewrite_api_versions_response(3, b"")


def test_address_bearing_apis_are_capped_at_most_at_the_versions_the_gateway_rewrites():
    for api_key, top in address_rewriting.REWRITTEN_MAX_VERSIONS.items():
        decision = version_policy.DECISIONS[api_key]
        assert api_versions.GATEWAY_MAX_VERSIONS[api_key] == min(top, decision.cap or top)
        assert decision.treatment is Treatment.REWRITTEN


def test_produce_stops_before_topic_ids_but_keeps_transaction_version_2():
    assert api_versions.GATEWAY_MAX_VERSIONS[PRODUCE] == 12


def _address_fields(
    fields: tuple[specs.FieldSpec, ...], version: int, path: str = ""
) -> Iterator[str]:
    for field in fields:
        if not field.present_in(version):
            continue
        where = f"{path}{field.name}"
        if field.name in ("Host", "Port") or "Endpoint" in field.type or "Listener" in field.name:
            yield where
        yield from _address_fields(field.fields, version, where + ".")


# Fields that look like addresses but name no broker: an ACL binding's Host is the client-host
# pattern the ACL applies to; a Streams instance's UserEndpoint is its interactive-query server,
# which other instances of the application must reach as configured.
NOT_BROKER_ADDRESSES = {
    (29, "Resources.Acls.Host"),
    (31, "FilterResults.MatchingAcls.Host"),
    (88, "PartitionsByUserEndpoint"),
    (88, "PartitionsByUserEndpoint.UserEndpoint"),
    (88, "PartitionsByUserEndpoint.UserEndpoint.Host"),
    (88, "PartitionsByUserEndpoint.UserEndpoint.Port"),
    (89, "Groups.Members.UserEndpoint"),
    (89, "Groups.Members.UserEndpoint.Host"),
    (89, "Groups.Members.UserEndpoint.Port"),
}

# Every address field of a rewritten response, as the rewriter handles it.
REWRITTEN_ADDRESS_FIELDS = {
    METADATA: {"Brokers.Host", "Brokers.Port"},
    FIND_COORDINATOR: {"Host", "Port", "Coordinators.Host", "Coordinators.Port"},
    DESCRIBE_CLUSTER: {"Brokers.Host", "Brokers.Port"},
    **{
        key: {"NodeEndpoints", "NodeEndpoints.Host", "NodeEndpoints.Port"}
        for key in (PRODUCE, FETCH, SHARE_FETCH, SHARE_ACKNOWLEDGE)
    },
}


def test_no_forwarded_version_of_any_spec_has_an_address_field_left_unrewritten():
    leaks = [
        (api_key, version, name)
        for api_key, top in api_versions.GATEWAY_MAX_VERSIONS.items()
        if (response := specs.response(api_key)) is not None and response.valid_versions is not None
        for version in range(response.valid_versions.low, top + 1)
        for name in _address_fields(response.fields, version)
        if (api_key, name) not in NOT_BROKER_ADDRESSES
        and name not in REWRITTEN_ADDRESS_FIELDS.get(api_key, ())
    ]

    assert leaks == []


def test_the_address_scan_does_find_kip_951_node_endpoints():
    produce, fetch = specs.response(PRODUCE), specs.response(FETCH)
    assert produce is not None and fetch is not None

    assert list(_address_fields(produce.fields, 10))
    assert list(_address_fields(fetch.fields, 16))
    assert not list(_address_fields(produce.fields, 9))
    assert not list(_address_fields(fetch.fields, 15))


@pytest.mark.parametrize(
    ("api_key", "version", "held"),
    [(PRODUCE, 9, False), (PRODUCE, 10, True), (FETCH, 12, False), (FETCH, 13, True),
     (FETCH, 16, True),
     (SHARE_FETCH, 1, True), (SHARE_ACKNOWLEDGE, 1, True), (METADATA, 0, True), (2, 3, False),
     (2, 11, True), (9, 4, False), (9, 5, True), (API_VERSIONS, 0, True)],
)  # fmt: skip
def test_only_responses_that_may_name_brokers_or_carry_ids_or_epochs_are_held_whole(
    api_key: int, version: int, held: bool
):
    from failover_gateway.routing import request_policy

    assert request_policy.response_needs_rewrite(api_key, version) is held


def test_every_forwarded_api_has_a_request_header_the_codec_can_parse():
    for api_key, top in api_versions.GATEWAY_MAX_VERSIONS.items():
        frame = headers.encode_request_header(api_key, top, 1, "c")
        assert headers.parse_request_header(frame).body_offset == len(frame)
