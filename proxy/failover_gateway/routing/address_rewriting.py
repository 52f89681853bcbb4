"""Replace real broker addresses with gateway addresses in the responses that carry them.

Why: a client must only ever learn gateway addresses, or it will connect to Kafka directly and
never follow a switch. Three responses the gateway forwards carry broker addresses: Metadata
(``Brokers``), FindCoordinator (one node in v0-3, ``Coordinators`` in v4+) and DescribeCluster
(``Brokers``). Every other address-bearing response is kept out by the version policy
(:mod:`failover_gateway.routing.api_versions`).

Each function takes a response body (the bytes after the response header), asks ``advertise``
for the gateway address of each ``(node_id, real_host, real_port)``, and returns the new body and
the real brokers it saw, so the caller can learn where each node really is.

Only the fields that hold addresses change; everything else, unknown tagged fields included,
is written back byte for byte. Metadata is decoded only up to its broker list (which comes before
the topics, the bulk of a large answer), and the untouched rest of the body is spliced back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from failover_gateway.codec import errors, schema, specs
from failover_gateway.codec.primitives import Buffer

METADATA = 3
FIND_COORDINATOR = 10
DESCRIBE_CLUSTER = 60

REWRITTEN_MAX_VERSIONS: Mapping[int, int] = {
    METADATA: 13,
    FIND_COORDINATOR: 6,
    DESCRIBE_CLUSTER: 2,
}
"""Highest version of each address-bearing response this module knows how to rewrite."""

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
    """The body to send to the client and the real brokers named in the original."""

    body: bytes
    real_brokers: tuple[BrokerAddress, ...]


def rewrite_response(
    api_key: int, api_version: int, body: Buffer, advertise: Advertise
) -> RewriteResult | None:
    """Rewrite ``body`` if this api key carries broker addresses; None when there is nothing to do.

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
    seen = _rewrite_entries(head["Brokers"], "NodeId", advertise)
    new_head = schema.encode_prefix(spec, api_version, head, stop_after_field="Brokers")
    return RewriteResult(b"".join((new_head, body[rest_at:])), seen)


def rewrite_find_coordinator(api_version: int, body: Buffer, advertise: Advertise) -> RewriteResult:
    """FindCoordinator: the single node of v0-3, or each entry of ``Coordinators`` in v4+.

    Error answers (NodeId -1, Host "") name no broker and are left exactly as they are.
    """
    spec = specs.message("FindCoordinatorResponse")
    values = schema.decode(spec, api_version, body)
    if api_version >= _FIRST_BATCHED_FIND_COORDINATOR:
        found = [entry for entry in values["Coordinators"] if _names_a_broker(entry)]
    else:
        found = [values] if _names_a_broker(values) else []
    if not found:
        return RewriteResult(bytes(body), ())
    seen = _rewrite_entries(found, "NodeId", advertise)
    return RewriteResult(schema.encode(spec, api_version, values), seen)


def rewrite_describe_cluster(api_version: int, body: Buffer, advertise: Advertise) -> RewriteResult:
    """DescribeCluster v0-2: rewrite every entry of ``Brokers``."""
    spec = specs.message("DescribeClusterResponse")
    values = schema.decode(spec, api_version, body)
    seen = _rewrite_entries(values["Brokers"], "BrokerId", advertise)
    return RewriteResult(schema.encode(spec, api_version, values), seen)


def _names_a_broker(entry: Mapping[str, Any]) -> bool:
    return bool(entry["ErrorCode"] == 0 and entry["NodeId"] >= 0)


def _rewrite_entries(
    entries: list[dict[str, Any]], id_field: str, advertise: Advertise
) -> tuple[BrokerAddress, ...]:
    seen = []
    for entry in entries:
        real = BrokerAddress(entry[id_field], entry["Host"], entry["Port"])
        entry["Host"], entry["Port"] = advertise(real.node_id, real.host, real.port)
        seen.append(real)
    return tuple(seen)


class _Rewriter(Protocol):
    def __call__(
        self, api_version: int, body: Buffer, advertise: Advertise, /
    ) -> RewriteResult: ...


_REWRITERS: Mapping[int, _Rewriter] = {
    METADATA: rewrite_metadata,
    FIND_COORDINATOR: rewrite_find_coordinator,
    DESCRIBE_CLUSTER: rewrite_describe_cluster,
}
