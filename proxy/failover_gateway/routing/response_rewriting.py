"""Turning a broker's response frame into the one the client may see.

Why it exists: the pump hands over whole frames of the responses that may carry broker addresses
(Metadata, FindCoordinator, DescribeCluster, and the KIP-951 versions of Produce, Fetch,
ShareFetch and ShareAcknowledge), the broker's API versions (ApiVersions), or a partition's
leader epoch (Metadata, ListOffsets, OffsetFetch, DescribeTopicPartitions). This module splits
off the response header (whose version depends on the api), calls the rewrite, and frames the
result again. Everything outside the rewritten fields is kept byte for byte, and a frame with
nothing to rewrite (a Fetch response without leader hints) is returned as the same object,
never copied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from failover_gateway.codec import headers
from failover_gateway.codec.primitives import Buffer
from failover_gateway.routing import (
    address_rewriting,
    api_versions,
    leader_epochs,
    producer_identity,
    topic_ids,
)
from failover_gateway.routing.producer_ids import ProducerIdCodec

Advertise = Callable[[int, str, int], tuple[str, int]]
API_VERSIONS = 18


def rewrite_frame(
    api_key: int,
    api_version: int,
    frame: Buffer,
    advertise: Advertise,
    *,
    other_clusters: Sequence[api_versions.ClusterOffer] = (),
    producer_ids: ProducerIdCodec | None = None,
    topics: tuple[topic_ids.TopicIdTable, str] | None = None,
) -> Buffer:
    """``frame`` includes its 4-byte size prefix; so does the result.

    ``other_clusters`` are what the other configured clusters offer: an ApiVersions answer is
    cut to what every one of them supports too (:func:`api_versions.rewrite_api_versions_response`).
    ``producer_ids`` is the answering cluster's: producer ids in answers become tagged ids
    (:mod:`.producer_identity`). ``topics`` (the pod's table and the answering cluster): topic ids
    become client-facing ones (:mod:`.topic_ids`), before any other rewrite of the same frame.
    Partition leader epochs are shown as unknown first of all (:mod:`.leader_epochs`).
    """
    if leader_epochs.carries_leader_epochs("response", api_key, api_version):
        frame = leader_epochs.hide_in_response(api_key, api_version, frame)
    if topics is not None and topic_ids.carries_topic_ids("response", api_key, api_version):
        frame = topic_ids.translate_response(api_key, api_version, frame, *topics)
    if api_key in producer_identity.RESPONSES_WITH_PRODUCER_IDS:
        if producer_ids is None:
            return frame
        return producer_identity.translate_response(api_key, api_version, frame, producer_ids)
    body_view = memoryview(frame)[4:]
    header = headers.parse_response_header(body_view, api_key, api_version)
    body = body_view[header.body_offset :]
    if api_key == API_VERSIONS:
        new_body: Buffer = api_versions.rewrite_api_versions_response(
            api_version, body, other_clusters
        )
        if new_body == body:
            return frame
    else:
        result = address_rewriting.rewrite_response(api_key, api_version, body, advertise)
        if result is None or not result.changed:
            return frame
        new_body = result.body
    head = body_view[: header.body_offset]
    return b"".join(((len(head) + len(new_body)).to_bytes(4, "big"), head, new_body))
