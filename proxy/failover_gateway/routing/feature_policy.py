"""Which feature levels clients may be told a cluster has finalized, given the versions they get.

Why it exists: clients change what they send by *feature level*, not only by API version. With
``transaction.version`` >= 2 (KIP-890 part 2, finalized by default on new Kafka 4.x clusters) a
transactional producer skips AddPartitionsToTxn and relies on Produce v12+ to add partitions
implicitly; a gateway that relayed ``transaction.version=2`` while capping Produce below v12 broke
every such client (issue 12). So each feature the gateway relays has the API versions its levels
need written down here, and the level clients see is the highest one whose needs the advertised
ranges meet, never above what was reviewed. A feature not named here is removed from the answer:
a future feature may change what clients send in ways nobody checked.

Every feature a Kafka 4.4 broker can finalize, and what the gateway does with it:

* ``transaction.version``: level 2 needs Produce v12 (partitions join a transaction implicitly),
  TxnOffsetCommit v5 (offsets join implicitly, no AddOffsetsToTxn) and EndTxn v5 (the epoch bump
  comes back in the answer). Level 1 (KIP-890 part 1) is broker-side verification: no client
  change. Reviewed up to 2.
* ``group.version``: level 1 is the KIP-848 consumer group protocol: ConsumerGroupHeartbeat and
  ConsumerGroupDescribe. Reviewed up to 1.
* ``share.version``: level 1 is share groups (KIP-932): ShareGroupHeartbeat, ShareGroupDescribe,
  ShareFetch and ShareAcknowledge v1 (the first stable version). Level 2 (Kafka 4.4) adds
  dead-letter queues on the broker; clients send nothing new. Reviewed up to 2.
* ``streams.version``: level 1 is streams groups (KIP-1071): StreamsGroupHeartbeat and
  StreamsGroupDescribe. Reviewed up to 1.
* ``metadata.version``, ``kraft.version``, ``eligible.leader.replicas.version``: how brokers and
  controllers store metadata, run the quorum and elect leaders. Clients only display them
  (``kafka-features describe``); they change nothing a client sends. Relayed at any level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

PRODUCE, END_TXN, TXN_OFFSET_COMMIT = 0, 26, 28
CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE = 68, 69
SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE, SHARE_FETCH, SHARE_ACKNOWLEDGE = 76, 77, 78, 79
STREAMS_GROUP_HEARTBEAT, STREAMS_GROUP_DESCRIBE = 88, 89

ApiRanges = Mapping[int, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class FeatureRule:
    """What each level of one feature needs from the advertised API ranges."""

    reviewed_max_level: int | None  # None: informational, relayed at any level
    needs: Mapping[
        int, Mapping[int, int]
    ]  # level -> {api key: version clients must be able to use}


RULES: Mapping[str, FeatureRule] = MappingProxyType(
    {
        "transaction.version": FeatureRule(2, {2: {PRODUCE: 12, TXN_OFFSET_COMMIT: 5, END_TXN: 5}}),
        "group.version": FeatureRule(
            1, {1: {CONSUMER_GROUP_HEARTBEAT: 0, CONSUMER_GROUP_DESCRIBE: 0}}
        ),
        "share.version": FeatureRule(
            2,
            {
                1: {
                    SHARE_GROUP_HEARTBEAT: 1,
                    SHARE_GROUP_DESCRIBE: 1,
                    SHARE_FETCH: 1,
                    SHARE_ACKNOWLEDGE: 1,
                }
            },
        ),
        "streams.version": FeatureRule(
            1, {1: {STREAMS_GROUP_HEARTBEAT: 0, STREAMS_GROUP_DESCRIBE: 0}}
        ),
        "metadata.version": FeatureRule(None, {}),
        "kraft.version": FeatureRule(None, {}),
        "eligible.leader.replicas.version": FeatureRule(None, {}),
    }
)


def highest_level(feature: str, ranges: ApiRanges, wanted: int) -> int:
    """The highest level <= ``wanted`` of ``feature`` that clients may be told of (0: none)."""
    rule = RULES.get(feature)
    if rule is None:
        return 0
    top = wanted if rule.reviewed_max_level is None else min(wanted, rule.reviewed_max_level)
    for level in range(1, top + 1):
        if not _met(rule.needs.get(level, {}), ranges):
            return level - 1
    return max(top, 0)


def _met(needs: Mapping[int, int], ranges: ApiRanges) -> bool:
    for api_key, version in needs.items():
        offered = ranges.get(api_key)
        if offered is None or not offered[0] <= version <= offered[1]:
            return False
    return True
