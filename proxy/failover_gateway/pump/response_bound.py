"""The bound on a response frame a broker has begun and not finished (timeouts.responseFrameMs).

Why it exists: a broker that sends part of a frame and then trickles the rest a byte a second,
or goes silent, holds the client's connection, its broker connection and the frame's buffer for
as long as it likes; the client's own request timeout ends that, but not every client has one
short enough. The bound ends such a frame independently of clients. It costs nothing per frame
that arrives within one read: a timer is armed only when a read ends inside a frame, and checked
once per period, not per read. A frame begun since the timer was armed, or one the gateway itself
held back because its client reads slowly, gets another full period, so a frame is given between
one and two periods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from failover_gateway.pump import framing


class ResponseFrameBound:
    """Watches one connection's response splitter; calls ``overdue`` when a frame is late."""

    __slots__ = ("_held_back", "_overdue", "_seconds", "_splitter", "_timed", "_timer")

    def __init__(
        self,
        splitter: framing.FrameSplitter,
        seconds: float,
        *,
        overdue: Callable[[], None],
        held_back: Callable[[], bool],
    ) -> None:
        self._splitter = splitter
        self._seconds = seconds  # 0: no bound
        self._overdue = overdue
        self._held_back = held_back  # True while the gateway is not reading the broker
        self._timer: asyncio.TimerHandle | None = None
        self._timed = 0  # the splitter's frame count when the timer was armed

    @property
    def seconds(self) -> float:
        return self._seconds

    def bytes_read(self) -> None:
        """After each read from the broker: arm the timer if a frame is now half through."""
        if self._timer is None and self._seconds > 0 and not self._splitter.idle:
            self._arm()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def release(self) -> None:
        """The connection is closed: cancel the timer and drop the callbacks bound to it."""
        self.cancel()
        self._overdue = _nothing
        self._held_back = _not_held

    def _arm(self) -> None:
        self._timed = self._splitter.frames_begun
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._splitter.idle:
            return
        if self._splitter.frames_begun != self._timed or self._held_back():
            self._arm()
            return
        self._overdue()


def _nothing() -> None:
    """What a released bound calls when a frame is overdue: nothing (its timer is gone)."""


def _not_held() -> bool:
    return False
