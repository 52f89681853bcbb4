"""A few admin calls on one cluster, made by the gateway itself through the Kafka protocol.

Why it exists: a planned switchover must measure replication and move consumer offsets with the
gateway's own credentials for each cluster, never trusting a sidecar's view: end offsets
(ListOffsets, the last stable offset with ``read_committed``), the consumer groups and what they
committed (ListGroups, FindCoordinator, OffsetFetch), which clients are members of them
(DescribeGroups, ConsumerGroupDescribe), committing offsets for a group that has no
member yet (OffsetCommit as generation -1), and reading a partition (Fetch: MirrorMaker's
offset-syncs topic). Every call goes to the right broker (partition leader or group coordinator)
over connections opened as the pump opens them (TLS, SASL), with one deadline per call; errors
name the cluster, the call and Kafka's error code.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from failover_gateway.codec import errors
from failover_gateway.config import ClusterConfig, HostPort
from failover_gateway.routing import group_leaving
from failover_gateway.routing.group_leaving import REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID
from failover_gateway.server import upstream_connecting
from failover_gateway.server.upstream_connecting import StreamConnection, UpstreamUnavailable

TopicPartition = tuple[str, int]
T = TypeVar("T")
METADATA, LIST_OFFSETS, FETCH, OFFSET_COMMIT, OFFSET_FETCH = 3, 2, 1, 8, 9
FIND_COORDINATOR, LIST_GROUPS, DESCRIBE_GROUPS, LEAVE_GROUP = 10, 16, 15, 13
CONSUMER_GROUP_DESCRIBE = 69
GROUP_ID_NOT_FOUND = 69  # DescribeGroups on a group of the consumer protocol (KIP-848)
DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 65, 66
GROUP_KEY, TRANSACTION_KEY = 0, 1
TRANSACTIONAL_ID_NOT_FOUND = 105
GROUP_HAS_MEMBERS = frozenset({UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS})  # a memberless commit
OPEN_TRANSACTION_STATES = ("Ongoing", "PrepareCommit", "PrepareAbort")
LATEST = -1
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
NO_GENERATION = -1
_NO_ID = uuid.UUID(int=0)  # Metadata v10+: a topic named, not identified
_NOT_COORDINATOR = frozenset({14, 15, 16})  # load in progress, not available, not coordinator
_LEADER_MOVED = frozenset({5, 6, 74, 75})  # no leader yet, not the leader, leader epoch off


class ClusterCallFailed(Exception):
    """An admin call failed; the message names the cluster, the call and why."""

    def __init__(self, message: str, *, retriable: bool = False, code: int = 0) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.code = code  # the Kafka error code, when the cluster answered with one


class UnknownPartition(ClusterCallFailed):
    """The cluster's metadata has no such topic-partition (yet)."""


@dataclass(frozen=True)
class Layout:
    brokers: dict[int, HostPort]
    leaders: dict[TopicPartition, int]

    def partitions(self, topic: str) -> list[int]:
        return sorted(p for t, p in self.leaders if t == topic)


@dataclass(frozen=True)
class GroupMember:
    """A member of a group: its ``client.id``, and whether it holds an assignment there (a
    classic group that is Stable, or a consumer-protocol member with an epoch above 0)."""

    client_id: str
    assigned: bool


