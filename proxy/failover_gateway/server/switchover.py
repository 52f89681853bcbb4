"""A planned switchover on one gateway: fence writes, let consumers finish, wait until replication
has copied everything, hand consumer offsets over, then switch; or abort and stay.

Why it exists: an immediate switch moves clients whatever replication has copied (the records
not yet copied are the loss), and consumer groups restart from MirrorMaker's last periodic
checkpoint (re-reading). A planned switchover loses, duplicates and re-reads nothing: no write
reaches the old cluster after the fence (:mod:`..pump.write_fence`); the fenced end offsets are
read once no transaction is open; replication is judged caught up through the Kafka protocol on
both clusters (equal end offsets for offset-preserving replication; MirrorMaker 2's offset syncs
reaching the last data record otherwise); every group's committed offset is committed on the new
cluster, mapped; only then are clients let through. Any step that does not finish in time lifts
the fence and leaves the gateway on the old cluster, with the reason (README, "Planned
switchover", has the states and what clients see).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from failover_gateway.codec import errors, records
from failover_gateway.config import SwitchoverConfig
from failover_gateway.routing import offset_syncs
from failover_gateway.server.cluster_admin import (
    GROUP_HAS_MEMBERS,
    ClusterAdmin,
    ClusterCallFailed,
    GroupMember,
    TopicPartition,
    UnknownPartition,
)
from failover_gateway.server.switching import FenceAnswer, SwitchRecord, SwitchRefused

POLL_SECONDS = 0.1
FENCE_DRAIN_SECONDS = 5.0
FENCE_MARGIN_SECONDS = 30.0  # the fence outlives the steps' limits, then lifts itself
# Behind by more offsets than this, a partition's lag is its offset count (transaction markers
# included); closer, its tail is read so that markers MirrorMaker never copies do not count. Each
# poll would otherwise read the whole uncopied tail of every lagging partition again.
EXACT_LAG_BELOW = 10_000
_INTERNAL = re.compile(r"^(__|mm2-)|\.internal$|\.checkpoints\.internal$|^heartbeats$")


class Backend(Protocol):
    """What the switchover drives (the gateway runtime)."""

    async def fence(self, *, max_seconds: float, drain_timeout: float) -> FenceAnswer: ...

    def lift_fence(self) -> None: ...

    async def switch(
        self, to: str, *, epoch: int | None, drain_ms: int | None, source: str
    ) -> SwitchRecord: ...

    def cluster_admin(self, cluster: str) -> ClusterAdmin: ...

    @property
    def fenced_cluster(self) -> str | None: ...


@dataclass
class Report:
    """What the switchover did and measured; in the admin API's answer and the log."""

    source: str
    target: str
    replication: str
    phases: list[dict[str, Any]] = field(default_factory=list)
    partitions: int = 0
    groups_handed_off: int = 0
    records_reread: int = 0  # records a group behind the fenced end will read again
    catch_up_lag: int = 0  # records not yet copied when catching up began
    lag_at_switch: int = 0  # records on the old cluster not on the new one: the RPO
    fence_ms: float = 0.0
    outcome: str = "running"
    reason: str = ""
    _clock: float = field(default_factory=time.monotonic, repr=False)

    def phase(self, name: str, **detail: Any) -> None:
        now = time.monotonic()
        self.phases.append({"phase": name, "ms": round((now - self._clock) * 1000, 1), **detail})
        self._clock = now

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": "planned",
            "from": self.source,
            "to": self.target,
            "replication": self.replication,
            "outcome": self.outcome,
            "reason": self.reason,
            "phases": self.phases,
            "partitions": self.partitions,
            "groupsHandedOff": self.groups_handed_off,
            "recordsReread": self.records_reread,
            "lagAtSwitch": self.lag_at_switch,
            "fenceMs": round(self.fence_ms, 1),
        }


class Aborted(Exception):
    """A step did not finish in time or failed; nothing was switched."""


