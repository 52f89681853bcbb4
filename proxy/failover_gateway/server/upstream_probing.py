"""Probing each physical cluster: is it reachable, and where are its brokers?

Why it exists: health must report upstream reachability per cluster (a load balancer that only
sees the gateway alive is exactly what DNS-based DR gets wrong), and every gateway pod must know
the real address behind each broker port before a client dials it, even if that client learned
its metadata from another pod. A probe takes the same path as client traffic (TLS and SASL with
the gateway's credentials, so a wrong upstream password shows here) and asks for ApiVersions and
Metadata (no topics) on a short-lived connection, bounded by a timeout.

With a canary topic (``gateway.canaryTopic``), the probe also asks the leader of the canary's
partition 0 for its latest offset (ListOffsets), on a connection of its own. A cluster whose
controller still answers Metadata while its partition leaders do not is not healthy for clients,
and automatic failover counts such a verdict. Nothing is written: a canary that produced would put
the gateway's own records into replicated topics.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any

from failover_gateway.codec import errors
from failover_gateway.config import ClusterConfig, HostPort
from failover_gateway.routing import api_versions
from failover_gateway.routing.address_rewriting import BrokerAddress
from failover_gateway.server import upstream_connecting

API_VERSIONS, METADATA, LIST_OFFSETS = 18, 3, 2
_LATEST = -1
_FALLBACK_API_VERSIONS = 3  # the first version with features; every Kafka since 2.4 has it
_CLIENT = {"ClientSoftwareName": "kafka-failover-gateway", "ClientSoftwareVersion": "0.1.0"}

log = logging.getLogger("failover_gateway.probe")


class ProbeFailed(Exception):
    """No bootstrap server of the cluster answered a metadata request in time."""


class CanaryFailed(ProbeFailed):
    """The cluster answered, but its canary partition's leader did not: judged down, while the
    brokers and versions it gave are still learned (clients may still reach some leaders)."""

    def __init__(self, message: str, answer: ProbeAnswer) -> None:
        super().__init__(message)
        self.answer = answer


@dataclass
class Reachability:
    """The latest probe outcome of one cluster."""

    reachable: bool = False
    checked_at: float | None = None
    last_ok_at: float | None = None
    error: str | None = "not probed yet"
    brokers: int = 0
    latency_ms: float | None = None
    # time.monotonic() of the first failed probe since the last success (or since the start):
    # how long this pod has judged the cluster down, the evidence automatic failover counts.
    down_since: float | None = None

    @property
    def verdict(self) -> str:
        """``healthy``, ``down`` or ``unknown`` (not probed yet)."""
        if self.reachable:
            return "healthy"
        return "unknown" if self.checked_at is None else "down"

    def down_for(self, now: float | None = None) -> float:
        """Seconds this pod has judged the cluster down (0 when it is not)."""
        if self.down_since is None:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - self.down_since)

    def as_json(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "downForSeconds": round(self.down_for(), 3),
            "reachable": self.reachable,
            "checkedAt": self.checked_at,
            "lastOkAt": self.last_ok_at,
            "error": self.error,
            "brokers": self.brokers,
            "latencyMs": self.latency_ms,
        }


@dataclass(frozen=True)
class ProbeAnswer:
    brokers: list[BrokerAddress]
    offer: api_versions.ClusterOffer  # the cluster's ApiVersions, cut to the gateway's policy


async def fetch(
    cluster: ClusterConfig,
    server: HostPort,
    context: ssl.SSLContext | None,
    timeout: float,
    canary: str | None = None,
) -> ProbeAnswer:
    """One authenticated round trip: ApiVersions, then Metadata for brokers only (and the
    canary topic, whose partition 0's leader is then asked for its latest offset: a failure
    there is :class:`CanaryFailed`, which carries the answer, so brokers are still learned)."""
    try:
        connection = await upstream_connecting.open_stream(cluster, server, context, timeout)
    except upstream_connecting.UpstreamUnavailable as error:
        raise ProbeFailed(str(error)) from None
    topics = [] if canary is None else [{"Name": canary}]
    try:
        versions = await asyncio.wait_for(_api_versions(connection), timeout)
        metadata = await asyncio.wait_for(
            connection.exchange(METADATA, 4, {"Topics": topics, "AllowAutoTopicCreation": False}),
            timeout,
        )
    except (
        OSError,
        TimeoutError,
        asyncio.IncompleteReadError,
        errors.CodecError,
        upstream_connecting.UpstreamUnavailable,
    ) as error:
        raise ProbeFailed(f"{server}: {type(error).__name__} {error}".rstrip()) from None
    finally:
        connection.close()
    brokers = [BrokerAddress(b["NodeId"], b["Host"], b["Port"]) for b in metadata["Brokers"]]
    answer = ProbeAnswer(brokers, api_versions.ClusterOffer.from_answer(versions))
    if canary is not None:
        try:
            await _canary_answers(cluster, metadata, canary, context, timeout)
        except ProbeFailed as failed:
            raise CanaryFailed(str(failed), answer) from None
    return answer


async def _canary_answers(
    cluster: ClusterConfig,
    metadata: dict[str, Any],
    canary: str,
    context: ssl.SSLContext | None,
    timeout: float,
) -> None:
    """The leader of ``canary``'s partition 0 answers ListOffsets (latest), or ProbeFailed."""
    where = f"canary {canary}-0"
    [topic] = metadata["Topics"]
    if topic["ErrorCode"]:
        raise ProbeFailed(f"{where}: Kafka error {topic['ErrorCode']} in Metadata")
    leaders = {p["PartitionIndex"]: p["LeaderId"] for p in topic["Partitions"]}
    brokers = {b["NodeId"]: HostPort(b["Host"], b["Port"]) for b in metadata["Brokers"]}
    leader = leaders.get(0, -1)
    if leader not in brokers:
        raise ProbeFailed(f"{where}: no leader (leader id {leader})")
    address = brokers[leader]
    body = {
        "ReplicaId": -1,
        "IsolationLevel": 0,
        "Topics": [
            {
                "Name": canary,
                "Partitions": [
                    {"PartitionIndex": 0, "CurrentLeaderEpoch": -1, "Timestamp": _LATEST}
                ],
            }
        ],
    }
    try:
        connection = await upstream_connecting.open_stream(cluster, address, context, timeout)
    except upstream_connecting.UpstreamUnavailable as error:
        raise ProbeFailed(f"{where}: leader {leader} ({address}): {error}") from None
    try:
        answer = await asyncio.wait_for(connection.exchange(LIST_OFFSETS, 7, body), timeout)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, errors.CodecError) as error:
        raise ProbeFailed(
            f"{where}: leader {leader} ({address}) did not answer ListOffsets: "
            f"{type(error).__name__} {error}".rstrip()
        ) from None
    finally:
        connection.close()
    code = answer["Topics"][0]["Partitions"][0]["ErrorCode"]
    if code:
        raise ProbeFailed(f"{where}: leader {leader} ({address}) answered Kafka error {code}")


