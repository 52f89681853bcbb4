"""Readers and writers for Kafka's primitive wire types, shared by the schema codec and headers.

Why a module of its own: the header parser and the Produce ``acks`` peek run on every frame and
need the same few primitives as the spec-driven codec, without compiling a plan.

Readers take ``(buffer, offset)`` and return ``(value, next_offset)``; writers append to a
``bytearray``. Readers let ``struct.error`` / ``IndexError`` escape on truncated input: the public
entry points translate them into :class:`~failover_gateway.codec.errors.MalformedFrame` once, at
the top, which is cheaper than checking before every field. Slices are the exception: a short
slice would not fail by itself, so length-prefixed values check their end explicitly.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

from failover_gateway.codec import errors

Buffer = bytes | bytearray | memoryview
Reader = Callable[[Buffer, int], tuple[Any, int]]
Writer = Callable[[Any, bytearray], None]

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
UINT16 = struct.Struct(">H")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
FLOAT64 = struct.Struct(">d")

_MAX_VARINT_SHIFT = 28  # a 32-bit varint spans at most five bytes


def read_uvarint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Unsigned LEB128 varint, as used for compact lengths, tag numbers and tag sizes."""
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    while True:
        pos += 1
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7
        if shift > _MAX_VARINT_SHIFT:
            raise errors.MalformedFrame(f"varint longer than 5 bytes at offset {pos}")


def write_uvarint(value: int, out: bytearray) -> None:
    if value < 0:
        raise errors.UnencodableValue(f"unsigned varint cannot hold {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def take(buf: Buffer, pos: int, size: int) -> tuple[Buffer, int]:
    """The ``size`` bytes at ``pos``; raises instead of returning a short slice."""
    end = pos + size
    if size < 0 or end > len(buf):
        raise errors.MalformedFrame(f"{size} bytes announced at offset {pos}, {len(buf)} available")
    return buf[pos:end], end


def fixed(codec: struct.Struct) -> tuple[Reader, Writer]:
    """Reader and writer for a fixed-width number."""
    unpack, pack, size = codec.unpack_from, codec.pack, codec.size

    def read(buf: Buffer, pos: int) -> tuple[Any, int]:
        return unpack(buf, pos)[0], pos + size

    def write(value: Any, out: bytearray) -> None:
        out += pack(value)

    return read, write


def read_bool(buf: Buffer, pos: int) -> tuple[bool, int]:
    return buf[pos] != 0, pos + 1


def write_bool(value: Any, out: bytearray) -> None:
    out.append(1 if value else 0)


def read_uuid(buf: Buffer, pos: int) -> tuple[uuid.UUID, int]:
    raw, pos = take(buf, pos, 16)
    return uuid.UUID(bytes=bytes(raw)), pos


def write_uuid(value: Any, out: bytearray) -> None:
    out += value.bytes


# Length prefixes: classic encodings use int16 (strings) / int32 (bytes, arrays) with -1 for null;
# compact encodings use an unsigned varint holding length + 1, with 0 for null.


def read_int16_length(buf: Buffer, pos: int) -> tuple[int, int]:
    return INT16.unpack_from(buf, pos)[0], pos + 2


def read_int32_length(buf: Buffer, pos: int) -> tuple[int, int]:
    return INT32.unpack_from(buf, pos)[0], pos + 4


def read_compact_length(buf: Buffer, pos: int) -> tuple[int, int]:
    size, pos = read_uvarint(buf, pos)
    return size - 1, pos


def write_int16_length(size: int, out: bytearray) -> None:
    out += INT16.pack(size)


def write_int32_length(size: int, out: bytearray) -> None:
    out += INT32.pack(size)


def write_compact_length(size: int, out: bytearray) -> None:
    write_uvarint(size + 1, out)


LengthReader = Callable[[Buffer, int], tuple[int, int]]
LengthWriter = Callable[[int, bytearray], None]


def string_codec(read_length: LengthReader, write_length: LengthWriter) -> tuple[Reader, Writer]:
    """UTF-8 string (null when the length is -1) with the given length prefix."""

    def read(buf: Buffer, pos: int) -> tuple[str | None, int]:
        size, pos = read_length(buf, pos)
        if size == -1:
            return None, pos
        raw, pos = take(buf, pos, size)
        return str(raw, "utf-8"), pos

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            write_length(-1, out)
            return
        encoded = value.encode("utf-8")
        write_length(len(encoded), out)
        out += encoded

    return read, write


def bytes_codec(read_length: LengthReader, write_length: LengthWriter) -> tuple[Reader, Writer]:
    """Opaque bytes (null when the length is -1) with the given length prefix; also ``records``."""

    def read(buf: Buffer, pos: int) -> tuple[bytes | None, int]:
        size, pos = read_length(buf, pos)
        if size == -1:
            return None, pos
        raw, pos = take(buf, pos, size)
        return bytes(raw), pos

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            write_length(-1, out)
            return
        write_length(len(value), out)
        out += value

    return read, write


def read_nullable_string(buf: Buffer, pos: int) -> tuple[str | None, int]:
    """Classic int16-length nullable string: request header ``client_id``, Produce v3-8 txn id."""
    return _CLASSIC_STRING[0](buf, pos)


def read_compact_nullable_string(buf: Buffer, pos: int) -> tuple[str | None, int]:
    return _COMPACT_STRING[0](buf, pos)


_CLASSIC_STRING = string_codec(read_int16_length, write_int16_length)
_COMPACT_STRING = string_codec(read_compact_length, write_compact_length)
write_nullable_string = _CLASSIC_STRING[1]


def skip_tagged_fields(buf: Buffer, pos: int) -> int:
    """Offset just past a tagged-field section whose contents the caller does not need."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        _, pos = take(buf, pos, size)
    return pos
