"""Leader election between operator replicas: who may act, decided from one Lease, and the guard
every action checks.

Why it exists: during a rolling upgrade, or with a standby replica, two operator processes run at
once, and two operators switching or fencing the same gateway pods would undo each other. As with
controller-runtime, a Lease (coordination.k8s.io/v1) named ``kafka-failover-operator`` picks one
leader; the others stand by. This module makes no API call and starts nothing (a checked
import-linter contract keeps the client, kopf and asyncio out): the timing settings, the decision
taken on a read Lease, the bodies written, and :func:`held`, the guard. ``electing`` does the I/O
and runs the operator under it.

Expiry is judged as client-go does, not from ``renewTime``: a Lease held by someone else is taken
over once this process has seen the very same version of it (same ``resourceVersion``) for
``leaseDurationSeconds`` by its own monotonic clock. ``renewTime`` is the holder's wall clock;
comparing it with ours would let a standby whose clock runs ahead take over a live lease. The cost:
a replica started long after a leader died still waits one lease duration.

Why ``held()`` is safe: the leader counts its lease from the moment it *sent* the request that
renewed it, and trusts it only for ``renewDeadline``; a standby cannot see that renewal before it
was sent and waits ``leaseDuration`` after seeing it. So a leader stops trusting its lease at least
``leaseDuration - renewDeadline`` (5 s by default) before anyone else may take it, and an action
checked with ``held()`` has that long to finish.
"""

from __future__ import annotations

import datetime
import enum
import math
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

LEASE_NAME = "kafka-failover-operator"
DURATION_ENV = "KAFKA_FAILOVER_LEASE_DURATION"
RENEW_DEADLINE_ENV = "KAFKA_FAILOVER_LEASE_RENEW_DEADLINE"
RETRY_PERIOD_ENV = "KAFKA_FAILOVER_LEASE_RETRY_PERIOD"
NAMESPACE_ENV = "POD_NAMESPACE"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
RELEASED_DURATION_SECONDS = 1

Clock = Callable[[], float]


class LeadershipError(Exception):
    """Base of this module's errors."""


class SettingsError(LeadershipError):
    """A leader-election setting is invalid; the message names the variable and what is valid."""


class NotLeader(LeadershipError):
    """This process does not (or no longer surely) hold the Lease: it must not act."""


@dataclass(frozen=True)
class Timing:
    """How long a lease lasts and how often it is tried, as client-go's leader election."""

    lease_duration: float = 15.0
    """How long a standby waits, after last seeing the Lease change, before taking it over."""

    renew_deadline: float = 10.0
    """How long the leader trusts its last renewal; past it, it stops acting and exits."""

    retry_period: float = 2.0
    """How often the leader renews and a standby looks at the Lease."""


class LeaseMeta(TypedDict, total=False):
    name: str
    namespace: str
    resourceVersion: str


class LeaseSpec(TypedDict, total=False):
    holderIdentity: str
    leaseDurationSeconds: int
    acquireTime: str
    renewTime: str
    leaseTransitions: int


class Lease(TypedDict, total=False):
    """A coordination.k8s.io/v1 Lease as the API server sends it (raw JSON)."""

    apiVersion: str
    kind: str
    metadata: LeaseMeta
    spec: LeaseSpec


class Decision(enum.Enum):
    CREATE = "create"
    """No Lease yet: create it, holding it."""
    CLAIM = "claim"
    """Released, expired or already ours: update it with its resourceVersion to hold it."""
    RENEW = "renew"
    """We lead and it is still ours: update its renewTime."""
    WAIT = "wait"
    """Someone else holds a live lease: look again after a retry period."""
    LOST = "lost"
    """We thought we led, but the Lease is gone or someone else's: stop at once."""


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name}={raw!r} must be a number of seconds greater than 0")
    return value


def timing_from_env(env: Mapping[str, str]) -> Timing:
    """The defaults, overridden by ``KAFKA_FAILOVER_LEASE_*``: 0 < retry < renew < duration."""
    defaults = Timing()
    duration = _seconds(env, DURATION_ENV, defaults.lease_duration)
    deadline = _seconds(env, RENEW_DEADLINE_ENV, defaults.renew_deadline)
    retry = _seconds(env, RETRY_PERIOD_ENV, defaults.retry_period)
    if deadline >= duration:
        raise SettingsError(
            f"{RENEW_DEADLINE_ENV}={deadline:g} must be greater than 0 and less than "
            f"{DURATION_ENV} ({duration:g}): the leader must give up before a standby takes over"
        )
    if retry >= deadline:
        raise SettingsError(
            f"{RETRY_PERIOD_ENV}={retry:g} must be greater than 0 and less than "
            f"{RENEW_DEADLINE_ENV} ({deadline:g}): the leader must get more than one try"
        )
    return Timing(duration, deadline, retry)


def identity(env: Mapping[str, str]) -> str:
    """``$HOSTNAME`` (the pod name) plus a random suffix: two processes on one host differ."""
    host = env.get("HOSTNAME") or socket.gethostname()
    return f"{host}-{secrets.token_hex(3)}"


def lease_namespace(
    env: Mapping[str, str],
    watched: Sequence[str],
    service_account_file: Path = SERVICE_ACCOUNT_NAMESPACE,
) -> str:
    """Where the Lease lives: the operator pod's own namespace when known, so every replica of one
    Deployment finds the same Lease whatever it watches.

    In order: ``$POD_NAMESPACE`` (the chart sets it from the downward API); the first watched
    namespace in sorted order (so the order of ``--namespace`` flags does not matter); the service
    account's namespace file in a pod. With ``--all-namespaces`` outside a pod, set
    ``POD_NAMESPACE``.
    """
    if env.get(NAMESPACE_ENV):
        return env[NAMESPACE_ENV]
    if watched:
        return sorted(watched)[0]
    try:
        return service_account_file.read_text().strip()
    except OSError:
        raise SettingsError(
            f"leader election needs a namespace for Lease {LEASE_NAME}: set {NAMESPACE_ENV} "
            "(with --all-namespaces outside a pod), or pass --no-leader-election"
        ) from None


