"""Leader epochs are one cluster's count: clients are shown none, and none goes upstream.

Why it exists: every cluster numbers each partition's leader epochs (KIP-320) on its own, so after
a switch the same partition can be at epoch 40 on the old cluster and at epoch 3 on the new one.
Clients keep the highest epoch they have seen per partition and ignore metadata that names a lower
one as stale: the Java clients (``Metadata.updateLatestMetadata``, unless the topic id changed,
and the gateway keeps topic ids the same on every cluster, see :mod:`.topic_ids`), librdkafka
(``rd_kafka_toppar_leader_update``) and franz-go (for five refreshes) keep sending to the leader
they knew on the old cluster. Where that node is not the new cluster's leader, every Produce is
answered NOT_LEADER_OR_FOLLOWER, every metadata refresh is ignored again, and the batches expire
(the one-hour soak's Java producers failed thousands of sends this way, one partition at a time,
once main's epochs had run ahead through broker restarts). Epochs sent upstream are wrong the
other way: a Fetch or ListOffsets fenced with the old cluster's epoch is refused with
FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH.

What the gateway does: it shows clients the epoch ``-1`` ("unknown", as a broker from before
KIP-320 does) wherever a response names a partition's current epoch (Metadata, ListOffsets,
OffsetFetch's committed epoch, DescribeTopicPartitions), and it sends ``-1`` upstream in the
fencing fields of requests (Fetch ``CurrentLeaderEpoch`` and ``LastFetchedEpoch``, ListOffsets and
OffsetForLeaderEpoch ``CurrentLeaderEpoch``), which a broker reads as "do not check". Every
client handles an unknown epoch: it takes any metadata, and skips epoch-based validation of its
positions.

The trade-off, written down for users: through the gateway, clients do not fence a zombie leader
by epoch, nor detect a log truncated by an unclean leader election by comparing epochs. Brokers
still refuse to serve a partition they do not lead. Showing epochs that only go up (the cluster's
plus a base per switch) would keep that, but every gateway pod would have to agree on the base
without shared state, and the record batches' own epochs (in fetched data, which the gateway
never rewrites) would still be the cluster's.

Fields are patched in place, four bytes for four, found by a walk generated from the spec (no
decode, no copy of record data). Pure: no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from failover_gateway.codec import headers, skipping, specs
from failover_gateway.codec.primitives import Buffer

UNKNOWN = b"\xff\xff\xff\xff"  # -1 as a big-endian int32

FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
OFFSET_FETCH = 9
OFFSET_FOR_LEADER_EPOCH = 23
DESCRIBE_TOPIC_PARTITIONS = 75

Path = tuple[str, ...]

REQUEST_FIELDS: Mapping[int, tuple[Path, ...]] = {
    FETCH: (
        ("Topics", "Partitions", "CurrentLeaderEpoch"),
        ("Topics", "Partitions", "LastFetchedEpoch"),
    ),
    LIST_OFFSETS: (("Topics", "Partitions", "CurrentLeaderEpoch"),),
    OFFSET_FOR_LEADER_EPOCH: (("Topics", "Partitions", "CurrentLeaderEpoch"),),
}
"""Request fields a broker fences with: ``-1`` upstream means "do not check"."""

RESPONSE_FIELDS: Mapping[int, tuple[Path, ...]] = {
    METADATA: (("Topics", "Partitions", "LeaderEpoch"),),
    LIST_OFFSETS: (("Topics", "Partitions", "LeaderEpoch"),),
    OFFSET_FETCH: (
        ("Topics", "Partitions", "CommittedLeaderEpoch"),
        ("Groups", "Topics", "Partitions", "CommittedLeaderEpoch"),
    ),
    DESCRIBE_TOPIC_PARTITIONS: (("Topics", "Partitions", "LeaderEpoch"),),
}
"""Response fields that tell a client a partition's epoch: shown as ``-1``."""


@functools.cache
def paths_in(kind: str, api_key: int, version: int) -> tuple[Path, ...]:
    """The leader epoch fields of this ``kind`` ("request"/"response") and version."""
    table = REQUEST_FIELDS if kind == "request" else RESPONSE_FIELDS
    spec = specs.request(api_key) if kind == "request" else specs.response(api_key)
    if spec is None or not spec.is_valid(version):
        return ()
    return tuple(path for path in table.get(api_key, ()) if spec.has_path(version, path))


def carries_leader_epochs(kind: str, api_key: int, version: int) -> bool:
    return bool(paths_in(kind, api_key, version))


def hide_in_request(api_key: int, frame: bytes | bytearray) -> bytes | bytearray:
    """``frame`` (with its size prefix) with every fencing epoch ``-1``; the same object when
    there was none to change (and patched in place when it is a ``bytearray``)."""
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    paths = paths_in("request", api_key, header.api_version)
    spec = specs.request(api_key)
    if not paths or spec is None:
        return frame
    hidden = _hidden(frame, 4 + header.body_offset, spec, header.api_version, paths)
    return hidden if isinstance(hidden, bytes | bytearray) else bytes(hidden)


def hide_in_response(api_key: int, api_version: int, frame: Buffer) -> Buffer:
    """``frame`` (with its size prefix) with every partition epoch ``-1``; the same object when
    there was none to change (and patched in place when it is a ``bytearray``)."""
    paths = paths_in("response", api_key, api_version)
    spec = specs.response(api_key)
    if not paths or spec is None:
        return frame
    header = headers.parse_response_header(memoryview(frame)[4:], api_key, api_version)
    return _hidden(frame, 4 + header.body_offset, spec, api_version, paths)


def _hidden(
    frame: Buffer, body_at: int, spec: specs.MessageSpec, version: int, paths: tuple[Path, ...]
) -> Buffer:
    view = memoryview(frame)
    spans = skipping.value_spans(spec, version, view[body_at:], *paths)
    changes = [body_at + start for start, _ in spans if view[body_at + start :][:4] != UNKNOWN]
    if not changes:
        return frame
    patched = frame if isinstance(frame, bytearray) else bytearray(frame)
    for at in changes:
        patched[at : at + 4] = UNKNOWN
    return patched
