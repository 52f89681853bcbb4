"""Running the operator only while this replica holds the Lease: stand by, lead, renew, give up.

Why it exists: two operator replicas (a rolling upgrade, a hot standby) must never switch, fence,
apply or write status at once. ``leadership`` decides from the Lease; this module does the I/O
and owns the process's life around kopf:

1. **Standing by**, before kopf starts: a minimal aiohttp server answers the liveness URL (the
   kubelet would otherwise restart a standby forever) while a worker thread looks at the Lease
   every retry period. No kopf handler is registered with a running kopf yet, so a standby
   watches nothing and does nothing. SIGTERM here just ends the process.
2. **Leading**: the liveness server stops and ``kopf.operator`` starts on the same event loop
   (kopf serves the same URL from then on, and handles SIGTERM itself; a SIGTERM that lands
   before kopf installs its handler cancels it). Starting kopf only once leading, rather than
   pausing a running kopf, means a standby holds no watch, cache or timer that could fire. (Not
   kopf's ``stop_flag``: when a signal stops kopf, its waiter on that flag is left pending and
   kopf waits 5 s for it, which would delay the release by as much.)
3. **Renewing**, in a plain thread (never on the event loop, and not delayed by a busy loop): every
   retry period a conditional update of the Lease. Past the renew deadline without a successful
   renewal, or on finding the Lease someone else's, it logs why and calls ``os._exit`` with
   :data:`LOST_EXIT_CODE`, as controller-runtime does: the pod restarts and re-joins as a standby.
   Nothing is cleaned up on that path on purpose: whatever kopf would do next is what must not
   happen.
4. **Frozen and resumed** (SIGSTOP, a VM pause): a SIGCONT handler runs in the main thread, which
   is kopf's loop thread, before the loop runs another callback; past the renew deadline it exits
   at once. A pause without SIGCONT (a long GC) is caught by ``leadership.held()`` in front of
   every action and by the renewal thread.
5. **Released**: when kopf returns (SIGTERM: every handler is finished or cancelled), the renewal
   thread stops and the Lease is written with no holder, so a standby takes over at its next look
   (one retry period) instead of after a lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import signal
import sys
import threading
import time
import types
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from aiohttp import web

from failover_operator import leadership, leases
from failover_operator.leadership import Decision, Lease, Tenure, Timing

LOST_EXIT_CODE = 3
MIN_CALL_SECONDS = 0.2
HTTP_PORT = 80
log = logging.getLogger("failover_operator.electing")

Operate = Callable[[], Coroutine[Any, Any, None]]
"""Runs the operator until SIGTERM or SIGINT (``kopf.operator(...)``)."""

GiveUp = Callable[[str], None]


class LostLease(leadership.LeadershipError):
    """The Lease is gone or someone else's while we led."""


