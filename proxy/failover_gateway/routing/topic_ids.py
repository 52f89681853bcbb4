"""Topic ids that are the same on every cluster: the client-facing id of a topic is its name's.

Why it exists: every cluster gives each topic a random id (KIP-516), so the topic ``orders`` has
one id on main and another on failover (MirrorMaker creates it there). Clients learn ids from
Metadata and use them in Fetch (v13+), OffsetCommit/OffsetFetch (v10), the KIP-848 and share
group heartbeats and more. After a switch, a client holding main's ids is told UNKNOWN_TOPIC_ID
by failover, and some clients never recover: franz-go treats a topic whose id changed as deleted
and recreated, and fails it for good (it "does not adopt new topic ids"). So the gateway shows
clients one id per topic name, derived from the name (:func:`virtual_id`), on every cluster and
every pod, and turns it into the active cluster's real id on the way in.

What a pod knows of each cluster's ids (:class:`TopicIdTable`) it learns from the answers it
relays that name topics (Metadata, CreateTopics, DescribeTopicPartitions) and from a full
Metadata fetch of its own at start, at every refresh interval and when a lookup misses
(:mod:`..server` does the fetch). A request with an id the pod cannot translate waits for a
fetch begun after it arrived (the topic may have been created through another pod a moment
ago), and only then goes on, translated or, if the cluster does not know the topic either, as
it is. Never passing an unknown id at once matters for Fetch: a broker keeps the ids of a fetch
session's first request and the client's later requests name none, so a session opened with an
id the broker cannot resolve answers UNKNOWN_TOPIC_ID for as long as it lives.

Trade-off, written down for users: a topic deleted and recreated under the same name keeps its
client-facing id, so clients cannot tell the new topic from the old one by id (they still see
its offsets restart). MirrorMaker replicates by name, so a DR pair can only ever agree on names.

The translation itself: Fetch requests and responses (the hot path) have their ids replaced in
place (16 bytes for 16 bytes, found by a walk generated from the spec, no decode); every other
message that carries ids is decoded, translated and encoded again (they are small and rare).
Pure: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from failover_gateway.codec import headers, schema, skipping, specs
from failover_gateway.codec.primitives import Buffer

FETCH = 1
TOPIC_ID = "TopicId"
NAME_FIELDS = ("Name", "Topic", "TopicName")
ZERO = uuid.UUID(int=0)
_RESERVED = (ZERO, uuid.UUID(int=1))  # "no id", and Kafka's metadata topic id
_FETCH_REQUEST_PATHS = (("Topics", TOPIC_ID), ("ForgottenTopicsData", TOPIC_ID))
_FETCH_RESPONSE_PATHS = (("Responses", TOPIC_ID),)


def virtual_id(name: str) -> uuid.UUID:
    """The id clients see for topic ``name``, whichever cluster serves it."""
    digest = hashlib.blake2b(b"kafka-failover/topic/" + name.encode("utf-8"), digest_size=16)
    candidate = uuid.UUID(bytes=digest.digest())
    return candidate if candidate not in _RESERVED else uuid.UUID(int=candidate.int ^ 2)


class TopicIdTable:
    """Per cluster: topic name <-> real id, as this pod has seen them; and which need a look."""

    def __init__(self) -> None:
        self._real: dict[str, dict[str, uuid.UUID]] = {}
        self._names: dict[str, dict[uuid.UUID, str]] = {}
        self._by_virtual: dict[uuid.UUID, str] = {}
        self.misses: set[str] = set()  # clusters with an id this pod could not translate

    def learn(self, cluster: str, name: str, real: uuid.UUID) -> None:
        if real in _RESERVED or not name:
            return
        names = self._names.setdefault(cluster, {})
        reals = self._real.setdefault(cluster, {})
        previous = reals.get(name)
        if previous is not None and previous != real:
            names.pop(previous, None)  # the topic was recreated: its old id names nothing now
        reals[name] = real
        names[real] = name
        self._by_virtual[virtual_id(name)] = name

    def replace(self, cluster: str, topics: Mapping[str, uuid.UUID]) -> None:
        """Everything ``cluster`` has now (a full metadata answer): forget what it no longer has."""
        self._real[cluster], self._names[cluster] = {}, {}
        for name, real in topics.items():
            self.learn(cluster, name, real)
        self.misses.discard(cluster)

    def to_client(self, cluster: str, real: uuid.UUID) -> uuid.UUID | None:
        name = self._names.get(cluster, {}).get(real)
        return None if name is None else virtual_id(name)

    def to_cluster(self, cluster: str, virtual: uuid.UUID) -> uuid.UUID | None:
        name = self._by_virtual.get(virtual)
        return None if name is None else self._real.get(cluster, {}).get(name)

    def known(self, cluster: str) -> int:
        return len(self._real.get(cluster, {}))


@functools.cache
def carries_topic_ids(kind: str, api_key: int, version: int) -> bool:
    """Whether the ``kind`` ("request"/"response") of this api version has a TopicId field."""
    spec = specs.request(api_key) if kind == "request" else specs.response(api_key)
    return spec is not None and spec.is_valid(version) and _has_ids(spec.fields, version)


def _has_ids(fields: tuple[specs.FieldSpec, ...], version: int) -> bool:
    return any(
        field.present_in(version)
        and ((field.name == TOPIC_ID and field.type == "uuid") or _has_ids(field.fields, version))
        for field in fields
    )


def translate_request(
    api_key: int,
    frame: bytes | bytearray,
    table: TopicIdTable,
    cluster: str,
    missed: list[uuid.UUID] | None = None,
) -> Buffer:
    """Client-facing ids in a request become ``cluster``'s real ones; unknown ones stay as they
    are and are added to ``missed``, so that the caller can learn them and try again."""

    def inward(seen: uuid.UUID) -> uuid.UUID | None:
        real = table.to_cluster(cluster, seen)
        if real is None:
            table.misses.add(cluster)
            if missed is not None:
                missed.append(seen)
        return real

    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    spec = specs.request(api_key)
    assert spec is not None
    if api_key == FETCH:
        return _patched(
            frame, 4 + header.body_offset, spec=spec, version=header.api_version,
            mapping=inward, paths=_FETCH_REQUEST_PATHS,
        )  # fmt: skip
    body = view[header.body_offset :]
    values, end = schema.decode_tolerant(spec, header.api_version, body)
    if not _map_ids(values, spec.fields, header.api_version, inward, None):
        return frame
    encoded = schema.encode(spec, header.api_version, values) + bytes(body[end:])
    return _reframed(view[: header.body_offset], encoded)


def translate_response(
    api_key: int, api_version: int, frame: Buffer, table: TopicIdTable, cluster: str
) -> Buffer:
    """``cluster``'s real ids in a response become client-facing ones; named ones are learned."""

    def outward(real: uuid.UUID) -> uuid.UUID | None:
        seen = table.to_client(cluster, real)
        if seen is None:
            table.misses.add(cluster)
        return seen

    def learn(name: str, real: uuid.UUID) -> None:
        table.learn(cluster, name, real)

    view = memoryview(frame)[4:]
    header = headers.parse_response_header(view, api_key, api_version)
    spec = specs.response(api_key)
    assert spec is not None
    if api_key == FETCH:
        mutable = frame if isinstance(frame, bytearray) else bytearray(frame)
        return _patched(
            mutable, 4 + header.body_offset, spec=spec, version=api_version,
            mapping=outward, paths=_FETCH_RESPONSE_PATHS,
        )  # fmt: skip
    values = schema.decode(spec, api_version, view[header.body_offset :])
    if not _map_ids(values, spec.fields, api_version, outward, learn):
        return frame
    return _reframed(view[: header.body_offset], schema.encode(spec, api_version, values))


