"""Probing each physical cluster: is it reachable, and where are its brokers?

Why it exists: health must report upstream reachability per cluster (a load balancer that only
sees the gateway alive is exactly what DNS-based DR gets wrong), and every gateway pod must know
the real address behind each broker port before a client dials it, even if that client learned
its metadata from another pod. A probe is one Metadata request (no topics) on a short-lived
connection, bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

from failover_gateway.config import ClusterConfig
from failover_gateway.routing import probe_messages
from failover_gateway.routing.broker_directory import BrokerAddress

log = logging.getLogger("failover_gateway.probe")

_correlation_ids = itertools.count(1)


class ProbeFailed(Exception):
    """No bootstrap server of the cluster answered a metadata request in time."""


@dataclass
class Reachability:
    """The latest probe outcome of one cluster."""

    reachable: bool = False
    checked_at: float | None = None
    last_ok_at: float | None = None
    error: str | None = "not probed yet"
    brokers: int = 0
    latency_ms: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "reachable": self.reachable,
            "checkedAt": self.checked_at,
            "lastOkAt": self.last_ok_at,
            "error": self.error,
            "brokers": self.brokers,
            "latencyMs": self.latency_ms,
        }


async def _read_frame(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    size = int.from_bytes(await reader.readexactly(4), "big", signed=True)
    if not 0 <= size <= max_bytes:
        raise ProbeFailed(f"broker sent a frame of {size} bytes")
    return await reader.readexactly(size)


async def fetch_brokers(host: str, port: int, timeout: float) -> list[BrokerAddress]:
    """One metadata round trip to one server."""
    correlation_id = next(_correlation_ids) % 2**31
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(probe_messages.metadata_request(correlation_id))
        frame = await asyncio.wait_for(_read_frame(reader, 64 * 1024 * 1024), timeout)
        return probe_messages.brokers_from_metadata_response(frame, correlation_id)
    finally:
        writer.close()


async def probe_cluster(cluster: ClusterConfig, timeout: float) -> list[BrokerAddress]:
    """Try every bootstrap server until one answers."""
    errors = []
    for server in cluster.bootstrap_servers:
        try:
            return await fetch_brokers(server.host, server.port, timeout)
        except (
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
            ProbeFailed,
            probe_messages.ProbeAnswerInvalid,
        ) as error:
            errors.append(f"{server}: {type(error).__name__} {error}".strip())
    raise ProbeFailed("; ".join(errors))


async def probe_once(
    cluster: ClusterConfig, state: Reachability, timeout: float
) -> list[BrokerAddress] | None:
    """Probe and record the outcome in ``state``; returns the brokers on success."""
    started = time.perf_counter()
    state.checked_at = time.time()
    try:
        brokers = await probe_cluster(cluster, timeout)
    except ProbeFailed as error:
        if state.reachable or state.error != str(error):
            log.warning("cluster %s unreachable: %s", cluster.name, error)
        state.reachable, state.error = False, str(error)
        return None
    if not state.reachable:
        log.info("cluster %s reachable (%d brokers)", cluster.name, len(brokers))
    state.reachable, state.error, state.brokers = True, None, len(brokers)
    state.last_ok_at = state.checked_at
    state.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return brokers
