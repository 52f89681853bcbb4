"""The records inside Kafka record batches (format v2, magic 2): offsets, keys, values, headers.

Why it exists: the gateway otherwise forwards records untouched and reads only batch headers
(:mod:`.record_batches`). A planned switchover must read MirrorMaker 2's offset-syncs topic itself,
through the Kafka protocol, so it needs the records of a Fetch response's ``Records`` bytes. The
broker may end those bytes in the middle of a batch (it cuts at the fetch size), so a partial
trailing batch is skipped, as Kafka's own consumer does.

Record layout (Kafka's ``DefaultRecord``; varints are zigzag-signed, ``varlong`` up to 10 bytes)::

    length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
    | keyLength varint | key | valueLength varint | value
    | headerCount varint | (headerKeyLength varint | headerKey | headerValueLength varint | value)*

A length of -1 is null. Compressed batches are inflated, each bounded by ``max_inflated`` against
decompression bombs: gzip with the standard library; snappy (the xerial framing Java producers
write, or raw blocks as librdkafka writes them), lz4 (frame format) and zstd with cramjam, one
Rust-backed wheel for the three (franz-go and many librdkafka users compress with snappy, lz4 or
zstd by default or by choice, and a planned switchover that cannot read their batches aborts).
Pure: no I/O.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cramjam

from failover_gateway.codec import errors, record_batches
from failover_gateway.codec.primitives import INT16, Buffer, take

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
_HEADER = struct.Struct(">qiibIhiqqqhii")
_LOG_OVERHEAD = 12  # baseOffset and batchLength, not counted in batchLength
_MAGIC_AT = 16
_COMPRESSION_MASK = 0x07
_LOG_APPEND_TIME = 0x08
_TRANSACTIONAL = 0x10
_CONTROL = 0x20
_CODEC_NAMES = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_GZIP, _SNAPPY, _LZ4, _ZSTD = 1, 2, 3, 4
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = len(_XERIAL_MAGIC) + 8  # magic, version int32, compatible version int32
_FIRST_GUESS_RATIO = 8  # first output buffer: this many times the compressed size (then x4)
_BUFFER_FULL = "failed to write whole buffer"  # cramjam's complaint when the output overflows
_MAX_VARLONG_SHIFT = 63  # a 64-bit varint spans at most ten bytes
MAX_INFLATED_BYTES = 1 << 26
"""Largest records section a gzip batch may inflate to (64 MiB), far above any fetch size."""


@dataclass(frozen=True)
class Record:
    """One record, with its absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True)
class Batch:
    """One record batch: the header fields callers act on, and its records."""

    base_offset: int
    last_offset: int
    is_control: bool
    is_transactional: bool
    compression: int
    records: tuple[Record, ...]


def batches(data: Buffer, *, max_inflated: int = MAX_INFLATED_BYTES) -> list[Batch]:
    """Every complete batch in ``data`` (a Fetch response's ``Records``), records decoded.

    A trailing batch cut short is skipped. Raises :class:`~.errors.CodecError` on a wrong CRC, a
    magic other than 2, an unsupported codec, or records that do not fit their batch.
    """
    return list(iter_batches(data, max_inflated=max_inflated))


def iter_batches(data: Buffer, *, max_inflated: int = MAX_INFLATED_BYTES) -> Iterator[Batch]:
    """:func:`batches` one at a time: a reader that keeps little of each batch (offset syncs)
    never holds a whole fetch's records at once (a megabyte of small records is tens of
    thousands of Python objects, and the allocator keeps the memory of such peaks)."""
    pos = 0
    while len(data) - pos >= _LOG_OVERHEAD:
        size = _LOG_OVERHEAD + struct.unpack_from(">i", data, pos + 8)[0]
        if pos + size > len(data):
            return  # the broker cut the last batch at the fetch size
        yield _batch(data, pos, pos + size, max_inflated)
        pos += size


def control_type(record: Record) -> int:
    """The type of a control batch's record: 0 abort, 1 commit (its key: version, type int16)."""
    if record.key is None or len(record.key) < 4:
        raise errors.MalformedFrame(f"control record at offset {record.offset} without a key")
    kind: int = INT16.unpack_from(record.key, 2)[0]
    return kind


def _batch(data: Buffer, start: int, end: int, max_inflated: int) -> Batch:
    if end - start < _HEADER.size:
        raise errors.MalformedFrame(f"record batch of {end - start} bytes at offset {start}")
    if data[start + _MAGIC_AT] != 2:
        raise errors.MalformedFrame(
            f"record batch with magic {data[start + _MAGIC_AT]} at offset {start} "
            "(only record batch format v2 is decoded)"
        )
    if not record_batches.crc_matches(data, start, end):
        raise errors.MalformedFrame(f"record batch at offset {start} fails its CRC-32C")
    base_offset, _, _, _, _, attributes, last_delta, base_ts, max_ts, _, _, _, count = (
        _HEADER.unpack_from(data, start)
    )
    compression = attributes & _COMPRESSION_MASK
    body = _body(data[start + _HEADER.size : end], compression, start, max_inflated)
    log_append = max_ts if attributes & _LOG_APPEND_TIME else None
    try:
        records = _records(body, count, base_offset, base_ts, log_append)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise errors.MalformedFrame(f"records of the batch at offset {start}: {exc}") from exc
    return Batch(
        base_offset=base_offset,
        last_offset=base_offset + last_delta,
        is_control=bool(attributes & _CONTROL),
        is_transactional=bool(attributes & _TRANSACTIONAL),
        compression=compression,
        records=records,
    )


