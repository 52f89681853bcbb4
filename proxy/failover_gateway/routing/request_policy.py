"""What the gateway needs to know about each request, and which requests it refuses.

Why it exists: the connection pump must, for every request frame, record what awaits a response
(Produce with acks=0 gets none) and refuse requests the gateway cannot serve safely: an api key or
version above what the gateway advertised in ApiVersions could carry broker addresses the gateway
does not rewrite. Reads only the fixed header fields and, for Produce, ``acks``.
"""

from __future__ import annotations

from dataclasses import dataclass

from failover_gateway.codec import errors, headers, primitives, produce, schema, specs
from failover_gateway.routing import (
    address_rewriting,
    api_versions,
    leader_epochs,
    producer_identity,
    topic_ids,
)

PRODUCE = 0
FETCH = 1
NO_PRODUCER_ID = -1
SASL_HANDSHAKE = 17
API_VERSIONS = 18

_IDS_BYTES = 8


class RequestRefused(Exception):
    """The client sent something the gateway will not forward; its connection is closed."""


# Not frozen (one per frame; a frozen one builds 4x slower): treat as read-only.
@dataclass(slots=True)
class InspectedRequest:
    api_key: int
    api_version: int
    correlation_id: int
    expects_response: bool
    # ApiVersions newer than the gateway can read: answered by the gateway itself (KIP-511 v0
    # error naming the versions it takes), never forwarded.
    answer_locally: bool = False
    # SaslHandshake v0 is followed by raw SASL tokens without Kafka headers; this many server
    # tokens end the exchange for the mechanism the client asked for.
    raw_sasl_rounds: int = 0
    # Carries producer ids (:mod:`.producer_identity`), topic ids (:mod:`.topic_ids`) or leader
    # epochs (:mod:`.leader_epochs`): held whole and translated, or answered by the gateway. A
    # Produce is held only when its batches carry an id (idempotent or transactional producers),
    # or when the prefix does not show.
    held: bool = False


def inspect_request(prefix: memoryview, *, complete: bool) -> InspectedRequest | None:
    """Read a request's ids (and Produce's acks) from the start of its frame body.

    Returns None when ``prefix`` is too short to decide and more of the frame would help.
    """
    if len(prefix) < _IDS_BYTES:
        if complete:
            raise RequestRefused(f"request frame of {len(prefix)} bytes is shorter than a header")
        return None
    api_key, api_version, correlation_id = headers.peek_request_ids(prefix)
    if api_key == API_VERSIONS and api_version > api_versions.GATEWAY_MAX_VERSIONS[API_VERSIONS]:
        return InspectedRequest(api_key, api_version, correlation_id, True, answer_locally=True)
    _check_supported(api_key, api_version)
    expects_response = True
    if api_key == SASL_HANDSHAKE and api_version == 0:
        return _sasl_handshake_v0(prefix, correlation_id, complete=complete)
    held = (
        api_key in producer_identity.REQUESTS_WITH_PRODUCER_IDS
        or topic_ids.carries_topic_ids("request", api_key, api_version)
        or leader_epochs.carries_leader_epochs("request", api_key, api_version)
    )
    if api_key == PRODUCE:
        try:
            expects_response = produce.read_acks(prefix) != 0
        except errors.CodecError as error:
            if complete:
                raise RequestRefused(f"malformed Produce v{api_version} request: {error}") from None
            return None
        held = produce.first_producer_id(prefix) != NO_PRODUCER_ID
    return InspectedRequest(api_key, api_version, correlation_id, expects_response, held=held)


# Server tokens of one raw (handshake v0) exchange: PLAIN answers once; SCRAM answers the client's
# first and final messages. Other mechanisms cannot be followed without understanding them.
_RAW_SASL_ROUNDS = {"PLAIN": 1, "SCRAM-SHA-256": 2, "SCRAM-SHA-512": 2}


def _sasl_handshake_v0(
    prefix: memoryview, correlation_id: int, *, complete: bool
) -> InspectedRequest | None:
    try:
        header = headers.parse_request_header(prefix)
        mechanism, _ = primitives.read_nullable_string(prefix, header.body_offset)
    except errors.CodecError as error:
        if complete:
            raise RequestRefused(f"malformed SaslHandshake v0 request: {error}") from None
        return None
    rounds = _RAW_SASL_ROUNDS.get(mechanism or "")
    if rounds is None:
        raise RequestRefused(
            f"SaslHandshake v0 with mechanism {mechanism!r} cannot be passed through; use "
            f"SaslHandshake v1 + SaslAuthenticate, or one of {', '.join(_RAW_SASL_ROUNDS)}"
        )
    return InspectedRequest(SASL_HANDSHAKE, 0, correlation_id, True, raw_sasl_rounds=rounds)


def _check_supported(api_key: int, api_version: int) -> None:
    if api_key == API_VERSIONS:
        return  # any version: the broker answers unsupported ones with a v0 error body
    highest = api_versions.GATEWAY_MAX_VERSIONS.get(api_key)
    if highest is None:
        raise RequestRefused(
            f"api key {api_key} is not forwarded by the gateway (not in its ApiVersions answer)"
        )
    if not 0 <= api_version <= highest:
        raise RequestRefused(
            f"api key {api_key} version {api_version} is above the gateway's maximum {highest}"
        )


def unsupported_api_versions_answer(correlation_id: int) -> bytes:
    """The framed answer to an ApiVersions request above the gateway's version (header v0)."""
    payload = headers.encode_response_header(correlation_id, API_VERSIONS, 0)
    payload += api_versions.unsupported_version_body()
    return len(payload).to_bytes(4, "big") + payload


def empty_fetch_answer(api_version: int, correlation_id: int) -> bytes:
    """A framed Fetch answer with no data and no error, closing any fetch session.

    What a fetch still waiting on the old cluster gets when its connection moves to another
    cluster: the client learns nothing new and fetches again, on the new cluster, from its own
    positions. ``SessionId`` 0 tells a client with an incremental session (KIP-227) that the
    session is over, so its next fetch is a full one, which the new cluster can serve."""
    spec = specs.response(FETCH)
    assert spec is not None
    body = {"ThrottleTimeMs": 0, "ErrorCode": 0, "SessionId": 0, "Responses": []}
    payload = headers.encode_response_header(correlation_id, FETCH, api_version)
    payload += schema.encode(spec, api_version, body)
    return len(payload).to_bytes(4, "big") + payload


def response_needs_rewrite(api_key: int, api_version: int) -> bool:
    """Whether the pump must hold this response whole: ApiVersions (cut to the policy) and every
    response that may name brokers. Produce below v10 and Fetch below v16 stream through."""
    return (
        api_key == API_VERSIONS
        or api_key in producer_identity.RESPONSES_WITH_PRODUCER_IDS
        or address_rewriting.carries_addresses(api_key, api_version)
        or topic_ids.carries_topic_ids("response", api_key, api_version)
        or leader_epochs.carries_leader_epochs("response", api_key, api_version)
    )
