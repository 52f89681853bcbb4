"""Read ``acks`` from a Produce request without decoding its records.

Why: a Produce with ``acks=0`` gets no response. A connection that waits for one leaks an
in-flight slot per request until its buffers fill (a bug that bit kafka-proxy), so the gateway
must know ``acks`` for every Produce it forwards, cheaply: Produce is the bulk of the traffic.

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


def read_acks(frame: Buffer, header: headers.RequestHeader | None = None) -> int:
    """``acks`` of a Produce request frame (bytes after the size prefix).

    Pass the already parsed ``header`` to skip parsing it again.
    """
    if header is None:
        header = headers.parse_request_header(frame)
    if header.api_key != PRODUCE:
        raise ValueError(f"api key {header.api_key} is not Produce")
    pos = header.body_offset
    try:
        # transactional_id is skipped, not decoded: its text does not matter here.
        if header.api_version >= _FIRST_FLEXIBLE:
            size, pos = primitives.read_compact_length(frame, pos)
            pos += max(size, 0)
        elif header.api_version >= _FIRST_WITH_TRANSACTIONAL_ID:
            size, pos = primitives.read_int16_length(frame, pos)
            pos += max(size, 0)
        value: int = primitives.INT16.unpack_from(frame, pos)[0]
    except errors.CodecError:
        raise
    except (struct.error, IndexError, ValueError) as exc:
        raise errors.MalformedFrame(
            f"Produce v{header.api_version} request is too short to hold acks"
        ) from exc
    return value


def expects_response(frame: Buffer, header: headers.RequestHeader) -> bool:
    """False only for Produce with ``acks=0``: the one request Kafka never answers."""
    return header.api_key != PRODUCE or read_acks(frame, header) != 0