def _body(raw: Buffer, compression: int, start: int, max_inflated: int) -> Buffer:
    if compression == 0:
        return raw
    if compression == _GZIP:
        return _gunzip(bytes(raw), start, max_inflated)
    name = _CODEC_NAMES.get(compression, f"unknown codec {compression}")
    try:
        if compression == _SNAPPY:
            return _unsnappy(bytes(raw), start, max_inflated)
        if compression in (_LZ4, _ZSTD):
            codec = cramjam.lz4 if compression == _LZ4 else cramjam.zstd
            return _inflate(codec.decompress_into, bytes(raw), name, start, max_inflated)
    except cramjam.DecompressionError as exc:
        raise errors.MalformedFrame(f"{name} batch at offset {start}: {exc}") from exc
    raise errors.CodecError(f"record batch at offset {start} is compressed with {name}")


def _inflate(
    into: Callable[[bytes, bytearray], int], raw: bytes, name: str, start: int, max_inflated: int
) -> bytes:
    """Decompress ``raw`` into a buffer that grows x4 from a guess up to ``max_inflated``."""
    size = min(max_inflated + 1, max(1 << 16, len(raw) * _FIRST_GUESS_RATIO))
    while True:
        out = bytearray(size)
        try:
            return bytes(out[: into(raw, out)])
        except cramjam.DecompressionError as exc:
            if _BUFFER_FULL not in str(exc):
                raise
            if size > max_inflated:
                raise errors.CodecError(
                    f"{name} batch at offset {start} inflates past {max_inflated} bytes"
                ) from exc
            size = min(max_inflated + 1, size * 4)


def _unsnappy(raw: bytes, start: int, max_inflated: int) -> bytes:
    """Kafka's snappy: xerial-framed blocks (Java producers) or one raw block (librdkafka)."""
    if not raw.startswith(_XERIAL_MAGIC):
        return _unsnappy_block(raw, start, max_inflated)
    out, pos = bytearray(), _XERIAL_HEADER
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise errors.MalformedFrame(f"snappy batch at offset {start} is cut short")
        size = int.from_bytes(raw[pos : pos + 4], "big")
        block = raw[pos + 4 : pos + 4 + size]
        if len(block) < size:
            raise errors.MalformedFrame(f"snappy batch at offset {start} is cut short")
        out += _unsnappy_block(block, start, max_inflated - len(out))
        pos += 4 + size
    return bytes(out)


def _unsnappy_block(block: bytes, start: int, max_inflated: int) -> bytes:
    if cramjam.snappy.decompress_raw_len(block) > max_inflated:  # its header says the size
        raise errors.CodecError(f"snappy batch at offset {start} inflates past the bound")
    return bytes(cramjam.snappy.decompress_raw(block))


def _gunzip(raw: bytes, start: int, max_inflated: int) -> bytes:
    """Inflate every gzip member of ``raw``, refusing more than ``max_inflated`` bytes."""
    out = bytearray()
    try:
        while raw:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += inflater.decompress(raw, max_inflated - len(out) + 1)
            if len(out) > max_inflated:
                raise errors.CodecError(
                    f"gzip batch at offset {start} inflates past {max_inflated} bytes"
                )
            if not inflater.eof:
                raise errors.MalformedFrame(f"gzip batch at offset {start} is cut short")
            raw = inflater.unused_data
    except zlib.error as exc:
        raise errors.MalformedFrame(f"gzip batch at offset {start}: {exc}") from exc
    return bytes(out)


def _records(
    body: Buffer, count: int, base_offset: int, base_ts: int, log_append: int | None
) -> tuple[Record, ...]:
    records = []
    pos = 0
    for _ in range(count):
        size, pos = read_varlong(body, pos)
        end = pos + size
        record, pos = _record(body, pos + 1, base_offset, base_ts)  # attributes: unused
        if pos != end:
            raise errors.MalformedFrame(f"record announces {size} bytes, spans {size + pos - end}")
        if log_append is not None:
            record = Record(record.offset, log_append, record.key, record.value, record.headers)
        records.append(record)
    if pos != len(body):
        raise errors.MalformedFrame(f"{len(body) - pos} bytes left after {count} records")
    return tuple(records)


def _record(body: Buffer, pos: int, base_offset: int, base_ts: int) -> tuple[Record, int]:
    ts_delta, pos = read_varlong(body, pos)
    offset_delta, pos = read_varlong(body, pos)
    key, pos = _nullable_bytes(body, pos)
    value, pos = _nullable_bytes(body, pos)
    header_count, pos = read_varlong(body, pos)
    if header_count < 0:
        raise errors.MalformedFrame(f"record with {header_count} headers at offset {pos}")
    headers = []
    for _ in range(header_count):
        name, pos = _nullable_bytes(body, pos)
        if name is None:
            raise errors.MalformedFrame(f"record header with a null key at offset {pos}")
        header_value, pos = _nullable_bytes(body, pos)
        headers.append((str(name, "utf-8"), header_value))
    record = Record(base_offset + offset_delta, base_ts + ts_delta, key, value, tuple(headers))
    return record, pos


def _nullable_bytes(body: Buffer, pos: int) -> tuple[bytes | None, int]:
    size, pos = read_varlong(body, pos)
    if size == -1:
        return None, pos
    raw, pos = take(body, pos, size)
    return bytes(raw), pos


def read_varlong(buf: Buffer, pos: int) -> tuple[int, int]:
    """Zigzag-signed varint of up to 64 bits (records' ``varint`` and ``varlong`` fields)."""
    result = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > _MAX_VARLONG_SHIFT:
            raise errors.MalformedFrame(f"varint longer than 10 bytes at offset {pos}")
