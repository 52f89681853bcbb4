"""The planned switchover's sequence against fake clusters: when it switches, when it aborts, and
that an abort always lifts the fence and switches nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from failover_gateway.config import SwitchoverConfig
from failover_gateway.routing.offset_syncs import OffsetSync
from failover_gateway.server import switchover
from failover_gateway.server.cluster_admin import (
    ClusterCallFailed,
    GroupMember,
    Layout,
    TopicPartition,
)
from failover_gateway.server.switching import FenceAnswer, SwitchRecord, SwitchRefused

TP = ("orders", 0)


@dataclass
class FakeCluster:
    name: str
    high: dict[TopicPartition, int] = field(default_factory=dict)
    stable: dict[TopicPartition, int] | None = None
    groups: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)
    transactions: list[str] = field(default_factory=list)
    members: dict[str, list[GroupMember]] = field(default_factory=dict)
    members_leave_after: int | None = None  # describes answered before they go
    members_join_before_commit: bool = False

    async def __aenter__(self) -> FakeCluster:
        return self

    async def __aexit__(self, *_: Any) -> None:
        return None

    async def layout(self) -> Layout:
        return Layout({1: None}, {tp: 1 for tp in self.high})  # type: ignore[dict-item]

    async def end_offsets(
        self, partitions: list[TopicPartition], *, committed_only: bool
    ) -> dict[TopicPartition, int]:
        source = self.stable if committed_only and self.stable is not None else self.high
        return {tp: source.get(tp, 0) for tp in partitions}

    async def open_transactions(self) -> list[str]:
        return list(self.transactions)

    async def group_ids(self) -> list[str]:
        return sorted(self.groups)

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        return dict(self.groups[group])

    async def commit(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        if self.members_join_before_commit:
            self.members[group] = [GroupMember("direct-reader", True)]
        if self.members.get(group):
            raise ClusterCallFailed(f"OffsetCommit {group}: Kafka error 25", code=25)
        self.groups[group] = dict(offsets)

    async def group_members(self, groups: list[str]) -> dict[str, list[GroupMember]]:
        if self.members_leave_after is not None:
            if self.members_leave_after == 0:
                self.members.clear()
            self.members_leave_after -= 1
        return {g: list(self.members[g]) for g in groups if g in self.members}


@dataclass
class FakeBackend:
    clusters: dict[str, FakeCluster]
    acknowledged: bool = True
    fenced: bool = False
    switched_to: str | None = None

    async def fence(self, *, max_seconds: float, drain_timeout: float) -> FenceAnswer:
        self.fenced = True
        return FenceAnswer("main", self.acknowledged, 0 if self.acknowledged else 2, 1.0)

    def lift_fence(self) -> None:
        self.fenced = False

    async def switch(
        self, to: str, *, epoch: int | None, drain_ms: int | None, source: str
    ) -> SwitchRecord:
        self.switched_to, self.fenced = to, False
        return SwitchRecord("main", to, epoch or 0, True, 0, 0.0, 0.0, source)

    def cluster_admin(self, cluster: str) -> Any:
        return self.clusters[cluster]

    @property
    def fenced_cluster(self) -> str | None:
        return "main" if self.fenced else None


def config(**overrides: Any) -> SwitchoverConfig:
    values = {
        "replication": "offsetPreserving",
        "maxCatchUpSeconds": 0.3,
        "consumerDrainSeconds": 0.1,
    }
    return SwitchoverConfig.model_validate(values | overrides)


def run(backend: FakeBackend, settings: SwitchoverConfig) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        _, report = await switchover.run(
            backend, settings, source="main", target="failover", epoch=3, drain_ms=0, caller="t"
        )
        return report.as_json()

    return asyncio.run(go())


def test_caught_up_offset_preserving_replication_hands_offsets_over_then_switches() -> None:
    main = FakeCluster("main", {TP: 10}, groups={"billing": {TP: 10}})
    failover = FakeCluster("failover", {TP: 10})
    backend = FakeBackend({"main": main, "failover": failover})
    report = run(backend, config())
    assert backend.switched_to == "failover" and not backend.fenced
    assert failover.groups == {"billing": {TP: 10}}
    assert report["outcome"] == "switched" and report["lagAtSwitch"] == 0
    assert [p["phase"] for p in report["phases"]] == [
        "Fencing", "ConsumersFinishing", "CatchingUp", "HandingOffOffsets", "Switched",
    ]  # fmt: skip


def test_replication_that_never_catches_up_aborts_lifts_the_fence_and_switches_nothing() -> None:
    backend = FakeBackend({"main": FakeCluster("main", {TP: 10}), "failover": FakeCluster(
        "failover", {TP: 7}
    )})  # fmt: skip
    with pytest.raises(SwitchRefused, match=r"did not catch up within 0.3s .*orders-0: 3 of 10"):
        run(backend, config())
    assert backend.switched_to is None and not backend.fenced


def test_a_transaction_left_open_on_main_aborts_naming_where() -> None:
    main = FakeCluster("main", {TP: 10}, stable={TP: 6})
    backend = FakeBackend({"main": main, "failover": FakeCluster("failover", {TP: 10})})
    with pytest.raises(SwitchRefused, match=r"transactions still open on main: orders-0 at 6"):
        run(backend, config())
    assert backend.switched_to is None and not backend.fenced


def test_a_transaction_open_but_not_yet_written_anywhere_aborts_naming_its_id() -> None:
    main = FakeCluster("main", {TP: 10}, transactions=["billing-txn"])
    backend = FakeBackend({"main": main, "failover": FakeCluster("failover", {TP: 10})})
    with pytest.raises(SwitchRefused, match=r"still open on main: transactional id billing-txn"):
        run(backend, config())
    assert backend.switched_to is None and not backend.fenced


def test_a_pod_whose_writes_are_still_unanswered_does_not_switch() -> None:
    backend = FakeBackend(
        {"main": FakeCluster("main", {TP: 1}), "failover": FakeCluster("failover", {TP: 1})},
        acknowledged=False,
    )
    with pytest.raises(SwitchRefused, match=r"2 write\(s\) to main still unanswered"):
        run(backend, config())
    assert backend.switched_to is None and not backend.fenced


def test_without_declared_replication_a_planned_switch_is_refused_with_what_to_set() -> None:
    backend = FakeBackend({})
    with pytest.raises(SwitchRefused, match=r"gateway\.switchover\.replication") as refused:
        run(backend, config(replication="none"))
    assert refused.value.status == 400 and not backend.fenced


def test_members_left_on_failover_that_expire_in_time_let_the_offsets_over() -> None:
    main = FakeCluster("main", {TP: 10}, groups={"billing": {TP: 10}})
    zombie = [GroupMember("billing-1", True)]
    failover = FakeCluster("failover", {TP: 10}, members={"billing": zombie}, members_leave_after=2)
    backend = FakeBackend({"main": main, "failover": failover})
    run(backend, config())
    assert backend.switched_to == "failover" and failover.groups == {"billing": {TP: 10}}


def test_a_group_read_on_failover_directly_aborts_naming_the_group_and_its_clients() -> None:
    main = FakeCluster("main", {TP: 10}, groups={"billing": {TP: 10}})
    readers = [GroupMember("dr-site-reader", True), GroupMember("dr-site-reader", True)]
    failover = FakeCluster("failover", {TP: 10}, members={"billing": readers})
    backend = FakeBackend({"main": main, "failover": failover})
    with pytest.raises(SwitchRefused, match=r"group billing \(2 member\(s\), client ids dr-site"):
        run(backend, config())
    assert backend.switched_to is None and not backend.fenced and failover.groups == {}


def test_a_member_joining_failover_just_before_the_hand_off_aborts_with_the_same_reason() -> None:
    main = FakeCluster("main", {TP: 10}, groups={"billing": {TP: 10}})
    failover = FakeCluster("failover", {TP: 10}, members_join_before_commit=True)
    backend = FakeBackend({"main": main, "failover": failover})
    with pytest.raises(SwitchRefused, match=r"members on failover already: group billing"):
        run(backend, config())
    assert backend.switched_to is None and not backend.fenced


def test_a_group_at_the_fenced_end_gets_the_offset_after_the_last_copied_record() -> None:
    mirror = switchover.MirrorSyncs(None, config())  # type: ignore[arg-type]
    mirror.syncs[TP] = [OffsetSync("orders", 0, 5, 3), OffsetSync("orders", 0, 9, 7)]
    assert switchover._mapped(TP, 10, 10, mirror) == (8, 0)
    offset, reread = switchover._mapped(TP, 7, 10, mirror)
    assert offset == 4 and reread == 1  # MirrorMaker's rule: after sync (5, 3); re-reads 6


def prepare(backend: FakeBackend, settings: SwitchoverConfig) -> dict[str, Any]:
    report = asyncio.run(switchover.prepare(backend, settings, source="main", target="failover"))
    return report.as_json()


def test_prepare_under_a_fence_hands_offsets_over_and_leaves_switching_to_the_caller() -> None:
    main = FakeCluster("main", {TP: 10}, groups={"billing": {TP: 10}})
    failover = FakeCluster("failover", {TP: 10})
    backend = FakeBackend({"main": main, "failover": failover}, fenced=True)
    report = prepare(backend, config())
    assert report["outcome"] == "prepared" and failover.groups == {"billing": {TP: 10}}
    assert backend.switched_to is None and backend.fenced, "the caller switches and lifts"


def test_prepare_without_a_fence_refuses_and_says_to_fence_first() -> None:
    backend = FakeBackend({"main": FakeCluster("main"), "failover": FakeCluster("failover")})
    with pytest.raises(SwitchRefused, match=r"not fenced .*PUT /api/v1/fence first") as refused:
        prepare(backend, config())
    assert refused.value.status == 409


def test_a_prepare_that_cannot_catch_up_aborts_but_leaves_the_fleet_fence_to_the_caller() -> None:
    backend = FakeBackend(
        {"main": FakeCluster("main", {TP: 10}), "failover": FakeCluster("failover", {TP: 7})},
        fenced=True,
    )
    with pytest.raises(SwitchRefused, match=r"did not catch up within 0.3s"):
        prepare(backend, config())
    assert backend.fenced and backend.switched_to is None
