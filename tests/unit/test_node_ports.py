"""Node-to-port mapping: deterministic, collision-safe, and every slot reaches some broker."""

from __future__ import annotations

from failover_gateway.routing.node_ports import assign_slots, fallback_node


def test_node_ids_map_to_their_natural_slot() -> None:
    assert dict(assign_slots([1, 2, 3], 32).slot_of) == {1: 1, 2: 2, 3: 3}


def test_the_mapping_does_not_depend_on_discovery_order() -> None:
    assert assign_slots([3, 1, 2, 33], 32) == assign_slots([33, 2, 1, 3], 32)


def test_colliding_node_ids_take_the_next_free_slot_and_are_reported() -> None:
    slots = assign_slots([1, 33, 2], 32)
    assert dict(slots.slot_of) == {1: 1, 2: 2, 33: 3}
    assert slots.displaced == (33,)


def test_a_slot_without_its_broker_falls_back_to_a_stable_broker() -> None:
    assert fallback_node([7], 1) == 7
    assert fallback_node([7, 8], 1) == fallback_node([8, 7], 1) == 8
    assert fallback_node([], 1) is None
