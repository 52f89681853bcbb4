"""The transactional id of every transactional write request, read from the frame alone."""

from __future__ import annotations

from typing import Any

import pytest

from failover_gateway.codec import headers, schema, specs, transactional

PRODUCE, ADD_PARTITIONS, ADD_OFFSETS, TXN_OFFSET_COMMIT, END_TXN, FETCH = 0, 24, 25, 28, 26, 1


def request_frame(api_key: int, version: int, body: dict[str, Any]) -> bytes:
    """Bytes after the size prefix, as the gateway reads them."""
    spec = specs.request(api_key)
    assert spec is not None
    return headers.encode_request_header(api_key, version, 5, "c") + schema.encode(
        spec, version, body
    )


def body(api_key: int, version: int, txn: str | None) -> dict[str, Any]:
    if api_key == PRODUCE:
        return {"TransactionalId": txn, "Acks": -1, "TimeoutMs": 1000, "TopicData": []}
    if api_key == ADD_PARTITIONS:
        return {
            "V3AndBelowTransactionalId": txn,
            "V3AndBelowProducerId": 7,
            "V3AndBelowProducerEpoch": 0,
            "V3AndBelowTopics": [],
        }
    if api_key == ADD_OFFSETS:
        return {"TransactionalId": txn, "ProducerId": 7, "ProducerEpoch": 0, "GroupId": "g"}
    return {
        "TransactionalId": txn,
        "GroupId": "g",
        "ProducerId": 7,
        "ProducerEpoch": 0,
        "GenerationId": -1,
        "MemberId": "",
        "GroupInstanceId": None,
        "Topics": [],
    }


CASES = [
    *((PRODUCE, v) for v in range(3, 13)),
    *((ADD_PARTITIONS, v) for v in range(0, 4)),
    *((ADD_OFFSETS, v) for v in range(0, 5)),
    *((TXN_OFFSET_COMMIT, v) for v in range(0, 5)),
]


@pytest.mark.parametrize(("api_key", "version"), CASES)
def test_the_transactional_id_is_read_from_every_transactional_write(
    api_key: int, version: int
) -> None:
    frame = request_frame(api_key, version, body(api_key, version, "orders-txn-é"))
    assert transactional.transactional_id(frame) == "orders-txn-é"


def test_a_produce_without_a_transactional_id_has_none() -> None:
    assert transactional.transactional_id(request_frame(PRODUCE, 9, body(PRODUCE, 9, None))) is None


def test_requests_that_carry_no_transactional_id_say_so() -> None:
    old_produce = headers.encode_request_header(PRODUCE, 2, 5, "c") + bytes.fromhex(
        "ffff 00007530 00000000"
    )
    assert transactional.transactional_id(old_produce) is None
    end_txn = {"TransactionalId": "t", "ProducerId": 7, "ProducerEpoch": 0, "Committed": True}
    assert transactional.transactional_id(request_frame(END_TXN, 3, end_txn)) is None
