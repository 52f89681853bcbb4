"""The admin API's guards against abuse: body size and time, slow or idle connections, and
floods of wrong credentials.

Why it exists: the admin port can switch every client of the gateway, and whatever reaches a pod
reaches it. Nobody may make the gateway buffer a large body, hold connections with headers or a
body that never end, or try passwords at line rate, and none of it may stop the Kubernetes
probes and metric scrapes served on the same port. aiohttp reads bodies up to its own 1 MiB
default and, depending on its version, may never time out a connection that has not sent a
first request, so the bounds are set here, independently of the aiohttp version:

- a body larger than ``maxBodyBytes`` gets 413 before it is read (or once the limit is passed,
  for a body without a length); a body slower than ``bodyTimeoutMs`` gets 408;
- a connection that sends no complete request headers within ``keepaliveTimeoutMs`` of opening
  or of its last answer is closed (idle keep-alive connections and slowloris alike);
- wrong credentials drain a token bucket per client address; an empty bucket gets 429 with
  ``Retry-After`` without its credentials being checked. The first failure of an address is
  logged in full, the rest are summed up in one line per address and interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from ssl import SSLContext
from typing import cast

from aiohttp import web

from failover_gateway.config import AdminConfig
from failover_gateway.server import metrics

log = logging.getLogger("failover_gateway.admin")

Clock = Callable[[], float]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SUMMARY_INTERVAL_SECONDS = 60.0
# Addresses remembered at once; beyond that the least recently added one is forgotten, so that
# a flood from many addresses costs bounded memory (a forgotten address starts with a full bucket).
MAX_TRACKED_ADDRESSES = 10_000
# Lines naming one address, per interval, for failures and for summaries each; a flood from more
# addresses than that is summed up in one more line.
MAX_ADDRESS_LINES = 100


@dataclass
class _Address:
    tokens: float
    stamp: float
    reported: bool = False  # a failure of its current run was logged in full
    failures: int = 0  # not yet in a summary line
    throttled: int = 0  # 429s not yet in a summary line


class AuthFailureLimiter:
    """A token bucket of credential failures per client address, with summed-up log lines."""

    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        counts: metrics.AdminAbuse,
        clock: Clock = time.monotonic,
        summary_interval: float = SUMMARY_INTERVAL_SECONDS,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self.summary_interval = summary_interval
        self._burst = float(burst)
        self._rate = per_minute / 60.0
        self._counts = counts
        self._clock = clock
        self._max_addresses = max_addresses
        self._addresses: dict[str, _Address] = {}
        self._lines_left = MAX_ADDRESS_LINES

    def retry_after(self, address: str) -> int | None:
        """Seconds the address must wait before its credentials are checked again (counted
        as a refusal), or None when it may try now."""
        entry = self._addresses.get(address)
        if entry is None or self._refill(entry) >= 1:
            return None
        entry.throttled += 1
        self._counts.auth_throttled += 1
        return max(1, math.ceil((1 - entry.tokens) / self._rate))

    def failed(self, address: str, user: str, what: str) -> None:
        """Wrong or missing credentials from ``address`` for ``user`` on ``what``."""
        self._counts.auth_failures += 1
        entry = self._addresses.get(address)
        if entry is None:
            entry = self._remember(address)
        self._refill(entry)
        entry.tokens = max(0.0, entry.tokens - 1)
        if entry.reported or not self._lines_left:
            entry.failures += 1
            entry.reported = True
            return
        entry.reported = True
        self._lines_left -= 1
        log.warning(
            "admin auth failed from %s for user %r on %s (more failures from this address are "
            "summed up every %gs; %d allowed at once, then %g a minute)",
            address,
            user,
            what,
            self.summary_interval,
            self._burst,
            self._rate * 60,
        )

    def summarize(self) -> None:
        """One line per address with failures since the last summary (up to
        ``MAX_ADDRESS_LINES``, then one line for the rest); forget quiet addresses."""
        lines_left = MAX_ADDRESS_LINES
        rest = [0, 0, 0]  # addresses, failures, refusals beyond the lines allowed
        for address, entry in list(self._addresses.items()):
            if not (entry.failures or entry.throttled):
                if self._refill(entry) >= self._burst:
                    del self._addresses[address]
                else:
                    entry.reported = False
                continue
            if lines_left:
                lines_left -= 1
                log.warning(
                    "admin auth from %s in the last %gs: %d more failures, %d refused with 429",
                    address,
                    self.summary_interval,
                    entry.failures,
                    entry.throttled,
                )
            else:
                rest = [rest[0] + 1, rest[1] + entry.failures, rest[2] + entry.throttled]
            entry.failures = entry.throttled = 0
        if rest[0]:
            log.warning(
                "admin auth from %d more addresses in the last %gs: %d failures, %d refused "
                "with 429",
                *rest[:1],
                self.summary_interval,
                *rest[1:],
            )
        self._lines_left = MAX_ADDRESS_LINES

    @property
    def tracked_addresses(self) -> int:
        return len(self._addresses)

    def _remember(self, address: str) -> _Address:
        if len(self._addresses) >= self._max_addresses:
            del self._addresses[next(iter(self._addresses))]
        entry = self._addresses[address] = _Address(tokens=self._burst, stamp=self._clock())
        return entry

    def _refill(self, entry: _Address) -> float:
        now = self._clock()
        entry.tokens = min(self._burst, entry.tokens + (now - entry.stamp) * self._rate)
        entry.stamp = now
        return entry.tokens


class _Deadlined(asyncio.Protocol):
    """An aiohttp request handler whose connection must send complete request headers in time:
    the deadline runs from the connection's start and from each answer, and stops while a
    request is being handled."""

    def __init__(self, inner: asyncio.Protocol, guard: AdminGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._handling = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._guard.connections[self._transport] = self
        self._arm()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._guard.connections.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def handling(self) -> None:
        self._handling += 1
        self._disarm()

    def handled(self) -> None:
        self._handling -= 1
        if not self._handling:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        timeout = self._guard.config.keepalive_timeout_ms / 1000
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._guard.counts.connections_timed_out += 1
        log.debug("admin connection from %s closed: no request within the keep-alive timeout",
                  transport.get_extra_info("peername"))  # fmt: skip
        # An answer a peer does not read would keep a closed transport (and its descriptor)
        # until it is flushed: drop it.
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()


class AdminGuard:
    """Everything that bounds the admin API: middlewares, the connection deadline, the auth
    failure limiter and its summaries."""

    def __init__(
        self,
        config: AdminConfig,
        counts: metrics.AdminAbuse,
        *,
        clock: Clock = time.monotonic,
        summary_interval: float = SUMMARY_INTERVAL_SECONDS,
    ) -> None:
        self.config = config
        self.counts = counts
        self.logins = AuthFailureLimiter(
            burst=config.auth_failure_burst,
            per_minute=config.auth_failures_per_minute,
            counts=counts,
            clock=clock,
            summary_interval=summary_interval,
        )
        self.connections: dict[asyncio.Transport, _Deadlined] = {}

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Stops the connection's header deadline while its request is handled."""
        connection = self.connections.get(request.transport)  # type: ignore[arg-type]
        if connection is None:
            return await handler(request)
        connection.handling()
        try:
            return await handler(request)
        finally:
            connection.handled()

    @web.middleware
    async def read_body(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Reads the body within the size and time limits before any handler sees it."""
        if request.body_exists:
            refused = await self._read_within_limits(request)
            if refused is not None:
                return refused
        return await handler(request)

    async def _read_within_limits(self, request: web.Request) -> web.Response | None:
        limit = self.config.max_body_bytes
        declared = request.content_length
        too_large = (
            f"over the admin API's limit of {limit} bytes (gateway.admin.maxBodyBytes); "
            "admin calls take small JSON objects"
        )
        if declared is not None and declared > limit:
            return self._refuse("body_too_large", 413, f"request body of {declared} bytes is "
                                + too_large)  # fmt: skip
        timeout = self.config.body_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout):
                await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse("body_too_large", 413, "request body is " + too_large)
        except TimeoutError:
            return self._refuse(
                "body_too_slow",
                408,
                f"request body did not arrive within {timeout:g}s (gateway.admin.bodyTimeoutMs)",
            )
        return None

    def _refuse(self, reason: str, status: int, message: str) -> web.Response:
        self.counts.refused[reason] += 1
        log.debug("admin request refused (%s): %s", reason, message)
        response = web.json_response({"error": message}, status=status)
        response.force_close()
        return response

    async def summarizing(self, _: web.Application) -> AsyncIterator[None]:
        """The auth failure summaries, for ``app.cleanup_ctx``: one line per address and
        interval; the last ones when the app stops."""
        task = asyncio.create_task(self._summarize_every())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.logins.summarize()

    async def _summarize_every(self) -> None:
        while True:
            await asyncio.sleep(self.logins.summary_interval)
            self.logins.summarize()


async def serve(
    runner: web.AppRunner,
    guard: AdminGuard,
    *,
    host: str,
    port: int,
    ssl_context: SSLContext | None,
) -> asyncio.Server:
    """Listen for the admin API with the connection deadline around aiohttp's handler (an
    aiohttp site cannot wrap it). Close the server, then clean the runner up, to stop."""
    handlers = runner.server
    if handlers is None:
        raise RuntimeError("the admin runner must be set up before it serves")
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Deadlined(handlers(), guard), host, port, ssl=ssl_context, backlog=128
    )
