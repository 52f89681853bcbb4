"""Producer ids that say which cluster issued them.

Why it exists: an idempotent or transactional producer keeps the producer id its first cluster
issued, and every cluster allocates ids independently from 0. After a switch, an old id can
belong to another producer on the new cluster (sequence collisions, fatal errors, or records
dropped as that producer's duplicates), and after a switch back the old cluster still holds the
id's old sequence numbers (OUT_OF_ORDER_SEQUENCE_NUMBER at the first produce). So no client may
write to a cluster under an id that cluster did not issue to it.

How, without shared state between gateway pods: the gateway hands clients *tagged* ids. A
cluster's tag is derived from its configured name, the same on every pod; the id a client sees is
``tag << 48 | real id``, and the gateway turns it back into the real id on the way in. An id
whose tag is not the active cluster's (issued by another cluster, or before tagging existed)
is *foreign*: the gateway never forwards it, and answers with an error that makes the client
fetch a new id (:mod:`.producer_identity`). One client's connections may land on different
pods: each pod reads the tag, none needs to have seen the InitProducerId.

Real ids stay far below 2**48 (clusters allocate them upwards from 0 in blocks of 1000). A
cluster that issues a larger id (none known) gets it passed through untagged and logged: such a
producer is not protected. Pure: no I/O.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TAG_SHIFT = 48
REAL_MASK = (1 << TAG_SHIFT) - 1
_TAGS = (1 << 15) - 1  # tags 1..32767: tagged ids stay positive int64
NO_PRODUCER_ID = -1


class TagCollision(ValueError):
    """Two configured clusters' names give the same tag."""


@dataclass(frozen=True, slots=True)
class ProducerIdSpace:
    """The ids one cluster issued, as clients see them."""

    cluster: str
    tag: int

    def to_client(self, real: int) -> int:
        """The id a client is given for ``real`` (negative ids mean "none" and stay as they are;
        an id too large to tag is passed through, unprotected)."""
        if real < 0 or real > REAL_MASK:
            return real
        return self.tag << TAG_SHIFT | real

    def to_cluster(self, seen: int) -> int | None:
        """The real id behind an id a client sent, or None when this cluster did not issue it."""
        if seen < 0:
            return seen
        if seen >> TAG_SHIFT != self.tag:
            return None
        return seen & REAL_MASK

    def is_foreign(self, seen: int) -> bool:
        return self.to_cluster(seen) is None


def tag_of(cluster: str) -> int:
    """The tag of a cluster name: stable across pods, releases and restarts."""
    return 1 + zlib.crc32(cluster.encode("utf-8")) % _TAGS


def spaces(clusters: Iterable[str]) -> Mapping[str, ProducerIdSpace]:
    """Every configured cluster's id space; raises :class:`TagCollision` when two names share a
    tag (about one pair in 33,000: renaming either cluster resolves it)."""
    found: dict[int, str] = {}
    result = {}
    for name in clusters:
        tag = tag_of(name)
        if tag in found:
            raise TagCollision(
                f"clusters {found[tag]!r} and {name!r} give the same producer id tag {tag}; "
                "rename one of them (any other name will do)"
            )
        found[tag] = name
        result[name] = ProducerIdSpace(name, tag)
    return result
