"""Translating producer ids between clients and clusters, and refusing foreign ones.

Why it exists: see :mod:`.producer_ids` for why clients get tagged ids. This module applies the
translation to frames: every field the specs mark ``"entityType": "producerId"`` in the requests
and responses that carry one, and the producer id in the record batches of Produce requests.

* Responses (InitProducerId, EndTxn v5+, DescribeProducers, DescribeTransactions,
  ListTransactions): real ids become tagged ids.
* InitProducerId requests: a tagged id of this cluster becomes the real one; a foreign id (a
  producer bumping the epoch of an id another cluster issued, KIP-360) becomes -1 with epoch
  -1: the cluster then issues a fresh id (idempotent producers) or returns the transactional
  id's own (transactional producers), as for a first start.
* Produce, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn requests: a tagged id
  of this cluster becomes the real one; a foreign id is never forwarded. The gateway answers the
  request itself with :data:`FOREIGN_PRODUCER_ERROR`, which every client family handles by
  fetching a new producer id (see the README for each family's path).
* ListTransactions ``ProducerIdFilters``: tagged ids become real ones; foreign ones are dropped.

Pure: frames in, frames out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from failover_gateway.codec import headers, record_batches, schema, skipping, specs
from failover_gateway.codec.primitives import Buffer
from failover_gateway.routing.producer_ids import NO_PRODUCER_ID, ProducerIdSpace

PRODUCE, INIT_PRODUCER_ID, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN = 0, 22, 24, 25
END_TXN, TXN_OFFSET_COMMIT, DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS = 26, 28, 61, 65
LIST_TRANSACTIONS = 66
PRODUCER_ID = "producerId"
RECORDS_PATH = ("TopicData", "PartitionData", "Records")

UNKNOWN_PRODUCER_ID = 59
FOREIGN_PRODUCER_ERROR = UNKNOWN_PRODUCER_ID
"""The error a request with a foreign producer id gets. Every client family treats
UNKNOWN_PRODUCER_ID as "the cluster lost this producer's state": idempotent producers fetch a new
id (KIP-360 epoch bump: an InitProducerId that carries the old id, which the gateway turns into a
first-time request) and resend; transactional producers abort the transaction and re-initialise."""
FOREIGN_PRODUCER_MESSAGE = (
    "producer id issued by another cluster than the one this gateway serves now: "
    "fetch a new producer id"
)

REQUESTS_WITH_PRODUCER_IDS = frozenset(
    {PRODUCE, INIT_PRODUCER_ID, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, END_TXN,
     TXN_OFFSET_COMMIT, LIST_TRANSACTIONS}
)  # fmt: skip
RESPONSES_WITH_PRODUCER_IDS = frozenset(
    {INIT_PRODUCER_ID, END_TXN, DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS}
)


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What to do with a request: forward ``frame`` (maybe rewritten), or answer it locally."""

    frame: Buffer
    answer: bytes | None = None  # a whole response frame the gateway sends instead
    foreign_id: int | None = None  # the foreign producer id that was refused, for the log


def translate_request(
    api_key: int, frame: bytes | bytearray, space: ProducerIdSpace
) -> RequestOutcome:
    """``frame`` includes its size prefix; so do the frames in the outcome."""
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    if api_key == PRODUCE:
        return _produce(header, frame, space)
    spec = specs.request(api_key)
    assert spec is not None
    values = schema.decode(spec, header.api_version, view[header.body_offset :])
    ids = list(_ids_in(values, spec.fields, header.api_version))
    foreign = next((seen for seen in ids if space.is_foreign(seen)), None)
    if foreign is not None and api_key not in (INIT_PRODUCER_ID, LIST_TRANSACTIONS):
        answer = _refusal(api_key, header, values)
        return RequestOutcome(frame, answer=answer, foreign_id=foreign)
    if not ids or all(seen < 0 for seen in ids):
        return RequestOutcome(frame)
    if api_key == INIT_PRODUCER_ID and foreign is not None:
        values["ProducerId"], values["ProducerEpoch"] = NO_PRODUCER_ID, -1
    else:
        _map_ids(values, spec.fields, header.api_version, space.to_cluster)
    return RequestOutcome(
        _reframed(view[: header.body_offset], schema.encode(spec, header.api_version, values))
    )


def translate_response(
    api_key: int, api_version: int, frame: Buffer, space: ProducerIdSpace
) -> Buffer:
    """Real producer ids in a response become the ids clients are given."""
    view = memoryview(frame)[4:]
    header = headers.parse_response_header(view, api_key, api_version)
    spec = specs.response(api_key)
    assert spec is not None
    values = schema.decode(spec, api_version, view[header.body_offset :])
    if not any(seen >= 0 for seen in _ids_in(values, spec.fields, api_version)):
        return frame
    _map_ids(values, spec.fields, api_version, space.to_client)
    return _reframed(view[: header.body_offset], schema.encode(spec, api_version, values))


