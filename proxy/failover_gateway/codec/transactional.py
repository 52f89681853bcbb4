"""Read the ``transactional_id`` of a transactional write request without decoding the rest.

Why: while writes are fenced for a planned switchover, a write that belongs to a transaction
already open on the fenced cluster may go on, so that the transaction can end and the cluster's
last stable offset reach its end; a write that would begin a new transaction is held. The
gateway asks the cluster about the request's transactional id, which is the first field of the
body of every request concerned: Produce (v3+), AddPartitionsToTxn (v0-3, the versions clients
send; v4+ batches transactions for brokers), AddOffsetsToTxn and TxnOffsetCommit. A classic
nullable string, or a compact one in flexible versions.
"""

from __future__ import annotations

from failover_gateway.codec import headers, primitives
from failover_gateway.codec.primitives import Buffer

PRODUCE, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN, TXN_OFFSET_COMMIT = 0, 24, 25, 28
_FIRST_VERSION = {PRODUCE: 3, ADD_PARTITIONS_TO_TXN: 0, ADD_OFFSETS_TO_TXN: 0, TXN_OFFSET_COMMIT: 0}
_LAST_CLIENT_VERSION = {ADD_PARTITIONS_TO_TXN: 3}
_FLEXIBLE_HEADER = 2


def transactional_id(frame: Buffer, header: headers.RequestHeader | None = None) -> str | None:
    """The transactional id of a request frame (bytes after the size prefix); None when the
    request carries none (an idempotent or plain Produce, another api key, a broker's batch)."""
    header = header or headers.parse_request_header(frame)
    key, version = header.api_key, header.api_version
    first = _FIRST_VERSION.get(key)
    if first is None or version < first or version > _LAST_CLIENT_VERSION.get(key, version):
        return None
    flexible = headers.request_header_version(key, version) >= _FLEXIBLE_HEADER
    read = primitives.read_compact_nullable_string if flexible else primitives.read_nullable_string
    value, _ = read(frame, header.body_offset)
    return value
