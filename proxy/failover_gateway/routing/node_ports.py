"""The node-to-port mapping: which gateway port stands for which broker.

Why it exists: clients cache broker addresses. Every address a client ever learns must stay served
by the gateway across a switch, and a client may learn metadata from one gateway pod and connect to
another. So the port of a broker is a pure function of its node id (no discovery order, no state):

    port = first_broker_port + slot,  slot = node_id mod broker_port_count

When two node ids of the *same* cluster share a slot (e.g. ids 1 and 33 with 32 ports), the
lower id keeps the slot and the next ones take the following free slots in id order. That is
still deterministic for every pod that sees the same broker set; a collision is logged by the
caller and avoided by configuring more broker ports than the largest node-id spread.

The reverse direction (a client connects to a port) is answered per cluster: the broker whose slot
it is and no other (when it is down the connection fails, as it would without the gateway), or,
when the active cluster has no broker in that slot (e.g. main has brokers 1,2,3 and failover only
broker 7), a deterministic pick among that cluster's brokers. Any broker can answer any request
with a metadata refresh or a NOT_LEADER error that sends the client to the right port; but a
client never learns that node N's connection is served by another broker, so that substitute is
only for slots no broker of the active cluster owns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SlotAssignment:
    """Slots of one cluster's brokers, and the node ids that had to move because of a collision."""

    slot_of: Mapping[int, int]
    displaced: tuple[int, ...]

    def node_in_slot(self, slot: int) -> int | None:
        for node_id, node_slot in self.slot_of.items():
            if node_slot == slot:
                return node_id
        return None


def assign_slots(node_ids: Iterable[int], slot_count: int) -> SlotAssignment:
    """Give every node id a slot: its natural one (id mod count) or the next free one."""
    slot_of: dict[int, int] = {}
    taken: set[int] = set()
    displaced: list[int] = []
    ids = sorted(set(node_ids))
    for node_id in ids:
        slot: int | None = node_id % slot_count
        if slot in taken:
            displaced.append(node_id)
            slot = _next_free(node_id % slot_count, taken, slot_count)
        if slot is not None:
            slot_of[node_id] = slot
            taken.add(slot)
    return SlotAssignment(slot_of=slot_of, displaced=tuple(displaced))


def _next_free(slot: int, taken: set[int], slot_count: int) -> int | None:
    for step in range(1, slot_count):
        candidate = (slot + step) % slot_count
        if candidate not in taken:
            return candidate
    return None


def fallback_node(node_ids: Iterable[int], slot: int) -> int | None:
    """The broker that serves a slot no broker of this cluster owns: stable for a given set."""
    ids = sorted(set(node_ids))
    if not ids:
        return None
    return ids[slot % len(ids)]
