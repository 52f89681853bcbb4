"""Decoding the records of Fetch responses' record batches, against kafka-python's encoder."""

from __future__ import annotations

import struct

import cramjam
import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c, encode_varint

from failover_gateway.codec import errors, records
from failover_gateway.codec.records import Record

_ATTRIBUTES_AT, _CRC_AT = 21, 17

Headers = list[tuple[str, bytes | None]]


def _batch(
    entries: list[tuple[bytes | None, bytes | None, Headers]],
    *,
    base_offset: int = 0,
    compression: int = 0,
) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 22,
    )
    for delta, (key, value, headers) in enumerate(entries):
        builder.append(delta, timestamp=1_000 + delta, key=key, value=value, headers=headers)
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base_offset)  # the broker's to set; outside the CRC
    return bytes(data)


def _patched(batch: bytes, at: int, fmt: str, value: int) -> bytes:
    """``batch`` with one header field changed and its CRC made right again."""
    data = bytearray(batch)
    struct.pack_into(fmt, data, at, value)
    struct.pack_into(">I", data, _CRC_AT, calc_crc32c(bytes(data[_ATTRIBUTES_AT:])))
    return bytes(data)


def _attributes(batch: bytes) -> int:
    value: int = struct.unpack_from(">h", batch, _ATTRIBUTES_AT)[0]
    return value


_ENTRIES: list[tuple[bytes | None, bytes | None, Headers]] = [
    (b"k1", b"v1", [("h", b"x"), ("empty", b""), ("null", None)]),
    (None, b"value without key", []),
    (b"k3", None, [("\u00e9t\u00e9", b"\x00\xff")]),
]


def test_several_records_come_back_with_their_offsets_keys_values_and_headers():
    (batch,) = records.batches(_batch(_ENTRIES, base_offset=40))

    assert (batch.base_offset, batch.last_offset) == (40, 42)
    assert not batch.is_control and not batch.is_transactional and batch.compression == 0
    assert batch.records == (
        Record(40, 1_000, b"k1", b"v1", (("h", b"x"), ("empty", b""), ("null", None))),
        Record(41, 1_001, None, b"value without key"),
        Record(42, 1_002, b"k3", None, (("\u00e9t\u00e9", b"\x00\xff"),)),
    )


def test_a_gzip_batch_decodes_to_the_same_records_as_an_uncompressed_one():
    entries: list[tuple[bytes | None, bytes | None, Headers]] = [
        (b"key", b"compressible " * 50, [("h", b"v")]) for _ in range(20)
    ]
    gzipped = _batch(entries, base_offset=7, compression=1)
    assert _attributes(gzipped) & 0x07 == 1, "kafka-python sent it uncompressed"

    (batch,) = records.batches(gzipped)

    assert batch.compression == 1
    assert batch.records == records.batches(_batch(entries, base_offset=7))[0].records


def test_consecutive_batches_are_all_decoded_and_a_cut_trailing_batch_is_skipped():
    first = _batch(_ENTRIES, base_offset=0)
    second = _batch(_ENTRIES[:1], base_offset=3)
    third = _batch(_ENTRIES, base_offset=4)

    for cut in (1, 11, 12, 60, len(third) - 1):
        found = records.batches(first + second + third[:cut])
        assert [b.base_offset for b in found] == [0, 3]


def test_batches_are_decoded_one_at_a_time_when_iterated():
    good = _batch(_ENTRIES, base_offset=0)
    bad = bytearray(_batch(_ENTRIES, base_offset=3))
    bad[-1] ^= 0x01  # the second batch fails its CRC: decoded only when its turn comes
    found = records.iter_batches(good + bytes(bad))
    assert next(found).base_offset == 0
    with pytest.raises(errors.CodecError, match="CRC"):
        next(found)


def test_no_bytes_hold_no_batches():
    assert records.batches(b"") == []


def test_a_batch_whose_crc_does_not_match_is_refused():
    data = bytearray(_batch(_ENTRIES))
    data[-1] ^= 0x01

    with pytest.raises(errors.CodecError, match="CRC"):
        records.batches(bytes(data))


def test_a_batch_of_another_magic_is_refused():
    data = bytearray(_batch(_ENTRIES))
    data[16] = 1

    with pytest.raises(errors.CodecError, match="magic 1"):
        records.batches(bytes(data))


_RECORDS_AT = 61  # the batch header's size: the records section follows


def _recompressed(plain: bytes, codec: int, records_section: bytes) -> bytes:
    """``plain`` (an uncompressed batch) with ``records_section`` instead of its records, the
    codec set in its attributes, its length and CRC made right."""
    data = bytearray(plain[:_RECORDS_AT] + records_section)
    struct.pack_into(">i", data, 8, len(data) - 12)
    struct.pack_into(">h", data, _ATTRIBUTES_AT, _attributes(plain) | codec)
    struct.pack_into(">I", data, _CRC_AT, calc_crc32c(bytes(data[_ATTRIBUTES_AT:])))
    return bytes(data)