async def run(
    backend: Backend,
    config: SwitchoverConfig,
    *,
    source: str,
    target: str,
    epoch: int | None,
    drain_ms: int | None,
    caller: str,
) -> tuple[SwitchRecord, Report]:
    """Switch ``source`` -> ``target`` without loss; on abort raise :class:`SwitchRefused` (409)
    whose message is the reason, with the fence lifted."""
    _needs_replication(config)
    report = Report(source, target, config.replication)
    fenced_at = time.monotonic()
    limit = config.consumer_drain_seconds + config.max_catch_up_seconds + FENCE_MARGIN_SECONDS
    try:
        answer = await backend.fence(max_seconds=limit, drain_timeout=FENCE_DRAIN_SECONDS)
        if not answer.acknowledged:
            raise Aborted(f"{answer.writes_in_flight} write(s) to {source} still unanswered")
        report.phase("Fencing")
        async with backend.cluster_admin(source) as old, backend.cluster_admin(target) as new:
            await _prepare(old, new, config, report)
    except (Aborted, ClusterCallFailed, errors.CodecError) as error:
        backend.lift_fence()
        report.outcome, report.reason = "aborted", str(error)
        raise SwitchRefused(f"planned switch to {target} aborted: {error}", 409) from None
    record = await backend.switch(target, epoch=epoch, drain_ms=drain_ms, source=caller)
    report.fence_ms = (time.monotonic() - fenced_at) * 1000
    report.phase("Switched")
    report.outcome = "switched"
    return record, report


async def prepare(
    backend: Backend, config: SwitchoverConfig, *, source: str, target: str
) -> Report:
    """The steps between the fence and the switch, for an orchestrator that fences every gateway
    first (the operator) and switches them all after: this gateway must hold the fence on
    ``source``. On abort raise :class:`SwitchRefused` (409) naming why; the fence stays up (the
    orchestrator lifts it on every gateway, or it lifts itself at its limit)."""
    _needs_replication(config)
    if backend.fenced_cluster != source:
        raise SwitchRefused(
            f"writes to {source} are not fenced on this gateway: PUT /api/v1/fence first "
            "(every gateway of the fleet), then prepare",
            409,
        )
    report = Report(source, target, config.replication)
    try:
        async with backend.cluster_admin(source) as old, backend.cluster_admin(target) as new:
            await _prepare(old, new, config, report)
    except (Aborted, ClusterCallFailed, errors.CodecError) as error:
        report.outcome, report.reason = "aborted", str(error)
        raise SwitchRefused(f"planned switch to {target} aborted: {error}", 409) from None
    report.outcome = "prepared"
    return report


def _needs_replication(config: SwitchoverConfig) -> None:
    if config.replication == "none":
        raise SwitchRefused(
            "a planned switch needs gateway.switchover.replication (offsetPreserving or "
            "mirrorMaker2); use mode=immediate to switch without waiting for replication",
            400,
        )


async def _prepare(
    old: ClusterAdmin, new: ClusterAdmin, config: SwitchoverConfig, report: Report
) -> None:
    started = time.monotonic()
    consumers_by = started + config.consumer_drain_seconds
    catch_up_by = consumers_by + config.max_catch_up_seconds
    partitions = await replicated_partitions(old, config)
    report.partitions = len(partitions)
    end = await _settled_end(old, partitions, catch_up_by, report.source)
    commits = await _consumers_finish(old, end, consumers_by)
    behind = sum(max(0, end[tp] - c) for group in commits.values() for tp, c in group.items())
    report.phase("ConsumersFinishing", groups=len(commits), recordsBehind=behind)
    flow = _Flow(old, new, config, report.source)
    if config.replication == "mirrorMaker2":
        flow.mirror = MirrorSyncs(old, config)
    report.catch_up_lag = await flow.caught_up(end, catch_up_by)
    report.phase("CatchingUp", lag=report.catch_up_lag)
    await _groups_absent(new, list(commits), catch_up_by, report.target)
    report.groups_handed_off, report.records_reread = await flow.hand_off(end, commits)
    report.phase("HandingOffOffsets", groups=report.groups_handed_off)


async def replicated_partitions(
    old: ClusterAdmin, config: SwitchoverConfig
) -> list[TopicPartition]:
    """The partitions of ``config.topics`` on the old cluster (internal topics never)."""
    layout = await old.layout()
    pattern = re.compile(config.topics)
    return sorted(
        tp for tp in layout.leaders if pattern.fullmatch(tp[0]) and not _INTERNAL.search(tp[0])
    )