@dataclass(frozen=True)
class Election:
    """Who runs for which Lease, and how fast."""

    namespace: str
    """Namespace of the Lease ``leadership.LEASE_NAME`` (see ``leadership.lease_namespace``)."""

    identity: str
    """This process's holderIdentity: hostname plus a random suffix."""

    timing: Timing
    """Lease duration, renew deadline and retry period."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], watched: Sequence[str]) -> Election:
        """Raises ``leadership.SettingsError`` naming the variable when a setting is invalid."""
        return cls(
            namespace=leadership.lease_namespace(env, watched),
            identity=leadership.identity(env),
            timing=leadership.timing_from_env(env),
        )


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Candidate:
    """The calls of one election, synchronous: run them in a worker thread or the renewer."""

    def __init__(
        self,
        client: leases.LeaseClient,
        election: Election,
        *,
        clock: leadership.Clock = time.monotonic,
        wall: Callable[[], datetime.datetime] = _utc_now,
    ) -> None:
        self.client = client
        self.election = election
        self.clock = clock
        self.wall = wall
        self.lease: Lease | None = None
        """The Lease as we last wrote it (its resourceVersion makes the next write conditional)."""
        self.holder = ""
        self._observer = leadership.Observer()

    @property
    def me(self) -> str:
        return self.election.identity

    @property
    def timing(self) -> Timing:
        return self.election.timing

    def try_acquire(self) -> Tenure | None:
        """One look at the Lease as a standby; the tenure if it is ours now, else None."""
        lease = self.client.read(self.timing.renew_deadline)
        unchanged = self._observer.see(lease, self.clock())  # after the read: never overstated
        decision = leadership.decide(
            lease,
            me=self.me,
            leading=False,
            unchanged_for=unchanged,
            duration=self.timing.lease_duration,
        )
        if decision is Decision.WAIT:
            self._note_holder(lease)
            return None
        return self._claim(lease, unchanged)

    def _claim(self, lease: Lease | None, unchanged: float) -> Tenure | None:
        started = self.clock()  # before the write: the tenure is never overstated either
        try:
            if lease is None:
                written = self.client.create(
                    leadership.created(self.client.namespace, self.me, self.timing, self.wall()),
                    self.timing.renew_deadline,
                )
            else:
                written = self.client.replace(
                    leadership.claimed(lease, self.me, self.timing, self.wall()),
                    self.timing.renew_deadline,
                )
        except leases.Conflict:
            log.info("%s: another replica claimed it first; standing by", self.client.where)
            return None
        self.lease = written
        previous = leadership.holder(lease)
        how = (
            "created it"
            if lease is None
            else f"took it over from {previous}, unchanged for {unchanged:.1f} s"
            if previous not in ("", self.me)
            else f"took it over from {previous or 'nobody'}"
        )
        log.info("Leading as %s: %s, %s", self.me, self.client.where, how)
        return Tenure(self.me, self.timing.renew_deadline, started, self.clock)

    def _note_holder(self, lease: Lease | None) -> None:
        current = leadership.holder(lease)
        if current != self.holder:
            self.holder = current
            log.info("Standing by as %s: %s is held by %s", self.me, self.client.where, current)

    def renew(self, tenure: Tenure) -> None:
        """Update renewTime; :class:`LostLease` if it is no longer ours, else ``LeaseCallError``."""
        timeout = max(tenure.renew_deadline - tenure.age(), MIN_CALL_SECONDS)
        started = self.clock()
        assert self.lease is not None, "renewing a Lease never acquired"
        try:
            written = self.client.replace(leadership.renewed(self.lease, self.wall()), timeout)
        except leases.Conflict:
            written = self._renew_fresh(timeout)
        self.lease = written
        tenure.renewed(started)

    def _renew_fresh(self, timeout: float) -> Lease:
        """Someone wrote the Lease since our last write: still ours (say, a label edit), or lost."""
        lease = self.client.read(timeout)
        decision = leadership.decide(
            lease, me=self.me, leading=True, unchanged_for=0.0, duration=0.0
        )
        if lease is None or decision is Decision.LOST:
            raise LostLease(
                f"{self.client.where} is now held by {leadership.holder(lease) or 'nobody'}"
                + ("" if lease is not None else " (it was deleted)")
            )
        return self.client.replace(leadership.renewed(lease, self.wall()), timeout)

    def release(self, tenure: Tenure) -> None:
        """Write the Lease with no holder, if it is surely still ours; never raises."""
        if self.lease is None or not tenure.held():
            log.warning("Not releasing %s: it may no longer be ours", self.client.where)
            return
        try:
            self.client.replace(
                leadership.released(self.lease, self.wall()), self.timing.renew_deadline
            )
        except leases.LeaseCallError as error:
            log.warning("Releasing failed (%s); a standby takes over when it expires", error)
            return
        log.info("Released %s: a standby takes over at its next look", self.client.where)

    def report(self) -> dict[str, str]:
        return {"leadership": "standby", "identity": self.me, "holder": self.holder}


def give_up(reason: str) -> NoReturn:
    """Exit now, without cleanup: a leader that may have lost its Lease must do nothing more."""
    tenure = leadership.current().tenure
    if tenure is not None:
        tenure.lost = True
    log.error(
        "Leadership lost: %s. Exiting with code %d now; a restarted operator re-joins as a "
        "standby.",
        reason,
        LOST_EXIT_CODE,
    )
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    sys.stderr.flush()
    os._exit(LOST_EXIT_CODE)


class Renewer:
    """Renews the tenure every retry period in its own thread; gives up past the deadline."""

    def __init__(self, candidate: Candidate, tenure: Tenure, *, on_lost: GiveUp = give_up) -> None:
        self._candidate = candidate
        self._tenure = tenure
        self._on_lost = on_lost
        self._stopping = threading.Event()
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)

    def start(self) -> Renewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing; returns once a renewal in flight has ended (bounded by its timeout)."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self._candidate.timing.retry_period):
            self.renew_once()

    def renew_once(self) -> None:
        tenure = self._tenure
        if not tenure.held():
            self._on_lost(self._overdue())
            return
        try:
            self._candidate.renew(tenure)
        except LostLease as error:
            self._on_lost(str(error))
        except leases.LeaseCallError as error:
            self._last_error = str(error)
            if not tenure.held():
                self._on_lost(self._overdue())
                return
            left = tenure.renew_deadline - tenure.age()
            log.warning("Renewing failed (%s); %.1f s left before giving up", error, left)

    def _overdue(self) -> str:
        return (
            f"no renewal of {self._candidate.client.where} for {self._tenure.age():.1f} s, past "
            f"the renew deadline of {self._tenure.renew_deadline:g} s (last error: "
            f"{self._last_error or 'none, the renewal thread did not run in time'})"
        )


def _exit_when_resumed_too_late(tenure: Tenure) -> None:
    """On SIGCONT, before the event loop runs anything else: past the deadline, exit at once."""

    def on_resume(signum: int, frame: types.FrameType | None) -> None:
        if tenure.held():
            return
        tenure.lost = True
        message = (
            f"Leadership lost: resumed {tenure.age():.1f} s after the last renewal, past the renew "
            f"deadline of {tenure.renew_deadline:g} s (frozen?). Exiting with code "
            f"{LOST_EXIT_CODE} before doing anything.\n"
        )
        os.write(2, message.encode())  # not logging: its lock may be held by the interrupted code
        os._exit(LOST_EXIT_CODE)

    try:
        signal.signal(signal.SIGCONT, on_resume)
    except ValueError:  # not the main thread: the renewer and held() still guard
        log.warning("No SIGCONT guard: the election does not run in the main thread")


async def _serve_liveness(url: str, report: Callable[[], dict[str, str]]) -> web.AppRunner:
    """The standby's answer on the liveness URL, as kopf parses it (http only)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise leadership.SettingsError(f"--liveness {url}: only http:// is supported")

    async def alive(_: web.Request) -> web.Response:
        return web.json_response(report())

    app = web.Application()
    app.add_routes([web.get(parts.path or "/", alive)])
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname or "127.0.0.1", parts.port or HTTP_PORT).start()
    return runner


