"""Producer ids that say which cluster issued them, and when; and the ids a pod adopts.

Why it exists: an idempotent or transactional producer keeps the producer id its first cluster
issued, and every cluster allocates ids independently from 0. After a switch, an old id can
belong to another producer on the new cluster (sequence collisions, fatal errors, or records
dropped as that producer's duplicates), and after a switch back the old cluster still holds the
id's old sequence numbers (OUT_OF_ORDER_SEQUENCE_NUMBER at the first produce, fatal in
librdkafka). So no client may write to a cluster under an id that cluster did not issue *to it*.

How, without shared state between gateway pods: the ids clients are given carry the issuing
cluster's tag and the gateway's *generation* (its switch epoch) at issue time::

    bit 63: 0 | bits 57-62: cluster tag | bits 36-56: generation | bits 0-35: the real id

An id is *current* when its tag is the active cluster's and its generation the pod's: only then
was the cluster continuously active since it issued the id, so its sequence state there is the
producer's own, and the real id goes upstream. Any other id (issued by another cluster, or by
this one before a switch away and back, or before tagging existed) is *stale*.

A stale id of an idempotent producer is **adopted**: it is written upstream under an id derived
from it, the active cluster and the generation (:meth:`ProducerIdCodec.adopted`), in the range
from 2**40 up, which clusters never allocate (they count up from 0 in blocks of 1000; 2**40 ids
would take a billion allocations). Every pod derives the same id, so one producer whose
connections land on several pods, or whose partitions move between brokers, keeps one id per
cluster and generation, and the broker deduplicates its retries as usual; a new generation
derives a new id, so no stale sequence state is ever met. The producer carries on without an
error: a broker accepts any first sequence number from an id it has not seen, and no id a
cluster issued to another producer is ever used. A transactional producer's stale id is refused
instead (its transaction lives in the old cluster's coordinator; see :mod:`.producer_identity`).

Tags are the 1-based positions of the cluster names in sorted order, the same on every pod with
the same configuration. The generation (:func:`generation`) is derived from the switch epoch and
the number of active-cluster changes a pod made *within* that epoch: every pod the operator
switches gets the same new epoch (and a pod started later reads it from its ConfigMap), so all
agree; a runbook that switches back and forth without epochs still gets a new generation at
every change. Pods that disagree (one switched twice within an epoch, one started since) only
adopt more, never less. A real id above 2**36 cannot be tagged: it is given to clients as it is
and adopted at every use. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

REAL_BITS, GENERATION_BITS, TAG_BITS = 36, 21, 6
REAL_MASK = (1 << REAL_BITS) - 1
GENERATION_MASK = (1 << GENERATION_BITS) - 1
MAX_CLUSTERS = (1 << TAG_BITS) - 1
NO_PRODUCER_ID = -1
ADOPTED_FLOOR = 1 << REAL_BITS  # clusters allocate ids far below this
_ADOPTED_SPAN = (1 << 62) - ADOPTED_FLOOR


class TooManyClusters(ValueError):
    """More clusters than producer id tags."""


@dataclass(slots=True)
class ProducerIdCodec:
    """The ids one cluster issued, as clients see them; ``generation`` follows the switches."""

    cluster: str
    tag: int
    generation: int = 0

    def to_client(self, real: int) -> int:
        """The id a client is given for ``real`` (negative ids mean "none" and stay as they are;
        an id too large to tag is given as it is, and adopted whenever it is used)."""
        if real < 0 or real > REAL_MASK:
            return real
        generation = self.generation & GENERATION_MASK
        return self.tag << (REAL_BITS + GENERATION_BITS) | generation << REAL_BITS | real

    def current_real(self, seen: int) -> int | None:
        """The real id behind ``seen`` when it is current here; None when it is stale."""
        if seen < 0:
            return seen
        prefix = seen >> REAL_BITS
        expected = self.tag << GENERATION_BITS | (self.generation & GENERATION_MASK)
        return seen & REAL_MASK if prefix == expected else None

    def adopted(self, seen: int) -> int:
        """The id a stale ``seen`` is written under here in this generation: the same on every
        pod, different for every (``seen``, cluster, generation), never one a cluster issues."""
        key = f"{seen}/{self.cluster}/{self.generation}".encode()
        digest = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
        return ADOPTED_FLOOR + digest % _ADOPTED_SPAN


def generation(epoch: int, changes_in_epoch: int) -> int:
    """The generation of a pod at ``epoch`` after that many active-cluster changes in it."""
    key = f"{epoch}/{changes_in_epoch}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") & GENERATION_MASK


def codecs(clusters: Iterable[str], generation: int = 0) -> Mapping[str, ProducerIdCodec]:
    """Every configured cluster's codec; the same tags on every pod with the same clusters."""
    names = sorted(set(clusters))
    if len(names) > MAX_CLUSTERS:
        raise TooManyClusters(f"{len(names)} clusters configured; at most {MAX_CLUSTERS}")
    return {name: ProducerIdCodec(name, index, generation) for index, name in enumerate(names, 1)}
