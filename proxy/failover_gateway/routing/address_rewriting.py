"""Replace real broker addresses with gateway addresses in the responses that carry them.

Why: a client must only ever learn gateway addresses, or it will connect to Kafka directly and
never follow a switch. The responses the gateway forwards that carry broker addresses:

* Metadata (``Brokers``), FindCoordinator (one node in v0-3, ``Coordinators`` in v4+) and
  DescribeCluster (``Brokers``);
* KIP-951 leader hints: ``NodeEndpoints`` in Produce v10+ and Fetch v16+ (a top-level *tagged*
  field, sent when a partition's leader moved) and in ShareFetch and ShareAcknowledge (an
  untagged field at the end). Their ``CurrentLeader`` hints name node ids only, and node ids
  pass the gateway unchanged (:mod:`.node_ports` maps each id to a port), so they need no
  rewrite.

Every other address-bearing response is kept out by the version policy
(:mod:`failover_gateway.routing.version_policy`).

Each function takes a response body (the bytes after the response header), asks ``advertise``
for the gateway address of each ``(node_id, real_host, real_port)``, and returns the new body and
the real brokers it saw, so the caller can learn where each node really is.

Only the fields that hold addresses change; everything else, unknown tagged fields included,
is written back byte for byte. Metadata is decoded only up to its broker list (which comes before
the topics, the bulk of a large answer), and the untouched rest of the body is spliced back. The
KIP-951 responses are walked to their end section without decoding partitions or copying record
bytes (:mod:`failover_gateway.codec.skipping`); a body without endpoints (nearly all of them) is
returned as the very buffer it came in.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from failover_gateway.codec import errors, schema, skipping, specs
from failover_gateway.codec.primitives import Buffer

PRODUCE = 0
FETCH = 1
METADATA = 3
FIND_COORDINATOR = 10
DESCRIBE_CLUSTER = 60
SHARE_FETCH = 78
SHARE_ACKNOWLEDGE = 79
NODE_ENDPOINTS = "NodeEndpoints"

REWRITTEN_MAX_VERSIONS: Mapping[int, int] = {
    PRODUCE: 13,
    FETCH: 18,
    METADATA: 13,
    FIND_COORDINATOR: 6,
    DESCRIBE_CLUSTER: 2,
    SHARE_FETCH: 2,
    SHARE_ACKNOWLEDGE: 2,
}
"""Highest version of each address-bearing response this module has been reviewed to rewrite
(``tests/unit/test_api_versions_policy.py`` scans every version up to these for address fields
and checks that this module rewrites each one it finds)."""

_FIRST_BATCHED_FIND_COORDINATOR = 4


class Advertise(Protocol):
    """Maps a real broker ``(node_id, host, port)`` to the ``(host, port)`` clients must use."""

    def __call__(self, node_id: int, host: str, port: int, /) -> tuple[str, int]: ...


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker really is, as the upstream cluster said."""

    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class RewriteResult:
    """The body to send to the client and the real brokers named in the original.

    When ``changed`` is false, ``body`` is the buffer that came in, not a copy."""

    body: Buffer
    real_brokers: tuple[BrokerAddress, ...]
    changed: bool = True


def carries_addresses(api_key: int, api_version: int) -> bool:
    """Whether this response may name brokers, so the pump must hold it whole for a rewrite.

    Produce below v10 and Fetch below v16 cannot (no ``NodeEndpoints``): they stream through."""
    return api_key in _REWRITERS and api_version >= _first_version_with_addresses(api_key)


@functools.cache
def _first_version_with_addresses(api_key: int) -> int:
    if api_key not in _NODE_ENDPOINT_RESPONSES:
        return 0
    spec = specs.message(_NODE_ENDPOINT_RESPONSES[api_key])
    fields = {field.name: field for field in spec.fields}
    versions = fields[NODE_ENDPOINTS].versions
    assert versions is not None, f"{spec.name}.{NODE_ENDPOINTS} has no versions"
    return versions.low


def rewrite_response(
    api_key: int, api_version: int, body: Buffer, advertise: Advertise
) -> RewriteResult | None:
    """Rewrite ``body`` if this api key carries broker addresses; None when the api key never does.

    Raises :class:`~failover_gateway.codec.errors.UnsupportedVersion` for an address-bearing
    response above the version this module handles: forwarding it could leak real addresses.
    """
    rewrite = _REWRITERS.get(api_key)
    if rewrite is None:
        return None
    if api_version > REWRITTEN_MAX_VERSIONS[api_key]:
        raise errors.UnsupportedVersion(
            f"api key {api_key} v{api_version} may carry addresses this gateway cannot rewrite",
            api_key=api_key,
            api_version=api_version,
        )
    return rewrite(api_version, body, advertise)