async def _api_versions(connection: upstream_connecting.StreamConnection) -> dict[str, Any]:
    """The newest ApiVersions both sides know: from v4 on, brokers also list supported features
    whose minimum level is 0 (``transaction.version``, ...), which v3 answers leave out (KIP-1022)
    and which the gateway must know to offer them coherently."""
    newest = api_versions.GATEWAY_MAX_VERSIONS[API_VERSIONS]
    answer = await connection.exchange(API_VERSIONS, newest, _CLIENT)
    if answer["ErrorCode"] == api_versions.UNSUPPORTED_VERSION:
        answer = await connection.exchange(API_VERSIONS, _FALLBACK_API_VERSIONS, _CLIENT)
    return answer


async def probe_cluster(
    cluster: ClusterConfig,
    context: ssl.SSLContext | None,
    timeout: float,
    canary: str | None = None,
) -> ProbeAnswer:
    """Try every bootstrap server until one answers."""
    failures = []
    for server in cluster.bootstrap_servers:
        try:
            return await fetch(cluster, server, context, timeout, canary)
        except CanaryFailed:
            raise  # the cluster answered: its canary's leader is the same from any server
        except ProbeFailed as error:
            failures.append(str(error))
    raise ProbeFailed("; ".join(failures))


_METADATA_WITH_TOPIC_IDS = 12


async def fetch_topic_ids(
    cluster: ClusterConfig, context: ssl.SSLContext | None, timeout: float
) -> dict[str, uuid.UUID]:
    """Every topic of ``cluster`` and its id (Metadata for all topics, v12), from the first
    bootstrap server that answers; raises :class:`ProbeFailed` when none does."""
    request = {
        "Topics": None,
        "AllowAutoTopicCreation": False,
        "IncludeTopicAuthorizedOperations": False,
    }
    failures = []
    for server in cluster.bootstrap_servers:
        try:
            connection = await upstream_connecting.open_stream(cluster, server, context, timeout)
        except upstream_connecting.UpstreamUnavailable as error:
            failures.append(str(error))
            continue
        try:
            metadata = await asyncio.wait_for(
                connection.exchange(METADATA, _METADATA_WITH_TOPIC_IDS, request), timeout
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError, errors.CodecError) as error:
            failures.append(f"{server}: {type(error).__name__} {error}".rstrip())
            continue
        finally:
            connection.close()
        return {
            topic["Name"]: topic["TopicId"]
            for topic in metadata["Topics"]
            if topic["ErrorCode"] == 0 and topic["Name"]
        }
    raise ProbeFailed("; ".join(failures))


async def probe_once(
    cluster: ClusterConfig,
    state: Reachability,
    context: ssl.SSLContext | None,
    timeout: float,
    canary: str | None = None,
) -> ProbeAnswer | None:
    """Probe and record the outcome in ``state``; returns the brokers when the cluster answered
    (also when only its canary failed: the verdict is down, the brokers are still learned)."""
    started = time.perf_counter()
    try:
        answer = await probe_cluster(cluster, context, timeout, canary)
    except ProbeFailed as error:
        state.checked_at = time.time()
        if state.down_since is None:
            state.down_since = time.monotonic()
        if state.reachable or state.error != str(error):
            log.warning("cluster %s unreachable: %s", cluster.name, error)
        state.reachable, state.error = False, str(error)
        return error.answer if isinstance(error, CanaryFailed) else None
    if not state.reachable:
        log.info("cluster %s reachable (%d brokers)", cluster.name, len(answer.brokers))
    state.checked_at = time.time()
    state.reachable, state.error, state.brokers = True, None, len(answer.brokers)
    state.down_since = None
    state.last_ok_at = state.checked_at
    state.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return answer
