"""MirrorMaker 2's offset syncs and checkpoints: parsing their records, naming their topics, and
translating offsets by MirrorMaker's rule. Bytes are built field by field from the Java layout
(``OffsetSync.java``, ``Checkpoint.java``), not by the code under test."""

from __future__ import annotations

import itertools
import struct

import pytest

from failover_gateway.codec import errors
from failover_gateway.routing import offset_syncs
from failover_gateway.routing.offset_syncs import Checkpoint, OffsetSync


def _string(text: str) -> bytes:
    encoded = text.encode("utf-8")
    return struct.pack(">h", len(encoded)) + encoded


def _sync_key(topic: str, partition: int) -> bytes:
    return _string(topic) + struct.pack(">i", partition)


def _sync_value(upstream: int, downstream: int) -> bytes:
    return struct.pack(">qq", upstream, downstream)


def _checkpoint_key(group: str, topic: str, partition: int) -> bytes:
    return _string(group) + _string(topic) + struct.pack(">i", partition)


def _checkpoint_value(upstream: int, downstream: int, metadata: str, version: int = 0) -> bytes:
    return struct.pack(">hqq", version, upstream, downstream) + _string(metadata)


def test_an_offset_sync_record_is_parsed():
    key = _sync_key("orders-\u00e9", 7)
    value = _sync_value(1_234, 987)

    assert offset_syncs.parse_offset_sync(key, value) == OffsetSync("orders-\u00e9", 7, 1_234, 987)


def test_an_offset_sync_with_bytes_after_its_fields_is_parsed_like_kafka_does():
    key = _sync_key("t", 0) + b"\x00"
    value = _sync_value(5, 6) + b"\x01\x02"

    assert offset_syncs.parse_offset_sync(key, value) == OffsetSync("t", 0, 5, 6)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (_sync_key("orders", 0)[:-1], _sync_value(1, 2)),
        (_sync_key("orders", 0), _sync_value(1, 2)[:-1]),
        (b"\x00\x09orders\x00\x00\x00\x00", _sync_value(1, 2)),
        (b"\xff\xff\x00\x00\x00\x00", _sync_value(1, 2)),
        (b"\x00\x02\xc3\x28\x00\x00\x00\x00", _sync_value(1, 2)),
        (b"", b""),
    ],
    ids=["key-cut", "value-cut", "topic-overruns", "negative-length", "bad-utf8", "empty"],
)
def test_a_malformed_offset_sync_is_refused(key: bytes, value: bytes):
    with pytest.raises(errors.CodecError):
        offset_syncs.parse_offset_sync(key, value)


def test_a_checkpoint_record_is_parsed():
    key = _checkpoint_key("billing", "orders", 3)
    value = _checkpoint_value(100, 42, "meta")

    assert offset_syncs.parse_checkpoint(key, value) == Checkpoint(
        "billing", "orders", 3, 100, 42, "meta"
    )


def test_a_checkpoint_of_an_unknown_version_is_refused():
    key = _checkpoint_key("g", "t", 0)

    with pytest.raises(errors.CodecError, match="version 1"):
        offset_syncs.parse_checkpoint(key, _checkpoint_value(1, 1, "", version=1))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (_checkpoint_key("g", "t", 0)[:-2], _checkpoint_value(1, 2, "m")),
        (_checkpoint_key("g", "t", 0), _checkpoint_value(1, 2, "meta")[:-1]),
        (_checkpoint_key("g", "t", 0), struct.pack(">hqq", 0, 1, 2)),
    ],
    ids=["key-cut", "metadata-cut", "metadata-missing"],
)
def test_a_malformed_checkpoint_is_refused(key: bytes, value: bytes):
    with pytest.raises(errors.CodecError):
        offset_syncs.parse_checkpoint(key, value)


def test_the_offset_syncs_topic_is_named_after_the_target_cluster():
    assert offset_syncs.offset_syncs_topic("dr") == "mm2-offset-syncs.dr.internal"
    assert offset_syncs.offset_syncs_topic("dr", separator="_") == "mm2-offset-syncs_dr_internal"


def test_the_checkpoints_topic_is_named_after_the_source_cluster():
    assert offset_syncs.checkpoints_topic("primary") == "primary.checkpoints.internal"


