"""MirrorMaker 2's offset syncs and checkpoints: their records, their topics, and translation.

Why it exists: at a planned switchover the gateway moves consumer groups to the target cluster, at
the target offsets that match where each group stood on the source. MirrorMaker 2 records that
match itself: every so often its source task writes an *offset sync* (this upstream offset is that
downstream offset) to ``mm2-offset-syncs.<target alias>.internal``, and its checkpoint task turns
syncs into per-group *checkpoints* on ``<source alias>.checkpoints.internal``. Reading the syncs
directly lets the switchover translate offsets committed after the last checkpoint.

Layouts, from Apache Kafka's ``connect/mirror/src/main/java/org/apache/kafka/connect/mirror/
OffsetSync.java`` and ``connect/mirror-client/src/main/java/org/apache/kafka/connect/mirror/
Checkpoint.java`` (``Schema``/``Struct`` of ``org.apache.kafka.common.protocol.types``: STRING is
an int16 length, never negative, then UTF-8; integers are big-endian)::

    OffsetSync  key:   topic STRING | partition INT32
                value: upstreamOffset INT64 | offset INT64                    (no version field)
    Checkpoint  key:   group STRING | topic STRING | partition INT32
                value: version INT16 (0) | upstreamOffset INT64 | offset INT64 | metadata STRING

Like Kafka's ``Schema.read``, bytes after the last field are ignored: that is how a later field
could be added without breaking old readers. Pure: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from failover_gateway.codec import errors
from failover_gateway.codec.primitives import INT16, INT32, INT64, Buffer, take

CHECKPOINT_VERSION = 0


@dataclass(frozen=True)
class OffsetSync:
    """Upstream offset ``upstream_offset`` of a source partition is ``downstream_offset`` on the
    target (the target topic's name is the replication policy's business, not the sync's)."""

    topic: str
    partition: int
    upstream_offset: int
    downstream_offset: int


@dataclass(frozen=True)
class Checkpoint:
    """A consumer group's committed source offset, and the target offset MirrorMaker chose."""

    group: str
    topic: str
    partition: int
    upstream_offset: int
    downstream_offset: int
    metadata: str


def offset_syncs_topic(target_alias: str, *, separator: str = ".") -> str:
    """The offset-syncs topic, on the *source* cluster by default, named after the target.

    ``DefaultReplicationPolicy.offsetSyncsTopic`` with the alias ``MirrorSourceConfig`` passes:
    the target's under the default ``offset-syncs.topic.location=source`` (with ``target``, the
    topic moves to the target cluster and takes the source's alias). ``separator`` is
    ``replication.policy.separator`` when internal topics use it (the default).
    """
    return f"mm2-offset-syncs{separator}{target_alias}{separator}internal"


def checkpoints_topic(source_alias: str, *, separator: str = ".") -> str:
    """The checkpoints topic, on the target cluster, named after the source."""
    return f"{source_alias}{separator}checkpoints{separator}internal"


def parse_offset_sync(key: Buffer, value: Buffer) -> OffsetSync:
    """The offset sync in one record of the offset-syncs topic; CodecError if malformed."""
    try:
        topic, pos = _read_string(key, 0)
        partition = INT32.unpack_from(key, pos)[0]
        upstream, downstream = _read_offsets(value, 0)
    except (struct.error, UnicodeDecodeError) as exc:
        raise errors.MalformedFrame(f"offset sync of {len(key)}+{len(value)} bytes: {exc}") from exc
    return OffsetSync(topic, partition, upstream, downstream)


def parse_checkpoint(key: Buffer, value: Buffer) -> Checkpoint:
    """The checkpoint in one record of the checkpoints topic; CodecError if malformed."""
    try:
        group, pos = _read_string(key, 0)
        topic, pos = _read_string(key, pos)
        partition = INT32.unpack_from(key, pos)[0]
        version = INT16.unpack_from(value, 0)[0]
        if version != CHECKPOINT_VERSION:
            raise errors.MalformedFrame(
                f"checkpoint value version {version}; only {CHECKPOINT_VERSION} is known"
            )
        upstream, downstream = _read_offsets(value, 2)
        metadata, _ = _read_string(value, 18)
    except (struct.error, UnicodeDecodeError) as exc:
        raise errors.MalformedFrame(f"checkpoint of {len(key)}+{len(value)} bytes: {exc}") from exc
    return Checkpoint(group, topic, partition, upstream, downstream, metadata)


def latest_syncs(syncs: Iterable[OffsetSync]) -> dict[tuple[str, int], OffsetSync]:
    """The last sync read for each source topic-partition."""
    return {(sync.topic, sync.partition): sync for sync in syncs}


def syncs_by_partition(syncs: Iterable[OffsetSync]) -> dict[tuple[str, int], list[OffsetSync]]:
    """Every sync of each source topic-partition, in read order (what :func:`translate` takes)."""
    grouped: dict[tuple[str, int], list[OffsetSync]] = {}
    for sync in syncs:
        grouped.setdefault((sync.topic, sync.partition), []).append(sync)
    return grouped


SYNCS_KEPT = 160
"""Syncs kept per partition, about (:func:`keep`; MirrorMaker's own store keeps 64)."""


def keep(kept: list[OffsetSync], sync: OffsetSync, limit: int = SYNCS_KEPT) -> None:
    """Add ``sync``, read after every sync in ``kept`` (one partition's), keeping at most
    about ``limit``: the newest ``limit // 4`` whole, and of the older ones the oldest and the
    newest in each power-of-two distance (in offsets) from the newest sync. So the older a
    stretch of the log, the sparser its syncs, as in MirrorMaker's own store. A sync behind the
    one before it (the source partition was reset) forgets every earlier one, as MirrorMaker does.

    Why: the syncs topic holds a sync every few records for as long as it is not compacted (a
    soak hour: tens of thousands), and a planned switch read all of them into memory, which the
    gateway process then kept (its resident memory stepped up 8-14 MiB at each planned switch of
    the one-hour soak). :func:`translate` over the kept syncs finds the same sync or an earlier
    one: never past the group, at worst more records re-read, fewer the closer the group is to
    the end; the newest syncs, which answer groups that had read (almost) everything, are whole."""
    if kept and sync.upstream_offset < kept[-1].upstream_offset:
        kept.clear()
    kept.append(sync)
    if len(kept) <= limit:
        return
    whole = limit // 4
    older, recent = kept[:-whole], kept[-whole:]
    newest = sync.upstream_offset
    oldest_in: dict[int, OffsetSync] = {}
    newest_in: dict[int, OffsetSync] = {}
    for old in older:  # ascending offsets: the first seen per distance is the oldest
        distance = (newest - old.upstream_offset).bit_length()
        oldest_in.setdefault(distance, old)
        newest_in[distance] = old
    # Two per distance: the oldest ages into the next distance and is its newest there, so
    # every distance that ever held a sync keeps one (one per distance would lose them all).
    survivors = {id(old): old for old in (*oldest_in.values(), *newest_in.values())}
    thinned = sorted(survivors.values(), key=lambda old: old.upstream_offset)
    kept[:] = thinned + recent  # at most 2 x 64 + limit // 4; thinned again only after more


def translate(syncs_for_partition: Sequence[OffsetSync], upstream_offset: int) -> int | None:
    """The target offset for ``upstream_offset``, by MirrorMaker's own rule; None if unknown.

    The rule of ``OffsetSyncStore.translateDownstream`` (Apache Kafka, ``connect/mirror/src/main/
    java/org/apache/kafka/connect/mirror/OffsetSyncStore.java``): take the newest sync whose
    upstream offset is at or before ``upstream_offset``; at it exactly, its downstream offset;
    past it, its downstream offset + 1, never more, since the records between may have been
    filtered or compacted and overshooting would skip records (re-reading a few is the price).
    A sync whose upstream offset is lower than the one read before it means the source partition
    was reset, and MirrorMaker then forgets every earlier sync (``updateSyncArray``); so does this.

    None where MirrorMaker returns nothing (no sync) or -1 (every sync is past the offset).
    MirrorMaker keeps only a sparse subset of syncs; with all of them, the sync found here is the
    same or a later one, so the answer is the same or closer to the group's true position.
    ``syncs_for_partition`` are one partition's syncs in read order.
    """
    found = None
    for sync in _since_last_reset(syncs_for_partition):
        if sync.upstream_offset > upstream_offset:
            break
        found = sync
    if found is None:
        return None
    step = 0 if found.upstream_offset == upstream_offset else 1
    return found.downstream_offset + step


def _since_last_reset(syncs: Sequence[OffsetSync]) -> Sequence[OffsetSync]:
    start = 0
    for index in range(1, len(syncs)):
        if syncs[index].upstream_offset < syncs[index - 1].upstream_offset:
            start = index
    return syncs[start:]


def _read_string(buf: Buffer, pos: int) -> tuple[str, int]:
    size = INT16.unpack_from(buf, pos)[0]
    if size < 0:
        raise errors.MalformedFrame(f"string length {size} at offset {pos} cannot be negative")
    raw, pos = take(buf, pos + 2, size)
    return str(raw, "utf-8"), pos


def _read_offsets(buf: Buffer, pos: int) -> tuple[int, int]:
    upstream: int = INT64.unpack_from(buf, pos)[0]
    downstream: int = INT64.unpack_from(buf, pos + 8)[0]
    return upstream, downstream
