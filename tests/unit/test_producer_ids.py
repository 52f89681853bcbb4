"""Producer ids tagged with the cluster and generation that issued them, and their batches."""

from __future__ import annotations

import os
import random
import struct

import pytest
from kafka.record._crc32c import crc as kafka_python_crc32c
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from failover_gateway.codec import crc32c, errors, record_batches
from failover_gateway.routing import producer_ids
from failover_gateway.routing.producer_ids import ProducerIdCodec


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


def codec(cluster: str, generation: int = 7) -> ProducerIdCodec:
    return producer_ids.codecs(["main", "failover"], generation)[cluster]


def test_tags_are_the_clusters_positions_in_name_order_on_every_pod():
    tags = {name: c.tag for name, c in producer_ids.codecs(["main", "failover", "dr"]).items()}

    assert tags == {"dr": 1, "failover": 2, "main": 3}


def test_an_id_a_cluster_issued_goes_to_clients_tagged_and_comes_back_real():
    seen = codec("main").to_client(1234)

    assert seen != 1234 and seen > 0
    assert codec("main").current_real(seen) == 1234


def test_an_id_another_cluster_issued_is_stale():
    assert codec("failover").current_real(codec("main").to_client(1)) is None


def test_an_id_from_an_earlier_generation_of_the_same_cluster_is_stale():
    issued = codec("main", generation=7).to_client(1)

    assert codec("main", generation=8).current_real(issued) is None


def test_an_untagged_id_from_before_tagging_is_stale():
    assert codec("main").current_real(1) is None


def test_no_producer_id_stays_none():
    assert codec("main").to_client(-1) == -1 and codec("main").current_real(-1) == -1


def test_an_id_too_large_to_tag_is_given_as_it_is_and_stale_at_every_use():
    huge = 1 << 50

    assert codec("main").to_client(huge) == huge
    assert codec("main").current_real(huge) is None


def test_an_adopted_id_is_the_same_on_every_pod_and_never_one_a_cluster_issues():
    stale = codec("main").to_client(5)

    first, second = codec("failover").adopted(stale), codec("failover").adopted(stale)

    assert first == second >= producer_ids.ADOPTED_FLOOR
    assert first < (1 << 63)


def test_adopted_ids_differ_by_cluster_generation_and_client_id():
    stale = codec("main").to_client(5)
    adopted = {
        codec("failover", 7).adopted(stale),
        codec("failover", 8).adopted(stale),
        codec("main", 7).adopted(stale),
        codec("failover", 7).adopted(codec("main").to_client(6)),
    }

    assert len(adopted) == 4


def test_the_generation_changes_with_the_epoch_and_with_every_change_within_one():
    generations = {
        producer_ids.generation(epoch, changes) for epoch in (4, 5) for changes in (0, 1, 2)
    }

    assert len(generations) == 6
    assert producer_ids.generation(4, 0) == producer_ids.generation(4, 0)


def test_more_clusters_than_tags_are_refused():
    with pytest.raises(producer_ids.TooManyClusters, match="at most 63"):
        producer_ids.codecs(f"c{n}" for n in range(64))


def test_tagged_ids_stay_positive_int64():
    biggest = codec("main").to_client(producer_ids.REAL_MASK)
    assert 0 < biggest < (1 << 63)
    assert struct.pack(">q", biggest)
