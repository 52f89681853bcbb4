"""Loading and indexing the Kafka JSON message specs shipped with the gateway."""

from __future__ import annotations

import subprocess
import sys

import pytest

from failover_gateway.codec import errors, specs
from failover_gateway.codec.specs import VersionRange


def test_comments_are_stripped_outside_json_strings_only():
    text = '// header\n{ "about": "see http://kafka.apache.org", "x": 1 } // trailing\n'

    assert specs.strip_comments(text) == '\n{ "about": "see http://kafka.apache.org", "x": 1 } '


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [("0+", [0, 99], [-1]), ("1-3", [1, 3], [0, 4]), ("4", [4], [3, 5])],
)
def test_version_ranges_read_open_closed_and_single_versions(
    text: str, inside: list[int], outside: list[int]
):
    parsed = VersionRange.parse(text)

    assert parsed is not None
    assert all(v in parsed for v in inside)
    assert not any(v in parsed for v in outside)


def test_version_range_none_means_no_version():
    assert VersionRange.parse("none") is None
    assert VersionRange.parse(None) is None


def test_every_bundled_spec_is_loaded_and_indexed_by_name_and_api_key():
    metadata = specs.response(3)

    assert len(specs.all_messages()) > 100
    assert metadata is not None and metadata is specs.message("MetadataResponse")
    assert (metadata.valid_versions, metadata.flexible_versions) == (
        VersionRange(0, 13),
        VersionRange(9, None),
    )
    assert specs.request(3) is specs.message("MetadataRequest")


def test_a_spec_that_is_not_shipped_raises_unsupported_version():
    with pytest.raises(errors.UnsupportedVersion):
        specs.message("NoSuchResponse")
    assert specs.response(9999) is None


def test_the_specs_of_kafka_4_apis_are_shipped():
    # Share groups (KIP-932), streams groups (KIP-1071) and the KIP-848 consumer group protocol.
    for name in ("ShareFetchResponse", "StreamsGroupHeartbeatResponse", "ConsumerGroupHeartbeat"):
        assert specs.message(name if name.endswith("Response") else name + "Request")
    assert specs.response(78) is specs.message("ShareFetchResponse")


def test_the_shipped_specs_name_the_kafka_release_they_come_from():
    source = specs.source()

    assert source["artifact"].startswith("org.apache.kafka:kafka-clients:")
    assert source["specs"] == len(specs.all_messages())


def test_an_unstable_latest_version_is_not_counted_as_offered():
    # InitProducerId v6 (KIP-939) is marked latestVersionUnstable in Kafka 4.3.
    spec = specs.message("InitProducerIdRequest")

    assert spec.latest_version_unstable
    assert spec.max_stable_version == spec.max_version - 1


def test_a_retired_api_has_a_spec_without_valid_versions():
    spec = specs.message("LeaderAndIsrRequest")

    assert spec.valid_versions is None and spec.max_version == -1
    assert not spec.is_valid(0)


def test_common_structs_are_resolved_into_the_field_tree():
    spec = specs.message("AddPartitionsToTxnResponse")
    by_name = {field.name: field for field in spec.fields}

    topic_result = by_name["ResultsByTopicV3AndBelow"]
    partition_result = {f.name: f for f in topic_result.fields}["ResultsByPartition"]

    assert [f.name for f in topic_result.fields] == ["Name", "ResultsByPartition"]
    assert [f.name for f in partition_result.fields] == ["PartitionIndex", "PartitionErrorCode"]


def test_tagged_fields_carry_their_tag_and_tagged_versions():
    fields = {f.name: f for f in specs.message("ApiVersionsResponse").fields}

    assert fields["FinalizedFeaturesEpoch"].tag == 1
    assert fields["FinalizedFeaturesEpoch"].tagged_in(3)
    assert not fields["ApiKeys"].tagged_in(3)


def test_a_field_level_flexible_override_is_kept():
    client_id = specs.message("RequestHeader").fields[-1]

    assert client_id.name == "ClientId"
    assert client_id.has_flexible_override and client_id.flexible_versions is None


@pytest.mark.parametrize(
    ("api_key", "version", "flexible"),
    [(3, 8, False), (3, 9, True), (3, 99, True), (0, 9, True), (18, 2, False), (18, 3, True)],
)
def test_flexibility_follows_the_bundled_spec_including_future_versions(
    api_key: int, version: int, flexible: bool
):
    assert specs.is_flexible(api_key, version) is flexible


@pytest.mark.parametrize(
    ("api_key", "version", "flexible"),
    [(38, 1, False), (38, 2, True), (68, 0, True), (72, 0, True), (78, 1, True)],
)
def test_flexibility_is_known_for_apis_kafka_python_never_bundled(
    api_key: int, version: int, flexible: bool
):
    assert specs.is_flexible(api_key, version) is flexible


def test_an_api_key_without_any_known_layout_raises_unsupported_version():
    with pytest.raises(errors.UnsupportedVersion) as raised:
        specs.is_flexible(9999, 0)

    assert (raised.value.api_key, raised.value.api_version) == (9999, 0)


def test_loading_specs_does_not_import_any_kafka_client():
    # The codec must stay pure, and the gateway image carries no Kafka client library.
    script = (
        "import sys; from failover_gateway.codec import specs; specs.all_messages(); "
        "sys.exit('kafka' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 0