def _patched(
    frame: bytes | bytearray,
    body_at: int,
    *,
    spec: specs.MessageSpec,
    version: int,
    mapping: Callable[[uuid.UUID], uuid.UUID | None],
    paths: tuple[tuple[str, ...], ...],
) -> Buffer:
    present = [path for path in paths if spec.has_path(version, path)]
    if not present:
        return frame
    spans = skipping.value_spans(spec, version, memoryview(frame)[body_at:], *present)
    changes = []
    for start, end in spans:
        at = body_at + start
        seen = uuid.UUID(bytes=bytes(frame[at : body_at + end]))
        mapped = None if seen in _RESERVED else mapping(seen)
        if mapped is not None and mapped != seen:
            changes.append((at, mapped.bytes))
    if not changes:
        return frame
    patched = frame if isinstance(frame, bytearray) else bytearray(frame)
    for at, replacement in changes:
        patched[at : at + 16] = replacement
    return patched


def _map_ids(
    values: dict[str, Any],
    fields: tuple[specs.FieldSpec, ...],
    version: int,
    mapping: Callable[[uuid.UUID], uuid.UUID | None],
    learn: Callable[[str, uuid.UUID], None] | None,
) -> bool:
    """Translate every TopicId under ``values`` in place; True when any changed."""
    changed = False
    present = [field for field in fields if field.present_in(version)]
    topic_id = next((f for f in present if f.name == TOPIC_ID and f.type == "uuid"), None)
    if topic_id is not None and isinstance(values.get(TOPIC_ID), uuid.UUID):
        seen = values[TOPIC_ID]
        name = next((values[n] for n in NAME_FIELDS if isinstance(values.get(n), str)), None)
        if learn is not None and name:
            learn(name, seen)
        mapped = None if seen in _RESERVED else mapping(seen)
        if mapped is not None and mapped != seen:
            values[TOPIC_ID] = mapped
            changed = True
    for field in present:
        if field.is_struct and values.get(field.name) is not None:
            for item in _items(values[field.name]):
                changed |= _map_ids(item, field.fields, version, mapping, learn)
    return changed


def _items(value: Any) -> Iterator[dict[str, Any]]:
    yield from value if isinstance(value, list) else [value]


def _reframed(head: Buffer, body: bytes) -> bytes:
    return b"".join(((len(head) + len(body)).to_bytes(4, "big"), head, body))