def test_the_latest_sync_of_each_partition_is_the_last_one_read():
    syncs = [
        OffsetSync("a", 0, 10, 5),
        OffsetSync("a", 1, 10, 6),
        OffsetSync("a", 0, 20, 15),
        OffsetSync("b", 0, 3, 3),
    ]

    assert offset_syncs.latest_syncs(syncs) == {
        ("a", 0): OffsetSync("a", 0, 20, 15),
        ("a", 1): OffsetSync("a", 1, 10, 6),
        ("b", 0): OffsetSync("b", 0, 3, 3),
    }


def test_syncs_are_grouped_by_partition_in_read_order():
    syncs = [OffsetSync("a", 0, 10, 5), OffsetSync("a", 1, 1, 1), OffsetSync("a", 0, 20, 15)]

    assert offset_syncs.syncs_by_partition(syncs) == {
        ("a", 0): [syncs[0], syncs[2]],
        ("a", 1): [syncs[1]],
    }


_SYNCS = [OffsetSync("t", 0, 100, 50), OffsetSync("t", 0, 200, 120), OffsetSync("t", 0, 300, 180)]


@pytest.mark.parametrize(
    ("upstream", "downstream"),
    [(100, 50), (200, 120), (300, 180)],
)
def test_an_offset_at_a_sync_translates_to_its_downstream_offset(upstream: int, downstream: int):
    assert offset_syncs.translate(_SYNCS, upstream) == downstream


@pytest.mark.parametrize(
    ("upstream", "downstream"),
    [(101, 51), (199, 51), (250, 121), (10_000, 181)],
)
def test_an_offset_past_a_sync_translates_to_one_past_its_downstream_offset(
    upstream: int, downstream: int
):
    assert offset_syncs.translate(_SYNCS, upstream) == downstream


def test_an_offset_before_every_sync_has_no_translation():
    assert offset_syncs.translate(_SYNCS, 99) is None


def test_a_partition_without_syncs_has_no_translation():
    assert offset_syncs.translate([], 0) is None


def test_syncs_read_before_an_upstream_reset_are_forgotten():
    syncs = [*_SYNCS, OffsetSync("t", 0, 20, 400)]

    assert offset_syncs.translate(syncs, 250) == 401
    assert offset_syncs.translate(syncs, 19) is None


def test_a_sync_parsed_from_its_record_translates():
    sync = offset_syncs.parse_offset_sync(_sync_key("t", 0), _sync_value(100, 50))

    assert offset_syncs.translate([sync], 100) == 50


def kept_after(count: int, limit: int = offset_syncs.SYNCS_KEPT) -> list[OffsetSync]:
    kept: list[OffsetSync] = []
    for upstream in range(0, count * 10, 10):  # a sync every 10 records, 5 records copied per sync
        offset_syncs.keep(kept, OffsetSync("t", 0, upstream, upstream // 2), limit)
    return kept


def test_kept_syncs_stay_bounded_however_many_are_read():
    assert len(kept_after(100_000)) <= offset_syncs.SYNCS_KEPT


def test_the_newest_syncs_are_all_kept_and_older_ones_thinned_in_order():
    kept = kept_after(1000)
    upstreams = [sync.upstream_offset for sync in kept]

    assert upstreams == sorted(upstreams) and upstreams[0] == 0, "the oldest stays"
    newest = upstreams[-offset_syncs.SYNCS_KEPT // 4 :]
    assert newest == list(range(9990 - 10 * (len(newest) - 1), 10000, 10))
    for earlier, later in itertools.pairwise(upstreams):
        assert later - earlier <= max(10, (9990 - later) + 10), "sparser with age, no big hole"


@pytest.mark.parametrize("committed", [0, 5, 1234, 7777, 9985, 9990, 9999])
def test_translating_over_kept_syncs_never_passes_the_full_answer(committed: int):
    everything = kept_after(1000, limit=10**9)
    full = offset_syncs.translate(everything, committed)

    sparse = offset_syncs.translate(kept_after(1000), committed)

    assert full is not None and sparse is not None
    assert sparse <= full, "a group must never be placed past what it read"
    if committed >= 9990 - 10 * (offset_syncs.SYNCS_KEPT // 4 - 1):
        assert sparse == full  # the newest stretch is kept whole
    assert full - sparse <= max(8, (9995 - committed) // 2), "off by at most half the distance"


def test_a_sync_behind_the_last_one_forgets_every_earlier_sync():
    kept = kept_after(10)

    offset_syncs.keep(kept, OffsetSync("t", 0, 3, 100))

    assert kept == [OffsetSync("t", 0, 3, 100)]