async def _settled_end(
    old: ClusterAdmin, partitions: list[TopicPartition], deadline: float, source: str
) -> dict[TopicPartition, int]:
    """The fenced end offsets, once no transaction is open: none listed by the coordinators (a
    transaction that has added partitions but written nothing yet may still write, as writes of
    open transactions pass the fence) and, on every partition, the last stable offset equal to
    the high watermark (a read_committed MirrorMaker copies nothing past an open transaction)."""
    while True:
        ids = await old.open_transactions()
        high = await old.end_offsets(partitions, committed_only=False)
        stable = await old.end_offsets(partitions, committed_only=True)
        open_ = sorted(tp for tp in partitions if stable[tp] < high[tp])
        if not open_ and not ids:
            return high
        if time.monotonic() > deadline:
            named = ", ".join(
                [f"{t}-{p} at {stable[(t, p)]}" for t, p in open_[:5]]
                + [f"transactional id {i}" for i in ids[:5]]
            )
            raise Aborted(f"transactions still open on {source}: {named}")
        await asyncio.sleep(POLL_SECONDS)


async def _consumers_finish(
    old: ClusterAdmin, end: Mapping[TopicPartition, int], deadline: float
) -> dict[str, dict[TopicPartition, int]]:
    """Every group's commits on the replicated partitions, once each reached the fenced end or
    the consumer drain window ended (whatever each committed last)."""
    while True:
        commits = {}
        for group in await old.group_ids():
            mine = {tp: c for tp, c in (await old.committed(group)).items() if tp in end}
            if mine:
                commits[group] = mine
        done = all(c >= end[tp] for group in commits.values() for tp, c in group.items())
        if done or time.monotonic() > deadline:
            return commits
        await asyncio.sleep(POLL_SECONDS)


async def _groups_absent(
    new: ClusterAdmin, groups: list[str], deadline: float, target: str
) -> None:
    """Wait until none of ``groups`` has a member on the new cluster: Kafka takes a commit made
    as no member only from an empty group. Members there are consumers that read the new cluster
    directly (two sites consuming one group), or members of an earlier period on it that closed
    without leaving and whose session has not expired yet: wait for those, name the others."""
    while True:
        present = {g: m for g, m in (await new.group_members(groups)).items() if m}
        if not present:
            return
        if time.monotonic() > deadline:
            raise Aborted(members_present(present, target))
        await asyncio.sleep(POLL_SECONDS)


def members_present(present: Mapping[str, list[GroupMember]], target: str) -> str:
    """Why offsets cannot be handed off to groups that have members on ``target``."""
    named = "; ".join(
        f"group {group} ({len(members)} member(s), client ids "
        + ", ".join(sorted({m.client_id for m in members})[:5])
        + ")"
        for group, members in sorted(present.items())[:5]
    )
    return (
        f"consumer groups with members on {target} already: {named}. Their offsets are handed "
        f"off as no member, which Kafka refuses while a group has members: stop the consumers "
        f"that read {target} directly, or wait for the session timeout of members that closed "
        "there without leaving, then switch again"
    )


@dataclass
class MirrorSyncs:
    """MirrorMaker 2's offset syncs (on the source cluster), read as they come."""

    old: ClusterAdmin
    config: SwitchoverConfig
    position: int = 0
    syncs: dict[TopicPartition, list[offset_syncs.OffsetSync]] = field(default_factory=dict)

    async def refresh(self, target: str) -> None:
        mm2 = self.config.mirror_maker2
        topic = offset_syncs.offset_syncs_topic(mm2.alias(target), separator=mm2.separator)
        while True:
            try:
                data = await self.old.read((topic, 0), self.position)
            except UnknownPartition:
                return  # MirrorMaker has not written a sync yet: nothing is known to be copied
            found = False
            for batch in records.iter_batches(data):  # one batch's records at a time
                found = True
                if not batch.is_control:
                    self._take(batch.records)
                self.position = batch.last_offset + 1
            if not found:
                return

    def _take(self, batch: tuple[records.Record, ...]) -> None:
        for record in batch:
            if record.key is not None and record.value is not None:
                sync = offset_syncs.parse_offset_sync(record.key, record.value)
                offset_syncs.keep(self.syncs.setdefault((sync.topic, sync.partition), []), sync)

    def newest(self, tp: TopicPartition) -> offset_syncs.OffsetSync | None:
        found = self.syncs.get(tp)
        return found[-1] if found else None


