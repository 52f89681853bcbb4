"""Producer ids tagged with the cluster that issued them, and the batches that carry them."""

from __future__ import annotations

import os
import random
import struct

import pytest
from kafka.record._crc32c import crc as kafka_python_crc32c
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from failover_gateway.codec import crc32c, errors, record_batches
from failover_gateway.routing import producer_ids
from failover_gateway.routing.producer_ids import ProducerIdSpace, TagCollision

MAIN = ProducerIdSpace("main", producer_ids.tag_of("main"))
FAILOVER = ProducerIdSpace("failover", producer_ids.tag_of("failover"))


def test_crc32c_matches_the_standard_check_value():
    assert crc32c.crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("size", [0, 1, 8, 61, 1000, 70_001])
def test_a_patched_crc_equals_the_crc_of_the_patched_message(size: int):
    rng = random.Random(size)
    message = bytearray(rng.randbytes(size + 64))
    at = rng.randrange(0, 56)
    before = crc32c.crc32c(message)
    new = os.urandom(8)
    old = bytes(message[at : at + 8])
    message[at : at + 8] = new

    assert crc32c.patched(before, old, new, len(message) - at - 8) == crc32c.crc32c(message)
    assert crc32c.crc32c(message) == kafka_python_crc32c(bytes(message))


def batch(producer_id: int, records: int = 3, value_size: int = 100) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=producer_id,
        producer_epoch=0 if producer_id >= 0 else -1, base_sequence=0 if producer_id >= 0 else -1,
        batch_size=1 << 22,
    )  # fmt: skip
    for offset in range(records):
        builder.append(offset, timestamp=offset, key=None, value=b"x" * value_size, headers=[])
    return bytes(builder.build())


def test_the_producer_id_of_every_batch_is_read():
    data = b"junk" + batch(7) + batch(7) + b"tail"

    assert record_batches.producer_ids(data, [(4, len(data) - 4)]) == {7}


def test_replacing_the_producer_id_keeps_every_batch_valid():
    first, second = batch(7, records=5), batch(7, records=1, value_size=9000)
    data = bytearray(first + second)

    record_batches.replace_producer_id(data, [(0, len(first)), (len(first), len(data))], 42)

    for start, end in ((0, len(first)), (len(first), len(data))):
        decoded = DefaultRecordBatch(bytes(data[start:end]))
        assert decoded.producer_id == 42
        assert decoded.validate_crc()
        assert record_batches.crc_matches(data, start, end)


def test_a_batch_cut_short_is_malformed():
    data = batch(7)

    with pytest.raises(errors.MalformedFrame, match="record batch"):
        record_batches.producer_ids(data[:-1], [(0, len(data) - 1)])


def test_a_batch_of_an_older_magic_is_malformed():
    data = bytearray(batch(7))
    data[16] = 1

    with pytest.raises(errors.MalformedFrame, match="magic 1"):
        record_batches.producer_ids(data, [(0, len(data))])


def test_a_cluster_tag_is_stable_and_never_zero():
    assert producer_ids.tag_of("main") == producer_ids.tag_of("main")
    assert all(producer_ids.tag_of(f"cluster-{n}") > 0 for n in range(2000))


def test_an_id_a_cluster_issued_goes_to_clients_tagged_and_comes_back_real():
    seen = MAIN.to_client(1234)

    assert seen != 1234 and seen > 0
    assert MAIN.to_cluster(seen) == 1234


def test_an_id_another_cluster_issued_is_foreign():
    assert FAILOVER.to_cluster(MAIN.to_client(1)) is None
    assert FAILOVER.is_foreign(MAIN.to_client(1))


def test_an_untagged_id_from_before_tagging_is_foreign():
    assert MAIN.is_foreign(1)


def test_no_producer_id_stays_none():
    assert MAIN.to_client(-1) == -1 and MAIN.to_cluster(-1) == -1


def test_an_id_too_large_to_tag_is_passed_through():
    huge = 1 << 50
    assert MAIN.to_client(huge) == huge


def test_two_names_with_the_same_tag_are_refused_naming_both():
    assert producer_ids.tag_of("cluster-50") == producer_ids.tag_of("cluster-74")

    with pytest.raises(TagCollision, match=r"'cluster-50' and 'cluster-74'.*rename one"):
        producer_ids.spaces(["main", "cluster-50", "cluster-74"])


def test_distinct_names_get_distinct_spaces():
    spaces = producer_ids.spaces(["main", "failover", "dr-east"])

    assert len({space.tag for space in spaces.values()}) == 3


def test_tagged_ids_stay_positive_int64():
    assert struct.pack(">q", MAIN.to_client((1 << 48) - 1))
