"""Broker dials run a bounded number at a time, those a client is waiting on first.

Why it exists: a switch moves every connection at rest to the new cluster at once (thousands in
one pass of the event loop). Started each as a task of its own, the dials held about 3 KB of
Python state apiece (task, coroutine frames, timeout) all at the same moment; CPython's
small-object arenas grew by 7 MiB for 1,700 moves and never shrank again (the allocator keeps an
arena while one object lives in it), which the one-hour soak saw as a resident-memory step at
every gateway's first switch. Queued, a waiting dial costs one deque slot, and at most
``workers`` run at once. It also spares the new cluster's brokers a storm of simultaneous
connects and TLS or SASL handshakes (a broker's ``max.connection.creation.rate`` may refuse
them).

A slow dial (a broker that drops packets: the connect waits for its timeout) gives its worker
back after :data:`SLOW_DIAL_SECONDS` and goes on by itself, so an unreachable broker never holds
up the dials of reachable ones; only fast dials are paced, which is where the peak was.

Order: a dial a client is waiting on (a new connection, or one that sent a request while
queued) goes before the re-dials of idle connections, so pacing never delays a client that
asked for something behind thousands that did not. Each entry is a callable of the dial's
generation; the connection itself drops entries overtaken by a newer dial or already started.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger("failover_gateway.connection")

Dial = Callable[[int], Awaitable[None]]
SLOW_DIAL_SECONDS = 1.0
"""A dial still running after this long no longer holds a worker (loopback and LAN dials,
TLS and SASL included, take milliseconds)."""


class DialQueue:
    """At most ``workers`` dials at a time; urgent ones before the others, each in order."""

    def __init__(self, workers: int, *, slow_after: float = SLOW_DIAL_SECONDS) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.slow_after = slow_after
        self._urgent: deque[tuple[Dial, int]] = deque()
        self._later: deque[tuple[Dial, int]] = deque()
        self._running = 0
        # The loop keeps only weak references to tasks: workers and dials are held here.
        self._workers: set[asyncio.Task[None]] = set()
        self._dials: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Dials waiting for a worker (some may be stale, dropped when their turn comes)."""
        return len(self._urgent) + len(self._later)

    @property
    def running(self) -> int:
        return self._running

    def submit(self, dial: Dial, generation: int, *, urgent: bool) -> None:
        """Run ``dial(generation)`` when a worker is free; a worker is started if fewer than
        ``workers`` run."""
        (self._urgent if urgent else self._later).append((dial, generation))
        if self._running < self.workers:
            self._running += 1
            worker = asyncio.get_running_loop().create_task(self._work())
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    def close(self) -> None:
        """Drop the waiting dials and cancel the running ones and their workers (shutdown:
        no task is left pending when the loop closes)."""
        self._urgent.clear()
        self._later.clear()
        for task in [*self._workers, *self._dials]:
            task.cancel()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._urgent or self._later:
                dial, generation = (self._urgent or self._later).popleft()
                task = loop.create_task(_logged(dial, generation))
                self._dials.add(task)
                task.add_done_callback(self._dials.discard)
                await asyncio.wait((task,), timeout=self.slow_after)  # slow: it goes on alone
        finally:
            self._running -= 1


async def _logged(dial: Dial, generation: int) -> None:
    try:
        await dial(generation)
    except Exception:  # one connection's bug must not stop everyone's dials
        log.exception("a broker dial failed unexpectedly")