def holder(lease: Lease | None) -> str:
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or ""


def resource_version(lease: Lease | None) -> str:
    return ((lease or {}).get("metadata") or {}).get("resourceVersion") or ""


def lease_duration(lease: Lease | None, default: float) -> float:
    """The duration its holder wrote (holders of another version may differ from us)."""
    written = ((lease or {}).get("spec") or {}).get("leaseDurationSeconds")
    return float(written) if written else default


def decide(
    lease: Lease | None, *, me: str, leading: bool, unchanged_for: float, duration: float
) -> Decision:
    """What to do about ``lease`` (None: absent), seen unchanged for ``unchanged_for`` seconds.

    A leader that finds its Lease deleted gives up rather than recreate it: it cannot know whether
    someone else held it in between.
    """
    current = holder(lease)
    if leading:
        return Decision.RENEW if lease is not None and current == me else Decision.LOST
    if lease is None:
        return Decision.CREATE
    if current in ("", me) or unchanged_for >= lease_duration(lease, duration):
        return Decision.CLAIM
    return Decision.WAIT


@dataclass
class Observer:
    """How long the Lease has stayed exactly as it is (same resourceVersion), by a local clock."""

    version: str | None = None
    """resourceVersion of the Lease last seen; None: absent, or not looked at yet."""
    since: float | None = None

    def see(self, lease: Lease | None, now: float) -> float:
        version = resource_version(lease) if lease is not None else None
        if self.since is None or version != self.version:
            self.version, self.since = version, now
        return now - self.since


def micro_time(now: datetime.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def created(namespace: str, me: str, timing: Timing, now: datetime.datetime) -> Lease:
    stamp = micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": namespace},
        "spec": {
            "holderIdentity": me,
            "leaseDurationSeconds": math.ceil(timing.lease_duration),
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 0,
        },
    }


def _rewritten(lease: Lease, spec: LeaseSpec) -> Lease:
    """The same object (its resourceVersion makes the update conditional) with a new spec."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": lease.get("metadata") or {},
        "spec": spec,
    }


def claimed(lease: Lease, me: str, timing: Timing, now: datetime.datetime) -> Lease:
    previous = lease.get("spec") or {}
    stamp = micro_time(now)
    transitions = previous.get("leaseTransitions") or 0
    return _rewritten(
        lease,
        {
            "holderIdentity": me,
            "leaseDurationSeconds": math.ceil(timing.lease_duration),
            "acquireTime": stamp if holder(lease) != me else previous.get("acquireTime", stamp),
            "renewTime": stamp,
            "leaseTransitions": transitions + (1 if holder(lease) != me else 0),
        },
    )


def renewed(lease: Lease, now: datetime.datetime) -> Lease:
    return _rewritten(lease, {**(lease.get("spec") or {}), "renewTime": micro_time(now)})


def released(lease: Lease, now: datetime.datetime) -> Lease:
    """No holder and a 1 s duration, as client-go releases: a standby claims it at its next look."""
    spec: LeaseSpec = {
        **(lease.get("spec") or {}),
        "holderIdentity": "",
        "leaseDurationSeconds": RELEASED_DURATION_SECONDS,
        "renewTime": micro_time(now),
    }
    return _rewritten(lease, spec)


@dataclass
class Tenure:
    """This process's leadership, trusted for ``renew_deadline`` after the last confirmed renewal.

    ``renewed_at`` is read from ``clock`` (monotonic) *before* the confirming request was sent.
    """

    identity: str
    renew_deadline: float
    renewed_at: float
    clock: Clock = time.monotonic
    lost: bool = False

    def age(self) -> float:
        return self.clock() - self.renewed_at

    def held(self) -> bool:
        return not self.lost and self.age() < self.renew_deadline

    def renewed(self, at: float) -> None:
        self.renewed_at = max(self.renewed_at, at)


@dataclass
class Leadership:
    """Whether this process may act. Without an election (``--no-leader-election``, ``kopf run``,
    tests calling the reconciler directly) the process is taken to be the only operator."""

    electing: bool = False
    tenure: Tenure | None = field(default=None)

    def held(self) -> bool:
        if not self.electing:
            return True
        return self.tenure is not None and self.tenure.held()

    def ensure(self) -> None:
        """Raise :class:`NotLeader`, saying why, unless :meth:`held`."""
        if not self.held():
            raise NotLeader(self.why_not())

    def why_not(self) -> str:
        if self.tenure is None:
            return "this operator is a standby: another replica holds the Lease"
        if self.tenure.lost:
            return "this operator lost the Lease to another replica"
        return (
            f"this operator last renewed its Lease {self.tenure.age():.1f} s ago, past its "
            f"renew deadline of {self.tenure.renew_deadline:g} s (was it frozen?)"
        )


_current = Leadership()


def held() -> bool:
    """True while this process may act: it leads, and renewed its Lease less than renewDeadline
    ago by ``time.monotonic()``; True also when no election runs in this process. Cheap and
    thread-safe: call it right before every switch, fence, apply and status write."""
    return _current.held()


def ensure_held() -> None:
    """Raise :class:`NotLeader`, saying why, unless :func:`held`."""
    _current.ensure()


def current() -> Leadership:
    """The process's state, for ``electing`` (which starts an election and records the tenure)."""
    return _current
