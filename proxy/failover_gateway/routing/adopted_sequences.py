"""An adopted producer id's batch that can never be written: tell the producer to start over.

Why it exists: after a switch an idempotent producer writes under an id the gateway adopted for
it (:mod:`.producer_ids`), which the new cluster has never seen, so the cluster takes *any* first
sequence number for a partition and holds the producer to it from then on. A client may send one
partition's batches over two connections around a switch: the older over the connection for the
broker it believed led the partition (waiting for the gateway to re-dial it, then answered
NOT_LEADER_OR_FOLLOWER), the newer over the leader's own, once fresh metadata named it. When the
newer one lands first, the older one is behind the cluster's sequence for good: every retry gets
OUT_OF_ORDER_SEQUENCE_NUMBER. On a real cluster that cannot happen (the new leader holds the
producer's sequence from the log), and the Java producer retries such a batch, as one a gap
will soon fill, until its delivery timeout expires (the one-hour soak's residual failures: a
batch made at the instant of a switch never acknowledged, and Java 3.7's later records of that
partition failing after it).

What it does, per client connection (no state shared between pods), for
:data:`WATCH_SECONDS` after the connection's first write under adopted ids: it remembers the highest
sequence acknowledged per adopted producer id, epoch and partition, from the answers to the
Produce requests it forwarded; an OUT_OF_ORDER_SEQUENCE_NUMBER answer for a batch that starts at
or below an acknowledged sequence of the same id and epoch is then certainly behind the
cluster's, and becomes UNKNOWN_PRODUCER_ID (with a log start offset of at least 0): the
cluster does not know this producer's sequence, which is the truth for an adopted id. The Java
producer answers that by bumping its epoch and renumbering the partition's unwritten batches
from 0 (KIP-360), which the cluster takes; franz-go fails its producer id and renumbers on
either error, as before; librdkafka already took such an answer as fatal either way. An
out-of-order answer for a batch *above* every acknowledged sequence (a gap an earlier batch in
flight will fill) is left as it is, and so is every answer for a producer id the cluster issued.
The error and the log start offset are patched in place, 2 and 8 bytes, without re-encoding.

Pure: frames in, frames patched in place.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from failover_gateway.codec import headers, record_batches, skipping, specs
from failover_gateway.codec.primitives import Buffer
from failover_gateway.routing.producer_identity import PRODUCE

OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID = 45, 59
WATCH_SECONDS = 300.0
"""How long after its first write under adopted ids (since it opened or moved) a connection
reads their answers: a race of two connections happens where the client first meets the new
cluster, and a batch left behind is retried only until the producer's delivery timeout (the
Java default is 120 s). Past it, adopted writes cost the pump nothing more than current ones."""
MAX_TRACKED = 4096
"""Partitions remembered per connection; past this the memory is dropped and starts again
(an older batch then just is not recognised as behind: today's behaviour, never a wrong one)."""

_REQUEST_PATHS = (
    ("TopicData", "Name"),
    ("TopicData", "TopicId"),
    ("TopicData", "PartitionData", "Index"),
    ("TopicData", "PartitionData", "Records"),
)
_RESPONSE_PATHS = (
    ("Responses", "Name"),
    ("Responses", "TopicId"),
    ("Responses", "PartitionResponses", "Index"),
    ("Responses", "PartitionResponses", "ErrorCode"),
    ("Responses", "PartitionResponses", "LogStartOffset"),
)
_NAME, _TOPIC_ID, _INDEX, _RECORDS = range(4)
_ERROR_CODE, _LOG_START = 3, 4
_INT16, _INT32, _INT64 = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")

Partition = tuple[bytes, int]  # topic name or id as sent, partition index


@dataclass(frozen=True, slots=True)
class SentBatch:
    producer_id: int
    epoch: int
    first_sequence: int
    last_sequence: int


def sent_batches(frame: Buffer) -> dict[Partition, SentBatch]:
    """The sequences of every partition's batches in a Produce request as forwarded (``frame``
    with its size prefix, producer ids already the cluster's)."""
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    body = view[header.body_offset :]
    spec = specs.message("ProduceRequest")
    topic, index = b"", -1
    found: dict[Partition, SentBatch] = {}
    for path, start, end in skipping.tagged_spans(spec, header.api_version, body, *_REQUEST_PATHS):
        if path in (_NAME, _TOPIC_ID):
            topic = bytes(body[start:end])
        elif path == _INDEX:
            index = _INT32.unpack_from(body, start)[0]
        else:
            sequences = record_batches.sequences(body, start, end)
            if sequences is not None:
                found[(topic, index)] = SentBatch(*sequences)
    return found


class AcknowledgedSequences:
    """One connection's memory of what the cluster acknowledged under adopted producer ids."""

    __slots__ = ("_acked",)

    def __init__(self) -> None:
        self._acked: dict[tuple[int, int, Partition], int] = {}

    def settle(
        self, frame: bytearray, api_version: int, sent: Mapping[Partition, SentBatch]
    ) -> int:
        """Learn from a Produce response (``frame`` with its size prefix, as the broker sent
        it) to a request that sent ``sent``; patch, in place, every out-of-order answer to a
        batch behind an acknowledged sequence. Returns how many answers were patched."""
        view = memoryview(frame)[4:]
        body = view[headers.parse_response_header(view, PRODUCE, api_version).body_offset :]
        spec = specs.message("ProduceResponse")
        topic, index, patched, this_one = b"", -1, 0, False
        for path, start, end in skipping.tagged_spans(spec, api_version, body, *_RESPONSE_PATHS):
            if path in (_NAME, _TOPIC_ID):
                topic = bytes(body[start:end])
            elif path == _INDEX:
                index = _INT32.unpack_from(body, start)[0]
            elif path == _ERROR_CODE:
                partition = (topic, index)
                this_one = self._answer(body, start, sent.get(partition), partition)
                patched += this_one
            elif path == _LOG_START and this_one and _INT64.unpack_from(body, start)[0] < 0:
                _INT64.pack_into(body, start, 0)  # the same partition's, after its ErrorCode
        return patched

    def _answer(
        self, body: memoryview, at: int, batch: SentBatch | None, partition: Partition
    ) -> bool:
        """Learn from one partition's answer; True when it was patched."""
        if batch is None:
            return False
        key = (batch.producer_id, batch.epoch, partition)
        error = _INT16.unpack_from(body, at)[0]
        if error == 0:
            if len(self._acked) >= MAX_TRACKED and key not in self._acked:
                self._acked.clear()
            self._acked[key] = max(self._acked.get(key, batch.last_sequence), batch.last_sequence)
            return False
        acked = self._acked.get(key)
        if error != OUT_OF_ORDER_SEQUENCE_NUMBER or acked is None:
            return False
        if batch.first_sequence > acked:
            return False  # a gap that an earlier batch in flight may still fill
        _INT16.pack_into(body, at, UNKNOWN_PRODUCER_ID)
        return True
