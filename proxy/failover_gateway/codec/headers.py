"""Request and response headers: the only part of every frame the gateway always parses.

Why: responses carry nothing but a correlation id, so the connection must read each request's
(api key, version, correlation id) to know how to treat the answer; and a rewrite must know
where a response's body starts. The header layouts are few and fixed, so they are read by hand
here (hot path) rather than through a compiled spec plan.

Request header versions: v2 for flexible api versions (``client_id`` is *still* a classic int16
nullable string, then a tagged-field section), v1 otherwise, v0 (no ``client_id``) only for
ControlledShutdown v0. Response header: v1 (tagged fields after the correlation id) for flexible
versions, v0 otherwise, and **always v0 for ApiVersions** (KIP-511: a client that does not yet
know the broker's versions must be able to read the answer).

All inputs are frame bodies: the bytes after the 4-byte size prefix.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from failover_gateway.codec import errors, primitives, specs
from failover_gateway.codec.primitives import Buffer

API_VERSIONS = 18
CONTROLLED_SHUTDOWN = 7

_REQUEST_IDS = struct.Struct(">hhi")  # api_key, api_version, correlation_id
_EMPTY_TAGS = b"\x00"


# Not frozen (one per frame; a frozen one builds 4x slower): treat as read-only.
@dataclass(slots=True)
class RequestHeader:
    """A parsed request header; ``body_offset`` is where the request body starts in the frame."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


# Not frozen (one per frame; a frozen one builds 4x slower): treat as read-only.
@dataclass(slots=True)
class ResponseHeader:
    """A parsed response header; ``body_offset`` is where the response body starts."""

    correlation_id: int
    body_offset: int


def peek_request_ids(frame: Buffer) -> tuple[int, int, int]:
    """``(api_key, api_version, correlation_id)``: fixed-width, valid for every api key."""
    try:
        api_key, api_version, correlation_id = _REQUEST_IDS.unpack_from(frame, 0)
    except struct.error as exc:
        raise errors.MalformedFrame(f"request frame of {len(frame)} bytes has no header") from exc
    return api_key, api_version, correlation_id


def peek_correlation_id(frame: Buffer) -> int:
    """A response's correlation id: its first four bytes, whatever the header version."""
    try:
        correlation_id: int = primitives.INT32.unpack_from(frame, 0)[0]
    except struct.error as exc:
        raise errors.MalformedFrame(f"response frame of {len(frame)} bytes has no header") from exc
    return correlation_id


def request_header_version(api_key: int, api_version: int) -> int:
    if api_key == CONTROLLED_SHUTDOWN and api_version == 0:
        return 0
    return 2 if specs.is_flexible(api_key, api_version) else 1


def response_header_version(api_key: int, api_version: int) -> int:
    if api_key == API_VERSIONS:
        return 0
    return 1 if specs.is_flexible(api_key, api_version) else 0


def parse_request_header(frame: Buffer) -> RequestHeader:
    """Parse a request header; :class:`UnsupportedVersion` when the api key's layout is unknown."""
    api_key, api_version, correlation_id = peek_request_ids(frame)
    version = request_header_version(api_key, api_version)
    pos = _REQUEST_IDS.size
    client_id = None
    try:
        if version >= 1:
            client_id, pos = primitives.read_nullable_string(frame, pos)
        if version >= 2:
            pos = primitives.skip_tagged_fields(frame, pos)
    except errors.CodecError:
        raise
    except (struct.error, IndexError, ValueError) as exc:
        raise errors.MalformedFrame(
            f"request header (api key {api_key} v{api_version}) is truncated or malformed"
        ) from exc
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos)


def parse_response_header(frame: Buffer, api_key: int, api_version: int) -> ResponseHeader:
    """Parse the header of the response to a request of ``api_key`` / ``api_version``."""
    correlation_id = peek_correlation_id(frame)
    pos = 4
    if response_header_version(api_key, api_version) == 1:
        try:
            pos = primitives.skip_tagged_fields(frame, pos)
        except errors.CodecError:
            raise
        except (IndexError, ValueError) as exc:
            raise errors.MalformedFrame("response header tagged fields are truncated") from exc
    return ResponseHeader(correlation_id, pos)


def encode_request_header(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None
) -> bytes:
    """Header for a request the gateway sends itself (e.g. its own ApiVersions or SASL)."""
    version = request_header_version(api_key, api_version)
    out = bytearray(_REQUEST_IDS.pack(api_key, api_version, correlation_id))
    if version >= 1:
        primitives.write_nullable_string(client_id, out)
    if version >= 2:
        out += _EMPTY_TAGS
    return bytes(out)


def encode_response_header(correlation_id: int, api_key: int, api_version: int) -> bytes:
    """Header for a response the gateway writes itself (no tagged fields)."""
    header = primitives.INT32.pack(correlation_id)
    if response_header_version(api_key, api_version) == 1:
        return header + _EMPTY_TAGS
    return header
