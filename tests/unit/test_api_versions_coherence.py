"""Feature levels and API ranges clients are offered: coherent, and valid on every cluster."""

from __future__ import annotations

from typing import Any

import pytest

from failover_gateway.codec import schema, specs
from failover_gateway.routing import api_versions, feature_policy
from failover_gateway.routing.api_versions import ClusterOffer

PRODUCE, END_TXN, TXN_OFFSET_COMMIT, API_VERSIONS = 0, 26, 28, 18
SPEC = specs.message("ApiVersionsResponse")

KAFKA_4_RANGES = {
    PRODUCE: (0, 13),
    1: (4, 18),
    3: (0, 13),
    API_VERSIONS: (0, 4),
    END_TXN: (0, 5),
    TXN_OFFSET_COMMIT: (0, 5),
    68: (0, 1),
    69: (0, 1),
    76: (1, 1),
    77: (1, 1),
    78: (1, 2),
    79: (1, 2),
    88: (0, 1),
    89: (0, 1),
}
KAFKA_4_FEATURES = {
    "transaction.version": 2,
    "group.version": 1,
    "share.version": 2,
    "streams.version": 1,
    "eligible.leader.replicas.version": 1,
    "metadata.version": 33,
}


def broker_answer(
    ranges: dict[int, tuple[int, int]] | None = None,
    finalized: dict[str, int] | None = None,
    epoch: int = 17,
    supported: dict[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """An ApiVersions v3 answer as a Kafka 4.4 broker gives it (values to encode)."""
    ranges = KAFKA_4_RANGES if ranges is None else ranges
    finalized = KAFKA_4_FEATURES if finalized is None else finalized
    supported = {"metadata.version": (7, 33)} if supported is None else supported
    return {
        "ErrorCode": 0,
        "ApiKeys": [
            {"ApiKey": key, "MinVersion": low, "MaxVersion": high}
            for key, (low, high) in sorted(ranges.items())
        ],
        "ThrottleTimeMs": 0,
        "SupportedFeatures": [
            {"Name": name, "MinVersion": low, "MaxVersion": high}
            for name, (low, high) in supported.items()
        ],
        "FinalizedFeaturesEpoch": epoch,
        "FinalizedFeatures": [
            {"Name": name, "MinVersionLevel": level, "MaxVersionLevel": level}
            for name, level in finalized.items()
        ],
    }


def relayed(values: dict[str, Any], *others: dict[str, Any]) -> dict[str, Any]:
    """What a client sees when a broker sends ``values`` and other clusters answered ``others``."""
    body = schema.encode(SPEC, 3, values)
    offers = [ClusterOffer.from_answer(other) for other in others]
    return schema.decode(SPEC, 3, api_versions.rewrite_api_versions_response(3, body, offers))


def finalized(values: dict[str, Any]) -> dict[str, int]:
    return {f["Name"]: f["MaxVersionLevel"] for f in values["FinalizedFeatures"]}


def ranges(values: dict[str, Any]) -> dict[int, tuple[int, int]]:
    return {k["ApiKey"]: (k["MinVersion"], k["MaxVersion"]) for k in values["ApiKeys"]}


def test_a_kafka_4_cluster_keeps_transaction_version_2_because_produce_12_is_forwarded():
    seen = relayed(broker_answer())

    assert finalized(seen) == KAFKA_4_FEATURES
    assert ranges(seen)[PRODUCE] == (0, 12)


def test_transaction_version_2_is_lowered_when_a_cluster_a_client_can_reach_lacks_produce_12():
    older = broker_answer(ranges={**KAFKA_4_RANGES, PRODUCE: (0, 11)}, epoch=5)

    seen = relayed(broker_answer(), older)

    assert ranges(seen)[PRODUCE] == (0, 11)
    assert finalized(seen)["transaction.version"] == 1


def test_a_feature_one_cluster_has_not_finalized_is_not_offered():
    without_share = {k: v for k, v in KAFKA_4_FEATURES.items() if k != "share.version"}

    seen = relayed(broker_answer(), broker_answer(finalized=without_share))

    assert "share.version" not in finalized(seen)


def test_the_lowest_level_any_cluster_finalized_is_offered():
    seen = relayed(
        broker_answer(), broker_answer(finalized={**KAFKA_4_FEATURES, "share.version": 1})
    )

    assert finalized(seen)["share.version"] == 1


def test_an_api_one_cluster_lacks_is_removed_and_its_feature_with_it():
    no_streams = {k: v for k, v in KAFKA_4_RANGES.items() if k not in (88, 89)}

    seen = relayed(broker_answer(), broker_answer(ranges=no_streams))

    assert 88 not in ranges(seen) and 89 not in ranges(seen)
    assert "streams.version" not in finalized(seen)


def test_ranges_intersect_at_both_ends():
    other = broker_answer(ranges={**KAFKA_4_RANGES, 1: (7, 16)})

    assert ranges(relayed(broker_answer(), other))[1] == (7, 16)


def test_a_feature_the_gateway_has_not_reviewed_is_removed():
    seen = relayed(broker_answer(finalized={**KAFKA_4_FEATURES, "future.version": 3}))

    assert "future.version" not in finalized(seen)


def test_a_feature_level_above_the_reviewed_one_is_lowered_to_it():
    seen = relayed(broker_answer(finalized={**KAFKA_4_FEATURES, "transaction.version": 3}))

    assert finalized(seen)["transaction.version"] == 2


def test_informational_features_are_offered_at_any_level():
    seen = relayed(broker_answer(finalized={**KAFKA_4_FEATURES, "metadata.version": 99}))

    assert finalized(seen)["metadata.version"] == 99


def test_the_finalized_epoch_is_the_sum_of_every_clusters_epoch():
    seen = relayed(broker_answer(epoch=17), broker_answer(epoch=25))

    assert seen["FinalizedFeaturesEpoch"] == 42


def test_a_cluster_without_features_does_not_change_the_epoch():
    old_broker = broker_answer(finalized={}, epoch=-1)

    assert relayed(broker_answer(epoch=17), old_broker)["FinalizedFeaturesEpoch"] == 17


def test_supported_feature_ranges_are_cut_like_finalized_levels():
    supported = {"transaction.version": (0, 2), "metadata.version": (7, 33), "x.version": (0, 1)}
    other = broker_answer(ranges={**KAFKA_4_RANGES, PRODUCE: (0, 11)}, supported=supported)

    seen = relayed(broker_answer(supported=supported), other)

    assert {f["Name"]: (f["MinVersion"], f["MaxVersion"]) for f in seen["SupportedFeatures"]} == {
        "transaction.version": (0, 1),
        "metadata.version": (7, 33),
    }


def test_unknown_tagged_fields_of_features_are_kept():
    values = broker_answer()
    values["FinalizedFeatures"][0][schema.UNKNOWN_TAGS] = {7: b"\x01"}

    seen = relayed(values)

    assert seen["FinalizedFeatures"][0][schema.UNKNOWN_TAGS] == {7: b"\x01"}


def test_the_gateways_own_answer_carries_the_coherent_features():
    offers = [ClusterOffer.from_answer(broker_answer(epoch=3))]
    offers.append(ClusterOffer.from_answer(broker_answer(epoch=4, finalized={"group.version": 1})))

    values = schema.decode(SPEC, 3, api_versions.own_answer_body(3, offers))

    assert finalized(values) == {"group.version": 1}
    assert values["FinalizedFeaturesEpoch"] == 7
    assert ranges(values)[PRODUCE] == (0, 12)


def test_before_any_probe_the_gateways_own_answer_is_its_table_without_features():
    values = schema.decode(SPEC, 3, api_versions.own_answer_body(3, []))

    assert ranges(values)[PRODUCE] == (0, api_versions.GATEWAY_MAX_VERSIONS[PRODUCE])
    assert "FinalizedFeatures" not in values


@pytest.mark.parametrize(
    ("feature", "needs"),
    [
        ("transaction.version", {PRODUCE: 12, TXN_OFFSET_COMMIT: 5, END_TXN: 5}),
        ("group.version", {68: 0, 69: 0}),
        ("share.version", {76: 1, 77: 1, 78: 1, 79: 1}),
        ("streams.version", {88: 0, 89: 0}),
    ],
)
def test_each_client_visible_feature_needs_the_versions_its_clients_send(
    feature: str, needs: dict[int, int]
):
    top = feature_policy.RULES[feature].reviewed_max_level
    assert top is not None
    assert feature_policy.highest_level(feature, KAFKA_4_RANGES, top) == top
    for api_key, version in needs.items():
        below = {**KAFKA_4_RANGES, api_key: (0, version - 1)} if version else {}
        if not below:
            below = {k: v for k, v in KAFKA_4_RANGES.items() if k != api_key}
        assert feature_policy.highest_level(feature, below, top) < top


def test_every_feature_a_kafka_4_4_broker_finalizes_has_a_rule():
    # transaction, group, share, streams, kraft, metadata, eligible leader replicas.
    for feature in (*KAFKA_4_FEATURES, "kraft.version"):
        assert feature in feature_policy.RULES
