"""How long a client may take to start speaking and to finish what it starts: the clock that
ends slowloris and half-open connections.

Why it exists: the gateway dials a broker for every connection it accepts, so a client that
connects and never sends a request, or starts a frame and never finishes it (one byte a second),
holds two descriptors and one of ``limits.maxConnections`` for as long as nothing ends it. Kafka's
own broker ends such connections only after ``connections.max.idle.ms`` (10 minutes). Three
bounds, each configured in ``gateway.timeouts``:

* the first request must be complete within ``clientFirstRequestMs`` of the accept;
* on a listener that terminates SASL, authentication must be over within
  ``clientAuthenticationMs`` of the accept;
* a frame whose first byte has arrived must be complete within ``clientFrameMs`` of reading
  time: while the gateway itself has paused reading the client (backpressure from the broker,
  the in-flight limit, a write fence) the client cannot send, so that time does not count.

Pure: the caller passes the time, so protocol tests drive it with a fake clock. The connection
keeps one timer at :meth:`ClientDeadlines.next_deadline` and asks :meth:`overrun` when it fires;
reads only flip attributes, so the data path pays no timer work per read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Bound(enum.Enum):
    """Which bound a client overran; the value is the metric label."""

    FIRST_REQUEST = "first_request"
    AUTHENTICATION = "authentication"
    FRAME = "frame"


_SETTING = {
    Bound.FIRST_REQUEST: "gateway.timeouts.clientFirstRequestMs",
    Bound.AUTHENTICATION: "gateway.timeouts.clientAuthenticationMs",
    Bound.FRAME: "gateway.timeouts.clientFrameMs",
}
_WHAT = {
    Bound.FIRST_REQUEST: "sent no complete request",
    Bound.AUTHENTICATION: "did not authenticate",
    Bound.FRAME: "did not finish a frame it started",
}


@dataclass(frozen=True)
class Overrun:
    """A bound the client did not meet."""

    bound: Bound
    limit_seconds: float

    def describe(self) -> str:
        limit_ms = round(self.limit_seconds * 1000)
        return (
            f"slow client: {_WHAT[self.bound]} within {self.limit_seconds:g} s "
            f"({_SETTING[self.bound]}={limit_ms})"
        )


class ClientDeadlines:
    """The bounds of one client connection; every method takes the current monotonic time."""

    __slots__ = (
        "_authentication",
        "_authentication_by",
        "_first_request",
        "_first_request_by",
        "_frame",
        "_frame_running_since",
        "_frame_spent",
        "_in_frame",
        "_opened_at",
        "_paused",
    )

    def __init__(
        self,
        *,
        opened_at: float,
        first_request: float,
        frame: float,
        authentication: float,
    ) -> None:
        """Seconds for each bound; authentication is bounded once :meth:`expect_authentication`
        says the listener terminates SASL."""
        self._opened_at = opened_at
        self._first_request = first_request
        self._frame = frame
        self._authentication = authentication
        self._first_request_by: float | None = opened_at + first_request
        self._authentication_by: float | None = None
        self._in_frame = False
        self._frame_spent = 0.0  # reading time the current frame used before the last pause
        self._frame_running_since: float | None = None  # None: no frame, or reading paused
        self._paused = False

    @property
    def in_frame(self) -> bool:
        return self._in_frame

    def request_completed(self) -> None:
        self._first_request_by = None

    def expect_authentication(self) -> None:
        self._authentication_by = self._opened_at + self._authentication

    def authenticated(self) -> None:
        self._authentication_by = None

    def frame_started(self, now: float) -> None:
        self._in_frame = True
        self._frame_spent = 0.0
        self._frame_running_since = None if self._paused else now

    def frame_ended(self) -> None:
        self._in_frame = False
        self._frame_running_since = None

    def paused(self, now: float) -> None:
        if self._paused:
            return
        self._paused = True
        if self._frame_running_since is not None:
            self._frame_spent += now - self._frame_running_since
            self._frame_running_since = None

    def resumed(self, now: float) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._in_frame:
            self._frame_running_since = now

    def next_deadline(self) -> float | None:
        """When a bound could next be overrun, or None while none is running."""
        times = [t for t in (self._first_request_by, self._authentication_by) if t is not None]
        if self._frame_running_since is not None:
            times.append(self._frame_running_since + self._frame - self._frame_spent)
        return min(times, default=None)

    def overrun(self, now: float) -> Overrun | None:
        """The first bound overrun at ``now``, if any."""
        if self._first_request_by is not None and now >= self._first_request_by:
            return Overrun(Bound.FIRST_REQUEST, self._first_request)
        if self._authentication_by is not None and now >= self._authentication_by:
            return Overrun(Bound.AUTHENTICATION, self._authentication)
        since = self._frame_running_since
        if since is not None and self._frame_spent + (now - since) >= self._frame:
            return Overrun(Bound.FRAME, self._frame)
        return None
