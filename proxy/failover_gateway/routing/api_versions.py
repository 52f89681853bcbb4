"""The answer clients get to ApiVersions: coherent, and valid on every cluster they can land on.

Why it exists: a client negotiates once per connection what it will send, from two things in
this answer: the version range of each API and the *finalized feature levels*
(``transaction.version``, ``group.version``, ...). A switch moves clients to another cluster,
whose broker may be older or newer, without them noticing. So the gateway answers with what
every configured cluster supports, cut to what the gateway itself can forward
(:mod:`.version_policy`), and advertises only feature levels those ranges can carry
(:mod:`.feature_policy`):

* API ranges: the intersection of the relaying broker's range, the gateway's reviewed maximum,
  and the last range each other cluster answered the gateway's probes with. An API one cluster
  lacks is removed.
* Finalized features: the lowest level any cluster finalized (a feature one cluster has not
  finalized is absent), then lowered to what the advertised ranges carry. Supported features
  likewise. Every other field, unknown tagged fields included, is written back as it was.
* ``FinalizedFeaturesEpoch``: the sum of every cluster's epoch. Java clients keep the features of
  the highest epoch they have seen; each cluster's epoch only grows, so the sum grows whenever
  any cluster's features change, and an answer relayed by another cluster after a switch is
  never taken for an older one.

A cluster the gateway has never reached does not narrow the answer until its first probe
succeeds; its last known answer is kept while it is down, so a dead main still narrows what
clients on failover are offered (they may be switched back).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from failover_gateway.codec import errors, primitives, schema, specs
from failover_gateway.codec.primitives import Buffer
from failover_gateway.routing import feature_policy, version_policy

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35  # Kafka error code; such an ApiVersions answer is always encoded as v0
_FEATURES_SINCE = 3  # SupportedFeatures, FinalizedFeatures and their epoch are v3+ tagged fields

GATEWAY_MAX_VERSIONS = version_policy.GATEWAY_MAX_VERSIONS
allowed_range = version_policy.allowed_range


@dataclass(frozen=True)
class ClusterOffer:
    """What one cluster offers clients through the gateway, after the version policy."""

    api_ranges: Mapping[int, tuple[int, int]]
    supported_features: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    finalized_features: Mapping[str, int] = field(default_factory=dict)
    finalized_epoch: int = -1

    @classmethod
    def from_answer(cls, values: Mapping[str, Any]) -> ClusterOffer:
        """Read a decoded ApiVersions response (any version)."""
        ranges = {}
        for entry in values.get("ApiKeys") or ():
            allowed = allowed_range(entry["ApiKey"], entry["MinVersion"], entry["MaxVersion"])
            if allowed is not None:
                ranges[entry["ApiKey"]] = allowed
        return cls(
            api_ranges=ranges,
            supported_features={
                f["Name"]: (f["MinVersion"], f["MaxVersion"])
                for f in values.get("SupportedFeatures") or ()
            },
            finalized_features={
                f["Name"]: f["MaxVersionLevel"] for f in values.get("FinalizedFeatures") or ()
            },
            finalized_epoch=values.get("FinalizedFeaturesEpoch", -1),
        )


def combine(offers: Sequence[ClusterOffer]) -> ClusterOffer:
    """What clients may be offered when they can land on any of these clusters."""
    if not offers:
        return ClusterOffer(api_ranges={})
    ranges = _intersect_ranges([offer.api_ranges for offer in offers])
    supported = {}
    for name, (low, high) in _intersect_ranges([o.supported_features for o in offers]).items():
        top = feature_policy.highest_level(name, ranges, high)
        if top >= max(low, 1):
            supported[name] = (low, top)
    finalized = {}
    for name in offers[0].finalized_features:
        lowest = min(offer.finalized_features.get(name, 0) for offer in offers)
        if (level := feature_policy.highest_level(name, ranges, lowest)) > 0:
            finalized[name] = level
    epochs = [offer.finalized_epoch for offer in offers if offer.finalized_epoch >= 0]
    return ClusterOffer(ranges, supported, finalized, sum(epochs) if epochs else -1)


def _intersect_ranges(
    all_ranges: Sequence[Mapping[Any, tuple[int, int]]],
) -> dict[Any, tuple[int, int]]:
    common = set(all_ranges[0]).intersection(*all_ranges[1:])
    result = {}
    for key in sorted(common):
        low = max(ranges[key][0] for ranges in all_ranges)
        high = min(ranges[key][1] for ranges in all_ranges)
        if low <= high:
            result[key] = (low, high)
    return result


def rewrite_api_versions_response(
    api_version: int, body: Buffer, other_clusters: Sequence[ClusterOffer] = ()
) -> bytes:
    """The broker's ApiVersions response body cut to what clients may use on every cluster.

    Everything but the ranges, the feature levels and the epoch (error code, throttle time,
    unknown tagged fields of the message and of each entry) is written back as it was.
    """
    spec = specs.message("ApiVersionsResponse")
    version = 0 if _error_code(body) == UNSUPPORTED_VERSION else api_version
    values = schema.decode(spec, version, body)
    offer = combine([ClusterOffer.from_answer(values), *other_clusters])
    values["ApiKeys"] = list(_ranged(values["ApiKeys"], "ApiKey", offer.api_ranges))
    if version >= _FEATURES_SINCE:
        _rewrite_features(values, offer)
    return schema.encode(spec, version, values)


def _ranged(
    entries: Iterable[dict[str, Any]], key: str, ranges: Mapping[Any, tuple[int, int]]
) -> Iterable[dict[str, Any]]:
    for entry in entries:
        allowed = ranges.get(entry[key])
        if allowed is not None:
            entry["MinVersion"], entry["MaxVersion"] = allowed
            yield entry


def _rewrite_features(values: dict[str, Any], offer: ClusterOffer) -> None:
    if "SupportedFeatures" in values:
        supported = offer.supported_features
        values["SupportedFeatures"] = list(_ranged(values["SupportedFeatures"], "Name", supported))
    if "FinalizedFeatures" in values:
        kept = []
        for entry in values["FinalizedFeatures"]:
            level = offer.finalized_features.get(entry["Name"])
            if level is not None:
                entry["MaxVersionLevel"] = level
                entry["MinVersionLevel"] = min(entry["MinVersionLevel"], level)
                kept.append(entry)
        values["FinalizedFeatures"] = kept
    if "FinalizedFeaturesEpoch" in values:
        values["FinalizedFeaturesEpoch"] = offer.finalized_epoch


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


def own_answer_body(version: int, offers: Sequence[ClusterOffer]) -> bytes:
    """An ApiVersions body the gateway gives itself (a listener that terminates SASL answers
    before any broker is dialled): what every cluster probed so far offers, features included,
    or, before any probe answered, the gateway's own table (brokers refuse what they lack)."""
    if offers:
        offer = combine(offers)
    else:
        offer = ClusterOffer({key: (0, top) for key, top in GATEWAY_MAX_VERSIONS.items()})
    values: dict[str, Any] = {
        "ErrorCode": 0,
        "ApiKeys": [
            {"ApiKey": key, "MinVersion": low, "MaxVersion": high}
            for key, (low, high) in sorted(offer.api_ranges.items())
        ],
        "ThrottleTimeMs": 0,
    }
    if version >= _FEATURES_SINCE and offer.finalized_epoch >= 0:
        values["SupportedFeatures"] = [
            {"Name": name, "MinVersion": low, "MaxVersion": high}
            for name, (low, high) in sorted(offer.supported_features.items())
        ]
        values["FinalizedFeaturesEpoch"] = offer.finalized_epoch
        values["FinalizedFeatures"] = [
            {"Name": name, "MinVersionLevel": level, "MaxVersionLevel": level}
            for name, level in sorted(offer.finalized_features.items())
        ]
    return schema.encode(specs.message("ApiVersionsResponse"), version, values)
