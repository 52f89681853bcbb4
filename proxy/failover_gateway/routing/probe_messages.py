"""The gateway's own Metadata request and the broker list read from its answer.

Why it exists: probes ask each cluster where its brokers are. The request and the answer are
encoded and decoded with the same spec-driven codec as everything else, at one fixed version
every supported broker speaks (Kafka 4 brokers accept Metadata v0-13; v4 is the oldest that
can ask for no topics at all, so a probe stays cheap on clusters with many topics).
"""

from __future__ import annotations

from failover_gateway.codec import errors, headers, schema, specs
from failover_gateway.routing.broker_directory import BrokerAddress

METADATA = 3
PROBE_VERSION = 4
CLIENT_ID = "kafka-failover-gateway"


class ProbeAnswerInvalid(Exception):
    """The broker's answer to a probe could not be read."""


def metadata_request(correlation_id: int) -> bytes:
    """A framed Metadata v4 request asking for brokers only (an empty topic list)."""
    header = headers.encode_request_header(METADATA, PROBE_VERSION, correlation_id, CLIENT_ID)
    body = schema.encode(
        specs.message("MetadataRequest"),
        PROBE_VERSION,
        {"Topics": [], "AllowAutoTopicCreation": False},
    )
    payload = header + body
    return len(payload).to_bytes(4, "big") + payload


def brokers_from_metadata_response(body: bytes, correlation_id: int) -> list[BrokerAddress]:
    """Read the broker list from an unframed Metadata v4 response."""
    try:
        header = headers.parse_response_header(body, METADATA, PROBE_VERSION)
        if header.correlation_id != correlation_id:
            raise ProbeAnswerInvalid(
                f"answer has correlation id {header.correlation_id}, expected {correlation_id}"
            )
        values, _ = schema.decode_prefix(
            specs.message("MetadataResponse"),
            PROBE_VERSION,
            memoryview(body)[header.body_offset :],
            stop_after_field="Brokers",
        )
    except errors.CodecError as error:
        raise ProbeAnswerInvalid(f"unreadable Metadata answer: {error}") from error
    return [BrokerAddress(b["NodeId"], b["Host"], b["Port"]) for b in values["Brokers"]]
