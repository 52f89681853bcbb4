"""What a cluster left by an unplanned switch holds that the other never got: that switch's RPO.

Why it exists: when main dies, the records MirrorMaker 2 had not copied yet cannot be counted (main
cannot be read). Once main answers again, they can, exactly. For each replicated partition the
newest offset sync (upstream u -> downstream d) says that everything up to u was copied. The
records after u are compared one by one, in order, with failover's records after d, by key, value
and timestamp (MirrorMaker keeps all three), until the first that differs. After that come
failover's own writes since the switch. The records of main left over are the ones failover
never got: the records lost by the switch, or to copy back before a failback.

Only for MirrorMaker 2: with offset-preserving replication the failover cluster reuses main's
offsets for its own writes after the switch, so positions cannot tell copies from new records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from failover_gateway.codec import records
from failover_gateway.config import SwitchoverConfig
from failover_gateway.server.cluster_admin import ClusterAdmin, TopicPartition, UnknownPartition
from failover_gateway.server.switching import SwitchRefused
from failover_gateway.server.switchover import MirrorSyncs, replicated_partitions

# Past this many records after the newest sync, a partition's count is the offset distance
# (records are not read one by one): MirrorMaker was far behind anyway.
EXACT_BELOW = 100_000

Identity = tuple[bytes | None, bytes | None, int]


class Backend(Protocol):
    def cluster_admin(self, cluster: str) -> ClusterAdmin: ...


async def measure(
    backend: Backend, config: SwitchoverConfig, *, source: str, target: str
) -> dict[str, Any]:
    """Records on ``source`` (the cluster left) that ``target`` never got, per partition."""
    if config.replication != "mirrorMaker2":
        raise SwitchRefused(
            f"records left on {source} can be counted with replication mirrorMaker2 only (set: "
            f"{config.replication}); offset-preserving copies share offsets with new writes",
            400,
        )
    missing: dict[TopicPartition, int] = {}
    async with backend.cluster_admin(source) as old, backend.cluster_admin(target) as new:
        partitions = await replicated_partitions(old, config)
        end = await old.end_offsets(partitions, committed_only=False)
        flow = _Copy(old, new, config, MirrorSyncs(old, config), source)
        await flow.syncs.refresh(target)
        for tp in partitions:
            count = await flow.left_on_source(tp, end[tp])
            if count:
                missing[tp] = count
    return {
        "from": source,
        "to": target,
        "records": sum(missing.values()),
        "partitions": {f"{t}-{p}": n for (t, p), n in sorted(missing.items())},
    }


@dataclass
class _Copy:
    """MirrorMaker's copy from ``old`` (the cluster left) to ``new``."""

    old: ClusterAdmin
    new: ClusterAdmin
    config: SwitchoverConfig
    syncs: MirrorSyncs
    source: str

    async def left_on_source(self, tp: TopicPartition, end: int) -> int:
        sync = self.syncs.newest(tp)
        upstream = 0 if sync is None else sync.upstream_offset + 1
        if upstream >= end:
            return 0
        if end - upstream > EXACT_BELOW:
            return end - upstream
        after_sync = [r async for r in _data(self.old, tp, upstream, end)]
        remote = (self.config.mirror_maker2.remote_topic(self.source, tp[0]), tp[1])
        downstream = 0 if sync is None else sync.downstream_offset + 1
        copied = 0
        try:
            async for record in _data(self.new, remote, downstream, None):
                if copied == len(after_sync) or record != after_sync[copied]:
                    break
                copied += 1
        except UnknownPartition:
            pass  # the copy does not exist on the target: nothing of it was copied
        return len(after_sync) - copied


async def _data(
    admin: ClusterAdmin, tp: TopicPartition, start: int, end: int | None
) -> AsyncIterator[Identity]:
    """The data records of ``tp`` from ``start`` (to ``end``, or to what there is), in order."""
    position = start
    while end is None or position < end:
        found = records.batches(await admin.read(tp, position))
        if not found:
            return
        for batch in found:
            if not batch.is_control:
                for record in batch.records:
                    if record.offset >= position and (end is None or record.offset < end):
                        yield record.key, record.value, record.timestamp
            position = max(position, batch.last_offset + 1)