def _xerial(raw: bytes, block: int) -> bytes:
    """Snappy in the xerial framing Java's producer writes: a header, then sized raw blocks."""
    out = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    for at in range(0, len(raw), block):
        chunk = bytes(cramjam.snappy.compress_raw(raw[at : at + block]))
        out += struct.pack(">i", len(chunk)) + chunk
    return out


_COMPRESSORS = {
    "snappy raw (librdkafka)": (2, lambda raw: bytes(cramjam.snappy.compress_raw(raw))),
    "snappy xerial (Java)": (2, lambda raw: _xerial(raw, block=100)),
    "lz4 frame": (3, lambda raw: bytes(cramjam.lz4.compress(raw))),
    "zstd": (4, lambda raw: bytes(cramjam.zstd.compress(raw))),
}
_MANY: list[tuple[bytes | None, bytes | None, Headers]] = [
    (b"key", b"compressible " * 50, [("h", b"v")]) for _ in range(20)
]


@pytest.mark.parametrize("kind", list(_COMPRESSORS))
def test_a_snappy_lz4_or_zstd_batch_decodes_to_the_records_of_the_uncompressed_one(kind: str):
    codec, compress = _COMPRESSORS[kind]
    plain = _batch(_MANY, base_offset=7)
    data = _recompressed(plain, codec, compress(plain[_RECORDS_AT:]))

    (batch,) = records.batches(data)

    assert batch.compression == codec
    assert batch.records == records.batches(plain)[0].records


@pytest.mark.parametrize("kind", list(_COMPRESSORS))
def test_a_compressed_batch_inflating_past_the_limit_is_refused(kind: str):
    codec, compress = _COMPRESSORS[kind]
    plain = _batch([(None, b"z" * 4_000, [])])
    data = _recompressed(plain, codec, compress(plain[_RECORDS_AT:]))

    with pytest.raises(errors.CodecError, match="inflates past"):
        records.batches(data, max_inflated=1_000)


@pytest.mark.parametrize(("codec", "name"), [(2, "snappy"), (3, "lz4"), (4, "zstd")])
def test_a_batch_that_does_not_decompress_is_refused_naming_its_codec(codec: int, name: str):
    data = _recompressed(_batch(_ENTRIES), codec, b"\x05not compressed at all")

    with pytest.raises(errors.MalformedFrame, match=name):
        records.batches(data)


def test_a_batch_of_an_unknown_codec_is_refused_by_number():
    plain = _batch(_ENTRIES)
    data = _patched(plain, _ATTRIBUTES_AT, ">h", _attributes(plain) | 5)

    with pytest.raises(errors.CodecError, match="unknown codec 5"):
        records.batches(data)


def test_a_control_batch_is_flagged_and_its_commit_marker_read():
    marker_key = struct.pack(">hh", 0, 1)  # version 0, type 1 (commit)
    marker_value = struct.pack(">hi", 0, 5)  # version 0, coordinator epoch
    plain = _batch([(marker_key, marker_value, [])], base_offset=9)
    data = _patched(plain, _ATTRIBUTES_AT, ">h", _attributes(plain) | 0x20 | 0x10)

    (batch,) = records.batches(data)

    assert batch.is_control and batch.is_transactional
    assert (batch.base_offset, batch.last_offset) == (9, 9)
    assert records.control_type(batch.records[0]) == 1


def test_log_append_time_gives_every_record_the_batch_max_timestamp():
    plain = _batch(_ENTRIES)
    stamped = _patched(plain, 35, ">q", 99_999)  # maxTimestamp
    data = _patched(stamped, _ATTRIBUTES_AT, ">h", _attributes(plain) | 0x08)

    (batch,) = records.batches(data)

    assert [record.timestamp for record in batch.records] == [99_999] * 3


def test_a_batch_announcing_more_records_than_it_holds_is_refused():
    data = _patched(_batch(_ENTRIES), 57, ">i", 4)  # recordCount

    with pytest.raises(errors.MalformedFrame, match="records of the batch"):
        records.batches(data)


def test_a_batch_announcing_fewer_records_than_it_holds_is_refused():
    data = _patched(_batch(_ENTRIES), 57, ">i", 2)

    with pytest.raises(errors.MalformedFrame, match="left after 2 records"):
        records.batches(data)


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 300, -301, 2**31 - 1, -(2**63), 2**63 - 1])
def test_zigzag_varints_read_back_what_kafka_python_wrote(value: int):
    out = bytearray()
    encode_varint(value, out.append)

    assert records.read_varlong(bytes(out) + b"\x7f", 0) == (value, len(out))


def test_a_varint_longer_than_ten_bytes_is_refused():
    with pytest.raises(errors.MalformedFrame, match="longer than 10 bytes"):
        records.read_varlong(b"\xff" * 11, 0)


def test_a_gzip_batch_inflating_past_the_limit_is_refused():
    entries: list[tuple[bytes | None, bytes | None, Headers]] = [(None, b"z" * 4_000, [])]
    gzipped = _batch(entries, compression=1)

    with pytest.raises(errors.CodecError, match="inflates past 1000 bytes"):
        records.batches(gzipped, max_inflated=1_000)