@dataclass
class ClusterAdmin:
    """Admin calls on ``cluster``; use as an async context manager (connections are closed)."""

    name: str
    cluster: ClusterConfig
    context: ssl.SSLContext | None
    timeout: float
    _connections: dict[int, StreamConnection] = field(default_factory=dict)
    _layout: Layout | None = None

    async def __aenter__(self) -> ClusterAdmin:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    # -- connections -----------------------------------------------------------------------

    async def _call(
        self, node: int | None, api_key: int, version: int, body: dict[str, Any]
    ) -> dict[str, Any]:
        connection = await self._connect(node)
        try:
            return await asyncio.wait_for(connection.exchange(api_key, version, body), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, errors.CodecError) as error:
            self._drop(node)
            raise ClusterCallFailed(
                f"cluster {self.name}: api key {api_key} to node {node}: "
                f"{type(error).__name__} {error}".rstrip()
            ) from None

    async def _connect(self, node: int | None) -> StreamConnection:
        key = -1 if node is None else node
        if key in self._connections:
            return self._connections[key]
        targets = self.cluster.bootstrap_servers if node is None else [await self._address(node)]
        failures = []
        for target in targets:
            try:
                connection = await upstream_connecting.open_stream(
                    self.cluster, target, self.context, self.timeout
                )
            except UpstreamUnavailable as error:
                failures.append(str(error))
                continue
            self._connections[key] = connection
            return connection
        raise ClusterCallFailed(f"cluster {self.name}: no broker reachable: {'; '.join(failures)}")

    def _drop(self, node: int | None) -> None:
        connection = self._connections.pop(-1 if node is None else node, None)
        if connection is not None:
            connection.close()

    async def _address(self, node: int) -> HostPort:
        layout = self._layout or await self.layout()
        if node not in layout.brokers:
            layout = await self.layout()
        if node not in layout.brokers:
            raise ClusterCallFailed(f"cluster {self.name}: node {node} is not in its metadata")
        return layout.brokers[node]

    # -- calls -----------------------------------------------------------------------------

    async def layout(self, topics: Iterable[str] | None = None) -> Layout:
        """Brokers and partition leaders (of ``topics``, or of every topic)."""
        body = {
            "Topics": None if topics is None else [{"Name": t, "TopicId": _NO_ID} for t in topics],
            "AllowAutoTopicCreation": False,
            "IncludeTopicAuthorizedOperations": False,
        }
        answer = await self._call(None, METADATA, 12, body)
        brokers = {b["NodeId"]: HostPort(b["Host"], b["Port"]) for b in answer["Brokers"]}
        leaders = {
            (topic["Name"], partition["PartitionIndex"]): partition["LeaderId"]
            for topic in answer["Topics"]
            if topic["ErrorCode"] == 0 and topic["Name"]
            for partition in topic["Partitions"]
        }
        self._layout = Layout(brokers, leaders)
        return self._layout

    async def end_offsets(
        self, partitions: Iterable[TopicPartition], *, committed_only: bool
    ) -> dict[TopicPartition, int]:
        """The end offset of each partition: the last stable offset when ``committed_only``
        (what a read_committed reader, MirrorMaker among them, can reach), else the high
        watermark."""
        wanted = list(partitions)
        layout = self._layout or await self.layout({t for t, _ in wanted})
        by_leader: dict[int, list[TopicPartition]] = {}
        for tp in wanted:
            if tp not in layout.leaders:
                layout = await self.layout({t for t, _ in wanted})
            if tp not in layout.leaders:
                raise UnknownPartition(f"cluster {self.name}: no partition {tp[0]}-{tp[1]}")
            by_leader.setdefault(layout.leaders[tp], []).append(tp)
        found: dict[TopicPartition, int] = {}
        for leader, tps in by_leader.items():
            found |= await self._list_offsets(leader, tps, committed_only)
        return found

    async def _list_offsets(
        self, leader: int, tps: list[TopicPartition], committed_only: bool
    ) -> dict[TopicPartition, int]:
        body = {
            "ReplicaId": -1,
            "IsolationLevel": READ_COMMITTED if committed_only else READ_UNCOMMITTED,
            "Topics": [
                {
                    "Name": topic,
                    "Partitions": [
                        {"PartitionIndex": p, "CurrentLeaderEpoch": -1, "Timestamp": LATEST}
                        for t, p in tps
                        if t == topic
                    ],
                }
                for topic in sorted({t for t, _ in tps})
            ],
        }
        answer = await self._call(leader, LIST_OFFSETS, 7, body)
        found = {}
        for topic in answer["Topics"]:
            for partition in topic["Partitions"]:
                tp = (topic["Name"], partition["PartitionIndex"])
                self._check(partition["ErrorCode"], f"ListOffsets {tp[0]}-{tp[1]}")
                found[tp] = int(partition["Offset"])
        return found

    async def group_ids(self) -> list[str]:
        """Every consumer group any broker knows (ListGroups on each)."""
        layout = self._layout or await self.layout()
        groups: set[str] = set()
        for node in layout.brokers:
            answer = await self._call(node, LIST_GROUPS, 4, {"StatesFilter": []})
            self._check(answer["ErrorCode"], f"ListGroups on node {node}")
            groups |= {
                g["GroupId"] for g in answer["Groups"] if g["ProtocolType"] in ("consumer", "")
            }
        return sorted(groups)

    async def coordinator(self, key: str, key_type: int = GROUP_KEY) -> int:
        """The node coordinating a group (``key_type`` 0) or a transactional id (1)."""
        return (await self.coordinators([key], key_type))[key]

    async def coordinators(self, keys: list[str], key_type: int = GROUP_KEY) -> dict[str, int]:
        """The coordinating node of each of ``keys``, in one FindCoordinator call."""
        body = {"KeyType": key_type, "CoordinatorKeys": keys}
        answer = await self._call(None, FIND_COORDINATOR, 4, body)
        layout = self._layout or await self.layout()
        nodes = {}
        for found in answer["Coordinators"]:
            self._check(found["ErrorCode"], f"FindCoordinator {found['Key']}")
            node = nodes[found["Key"]] = int(found["NodeId"])
            if node not in layout.brokers:
                layout.brokers[node] = HostPort(found["Host"], found["Port"])
        return nodes

    async def leave_group(self, group: str, member_id: str) -> None:
        """Take dynamic member ``member_id`` out of ``group`` on its coordinator."""
        node = await self._retrying(functools.partial(self.coordinator, group))
        body = group_leaving.leave_body(group, member_id)
        answer = await self._call(node, LEAVE_GROUP, group_leaving.LEAVE_VERSION, body)
        self._check(answer["ErrorCode"], f"LeaveGroup {group}")
        for member in answer["Members"]:
            if member["ErrorCode"] != UNKNOWN_MEMBER_ID:  # already gone: nothing to leave
                self._check(member["ErrorCode"], f"LeaveGroup {group} member {member_id}")

    async def group_members(self, groups: Iterable[str]) -> dict[str, list[GroupMember]]:
        """The members of each of ``groups`` (an unknown or empty group has none): classic
        groups through DescribeGroups, consumer-protocol groups (KIP-848), which DescribeGroups
        reports dead or unknown, through ConsumerGroupDescribe."""
        wanted = sorted(set(groups))
        if not wanted:
            return {}
        by_node: dict[int, list[str]] = {}
        nodes = await self._retrying(functools.partial(self.coordinators, wanted))
        for group, node in nodes.items():
            by_node.setdefault(node, []).append(group)
        found: dict[str, list[GroupMember]] = {}
        for node, names in by_node.items():
            found |= await self._described(node, names)
        return found

    async def _described(self, node: int, groups: list[str]) -> dict[str, list[GroupMember]]:
        body = {"Groups": groups, "IncludeAuthorizedOperations": False}
        answer = await self._call(node, DESCRIBE_GROUPS, 5, body)
        found: dict[str, list[GroupMember]] = {}
        for group in answer["Groups"]:
            if group["ErrorCode"] not in (0, GROUP_ID_NOT_FOUND):
                self._check(group["ErrorCode"], f"DescribeGroups {group['GroupId']}")
            stable = group["GroupState"] == "Stable"
            members = [GroupMember(m["ClientId"], stable) for m in group["Members"]]
            if members:
                found[group["GroupId"]] = members
        newer = [group for group in groups if group not in found]
        if newer:
            body = {"GroupIds": newer, "IncludeAuthorizedOperations": False}
            answer = await self._call(node, CONSUMER_GROUP_DESCRIBE, 0, body)
            for group in answer["Groups"]:
                if group["ErrorCode"] not in (0, GROUP_ID_NOT_FOUND):
                    self._check(group["ErrorCode"], f"ConsumerGroupDescribe {group['GroupId']}")
                found[group["GroupId"]] = [
                    GroupMember(m["ClientId"], m["MemberEpoch"] > 0) for m in group["Members"]
                ]
        return found

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        """What ``group`` has committed, per partition (partitions without a commit left out)."""
        return await self._retrying(lambda: self._committed(group))

    async def _committed(self, group: str) -> dict[TopicPartition, int]:
        node = await self.coordinator(group)
        body = {"Groups": [{"GroupId": group, "Topics": None}], "RequireStable": False}
        answer = await self._call(node, OFFSET_FETCH, 8, body)
        [found] = answer["Groups"]
        self._check(found["ErrorCode"], f"OffsetFetch {group}")
        return {
            (topic["Name"], partition["PartitionIndex"]): int(partition["CommittedOffset"])
            for topic in found["Topics"]
            for partition in topic["Partitions"]
            if partition["ErrorCode"] == 0 and partition["CommittedOffset"] >= 0
        }

    async def commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` for ``group`` as no member (it must have none on this cluster)."""
        await self._retrying(lambda: self._commit(group, offsets))

    async def _commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        node = await self.coordinator(group)
        body = {
            "GroupId": group,
            "GenerationIdOrMemberEpoch": NO_GENERATION,
            "MemberId": "",
            "GroupInstanceId": None,
            "Topics": [
                {
                    "Name": topic,
                    "Partitions": [
                        {
                            "PartitionIndex": p,
                            "CommittedOffset": offset,
                            "CommittedLeaderEpoch": -1,
                            "CommittedMetadata": "kafka-failover planned switchover",
                        }
                        for (t, p), offset in sorted(offsets.items())
                        if t == topic
                    ],
                }
                for topic in sorted({t for t, _ in offsets})
            ],
        }
        answer = await self._call(node, OFFSET_COMMIT, 8, body)
        for topic in answer["Topics"]:
            for partition in topic["Partitions"]:
                where = f"OffsetCommit {group} {topic['Name']}-{partition['PartitionIndex']}"
                self._check(partition["ErrorCode"], where)

    async def transaction_state(self, transactional_id: str) -> str | None:
        """The state of ``transactional_id``'s transaction on its coordinator (``Ongoing``,
        ``CompleteCommit``...), None when the coordinator does not know the id."""
        return await self._retrying(lambda: self._transaction_state(transactional_id))

    async def _transaction_state(self, transactional_id: str) -> str | None:
        node = await self.coordinator(transactional_id, TRANSACTION_KEY)
        body = {"TransactionalIds": [transactional_id]}
        answer = await self._call(node, DESCRIBE_TRANSACTIONS, 0, body)
        [found] = answer["TransactionStates"]
        if found["ErrorCode"] == TRANSACTIONAL_ID_NOT_FOUND:
            return None
        self._check(found["ErrorCode"], f"DescribeTransactions {transactional_id}")
        return str(found["TransactionState"])

    async def open_transactions(self) -> list[str]:
        """The transactional ids whose transaction is open or ending, on every broker."""
        layout = self._layout or await self.layout()
        found: set[str] = set()
        for node in layout.brokers:
            body = {"StateFilters": list(OPEN_TRANSACTION_STATES), "ProducerIdFilters": []}
            answer = await self._call(node, LIST_TRANSACTIONS, 0, body)
            self._check(answer["ErrorCode"], f"ListTransactions on node {node}")
            found |= {str(t["TransactionalId"]) for t in answer["TransactionStates"]}
        return sorted(found)

    async def read(self, tp: TopicPartition, offset: int, max_bytes: int = 1 << 20) -> bytes:
        """Record batches of ``tp`` from ``offset`` on (read_uncommitted), as the broker sent
        them. A leader that moved or is not elected yet is looked up again until the deadline:
        a planned switchover must not abort on a partition MirrorMaker has only just created, or
        on a broker restart it already rides out."""
        return await self._retrying(lambda: self._read(tp, offset, max_bytes))

    async def _read(self, tp: TopicPartition, offset: int, max_bytes: int) -> bytes:
        layout = self._layout or await self.layout({tp[0]})
        if tp not in layout.leaders:
            layout = await self.layout({tp[0]})
        if tp not in layout.leaders:
            raise UnknownPartition(f"cluster {self.name}: no partition {tp[0]}-{tp[1]}")
        body = {
            "ReplicaId": -1,
            "MaxWaitMs": 0,
            "MinBytes": 0,
            "MaxBytes": max_bytes,
            "IsolationLevel": READ_UNCOMMITTED,
            "SessionId": 0,
            "SessionEpoch": -1,
            "Topics": [
                {
                    "Topic": tp[0],
                    "Partitions": [
                        {
                            "Partition": tp[1],
                            "CurrentLeaderEpoch": -1,
                            "FetchOffset": offset,
                            "LastFetchedEpoch": -1,
                            "LogStartOffset": -1,
                            "PartitionMaxBytes": max_bytes,
                        }
                    ],
                }
            ],
            "ForgottenTopicsData": [],
            "RackId": "",
        }
        answer = await self._call(layout.leaders[tp], FETCH, 12, body)
        self._check(answer["ErrorCode"], f"Fetch {tp[0]}-{tp[1]}")
        [topic] = answer["Responses"]
        [partition] = topic["Partitions"]
        if partition["ErrorCode"] in _LEADER_MOVED:
            self._layout = None
            raise ClusterCallFailed(
                f"cluster {self.name}: Fetch {tp[0]}-{tp[1]}: Kafka error "
                f"{partition['ErrorCode']} (leader moving)",
                retriable=True,
            )
        self._check(partition["ErrorCode"], f"Fetch {tp[0]}-{tp[1]}")
        return bytes(partition["Records"] or b"")

    def _check(self, code: int, what: str) -> None:
        if code:
            retriable = code in _NOT_COORDINATOR
            raise ClusterCallFailed(
                f"cluster {self.name}: {what}: Kafka error {code}"
                + (" (coordinator not ready)" if retriable else ""),
                retriable=retriable,
                code=code,
            )

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` again while it fails with a coordinator that is not ready yet (a group's
        first commit creates ``__consumer_offsets``), until the call's deadline."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        backoff = 0.05
        while True:
            try:
                return await call()
            except ClusterCallFailed as error:
                if not error.retriable or asyncio.get_running_loop().time() + backoff > deadline:
                    raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
