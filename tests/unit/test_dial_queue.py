"""The dial queue: a bounded number of broker dials at once, those a client waits on first.

Plain coroutines stand in for dials (no sockets): what is checked is how many run at once, in
which order, and that one dial's failure does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from failover_gateway.pump.dial_queue import DialQueue


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


class Dials:
    """Dials that record when they start and wait for their own release."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.running = 0
        self.most_at_once = 0
        self.release: dict[int, asyncio.Event] = {}

    async def dial(self, generation: int) -> None:
        self.started.append(generation)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.setdefault(generation, asyncio.Event()).wait()
        finally:
            self.running -= 1

    def let_go(self, *generations: int) -> None:
        for generation in generations:
            self.release.setdefault(generation, asyncio.Event()).set()


async def test_no_more_dials_run_at_once_than_the_queue_has_workers() -> None:
    queue, dials = DialQueue(3), Dials()
    for generation in range(10):
        queue.submit(dials.dial, generation, urgent=False)
    await settle()
    assert dials.started == [0, 1, 2] and len(queue) == 7
    dials.let_go(*range(10))
    await settle(100)
    assert dials.started == list(range(10)), "every dial ran, in order"
    assert dials.most_at_once == 3
    assert queue.running == 0 and len(queue) == 0, "the workers end with the queue"


async def test_a_dial_a_client_waits_on_goes_before_the_moves_of_idle_connections() -> None:
    queue, dials = DialQueue(1), Dials()
    for generation in (1, 2, 3):
        queue.submit(dials.dial, generation, urgent=False)
    await settle()
    queue.submit(dials.dial, 9, urgent=True)
    dials.let_go(1, 2, 3, 9)
    await settle(100)
    assert dials.started == [1, 9, 2, 3]


async def test_a_failing_dial_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue, ran = DialQueue(1), []

    async def broken(generation: int) -> None:
        raise RuntimeError("bug in one connection")

    async def fine(generation: int) -> None:
        ran.append(generation)

    with caplog.at_level(logging.ERROR, logger="failover_gateway.connection"):
        queue.submit(broken, 1, urgent=True)
        queue.submit(fine, 2, urgent=False)
        await settle()
    assert ran == [2]
    assert "a broker dial failed unexpectedly" in caplog.text and "bug in one connection" in (
        caplog.text
    )
    assert queue.running == 0


async def test_a_queue_without_workers_is_refused_with_the_valid_range() -> None:
    with pytest.raises(ValueError, match="at least 1, got 0"):
        DialQueue(0)


async def test_a_dial_that_hangs_gives_its_worker_back_and_the_next_one_runs() -> None:
    queue, dials = DialQueue(1, slow_after=0.05), Dials()
    queue.submit(dials.dial, 1, urgent=True)  # a broker that drops packets: never released
    queue.submit(dials.dial, 2, urgent=True)
    await settle()
    assert dials.started == [1], "a fast dial keeps its worker"
    await asyncio.sleep(0.2)
    assert dials.started == [1, 2] and dials.running == 2
    dials.let_go(1, 2)
    await settle()
    assert dials.running == 0 and queue.running == 0


async def test_closing_the_queue_drops_waiting_dials_and_cancels_running_ones() -> None:
    queue, dials = DialQueue(1, slow_after=0.05), Dials()
    for generation in (1, 2, 3):
        queue.submit(dials.dial, generation, urgent=False)
    await asyncio.sleep(0.1)  # 1 hangs past slow_after, 2 takes the worker
    assert dials.started == [1, 2] and len(queue) == 1
    queue.close()
    await settle()
    assert dials.running == 0, "both running dials were cancelled"
    assert queue.running == 0 and len(queue) == 0
    assert dials.started == [1, 2], "the waiting dial never started"