def rewrite_metadata(api_version: int, body: Buffer, advertise: Advertise) -> RewriteResult:
    """Metadata v0-13: rewrite ``Brokers``, splice the rest (topics, tags) back untouched."""
    spec = specs.message("MetadataResponse")
    head, rest_at = schema.decode_prefix(spec, api_version, body, stop_after_field="Brokers")
    seen = _rewrite_entries(_listed(head, "Brokers", spec), "NodeId", advertise)
    new_head = schema.encode_prefix(spec, api_version, head, stop_after_field="Brokers")
    return RewriteResult(b"".join((new_head, body[rest_at:])), seen)


def rewrite_find_coordinator(api_version: int, body: Buffer, advertise: Advertise) -> RewriteResult:
    """FindCoordinator: the single node of v0-3, or each entry of ``Coordinators`` in v4+.

    Error answers (NodeId -1, Host "") name no broker and are left exactly as they are.
    """
    spec = specs.message("FindCoordinatorResponse")
    values = schema.decode(spec, api_version, body)
    if api_version >= _FIRST_BATCHED_FIND_COORDINATOR:
        found = [e for e in _listed(values, "Coordinators", spec) if _names_a_broker(e)]
    else:
        found = [values] if _names_a_broker(values) else []
    if not found:
        return RewriteResult(body, (), changed=False)
    seen = _rewrite_entries(found, "NodeId", advertise)
    return RewriteResult(schema.encode(spec, api_version, values), seen)


def rewrite_describe_cluster(api_version: int, body: Buffer, advertise: Advertise) -> RewriteResult:
    """DescribeCluster v0-2: rewrite every entry of ``Brokers``."""
    spec = specs.message("DescribeClusterResponse")
    values = schema.decode(spec, api_version, body)
    seen = _rewrite_entries(_listed(values, "Brokers", spec), "BrokerId", advertise)
    return RewriteResult(schema.encode(spec, api_version, values), seen)


def rewrite_node_endpoints(
    api_key: int, api_version: int, body: Buffer, advertise: Advertise
) -> RewriteResult:
    """KIP-951 ``NodeEndpoints`` of Produce, Fetch, ShareFetch and ShareAcknowledge.

    Only the end of the body is decoded: everything before ``NodeEndpoints`` is stepped over by
    length (record sets included) and spliced back untouched."""
    if api_version < _first_version_with_addresses(api_key):
        return RewriteResult(body, (), changed=False)
    spec = specs.message(_NODE_ENDPOINT_RESPONSES[api_key])
    start = skipping.field_offset(spec, api_version, body, NODE_ENDPOINTS)
    tail = schema.decode_suffix(spec, api_version, body, start, from_field=NODE_ENDPOINTS)
    endpoints = tail.get(NODE_ENDPOINTS)
    if not endpoints:
        return RewriteResult(body, (), changed=False)
    seen = _rewrite_entries(endpoints, "NodeId", advertise)
    new_tail = schema.encode_suffix(spec, api_version, tail, from_field=NODE_ENDPOINTS)
    return RewriteResult(b"".join((body[:start], new_tail)), seen)


def _listed(values: Mapping[str, Any], field: str, spec: specs.MessageSpec) -> list[Any]:
    """The broker list ``field``; a null one (length -1, which the codec reads as None whatever
    the spec says, and Kafka's own decoders refuse) is malformed."""
    entries = values[field]
    if entries is None:
        raise errors.MalformedFrame(f"{spec.name}.{field} is null, which the spec does not allow")
    return list(entries)


def _names_a_broker(entry: Mapping[str, Any]) -> bool:
    return bool(entry["ErrorCode"] == 0 and entry["NodeId"] >= 0)


def _rewrite_entries(
    entries: list[dict[str, Any]], id_field: str, advertise: Advertise
) -> tuple[BrokerAddress, ...]:
    seen = []
    for entry in entries:
        if entry["Host"] is None:  # found by tests/fuzz/fuzz_address_rewriting.py
            raise errors.MalformedFrame(f"broker {entry[id_field]} has a null host")
        real = BrokerAddress(entry[id_field], entry["Host"], entry["Port"])
        entry["Host"], entry["Port"] = advertise(real.node_id, real.host, real.port)
        seen.append(real)
    return tuple(seen)


class _Rewriter(Protocol):
    def __call__(
        self, api_version: int, body: Buffer, advertise: Advertise, /
    ) -> RewriteResult: ...


def _node_endpoints(api_key: int) -> _Rewriter:
    def rewrite(api_version: int, body: Buffer, advertise: Advertise) -> RewriteResult:
        return rewrite_node_endpoints(api_key, api_version, body, advertise)

    return rewrite


_NODE_ENDPOINT_RESPONSES: Mapping[int, str] = {
    PRODUCE: "ProduceResponse",
    FETCH: "FetchResponse",
    SHARE_FETCH: "ShareFetchResponse",
    SHARE_ACKNOWLEDGE: "ShareAcknowledgeResponse",
}

_REWRITERS: Mapping[int, _Rewriter] = {
    METADATA: rewrite_metadata,
    FIND_COORDINATOR: rewrite_find_coordinator,
    DESCRIBE_CLUSTER: rewrite_describe_cluster,
    **{api_key: _node_endpoints(api_key) for api_key in _NODE_ENDPOINT_RESPONSES},
}
