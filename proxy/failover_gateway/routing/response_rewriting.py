"""Turning a broker's response frame into the one the client may see.

Why it exists: the pump hands over whole frames of the few responses that carry broker addresses
(Metadata, FindCoordinator, DescribeCluster) or the broker's API versions (ApiVersions). This
module splits off the response header (whose version depends on the api), calls the rewrite, and
frames the result again. Everything outside the rewritten fields is kept byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable

from failover_gateway.codec import headers
from failover_gateway.routing import address_rewriting, api_versions

Advertise = Callable[[int, str, int], tuple[str, int]]
API_VERSIONS = 18


def rewrite_frame(api_key: int, api_version: int, frame: bytes, advertise: Advertise) -> bytes:
    """``frame`` includes its 4-byte size prefix; so does the result."""
    body_view = memoryview(frame)[4:]
    header = headers.parse_response_header(body_view, api_key, api_version)
    body = bytes(body_view[header.body_offset :])
    if api_key == API_VERSIONS:
        new_body = api_versions.rewrite_api_versions_response(api_version, body)
    else:
        result = address_rewriting.rewrite_response(api_key, api_version, body, advertise)
        if result is None:
            return frame
        new_body = result.body
    if new_body == body:
        return frame
    head = bytes(body_view[: header.body_offset])
    return (len(head) + len(new_body)).to_bytes(4, "big") + head + new_body
