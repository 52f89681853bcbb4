"""The switch in isolation: routing flips at once, old connections close, epochs only move on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from failover_gateway.pump.inflight import InFlightTable
from failover_gateway.server.switching import Switchboard, SwitchRefused


class StubConnection:
    """Stands in for a client connection with a broker connection: the switchboard pauses it,
    makes it leave its groups and closes it."""

    def __init__(self, cluster: str, in_flight: int = 0) -> None:
        self.cluster = cluster
        self.in_flight = InFlightTable()
        for correlation_id in range(in_flight):
            self.in_flight.sent(correlation_id, 0, 9)
        self.closed_because: str | None = None
        self.paused: set[str] = set()
        self.aborted = False
        self.left_groups_before_close: bool | None = None
        self.answered = True
        self.reset = False

    def leave_groups(self) -> int:
        self.left_groups_before_close = self.closed_because is None
        return 0

    @property
    def is_closing(self) -> bool:
        return self.closed_because is not None

    def close(self, reason: str, *, reset: bool = False) -> None:
        self.closed_because = reason
        self.reset = reset

    def reroute(self, reason: str) -> bool:
        return False  # connected to a broker: only a move or a close applies

    def pause_reading(self, reason: str) -> None:
        self.paused.add(reason)

    def abort(self) -> None:
        self.aborted = True


def board(*connections: Any, active: str = "main", epoch: int = 0) -> Switchboard:
    switchboard = Switchboard(clusters=["main", "failover"], active=active, epoch=epoch)
    switchboard.connections.update(connections)
    return switchboard


async def test_a_switch_closes_every_connection_of_the_old_cluster_and_keeps_the_new_ones() -> None:
    old, new = StubConnection("main"), StubConnection("failover")
    switchboard = board(old, new)
    record = await switchboard.switch("failover", epoch=3, source="test")
    assert switchboard.active == "failover" and switchboard.epoch == 3
    assert record.closed_connections == 1 and record.changed
    assert old.closed_because == "switch main -> failover (epoch 3)"
    assert new.closed_because is None


async def test_a_switch_has_each_old_connection_leave_its_groups_before_it_closes() -> None:
    old, new = StubConnection("main"), StubConnection("failover")
    await board(old, new).switch("failover", epoch=1, source="test")
    assert old.left_groups_before_close is True
    assert new.left_groups_before_close is None


async def test_an_older_epoch_is_refused_with_409_and_changes_nothing() -> None:
    connection = StubConnection("failover")
    switchboard = board(connection, active="failover", epoch=7)
    with pytest.raises(SwitchRefused) as refused:
        await switchboard.switch("main", epoch=6, source="test")
    assert refused.value.status == 409
    assert switchboard.active == "failover" and switchboard.epoch == 7
    assert connection.closed_because is None


async def test_the_same_epoch_may_switch_again_so_retries_and_manual_moves_converge() -> None:
    switchboard = board(epoch=4)
    await switchboard.switch("failover", epoch=4, source="test")
    await switchboard.switch("main", epoch=4, source="test")
    assert switchboard.active == "main"


async def test_a_switch_without_epoch_keeps_the_epoch() -> None:
    switchboard = board(epoch=9)
    record = await switchboard.switch("failover", epoch=None, source="runbook")
    assert record.epoch == 9 and switchboard.epoch == 9


async def test_switching_to_the_active_cluster_closes_nothing_but_records_a_newer_epoch() -> None:
    connection = StubConnection("main")
    switchboard = board(connection, epoch=1)
    record = await switchboard.switch("main", epoch=2, source="test")
    assert not record.changed and record.closed_connections == 0
    assert connection.closed_because is None and switchboard.epoch == 2


async def test_an_unknown_cluster_is_refused_with_400_naming_the_valid_ones() -> None:
    with pytest.raises(SwitchRefused, match="configured clusters: main, failover") as refused:
        await board().switch("elsewhere", epoch=None, source="test")
    assert refused.value.status == 400


async def test_a_drain_stops_new_requests_and_waits_for_in_flight_answers() -> None:
    busy = StubConnection("main", in_flight=1)
    switchboard = board(busy)

    async def answer_later() -> None:
        await asyncio.sleep(0.05)
        busy.in_flight.answered(0)

    answering = asyncio.create_task(answer_later())
    record = await switchboard.switch("failover", epoch=1, drain_ms=2000, source="test")
    await answering
    assert "switch-drain" in busy.paused
    assert 40 <= record.duration_ms < 1500
    assert busy.closed_because is not None


async def test_a_drain_gives_up_after_its_window() -> None:
    stuck = StubConnection("main", in_flight=1)
    record = await board(stuck).switch("failover", epoch=1, drain_ms=50, source="test")
    assert stuck.closed_because is not None and record.duration_ms >= 45
