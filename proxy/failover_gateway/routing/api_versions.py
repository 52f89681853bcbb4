"""What clients may use through the gateway: the answer to ApiVersions, cut to what is safe.

Why: a client picks, for each API, the highest version both it and the broker support. If the
gateway relayed the broker's list untouched, the first Kafka upgrade would let clients speak
versions the gateway cannot parse or rewrite (that is how kafka-proxy broke on every upgrade).
So the gateway answers with the intersection of the broker's ranges and
:data:`GATEWAY_MAX_VERSIONS`, a reviewed table; any api key the table does not know is removed.

How the table was reviewed:

* Address-bearing responses the gateway rewrites are capped at the versions it rewrites:
  Metadata <= 13, FindCoordinator <= 6, DescribeCluster <= 2.
* Produce is capped at 9 and Fetch at 15. Produce v10+ and Fetch v16+ responses may carry
  ``NodeEndpoints`` (KIP-951): real broker addresses in a *tagged* field, sent when a leader
  moved. Rewriting them would mean walking every Produce and Fetch response, the bulk of all
  bytes, on the hot path; capping the versions means the field can never appear. Clients lose
  only the KIP-951 shortcut and fall back to a Metadata refresh, which the gateway rewrites.
* Removed: DescribeQuorum (55, answers with controller listener endpoints); the share-group APIs
  (76-79, 83-87, 90-92; ShareFetch/ShareAcknowledge carry ``NodeEndpoints``); the streams-group
  APIs (88-89, whose heartbeat carries host/port endpoints and which are early access in 4.1);
  inter-broker and controller APIs that clients never send (4-7, 27, 52-54, 56, 58, 59, 62, 63,
  67, 70, 73, 80-82).
* Every other API is address-free (groups, offsets, transactions, admin, SASL, telemetry): the
  broker's range is kept, capped at the highest version whose layout was reviewed, which is the
  bundled spec's maximum where kafka-python bundles one. ``tests/unit/test_api_versions_policy.py``
  checks that no forwarded version of a bundled spec has a host/port field, so a kafka-python
  upgrade that adds one fails the build instead of leaking addresses.

An ApiVersions request above the version the gateway can decode (a newer client) should be
answered by the gateway itself with :func:`unsupported_version_body`, as Kafka brokers do
(KIP-511): the client then retries with a version from that answer.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from failover_gateway.codec import errors, primitives, schema, specs
from failover_gateway.codec.primitives import Buffer
from failover_gateway.routing import address_rewriting

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35  # Kafka error code; such an ApiVersions answer is always encoded as v0

_PRODUCE, _FETCH = 0, 1
_KIP_951_CAPS = {_PRODUCE: 9, _FETCH: 15}

_ADDRESS_FREE_WITH_BUNDLED_SPEC = frozenset(
    {
        2,  # ListOffsets
        8,  # OffsetCommit
        9,  # OffsetFetch
        11,  # JoinGroup
        12,  # Heartbeat
        13,  # LeaveGroup
        14,  # SyncGroup
        15,  # DescribeGroups (ClientHost is the client's address, not a broker's)
        16,  # ListGroups
        17,  # SaslHandshake
        18,  # ApiVersions
        19,  # CreateTopics
        20,  # DeleteTopics
        21,  # DeleteRecords
        22,  # InitProducerId
        23,  # OffsetForLeaderEpoch
        24,  # AddPartitionsToTxn
        25,  # AddOffsetsToTxn
        26,  # EndTxn
        28,  # TxnOffsetCommit
        29,  # DescribeAcls
        30,  # CreateAcls
        31,  # DeleteAcls
        32,  # DescribeConfigs
        33,  # AlterConfigs
        34,  # AlterReplicaLogDirs
        35,  # DescribeLogDirs
        36,  # SaslAuthenticate
        37,  # CreatePartitions
        42,  # DeleteGroups
        43,  # ElectLeaders
        44,  # IncrementalAlterConfigs
        45,  # AlterPartitionReassignments
        46,  # ListPartitionReassignments
        47,  # OffsetDelete
        48,  # DescribeClientQuotas
        49,  # AlterClientQuotas
        50,  # DescribeUserScramCredentials
        51,  # AlterUserScramCredentials
        57,  # UpdateFeatures
        61,  # DescribeProducers
        65,  # DescribeTransactions
        66,  # ListTransactions
        74,  # ListConfigResources
        75,  # DescribeTopicPartitions
    }
)

# Address-free APIs whose spec kafka-python does not bundle. Max versions and the absence of
# host/port fields were checked against Kafka 4.1's clients/src/main/resources/common/message.
_REVIEWED_WITHOUT_BUNDLED_SPEC: Mapping[int, int] = {
    38: 3,  # CreateDelegationToken: principals, timestamps, token id, hmac
    39: 2,  # RenewDelegationToken: error, expiry timestamp
    40: 2,  # ExpireDelegationToken: error, expiry timestamp
    41: 3,  # DescribeDelegationToken: tokens with principals and renewers
    64: 0,  # UnregisterBroker: error code and message only
    68: 1,  # ConsumerGroupHeartbeat: member id/epoch, assignment by topic id
    69: 1,  # ConsumerGroupDescribe: members (ClientHost is the client's, not a broker's)
    71: 0,  # GetTelemetrySubscriptions: metric names, intervals, compression types
    72: 0,  # PushTelemetry: error code only
}


def _spec_max(api_key: int) -> int:
    request, response = specs.request(api_key), specs.response(api_key)
    assert request is not None and response is not None, f"no bundled spec for api key {api_key}"
    return min(request.max_version, response.max_version)


def _build_table() -> Mapping[int, int]:
    table = {key: _spec_max(key) for key in _ADDRESS_FREE_WITH_BUNDLED_SPEC}
    for key, cap in {**_KIP_951_CAPS, **address_rewriting.REWRITTEN_MAX_VERSIONS}.items():
        table[key] = min(cap, _spec_max(key))
    table.update(_REVIEWED_WITHOUT_BUNDLED_SPEC)
    return MappingProxyType(dict(sorted(table.items())))


GATEWAY_MAX_VERSIONS: Mapping[int, int] = _build_table()
"""api key → highest version clients may use through the gateway. Keys not here are removed."""


def allowed_range(api_key: int, broker_min: int, broker_max: int) -> tuple[int, int] | None:
    """The range clients may use for ``api_key``, or None when the gateway must hide it."""
    gateway_max = GATEWAY_MAX_VERSIONS.get(api_key)
    if gateway_max is None:
        return None
    top = min(broker_max, gateway_max)
    return (broker_min, top) if top >= broker_min else None


def rewrite_api_versions_response(api_version: int, body: Buffer) -> bytes:
    """The broker's ApiVersions response body with its ``ApiKeys`` cut to the gateway's policy.

    Everything else (error code, throttle time, supported and finalized features, unknown tagged
    fields) is written back as it was.
    """
    spec = specs.message("ApiVersionsResponse")
    version = 0 if _error_code(body) == UNSUPPORTED_VERSION else api_version
    values = schema.decode(spec, version, body)
    values["ApiKeys"] = [
        capped for entry in values["ApiKeys"] if (capped := _cap(entry)) is not None
    ]
    return schema.encode(spec, version, values)


def unsupported_version_body() -> bytes:
    """A v0 ApiVersions body refusing the request's version and naming the ones the gateway takes.

    Send it behind a v0 response header, whatever version the request had.
    """
    top = GATEWAY_MAX_VERSIONS[API_VERSIONS]
    values = {
        "ErrorCode": UNSUPPORTED_VERSION,
        "ApiKeys": [{"ApiKey": API_VERSIONS, "MinVersion": 0, "MaxVersion": top}],
    }
    return schema.encode(specs.message("ApiVersionsResponse"), 0, values)


def _error_code(body: Buffer) -> int:
    # ErrorCode is the first field in every version, so it can be read before the version is known.
    try:
        code: int = primitives.INT16.unpack_from(body, 0)[0]
    except struct.error as exc:
        raise errors.MalformedFrame("ApiVersions response body is empty") from exc
    return code


def allowed_keys(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A broker's ApiKeys entries cut to the gateway's policy (decoded form)."""
    return [capped for entry in entries if (capped := _cap(dict(entry))) is not None]


def own_answer_body(version: int, entries: list[dict[str, Any]] | None) -> bytes:
    """An ApiVersions body the gateway gives itself: the cluster's versions as last probed,
    or, before any probe answered, the gateway's own table (brokers refuse what they lack)."""
    keys = (
        entries
        if entries is not None
        else [
            {"ApiKey": key, "MinVersion": 0, "MaxVersion": top}
            for key, top in sorted(GATEWAY_MAX_VERSIONS.items())
        ]
    )
    values = {"ErrorCode": 0, "ApiKeys": keys, "ThrottleTimeMs": 0}
    return schema.encode(specs.message("ApiVersionsResponse"), version, values)


def _cap(entry: dict[str, Any]) -> dict[str, Any] | None:
    allowed = allowed_range(entry["ApiKey"], entry["MinVersion"], entry["MaxVersion"])
    if allowed is None:
        return None
    entry["MinVersion"], entry["MaxVersion"] = allowed
    return entry
