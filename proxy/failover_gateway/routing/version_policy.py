"""Which api keys and versions the gateway lets clients use, and why, one decision per api key.

Why it exists: a client picks, for each API, the highest version both it and the broker offer.
If the gateway relayed the broker's list untouched, the first Kafka upgrade would let clients speak
versions the gateway cannot parse or whose new fields carry broker addresses it does not rewrite
(that is how kafka-proxy broke on every upgrade). So every api key in the shipped Kafka specs
(:mod:`failover_gateway.codec.specs`) is classified here, and nothing else is forwarded:

* ``FORWARDED``: no broker address in any version of the shipped spec; clients get the broker's
  range up to the spec's highest *stable* version (a version the gateway has seen the layout of).
* ``REWRITTEN``: carries broker addresses, which :mod:`.address_rewriting` rewrites, up to the
  version it was reviewed for (Metadata, FindCoordinator, DescribeCluster, and the KIP-951
  ``NodeEndpoints`` of Produce v10+, Fetch v16+, ShareFetch and ShareAcknowledge).
* ``REWRITTEN`` may also carry a cap: Produce stops at v12 (v13 names topics by id; the names of
  v12 need no translation between clusters, see :mod:`.topic_ids`).
* ``CAPPED``: later versions name endpoints the gateway cannot stand in for, so the range stops
  below them. DescribeQuorum v2 lists the *controllers'* listener endpoints; clients never reach
  controllers through the gateway, so rewriting them would be a lie. v0-1 carry no endpoint, and
  the Java admin client (``kafka-metadata-quorum describe``) works with them.
* ``WITHHELD``: sent only between brokers and controllers (replication, quorum, transaction
  markers, share-group state). A client never sends them; a gateway that forwarded them would
  only widen what a client could do to a broker.

``tests/unit/test_api_versions_policy.py`` fails when a spec update brings an api key this table
does not name, and scans every forwarded version of every spec for address fields.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from failover_gateway.codec import specs
from failover_gateway.routing import address_rewriting

DESCRIBE_QUORUM = 55


class Treatment(enum.Enum):
    FORWARDED = "forwarded"
    REWRITTEN = "rewritten"
    CAPPED = "capped"
    WITHHELD = "withheld"


@dataclass(frozen=True, slots=True)
class Decision:
    treatment: Treatment
    why: str
    cap: int | None = None  # CAPPED only: the highest version clients may use


_ADDRESS_FREE = "no broker address in any version"
_INTERNAL = "sent only between brokers and controllers"

DECISIONS: Mapping[int, Decision] = MappingProxyType(
    {
        0: Decision(
            Treatment.REWRITTEN,
            "Produce: KIP-951 NodeEndpoints from v10; capped at v12 because v13 names topics by "
            "id, which would make every produce request need its ids translated (v12 carries "
            "everything else, transaction.version 2 included)",
            cap=12,
        ),
        1: Decision(Treatment.REWRITTEN, "Fetch: KIP-951 NodeEndpoints from v16"),
        2: Decision(Treatment.FORWARDED, f"ListOffsets: {_ADDRESS_FREE}"),
        3: Decision(Treatment.REWRITTEN, "Metadata: Brokers"),
        **{
            key: Decision(Treatment.WITHHELD, f"{name}: retired inter-broker api")
            for key, name in (
                (4, "LeaderAndIsr"),
                (5, "StopReplica"),
                (6, "UpdateMetadata"),
                (7, "ControlledShutdown"),
            )
        },
        **{
            key: Decision(Treatment.FORWARDED, f"{name}: {_ADDRESS_FREE}")
            for key, name in (
                (8, "OffsetCommit"),
                (9, "OffsetFetch"),
                (11, "JoinGroup"),
                (12, "Heartbeat"),
                (13, "LeaveGroup"),
                (14, "SyncGroup"),
                (15, "DescribeGroups (ClientHost is the client's own address)"),
                (16, "ListGroups"),
                (17, "SaslHandshake"),
                (18, "ApiVersions"),
                (19, "CreateTopics"),
                (20, "DeleteTopics"),
                (21, "DeleteRecords"),
                (22, "InitProducerId"),
                (23, "OffsetForLeaderEpoch"),
                (24, "AddPartitionsToTxn"),
                (25, "AddOffsetsToTxn"),
                (26, "EndTxn"),
                (28, "TxnOffsetCommit"),
                (29, "DescribeAcls (Host is an ACL's client-host pattern)"),
                (30, "CreateAcls"),
                (31, "DeleteAcls (Host is an ACL's client-host pattern)"),
                (32, "DescribeConfigs"),
                (33, "AlterConfigs"),
                (34, "AlterReplicaLogDirs"),
                (35, "DescribeLogDirs"),
                (36, "SaslAuthenticate"),
                (37, "CreatePartitions"),
                (38, "CreateDelegationToken"),
                (39, "RenewDelegationToken"),
                (40, "ExpireDelegationToken"),
                (41, "DescribeDelegationToken"),
                (42, "DeleteGroups"),
                (43, "ElectLeaders"),
                (44, "IncrementalAlterConfigs"),
                (45, "AlterPartitionReassignments"),
                (46, "ListPartitionReassignments"),
                (47, "OffsetDelete"),
                (48, "DescribeClientQuotas"),
                (49, "AlterClientQuotas"),
                (50, "DescribeUserScramCredentials"),
                (51, "AlterUserScramCredentials"),
                (57, "UpdateFeatures"),
                (61, "DescribeProducers"),
                (64, "UnregisterBroker"),
                (65, "DescribeTransactions"),
                (66, "ListTransactions"),
                (68, "ConsumerGroupHeartbeat (KIP-848)"),
                (69, "ConsumerGroupDescribe (ClientHost is the client's own address)"),
                (71, "GetTelemetrySubscriptions"),
                (72, "PushTelemetry"),
                (74, "ListConfigResources"),
                (75, "DescribeTopicPartitions"),
                (76, "ShareGroupHeartbeat (KIP-932)"),
                (77, "ShareGroupDescribe (ClientHost is the client's own address)"),
                (80, "AddRaftVoter (the new voter's listeners come from the client)"),
                (81, "RemoveRaftVoter"),
                (
                    88,
                    "StreamsGroupHeartbeat (KIP-1071; UserEndpoint names Streams instances' "
                    "interactive-query servers, which must reach clients unchanged)",
                ),
                (89, "StreamsGroupDescribe (UserEndpoint: Streams instances, not brokers)"),
                (90, "DescribeShareGroupOffsets"),
                (91, "AlterShareGroupOffsets"),
                (92, "DeleteShareGroupOffsets"),
            )
        },
        10: Decision(Treatment.REWRITTEN, "FindCoordinator: the coordinator's address"),
        27: Decision(Treatment.WITHHELD, f"WriteTxnMarkers: {_INTERNAL}"),
        **{
            key: Decision(Treatment.WITHHELD, f"{name}: {_INTERNAL}")
            for key, name in (
                (52, "Vote"),
                (53, "BeginQuorumEpoch"),
                (54, "EndQuorumEpoch"),
                (56, "AlterPartition"),
                (58, "Envelope"),
                (59, "FetchSnapshot"),
                (62, "BrokerRegistration"),
                (63, "BrokerHeartbeat"),
                (67, "AllocateProducerIds"),
                (70, "ControllerRegistration"),
                (73, "AssignReplicasToDirs"),
                (82, "UpdateRaftVoter"),
                (83, "InitializeShareGroupState"),
                (84, "ReadShareGroupState"),
                (85, "WriteShareGroupState"),
                (86, "DeleteShareGroupState"),
                (87, "ReadShareGroupStateSummary"),
            )
        },
        DESCRIBE_QUORUM: Decision(
            Treatment.CAPPED,
            "DescribeQuorum: v2 adds the controllers' listener endpoints, which no gateway "
            "port stands for",
            cap=1,
        ),
        60: Decision(Treatment.REWRITTEN, "DescribeCluster: Brokers"),
        78: Decision(Treatment.REWRITTEN, "ShareFetch: NodeEndpoints"),
        79: Decision(Treatment.REWRITTEN, "ShareAcknowledge: NodeEndpoints"),
    }
)
"""api key → what the gateway does with it. Keys not here are never forwarded."""


def _highest(api_key: int, decision: Decision) -> int | None:
    if decision.treatment is Treatment.WITHHELD:
        return None
    request, response = specs.request(api_key), specs.response(api_key)
    if request is None or response is None:
        return None
    top = min(request.max_stable_version, response.max_stable_version)
    if decision.treatment is Treatment.REWRITTEN:
        top = min(top, address_rewriting.REWRITTEN_MAX_VERSIONS[api_key])
    if decision.cap is not None:
        top = min(top, decision.cap)
    return top if top >= 0 else None


def _build_table() -> Mapping[int, int]:
    table = {
        api_key: top
        for api_key, decision in sorted(DECISIONS.items())
        if (top := _highest(api_key, decision)) is not None
    }
    return MappingProxyType(table)


GATEWAY_MAX_VERSIONS: Mapping[int, int] = _build_table()
"""api key → highest version clients may use through the gateway. Keys not here are removed."""


def allowed_range(api_key: int, broker_min: int, broker_max: int) -> tuple[int, int] | None:
    """The range clients may use for ``api_key``, or None when the gateway must hide it."""
    gateway_max = GATEWAY_MAX_VERSIONS.get(api_key)
    if gateway_max is None:
        return None
    top = min(broker_max, gateway_max)
    return (broker_min, top) if top >= broker_min else None
