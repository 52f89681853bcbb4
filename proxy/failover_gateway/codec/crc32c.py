"""CRC-32C (Castagnoli), and how it changes when a few bytes of a long message change.

Why it exists: a Kafka record batch (magic 2) carries a CRC-32C over everything from its
``attributes`` field to its end, and the producer id sits inside that range. The gateway rewrites
producer ids in Produce requests (:mod:`failover_gateway.routing.producer_ids`); recomputing the
CRC over the whole batch would read every record byte in Python. CRC is affine over GF(2): for
two messages of the same length, ``crc(a) ^ crc(b)`` depends only on ``a ^ b``. Changing 8 bytes
that are followed by ``n`` bytes changes the CRC by the CRC (zero initial value, no final xor) of
the 8-byte difference, advanced past ``n`` zero bytes. Advancing is a linear map; its powers of
two are precomputed as byte-sliced tables, so the update costs a few table lookups per set bit of
``n``, whatever the batch size, and never touches the records.

Pure Python, no dependency: a table for advancing past 2**k bytes is built the first time a batch
needs it (well under a millisecond each) and kept.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from failover_gateway.codec.primitives import Buffer

_POLYNOMIAL = 0x82F63B78  # Castagnoli, reflected
_MAX_SHIFT_BITS = 32  # zero runs up to 4 GiB: more than any frame the gateway accepts


def _byte_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLYNOMIAL if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_TABLE = _byte_table()


def crc32c(data: Buffer, crc: int = 0) -> int:
    """The standard CRC-32C of ``data`` (continuing from ``crc``), as Kafka computes it."""
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _raw(data: bytes) -> int:
    """CRC-32C with a zero initial value and no final xor: linear in ``data``."""
    crc = 0
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _apply(sliced: Sequence[Sequence[int]], value: int) -> int:
    return (
        sliced[0][value & 0xFF]
        ^ sliced[1][(value >> 8) & 0xFF]
        ^ sliced[2][(value >> 16) & 0xFF]
        ^ sliced[3][value >> 24]
    )


def _slice(images: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Byte-sliced tables of a linear map given by its images of the 32 basis vectors."""
    tables = []
    for lane in range(4):
        table = [0] * 256
        for byte in range(1, 256):
            lowest = (byte & -byte).bit_length() - 1
            table[byte] = table[byte & (byte - 1)] ^ images[lane * 8 + lowest]
        tables.append(tuple(table))
    return tuple(tables)


@functools.cache
def _shift(k: int) -> tuple[tuple[int, ...], ...]:
    """Tables advancing a raw CRC past 2**k zero bytes."""
    if k == 0:
        return _slice([_TABLE[(1 << bit) & 0xFF] ^ ((1 << bit) >> 8) for bit in range(32)])
    half = _shift(k - 1)
    return _slice([_apply(half, _apply(half, 1 << bit)) for bit in range(32)])


def advance(raw: int, zero_bytes: int) -> int:
    """A raw CRC advanced past ``zero_bytes`` zero bytes."""
    if zero_bytes < 0 or zero_bytes >> _MAX_SHIFT_BITS:
        raise ValueError(f"cannot advance a CRC past {zero_bytes} bytes")
    k = 0
    while zero_bytes:
        if zero_bytes & 1:
            raw = _apply(_shift(k), raw)
        zero_bytes >>= 1
        k += 1
    return raw


def patched(crc: int, old: bytes, new: bytes, bytes_after: int) -> int:
    """The CRC of a message once ``old`` (somewhere in it, followed by ``bytes_after`` bytes)
    is replaced by ``new`` of the same length."""
    if len(old) != len(new):
        raise ValueError("a patch must keep the message length")
    difference = int.from_bytes(old, "little") ^ int.from_bytes(new, "little")
    return crc ^ _change(difference, len(old), bytes_after)


@functools.lru_cache(maxsize=512)
def _change(difference: int, length: int, bytes_after: int) -> int:
    """How the CRC changes for a ``length``-byte difference followed by ``bytes_after`` bytes.
    Cached: a producer under load writes the same id change into batches of recurring sizes
    (full ``batch.size`` batches), so most Produce requests need no table lookup at all.
    Bounded at 512 entries (about 170 KB at 335 bytes an entry, measured): every switch
    changes every producer's id, and slow producers' batches come in all sizes, so a cache of
    4,096 (1.3 MiB full) kept filling for a long time after start: a slow resident-memory
    rise of the kind the one-hour soak measures."""
    return advance(_raw(difference.to_bytes(length, "little")), bytes_after)
