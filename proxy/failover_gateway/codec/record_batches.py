"""The producer id in the record batches of a Produce request: read it, and replace it.

Why it exists: an idempotent or transactional producer stamps its producer id into the header of
every record batch it sends (record batch format v2, "magic 2", the only one Produce v3+ takes).
The gateway gives clients producer ids that say which cluster issued them and must hand each
cluster the id *it* issued (:mod:`failover_gateway.routing.producer_ids`), so it reads and
replaces that field. Only the 61-byte batch headers are touched: the producer id, and the CRC-32C
that covers it, updated from the change alone (:mod:`.crc32c`) without reading the records.

Batch header layout (Kafka's ``DefaultRecordBatch``; there is no JSON spec for it)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 | crc uint32
    | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64
    | producerId int64 | producerEpoch int16 | baseSequence int32 | recordCount int32 | records

``batchLength`` counts from ``partitionLeaderEpoch`` to the end; the CRC covers ``attributes`` to
the end. Pure: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from failover_gateway.codec import crc32c, errors
from failover_gateway.codec.primitives import Buffer

_LENGTH_AT, _MAGIC_AT, _CRC_AT, _PRODUCER_ID_AT = 8, 16, 17, 43
_CRC_FROM = 21  # attributes
_HEADER_BYTES = 61
_LOG_OVERHEAD = 12  # baseOffset and batchLength, not counted in batchLength
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_TRANSACTIONAL = 0x10
_UINT32 = struct.Struct(">I")
_INT64 = struct.Struct(">q")
_IDS = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence
_LAST_OFFSET_DELTA_AT, _SEQUENCE_AT = 23, 53
NO_PRODUCER_ID = -1


def batch_offsets(data: Buffer, spans: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of every record batch in the record sets at ``spans`` of ``data``."""
    for start, end in spans:
        pos = start
        while pos < end:
            if end - pos < _HEADER_BYTES:
                raise errors.MalformedFrame(f"record batch header cut short at offset {pos}")
            size = _LOG_OVERHEAD + _INT32.unpack_from(data, pos + _LENGTH_AT)[0]
            if size < _HEADER_BYTES or pos + size > end:
                raise errors.MalformedFrame(f"record batch of {size} bytes at offset {pos}")
            if data[pos + _MAGIC_AT] != 2:
                raise errors.MalformedFrame(
                    f"record batch with magic {data[pos + _MAGIC_AT]} at offset {pos} "
                    "(Produce v3+ takes magic 2 only)"
                )
            yield pos, pos + size
            pos += size


def producer_ids(data: Buffer, spans: Sequence[tuple[int, int]]) -> set[int]:
    """Every producer id the batches carry (-1: none, a producer without idempotence)."""
    return {
        _INT64.unpack_from(data, start + _PRODUCER_ID_AT)[0]
        for start, _ in batch_offsets(data, spans)
    }


def is_transactional(data: Buffer, spans: Sequence[tuple[int, int]]) -> bool:
    """Whether the batches belong to a transaction (attributes bit 4, as in every batch of one
    Produce request from a transactional producer)."""
    return any(
        _INT16.unpack_from(data, start + _CRC_FROM)[0] & _TRANSACTIONAL
        for start, _ in batch_offsets(data, spans)
    )


def sequences(data: Buffer, start: int, end: int) -> tuple[int, int, int, int] | None:
    """``(producer id, producer epoch, first sequence, last sequence)`` of the batches in the
    record set at ``start:end`` (one producer's, in order), or None for an empty set."""
    if (
        end - start >= _HEADER_BYTES
        and data[start + _MAGIC_AT] == 2
        and (_LOG_OVERHEAD + _INT32.unpack_from(data, start + _LENGTH_AT)[0] == end - start)
    ):
        first = last = start  # one batch, as a producer sends per partition and request
    else:
        starts = [batch_start for batch_start, _ in batch_offsets(data, [(start, end)])]
        if not starts:
            return None
        first, last = starts[0], starts[-1]
    producer_id, epoch, base = _IDS.unpack_from(data, first + _PRODUCER_ID_AT)
    last_base = _INT32.unpack_from(data, last + _SEQUENCE_AT)[0]
    last_delta = _INT32.unpack_from(data, last + _LAST_OFFSET_DELTA_AT)[0]
    return producer_id, epoch, base, last_base + last_delta


def replace_producer_id(data: bytearray, spans: Sequence[tuple[int, int]], new_id: int) -> None:
    """Write ``new_id`` into every batch header in place, each CRC updated to match."""
    replacement = _INT64.pack(new_id)
    for start, end in list(batch_offsets(data, spans)):
        at = start + _PRODUCER_ID_AT
        old = bytes(data[at : at + 8])
        if old == replacement:
            continue
        crc = _UINT32.unpack_from(data, start + _CRC_AT)[0]
        data[at : at + 8] = replacement
        new_crc = crc32c.patched(crc, old, replacement, end - at - 8)
        _UINT32.pack_into(data, start + _CRC_AT, new_crc)


def crc_matches(data: Buffer, start: int, end: int) -> bool:
    """Whether the batch at ``start:end`` carries the right CRC (tests and diagnostics)."""
    stored: int = _UINT32.unpack_from(data, start + _CRC_AT)[0]
    return stored == crc32c.crc32c(bytes(data[start + _CRC_FROM : end]))