async def _stand_by(candidate: Candidate, liveness: str, stopping: asyncio.Event) -> Tenure | None:
    """Look at the Lease every retry period until it is ours (the tenure) or we stop (None)."""
    runner = await _serve_liveness(liveness, candidate.report)
    problem = ""
    try:
        while not stopping.is_set():
            try:
                tenure = await asyncio.to_thread(candidate.try_acquire)
            except leases.LeaseCallError as error:
                if str(error) != problem:
                    log.warning("Standing by: %s (retrying every retry period)", error)
                problem, tenure = str(error), None
            if tenure is not None:
                return tenure
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), candidate.timing.retry_period)
        return None
    finally:
        await runner.cleanup()


def _stop_on_signals(stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)


async def _operate_until(operate: Operate, stopping: asyncio.Event) -> None:
    """Run the operator; a stop asked before it handles signals itself cancels it."""
    operator = asyncio.create_task(operate(), name="operator")
    stop = asyncio.create_task(stopping.wait(), name="stop before kopf handles signals")
    try:
        await asyncio.wait({operator, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        operator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await operator


async def run_elected(
    operate: Operate, election: Election, *, liveness: str, api: Any | None = None
) -> None:
    """Stand by until leading, then ``operate`` until stopped; release the Lease after it.

    Call it with ``asyncio.run`` in the main thread (signal handlers). ``api``: a
    CoordinationV1Api (default: ``leases.connect()``).
    """
    stopping = asyncio.Event()
    _stop_on_signals(stopping)
    client = leases.LeaseClient(api or await asyncio.to_thread(leases.connect), election.namespace)
    candidate = Candidate(client, election)
    state = leadership.current()
    state.electing = True
    log.info("Standing by as %s for %s", election.identity, client.where)
    tenure = await _stand_by(candidate, liveness, stopping)
    if tenure is None:
        log.info("Stopped while standing by")
        return
    state.tenure = tenure
    _exit_when_resumed_too_late(tenure)
    renewer = Renewer(candidate, tenure).start()
    try:
        await _operate_until(operate, stopping)
    finally:
        await asyncio.to_thread(renewer.stop)
        await asyncio.to_thread(candidate.release, tenure)
