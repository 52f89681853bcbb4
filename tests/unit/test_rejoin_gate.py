"""The rejoin gate's rules, on a fake clock: who waits after a planned switch, and until when."""

from __future__ import annotations

import asyncio

from failover_gateway.pump.rejoin_gate import RejoinGate

MEMBER = ("10.0.0.9", "billing-consumer")
OTHER = ("10.0.0.9", "audit-consumer")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def armed(clock: Clock) -> RejoinGate:
    gate = RejoinGate(clock)
    gate.saw_member("main", MEMBER)
    assert gate.arm("main", 8.0) == 1
    return gate


def test_only_members_seen_on_the_old_cluster_wait_and_only_on_the_new_one() -> None:
    gate = armed(Clock())
    assert gate.holds(MEMBER, "failover")
    assert not gate.holds(OTHER, "failover"), "never in a group here: nothing to rejoin"
    assert not gate.holds(MEMBER, "main"), "a fetch to the old cluster is none of the gate's"


def test_asking_for_committed_offsets_is_the_rejoin() -> None:
    gate = armed(Clock())
    gate.rejoined(MEMBER)
    assert not gate.holds(MEMBER, "failover") and not gate.armed


def test_the_time_bound_lets_a_member_through_that_never_rejoins() -> None:
    clock = Clock()
    gate = armed(clock)
    clock.now += 8.0
    assert not gate.holds(MEMBER, "failover")


def test_membership_seen_before_a_switch_is_forgotten_by_the_next_one() -> None:
    gate = armed(Clock())
    gate.rejoined(MEMBER)
    assert gate.arm("failover", 8.0) == 0, "members are learned again on each cluster"


def test_a_refused_switch_disarms_and_wakes_the_waiting() -> None:
    async def scenario() -> bool:
        gate = armed(Clock())
        waiting = asyncio.ensure_future(gate.wait(MEMBER))
        await asyncio.sleep(0)
        gate.disarm()
        await asyncio.wait_for(waiting, 1.0)
        return gate.armed

    assert asyncio.run(scenario()) is False


def test_once_the_bound_passed_the_gate_is_no_longer_armed() -> None:
    clock = Clock()
    gate = armed(clock)
    assert gate.armed
    clock.now += 8.0
    assert not gate.armed, "fetches go back to the fast path"


ELSEWHERE = ("10.0.0.7", "billing-consumer")  # same client.id, seen by the cluster, not here


def armed_from_the_cluster(clock: Clock) -> RejoinGate:
    gate = RejoinGate(clock)
    assert gate.arm("main", 8.0, {"billing-consumer": {"billing"}}) == 1
    return gate


def test_a_member_the_cluster_listed_waits_from_any_address() -> None:
    gate = armed_from_the_cluster(Clock())
    assert gate.holds(ELSEWHERE, "failover"), "its group traffic went through another pod"
    assert not gate.holds(OTHER, "failover")


def test_an_offset_fetch_here_lets_only_that_address_go() -> None:
    gate = armed_from_the_cluster(Clock())
    gate.rejoined(ELSEWHERE)
    assert not gate.holds(ELSEWHERE, "failover")
    assert gate.holds(MEMBER, "failover"), "another process with the same client.id"


def test_the_new_cluster_listing_a_client_id_as_assigned_wakes_its_waiting_fetches() -> None:
    async def scenario() -> tuple[dict[str, frozenset[str]], bool, bool]:
        gate = armed_from_the_cluster(Clock())
        waiting = asyncio.ensure_future(gate.wait(ELSEWHERE))
        await asyncio.sleep(0)
        awaited = gate.awaited_groups()
        gate.rejoined_elsewhere("billing-consumer")
        await asyncio.wait_for(waiting, 1.0)
        return awaited, gate.holds(ELSEWHERE, "failover"), gate.armed

    awaited, still_held, still_armed = asyncio.run(scenario())
    assert awaited == {"billing-consumer": frozenset({"billing"})}, "what the pod looks up"
    assert not still_held and not still_armed


def test_nothing_is_looked_up_while_no_fetch_waits() -> None:
    gate = armed_from_the_cluster(Clock())
    assert gate.awaited_groups() == {}


def test_the_bound_also_ends_holds_by_client_id() -> None:
    clock = Clock()
    gate = armed_from_the_cluster(clock)
    clock.now += 8.0
    assert not gate.armed and not gate.holds(ELSEWHERE, "failover")
