"""Read ``acks`` and the first producer id from a Produce request without decoding its records.

Why: a Produce with ``acks=0`` gets no response. A connection that waits for one leaks an
in-flight slot per request until its buffers fill (a bug that bit kafka-proxy), so the gateway
must know ``acks`` for every Produce it forwards, cheaply: Produce is the bulk of the traffic.
And the producer id decides whether the request must be held and rewritten (an idempotent or
transactional producer's) or can stream through (-1: a producer without idempotence, whose
batches all carry -1); it sits 43 bytes into the first record batch, usually inside the first
few hundred bytes of the frame.

``acks`` sits near the start of the body: first in v0-2; after the nullable ``transactional_id``
in v3+ (a classic int16-length string up to v8, a compact one from v9, the first flexible
version, whose header also carries tagged fields). Everything after ``acks`` is left unread.
"""

from __future__ import annotations

import struct

from failover_gateway.codec import errors, headers, primitives
from failover_gateway.codec.primitives import Buffer

PRODUCE = 0
_FIRST_WITH_TRANSACTIONAL_ID = 3
_FIRST_FLEXIBLE = 9
_FIRST_WITH_TOPIC_ID = 13
_PRODUCER_ID_IN_BATCH = 43


def read_acks(frame: Buffer, header: headers.RequestHeader | None = None) -> int:
    """``acks`` of a Produce request frame (bytes after the size prefix).

    Pass the already parsed ``header`` to skip parsing it again.
    """
    header = _produce_header(frame, header)
    try:
        value: int = primitives.INT16.unpack_from(frame, _acks_offset(frame, header))[0]
    except errors.CodecError:
        raise
    except (struct.error, IndexError, ValueError) as exc:
        raise errors.MalformedFrame(
            f"Produce v{header.api_version} request is too short to hold acks"
        ) from exc
    return value


def first_producer_id(frame: Buffer, header: headers.RequestHeader | None = None) -> int | None:
    """The producer id in the first record batch, or None when ``frame`` (possibly only the
    start of a request) does not reach it, or the request has no records."""
    header = _produce_header(frame, header)
    flexible = header.api_version >= _FIRST_FLEXIBLE
    read_length = primitives.read_compact_length if flexible else primitives.read_int32_length
    try:
        pos = _acks_offset(frame, header) + 2 + 4  # acks, timeout
        topics, pos = read_length(frame, pos)
        if topics <= 0:
            return None
        if header.api_version >= _FIRST_WITH_TOPIC_ID:
            pos += 16
        else:
            pos = _skip_string(frame, pos, flexible)
        partitions, pos = read_length(frame, pos)
        if partitions <= 0:
            return None
        records, pos = read_length(frame, pos + 4)  # after the partition index
        if records <= _PRODUCER_ID_IN_BATCH + 8:
            return None
        value: int = primitives.INT64.unpack_from(frame, pos + _PRODUCER_ID_IN_BATCH)[0]
    except errors.CodecError:
        raise
    except (struct.error, IndexError, ValueError):
        return None
    return value


def _produce_header(frame: Buffer, header: headers.RequestHeader | None) -> headers.RequestHeader:
    if header is None:
        header = headers.parse_request_header(frame)
    if header.api_key != PRODUCE:
        raise ValueError(f"api key {header.api_key} is not Produce")
    return header


def _acks_offset(frame: Buffer, header: headers.RequestHeader) -> int:
    # transactional_id is skipped, not decoded: its text does not matter here.
    pos = header.body_offset
    if header.api_version >= _FIRST_WITH_TRANSACTIONAL_ID:
        pos = _skip_string(frame, pos, header.api_version >= _FIRST_FLEXIBLE)
    return pos


def _skip_string(frame: Buffer, pos: int, compact: bool) -> int:
    if compact:
        size, pos = primitives.read_compact_length(frame, pos)
    else:
        size, pos = primitives.read_int16_length(frame, pos)
    return pos + max(size, 0)


def expects_response(frame: Buffer, header: headers.RequestHeader) -> bool:
    """False only for Produce with ``acks=0``: the one request Kafka never answers."""
    return header.api_key != PRODUCE or read_acks(frame, header) != 0
