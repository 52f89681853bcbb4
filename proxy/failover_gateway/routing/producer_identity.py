"""Translating producer ids between clients and clusters: current, adopted, or refused.

Why it exists: see :mod:`.producer_ids` for why clients get tagged ids. This module applies the
translation to frames: every field the specs mark ``"entityType": "producerId"`` in the requests
and responses that carry one, and the producer id in the record batches of Produce requests.

* Responses (InitProducerId, EndTxn v5+, DescribeProducers, DescribeTransactions,
  ListTransactions): real ids become tagged ids.
* Produce from an idempotent producer: a current id becomes the real one; a stale one is written
  under its adopted id (the producer notices nothing).
* InitProducerId requests: a current id becomes the real one; a stale one (a producer bumping the
  epoch of an id from before the switch, KIP-360) becomes -1 with epoch -1: the cluster issues a
  fresh id (idempotent producers) or the transactional id's own (transactional producers), as
  at a first start.
* Transactional Produce, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn: a
  current id becomes the real one; a stale id is never forwarded. Its transaction was opened on
  another cluster (or before a switch away and back): nothing may be added to it here, or it
  would end half on each cluster. The gateway answers the request itself with an error every
  client family handles by aborting the transaction and re-initialising (see the README for each
  family's path): UNKNOWN_PRODUCER_ID (abortable, with an epoch bump, since KIP-360), and
  ILLEGAL_GENERATION for TxnOffsetCommit, whose handlers (Java 3.7 and 4.x, librdkafka) take
  UNKNOWN_PRODUCER_ID as unexpected and fatal but a stale group generation as abortable. The old
  cluster aborts its half when the transaction times out.
* ListTransactions ``ProducerIdFilters``: current ids become real ones; stale ones are dropped.

Pure: frames in, frames out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from failover_gateway.codec import errors, headers, record_batches, schema, skipping, specs
from failover_gateway.codec.primitives import Buffer
from failover_gateway.routing.producer_ids import NO_PRODUCER_ID, ProducerIdCodec

PRODUCE, INIT_PRODUCER_ID, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN = 0, 22, 24, 25
END_TXN, TXN_OFFSET_COMMIT, DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS = 26, 28, 61, 65
LIST_TRANSACTIONS = 66
PRODUCER_ID = "producerId"
RECORDS_PATH = ("TopicData", "PartitionData", "Records")

UNKNOWN_PRODUCER_ID, ILLEGAL_GENERATION = 59, 22
STALE_TRANSACTION_ERROR = UNKNOWN_PRODUCER_ID
"""The error a transactional request with a stale producer id gets: every client family treats
UNKNOWN_PRODUCER_ID in a transaction as abortable, aborts, and bumps its epoch with an
InitProducerId carrying the old id, which the gateway turns into a first-time request."""
STALE_OFFSET_COMMIT_ERROR = ILLEGAL_GENERATION
REFUSED_LOG_START_OFFSET = -2
STALE_TRANSACTION_MESSAGE = (
    "this transaction began on another cluster than the one the gateway serves now: "
    "abort it and begin again"
)

REQUESTS_WITH_PRODUCER_IDS = frozenset(
    {PRODUCE, INIT_PRODUCER_ID, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, END_TXN,
     TXN_OFFSET_COMMIT, LIST_TRANSACTIONS}
)  # fmt: skip
RESPONSES_WITH_PRODUCER_IDS = frozenset(
    {INIT_PRODUCER_ID, END_TXN, DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS}
)


# Not frozen (one per frame; a frozen one builds 4x slower): treat as read-only.
@dataclass(slots=True)
class RequestOutcome:
    """What to do with a request: forward ``frame`` (maybe rewritten), or answer it locally."""

    frame: Buffer
    answer: bytes | None = None  # a whole response frame the gateway sends instead
    stale_id: int | None = None  # the stale producer id refused or adopted, for the log
    adopted: bool = False


def translate_request(
    api_key: int, frame: bytes | bytearray, ids: ProducerIdCodec
) -> RequestOutcome:
    """``frame`` includes its size prefix; so do the frames in the outcome."""
    view = memoryview(frame)[4:]
    header = headers.parse_request_header(view)
    if api_key == PRODUCE:
        return _produce(header, frame, ids)
    spec = specs.request(api_key)
    assert spec is not None
    request_body = view[header.body_offset :]
    values, end = schema.decode_tolerant(spec, header.api_version, request_body)
    seen = list(_ids_in(values, spec.fields, header.api_version))
    stale = next((id_ for id_ in seen if ids.current_real(id_) is None), None)
    if stale is not None and api_key not in (INIT_PRODUCER_ID, LIST_TRANSACTIONS):
        return RequestOutcome(frame, answer=_refusal(api_key, header, values), stale_id=stale)
    if not seen or all(id_ < 0 for id_ in seen):
        return RequestOutcome(frame)
    if api_key == INIT_PRODUCER_ID and stale is not None:
        values["ProducerId"], values["ProducerEpoch"] = NO_PRODUCER_ID, -1
    else:
        _map_ids(values, spec.fields, header.api_version, ids.current_real)
    body = schema.encode(spec, header.api_version, values) + bytes(request_body[end:])
    return RequestOutcome(_reframed(view[: header.body_offset], body), stale_id=stale)


def translate_response(
    api_key: int, api_version: int, frame: Buffer, ids: ProducerIdCodec
) -> Buffer:
    """Real producer ids in a response become the ids clients are given."""
    view = memoryview(frame)[4:]
    header = headers.parse_response_header(view, api_key, api_version)
    spec = specs.response(api_key)
    assert spec is not None
    values = schema.decode(spec, api_version, view[header.body_offset :])
    if not any(seen >= 0 for seen in _ids_in(values, spec.fields, api_version)):
        return frame
    _map_ids(values, spec.fields, api_version, ids.to_client)
    return _reframed(view[: header.body_offset], schema.encode(spec, api_version, values))


def _produce(
    header: headers.RequestHeader, frame: bytes | bytearray, ids: ProducerIdCodec
) -> RequestOutcome:
    spec = specs.message("ProduceRequest")
    body_at = 4 + header.body_offset
    body = memoryview(frame)[body_at:]
    spans = [
        (start + body_at, end + body_at)
        for start, end in skipping.value_spans(spec, header.api_version, body, RECORDS_PATH)
    ]
    seen = record_batches.producer_ids(frame, spans)
    if not seen or seen == {NO_PRODUCER_ID}:
        return RequestOutcome(frame)
    if len(seen) > 1:
        raise errors.MalformedFrame(f"one Produce request with producer ids {sorted(seen)}")
    (client_id,) = seen
    real = ids.current_real(client_id)
    stale = None if real is not None else client_id
    if real is None and record_batches.is_transactional(frame, spans):
        values, _ = schema.decode_tolerant(spec, header.api_version, body)
        return RequestOutcome(frame, answer=_refusal(PRODUCE, header, values), stale_id=stale)
    if real is None:
        real = ids.adopted(client_id)
    rewritten = frame if isinstance(frame, bytearray) else bytearray(frame)
    record_batches.replace_producer_id(rewritten, spans, real)
    return RequestOutcome(rewritten, stale_id=stale, adopted=stale is not None)


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
                        "ErrorCode": STALE_TRANSACTION_ERROR,
                        "BaseOffset": -1,
                        "LogAppendTimeMs": -1,
                        # Not -1: the Java producer retries an UNKNOWN_PRODUCER_ID whose log
                        # start offset is -1 ("not known yet") forever, with the same stale id.
                        "LogStartOffset": REFUSED_LOG_START_OFFSET,
                        "RecordErrors": [],
                        "ErrorMessage": STALE_TRANSACTION_MESSAGE,
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
                    {"PartitionIndex": index, "PartitionErrorCode": STALE_TRANSACTION_ERROR}
                    for index in topic["Partitions"]
                ],
            }
            for topic in topics or []
        ]

    return {
        "ThrottleTimeMs": 0,
        "ErrorCode": STALE_TRANSACTION_ERROR,
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
                    {"PartitionIndex": p["PartitionIndex"], "ErrorCode": STALE_OFFSET_COMMIT_ERROR}
                    for p in topic["Partitions"]
                ],
            }
            for topic in request["Topics"]
        ],
    }


def _error_only(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "ThrottleTimeMs": 0,
        "ErrorCode": STALE_TRANSACTION_ERROR,
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
