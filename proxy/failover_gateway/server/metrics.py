"""Prometheus metrics of the gateway, read from plain counters at scrape time.

Why it exists: the data path counts every request, so counting must cost a dict increment, not a
labelled prometheus-client call per frame. The hot path writes into ``Traffic``; a custom
collector turns it into metric families when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class AdminAbuse:
    """What the admin API refused to protect itself (failover_gateway.server.admin_guarding)."""

    auth_failures: int = 0  # wrong or missing credentials, answered 401
    auth_throttled: int = 0  # answered 429: the address was over its failure limit
    # Requests refused before their handler ran, by reason ("body_too_large", "body_too_slow").
    refused: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Connections closed for sending no complete request headers in time (idle or slowloris).
    connections_timed_out: int = 0


@dataclass
class Traffic:
    """Counters the data path updates; keys are (cluster, api_key)."""

    requests: defaultdict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    request_bytes: defaultdict[tuple[str, int], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    response_bytes: defaultdict[tuple[str, int], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    # Producers seen with an id from before the last switch, by (cluster, "adopted"/"refused").
    stale_producer_ids: defaultdict[tuple[str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    connections_total: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    connections_refused: int = 0
    # Connections closed for overrunning a client bound, by bound (pump.client_deadlines).
    slow_clients_closed: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    switches: int = 0
    last_switch_seconds: float = 0.0
    # Connections a switch took off the old cluster, by how: "moved" (under the client) or
    # "closed" (the client reconnects).
    switched_connections: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Planned switchovers, by outcome ("switched", "aborted").
    planned_switches: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_fence_seconds: float = 0.0  # write unavailability of the last planned switch
    last_catch_up_lag_records: int = 0  # records replication had to copy when it began
    admin: AdminAbuse = field(default_factory=AdminAbuse)


@dataclass(frozen=True)
class Snapshot:
    """Values that live elsewhere (the switchboard, the probes), read at scrape time."""

    epoch: int
    active: str
    clusters: tuple[str, ...]
    open_connections: Mapping[str, int]
    reachable: Mapping[str, bool]
    down_for_seconds: Mapping[str, float] = field(default_factory=dict)
    fenced_for_seconds: float | None = None  # None: no write fence is up


class _GatewayCollector(Collector):
    def __init__(self, traffic: Traffic, snapshot: Callable[[], Snapshot]) -> None:
        self._traffic = traffic
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from self._traffic_families()
        yield from self._state_families(self._snapshot())

    def _traffic_families(self) -> Iterator[Metric]:
        t = self._traffic
        for name, doc, source in (
            ("kafka_failover_requests", "Requests forwarded, by cluster and api key", t.requests),
            ("kafka_failover_request_bytes", "Request bytes forwarded", t.request_bytes),
            ("kafka_failover_response_bytes", "Response bytes forwarded", t.response_bytes),
        ):
            family = CounterMetricFamily(name, doc, labels=["cluster", "api_key"])
            for (cluster, api_key), value in sorted(source.items()):
                family.add_metric([cluster, str(api_key)], value)
            yield family
        stale = CounterMetricFamily(
            "kafka_failover_stale_producer_ids",
            "Connections whose producer id was issued before the last switch: adopted "
            "(idempotent) or refused (a transaction begun before the switch)",
            labels=["cluster", "outcome"],
        )
        for (cluster, outcome), value in sorted(t.stale_producer_ids.items()):
            stale.add_metric([cluster, outcome], value)
        yield stale
        total = CounterMetricFamily(
            "kafka_failover_connections", "Client connections accepted", labels=["cluster"]
        )
        for cluster, value in sorted(t.connections_total.items()):
            total.add_metric([cluster], value)
        yield total
        yield CounterMetricFamily(
            "kafka_failover_connections_refused",
            "Client connections refused at the connection limit",
            value=t.connections_refused,
        )
        slow = CounterMetricFamily(
            "kafka_failover_slow_clients_closed",
            "Client connections closed for overrunning a bound: first_request, authentication "
            "or frame (gateway.timeouts.client*Ms)",
            labels=["bound"],
        )
        for bound in ("first_request", "authentication", "frame"):
            slow.add_metric([bound], t.slow_clients_closed[bound])
        yield slow
        yield CounterMetricFamily("kafka_failover_switches", "Switches done", value=t.switches)
        yield _by_label(
            "kafka_failover_switched_connections",
            "Connections a switch took off the old cluster: moved under their client, or closed",
            "outcome",
            t.switched_connections,
            ("moved", "closed"),
        )
        yield from self._switchover_families()
        yield from _admin_families(t.admin)
        yield GaugeMetricFamily(
            "kafka_failover_last_switch_duration_seconds",
            "Duration of the last switch",
            value=t.last_switch_seconds,
        )

    def _switchover_families(self) -> Iterator[Metric]:
        t = self._traffic
        yield _by_label(
            "kafka_failover_planned_switches",
            "Planned switchovers, by outcome (switched, aborted)",
            "outcome",
            t.planned_switches,
            ("switched", "aborted"),
        )
        yield GaugeMetricFamily(
            "kafka_failover_last_fence_duration_seconds",
            "Write unavailability of the last planned switchover (fence to switch)",
            value=t.last_fence_seconds,
        )
        yield GaugeMetricFamily(
            "kafka_failover_last_catch_up_lag_records",
            "Records replication still had to copy when the last planned switchover fenced",
            value=t.last_catch_up_lag_records,
        )

    def _state_families(self, snap: Snapshot) -> Iterator[Metric]:
        yield GaugeMetricFamily("kafka_failover_epoch", "Epoch of the active cluster", snap.epoch)
        yield GaugeMetricFamily(
            "kafka_failover_write_fenced",
            "1 while writes to the active cluster are held (a planned switchover)",
            value=0.0 if snap.fenced_for_seconds is None else 1.0,
        )
        yield GaugeMetricFamily(
            "kafka_failover_write_fence_age_seconds",
            "How long the current write fence has held writes (0: none)",
            value=snap.fenced_for_seconds or 0.0,
        )
        active = GaugeMetricFamily(
            "kafka_failover_active_cluster", "1 for the active cluster", labels=["cluster"]
        )
        opened = GaugeMetricFamily(
            "kafka_failover_connections_open", "Open client connections", labels=["cluster"]
        )
        reachable = GaugeMetricFamily(
            "kafka_failover_upstream_reachable",
            "1 when the last probe of the cluster succeeded",
            labels=["cluster"],
        )
        down = GaugeMetricFamily(
            "kafka_failover_cluster_down_seconds",
            "How long this pod's probes have failed without a success in between (0: healthy)",
            labels=["cluster"],
        )
        for cluster in snap.clusters:
            active.add_metric([cluster], 1.0 if cluster == snap.active else 0.0)
            opened.add_metric([cluster], snap.open_connections.get(cluster, 0))
            reachable.add_metric([cluster], 1.0 if snap.reachable.get(cluster) else 0.0)
            down.add_metric([cluster], snap.down_for_seconds.get(cluster, 0.0))
        yield from (active, opened, reachable, down)


def _by_label(
    name: str, doc: str, label: str, counts: Mapping[str, int], values: tuple[str, ...]
) -> CounterMetricFamily:
    """A counter with one series per value of ``label``, all of them shown from 0."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for value in values:
        family.add_metric([value], counts.get(value, 0))
    return family


def _admin_families(admin: AdminAbuse) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "kafka_failover_admin_auth_failures",
        "Admin API requests with missing or wrong credentials (answered 401)",
        value=admin.auth_failures,
    )
    yield CounterMetricFamily(
        "kafka_failover_admin_auth_throttled",
        "Admin API requests answered 429: their address was over its credential failure limit",
        value=admin.auth_throttled,
    )
    yield _by_label(
        "kafka_failover_admin_requests_refused",
        "Admin API requests refused before their handler ran, by reason",
        "reason",
        admin.refused,
        ("body_too_large", "body_too_slow"),
    )
    yield CounterMetricFamily(
        "kafka_failover_admin_connections_timed_out",
        "Admin API connections closed for not sending complete request headers in time",
        value=admin.connections_timed_out,
    )


def build_registry(traffic: Traffic, snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_GatewayCollector(traffic, snapshot))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