def _produce(
    header: headers.RequestHeader, frame: bytes | bytearray, space: ProducerIdSpace
) -> RequestOutcome:
    spec = specs.message("ProduceRequest")
    body_at = 4 + header.body_offset
    spans = skipping.value_spans(
        spec, header.api_version, memoryview(frame)[body_at:], RECORDS_PATH
    )
    spans = [(start + body_at, end + body_at) for start, end in spans]
    ids = record_batches.producer_ids(frame, spans)
    if not ids or ids == {NO_PRODUCER_ID}:
        return RequestOutcome(frame)
    real = {seen: space.to_cluster(seen) for seen in ids}
    foreign = next((seen for seen, mapped in real.items() if mapped is None), None)
    if foreign is not None or len(ids) > 1:
        values = schema.decode(spec, header.api_version, memoryview(frame)[body_at:])
        return RequestOutcome(frame, answer=_refusal(PRODUCE, header, values), foreign_id=foreign)
    real_id = real[next(iter(ids))]
    assert real_id is not None
    rewritten = frame if isinstance(frame, bytearray) else bytearray(frame)
    record_batches.replace_producer_id(rewritten, spans, real_id)
    return RequestOutcome(rewritten)


def _ids_in(values: Mapping[str, Any], fields: tuple[specs.FieldSpec, ...], version: int) -> Any:
    for field in fields:
        value = values.get(field.name)
        if value is None or not field.present_in(version):
            continue
        if field.entity_type == PRODUCER_ID:
            yield from (value if isinstance(value, list) else [value])
        elif field.is_struct:
            for item in value if isinstance(value, list) else [value]:
                yield from _ids_in(item, field.fields, version)


def _map_ids(
    values: dict[str, Any],
    fields: tuple[specs.FieldSpec, ...],
    version: int,
    mapping: Callable[[int], int | None],
) -> None:
    for field in fields:
        value = values.get(field.name)
        if value is None or not field.present_in(version):
            continue
        if field.entity_type == PRODUCER_ID and isinstance(value, list):
            values[field.name] = [m for seen in value if (m := mapping(seen)) is not None]
        elif field.entity_type == PRODUCER_ID:
            mapped = mapping(value)
            values[field.name] = NO_PRODUCER_ID if mapped is None else mapped
        elif field.is_struct:
            for item in value if isinstance(value, list) else [value]:
                _map_ids(item, field.fields, version, mapping)


def _reframed(head: Buffer, body: bytes) -> bytes:
    return b"".join(((len(head) + len(body)).to_bytes(4, "big"), head, body))


def _refusal(api_key: int, header: headers.RequestHeader, request: dict[str, Any]) -> bytes:
    """The response the cluster would give if it had never heard of this producer id."""
    spec = specs.response(api_key)
    assert spec is not None
    body = schema.encode(spec, header.api_version, _REFUSALS[api_key](request))
    head = headers.encode_response_header(header.correlation_id, api_key, header.api_version)
    return _reframed(head, body)


def _produce_refusal(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "ThrottleTimeMs": 0,
        "Responses": [
            {
                "Name": topic.get("Name", ""),
                "TopicId": topic.get("TopicId"),
                "PartitionResponses": [
                    {
                        "Index": partition["Index"],
                        "ErrorCode": FOREIGN_PRODUCER_ERROR,
                        "BaseOffset": -1,
                        "LogAppendTimeMs": -1,
                        "LogStartOffset": -1,
                        "RecordErrors": [],
                        "ErrorMessage": FOREIGN_PRODUCER_MESSAGE,
                    }
                    for partition in topic["PartitionData"]
                ],
            }
            for topic in request["TopicData"]
        ],
    }


def _add_partitions_refusal(request: dict[str, Any]) -> dict[str, Any]:
    def partitions(topics: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [
            {
                "Name": topic["Name"],
                "ResultsByPartition": [
                    {"PartitionIndex": index, "PartitionErrorCode": FOREIGN_PRODUCER_ERROR}
                    for index in topic["Partitions"]
                ],
            }
            for topic in topics or []
        ]

    return {
        "ThrottleTimeMs": 0,
        "ErrorCode": FOREIGN_PRODUCER_ERROR,
        "ResultsByTopicV3AndBelow": partitions(request.get("V3AndBelowTopics")),
        "ResultsByTransaction": [
            {"TransactionalId": txn["TransactionalId"], "TopicResults": partitions(txn["Topics"])}
            for txn in request.get("Transactions") or []
        ],
    }


def _txn_offset_commit_refusal(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "ThrottleTimeMs": 0,
        "Topics": [
            {
                "Name": topic["Name"],
                "Partitions": [
                    {"PartitionIndex": p["PartitionIndex"], "ErrorCode": FOREIGN_PRODUCER_ERROR}
                    for p in topic["Partitions"]
                ],
            }
            for topic in request["Topics"]
        ],
    }


def _error_only(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "ThrottleTimeMs": 0,
        "ErrorCode": FOREIGN_PRODUCER_ERROR,
        "ProducerId": NO_PRODUCER_ID,
        "ProducerEpoch": -1,
    }


_REFUSALS: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    PRODUCE: _produce_refusal,
    ADD_PARTITIONS_TO_TXN: _add_partitions_refusal,
    ADD_OFFSETS_TO_TXN: _error_only,
    END_TXN: _error_only,
    TXN_OFFSET_COMMIT: _txn_offset_commit_refusal,
}