@dataclass
class _Flow:
    """Replication from ``old`` (``source``) to ``new``, as the switchover measures it."""

    old: ClusterAdmin
    new: ClusterAdmin
    config: SwitchoverConfig
    source: str
    mirror: MirrorSyncs | None = None

    async def caught_up(self, end: Mapping[TopicPartition, int], deadline: float) -> int:
        """Wait until the new cluster holds everything up to the fenced end; the first lag."""
        first = None
        while True:
            lag = await self.lag(end)
            first = sum(lag.values()) if first is None else first
            if not any(lag.values()):
                return first
            if time.monotonic() > deadline:
                worst = sorted(lag.items(), key=lambda item: -item[1])[:5]
                named = ", ".join(
                    f"{t}-{p}: {n} of {end[(t, p)]}{self._last_copied((t, p))}"
                    for (t, p), n in worst
                    if n
                )
                raise Aborted(
                    f"replication did not catch up within {self.config.max_catch_up_seconds:g}s "
                    f"(records not copied: {named})"
                )
            await asyncio.sleep(POLL_SECONDS)

    def _last_copied(self, tp: TopicPartition) -> str:
        if self.mirror is None:
            return ""
        sync = self.mirror.newest(tp)
        if sync is None:
            return ", no MirrorMaker offset sync yet"
        return f", last offset sync at {sync.upstream_offset}"

    async def lag(self, end: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Records per partition not yet on the new cluster (0: caught up)."""
        if self.mirror is None:  # offset-preserving: the same offsets on both sides
            copied = await self.new.end_offsets(list(end), committed_only=False)
            return {tp: max(0, offset - copied.get(tp, 0)) for tp, offset in end.items()}
        await self.mirror.refresh(self.new.name)
        lag = {}
        for tp, offset in end.items():
            sync = self.mirror.newest(tp)
            start = 0 if sync is None else sync.upstream_offset + 1
            if start >= offset:
                lag[tp] = 0
            elif offset - start > EXACT_LAG_BELOW:
                lag[tp] = offset - start  # far behind: no need to read the tail to know it
            else:
                lag[tp] = await _data_records(self.old, tp, start, offset)
        return lag

    async def hand_off(
        self,
        end: Mapping[TopicPartition, int],
        commits: Mapping[str, Mapping[TopicPartition, int]],
    ) -> tuple[int, int]:
        """Commit every group's offsets on the new cluster, mapped; (groups, records re-read)."""
        mm2 = self.config.mirror_maker2
        reread = 0
        for group, offsets in commits.items():
            mapped = {}
            for tp, committed in offsets.items():
                name = mm2.remote_topic(self.source, tp[0]) if self.mirror else tp[0]
                mapped[(name, tp[1])], extra = _mapped(tp, committed, end[tp], self.mirror)
                reread += extra
            try:
                await self.new.commit(group, mapped)
            except ClusterCallFailed as error:
                if error.code not in GROUP_HAS_MEMBERS:
                    raise
                present = await self.new.group_members([group])
                raise Aborted(members_present(present, self.new.name)) from None
        return len(commits), reread


async def _data_records(old: ClusterAdmin, tp: TopicPartition, start: int, end: int) -> int:
    """How many data records (not transaction markers) ``tp`` holds in [start, end)."""
    count, position = 0, start
    while position < end:
        found = records.batches(await old.read(tp, position))
        if not found:
            return count + (end - position)  # nothing readable: count the offsets
        for batch in found:
            if not batch.is_control:
                count += sum(1 for r in batch.records if position <= r.offset < end)
            position = max(position, batch.last_offset + 1)
    return count


def _mapped(
    tp: TopicPartition, committed: int, end: int, mirror: MirrorSyncs | None
) -> tuple[int, int]:
    """The new cluster's offset for a commit on the old one, and the records it re-reads."""
    if mirror is None:
        return committed, 0
    syncs = mirror.syncs.get(tp, [])
    if committed >= end and syncs:
        return syncs[-1].downstream_offset + 1, 0  # caught up: everything before is copied
    translated = offset_syncs.translate(syncs, committed)
    if translated is None:
        return 0, committed
    return translated, max(0, committed - _upstream_of(syncs, translated))


def _upstream_of(syncs: list[offset_syncs.OffsetSync], downstream: int) -> int:
    """The upstream offset a downstream offset starts at (for the re-read estimate)."""
    best = 0
    for sync in syncs:
        if sync.downstream_offset < downstream:
            best = max(best, sync.upstream_offset + 1)
        elif sync.downstream_offset == downstream:
            best = max(best, sync.upstream_offset)
    return best
