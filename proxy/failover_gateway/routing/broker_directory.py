"""What the gateway knows about each physical cluster's brokers, and where a new connection goes.

Why it exists: the gateway learns real broker addresses from metadata (its own probes and the
Metadata responses it rewrites for clients) and must answer two questions quickly and the same way
on every pod: "which gateway port do I advertise for node N of cluster C?" and "a client connected
to gateway port P; which real broker of the active cluster do I dial?". No I/O here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from failover_gateway.config import GatewayConfig, HostPort
from failover_gateway.routing import node_ports
from failover_gateway.routing.address_rewriting import BrokerAddress


@dataclass
class _ClusterBrokers:
    bootstrap: tuple[HostPort, ...]
    brokers: dict[int, HostPort] = field(default_factory=dict)
    slots: node_ports.SlotAssignment = field(
        default_factory=lambda: node_ports.SlotAssignment({}, ())
    )
    round_robin: itertools.cycle[int] = field(default_factory=lambda: itertools.cycle([0]))


class BrokerDirectory:
    """Per cluster: known brokers by node id, their slots, and connection targets."""

    def __init__(self, config: GatewayConfig) -> None:
        listener = config.gateway.listener
        self.advertised_host = listener.advertised_host
        self.bootstrap_port = listener.port
        self.first_broker_port = listener.first_broker_port
        self.slot_count = listener.broker_port_count
        self._clusters = {
            name: _ClusterBrokers(
                bootstrap=cluster.bootstrap_servers,
                round_robin=itertools.cycle(range(len(cluster.bootstrap_servers))),
            )
            for name, cluster in config.clusters.items()
        }

    def learn(self, cluster: str, brokers: list[BrokerAddress]) -> tuple[int, ...]:
        """Record a full broker list seen in metadata; returns node ids displaced by collisions."""
        state = self._clusters[cluster]
        learned = {broker.node_id: HostPort(broker.host, broker.port) for broker in brokers}
        if learned == state.brokers:
            return ()
        # Keep brokers that vanished from this answer: clients may still hold their port.
        state.brokers.update(learned)
        state.slots = node_ports.assign_slots(state.brokers, self.slot_count)
        return state.slots.displaced

    def brokers(self, cluster: str) -> dict[int, HostPort]:
        return dict(self._clusters[cluster].brokers)

    def advertised_port(self, cluster: str, node_id: int) -> int:
        """The gateway port that stands for ``node_id`` of ``cluster``."""
        state = self._clusters[cluster]
        slot = state.slots.slot_of.get(node_id)
        if slot is None:
            slot = node_id % self.slot_count
        return self.first_broker_port + slot

    def advertise(self, cluster: str, node_id: int, host: str, port: int) -> tuple[str, int]:
        """The address a client sees for a broker; also remembers the broker's real address."""
        state = self._clusters[cluster]
        if state.brokers.get(node_id) != HostPort(host, port):
            state.brokers[node_id] = HostPort(host, port)
            state.slots = node_ports.assign_slots(state.brokers, self.slot_count)
        return self.advertised_host, self.advertised_port(cluster, node_id)

    def slot_of_port(self, port: int) -> int | None:
        """The broker slot a listener port serves, or None for the bootstrap port."""
        slot = port - self.first_broker_port
        return slot if 0 <= slot < self.slot_count else None

    def targets(self, cluster: str, slot: int | None) -> list[HostPort]:
        """Where to dial for a new client connection, best first.

        A slot a broker of ``cluster`` owns is that broker's and no other's: when it is down the
        client's connection fails, as it would without the gateway, and the client asks another
        broker for metadata. Serving it from another broker instead (what this did until the
        one-hour soak) keeps the client's connection for node N on a broker that is not N after
        N returns: every request for a partition N leads again answered NOT_LEADER, for as long
        as that connection lives (kafka-python's producer stuck for the rest of the run, the
        Java producers' batches for one partition expiring for minutes). Bootstrap and unowned
        slots (a node id only the other cluster has) may be served by any broker."""
        state = self._clusters[cluster]
        node_id = state.slots.node_in_slot(slot) if slot is not None else None
        if node_id is not None:
            return [state.brokers[node_id]]
        bootstrap = self._rotated_bootstrap(state)
        if slot is None or not state.brokers:
            return bootstrap
        node_id = node_ports.fallback_node(state.brokers, slot)
        first = state.brokers[node_id] if node_id is not None else None
        return ([first] if first else []) + [b for b in bootstrap if b != first]

    def _rotated_bootstrap(self, state: _ClusterBrokers) -> list[HostPort]:
        start = next(state.round_robin)
        return list(state.bootstrap[start:] + state.bootstrap[:start])
