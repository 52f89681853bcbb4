"""Whether to fail over by itself: the quorum rule over the gateway pods' verdicts; pure.

Why it exists: an automatic switch must never follow one pod's view (its own network may be cut
from main while every client reaches main fine) nor a cluster that is merely slow to answer
once. The operator reads every ready pod's verdict on each cluster (``/api/v1/state``,
``upstreams``) and switches only when more than half of the *ready* pods (counted by the
operator: a pod that does not answer counts against) have judged the active cluster down for at
least ``unreachableSeconds`` *and* judge the target healthy, outside the cooldown of the last
automatic switch. The rule is a function of what was observed, so it is unit tested without a
cluster; acting on it (recording the decision, patching ``spec.active``) is elsewhere.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PodView:
    """What one ready pod reported; ``active_down_for`` None: the pod did not answer."""

    pod: str
    active_down_for: float | None
    target_healthy: bool


def view_from_state(
    pod: str, state: Mapping[str, Any] | None, *, active: str, target: str
) -> PodView:
    """A pod's view from its ``/api/v1/state`` (None: it did not answer, it counts against)."""
    if state is None:
        return PodView(pod, None, False)
    upstreams = state.get("upstreams") or {}
    on_active = upstreams.get(active) or {}
    on_target = upstreams.get(target) or {}
    down_for = on_active.get("downForSeconds") if on_active.get("verdict") == "down" else 0.0
    return PodView(
        pod,
        float(down_for) if isinstance(down_for, int | float) else None,
        on_target.get("verdict") == "healthy",
    )


@dataclass(frozen=True)
class Verdict:
    """The rule's answer, with the pods on each side for status and the Event."""

    switch: bool
    reason: str
    agreeing: tuple[str, ...]
    disagreeing: tuple[str, ...]


def decide(
    views: Sequence[PodView],
    *,
    active: str,
    target: str,
    unreachable_seconds: float,
    seconds_since_last_automatic: float | None,
    cooldown_seconds: float,
) -> Verdict:
    """Switch ``active`` -> ``target`` only on a majority of ready pods' evidence."""
    agreeing = tuple(
        v.pod
        for v in views
        if v.active_down_for is not None
        and v.active_down_for >= unreachable_seconds
        and v.target_healthy
    )
    disagreeing = tuple(v.pod for v in views if v.pod not in agreeing)
    needed = len(views) // 2 + 1
    if not views:
        return Verdict(False, "no ready gateway pod to judge the clusters", (), ())
    if len(agreeing) < needed:
        return Verdict(
            False,
            f"{len(agreeing)} of {len(views)} ready pod(s) judge {active} down for "
            f"{unreachable_seconds:g}s and {target} healthy; {needed} needed",
            agreeing,
            disagreeing,
        )
    if seconds_since_last_automatic is not None and seconds_since_last_automatic < cooldown_seconds:
        return Verdict(
            False,
            f"{active} judged down by {len(agreeing)} of {len(views)} pod(s), but the last "
            f"automatic switch was {seconds_since_last_automatic:.0f}s ago (cooldown "
            f"{cooldown_seconds:g}s)",
            agreeing,
            disagreeing,
        )
    return Verdict(
        True,
        f"{len(agreeing)} of {len(views)} ready pod(s) judge {active} down for at least "
        f"{unreachable_seconds:g}s and {target} healthy",
        agreeing,
        disagreeing,
    )


def target_of(active: str, configured: str | None, failover_roles: Sequence[str]) -> str | None:
    """Where an automatic failover from ``active`` goes: ``automaticFailover.to``, else the
    first cluster with role failover; None when that is the active one (nothing to do)."""
    target = configured or next(iter(failover_roles), None)
    return None if target is None or target == active else target


def seconds_since(at: str | None, now: datetime.datetime) -> float | None:
    """Seconds from a status timestamp (``2026-11-30T18:00:00Z``) to ``now``; None if unset."""
    if not at:
        return None
    then = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
    return (now - then).total_seconds()


DECIDED, SWITCHED, DRY_RUN, ABANDONED = "Decided", "Switched", "DryRun", "Abandoned"


def unfinished(decision: Mapping[str, Any] | None, *, active: str, generation: int) -> bool:
    """A decision recorded before acting whose patch of ``spec.active`` has not landed (the
    operator restarted or lost the API server in between): complete it, never decide again."""
    return (
        decision is not None
        and decision.get("phase") == DECIDED
        and decision.get("from") == active
        and decision.get("generation") == generation
    )


def made_this_change(decision: Mapping[str, Any] | None, *, active: str, generation: int) -> bool:
    """Whether the change of ``spec.active`` at ``generation`` is the recorded automatic one
    (then it is switched immediately: main is gone, nothing to fence or wait for)."""
    return (
        decision is not None
        and decision.get("phase") in (DECIDED, SWITCHED)
        and decision.get("to") == active
        and decision.get("generation") == generation - 1
    )


def same_dry_run(recorded: Mapping[str, Any] | None, decision: Mapping[str, Any]) -> bool:
    """Whether a dry run already reported this switch (same clusters, same spec generation)."""
    return (
        recorded is not None
        and recorded.get("phase") == DRY_RUN
        and all(recorded.get(k) == decision.get(k) for k in ("from", "to", "generation"))
    )
