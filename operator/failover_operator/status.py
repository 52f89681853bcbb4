"""Computing a KafkaFailover's status and conditions from what the operator observed: pure.

Why it exists: status is the operator's answer to "has every pod switched, and when?" at 3 a.m.,
so its rules are unit tested without a cluster: ``activeCluster`` is set only when every ready pod
reports the desired cluster; conditions follow the Kubernetes convention (type, status, reason,
message, lastTransitionTime, observedGeneration) and keep their transition time while unchanged.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READY, SWITCHING, DEGRADED = "Ready", "Switching", "Degraded"
CARRIED = ("automaticFailover", "leftUnplanned", "unreplicated")


@dataclass(frozen=True)
class PodReport:
    """One gateway pod as the operator saw it."""

    name: str
    cluster: str | None  # what the pod reports as active, None when it did not answer
    epoch: int | None
    error: str | None = None
    fenced: bool = False  # deleted for not acknowledging: gone from the live pods

    def on(self, cluster: str, epoch: int) -> bool:
        return self.cluster == cluster and (self.epoch or 0) >= epoch


@dataclass(frozen=True)
class Problem:
    """Something that makes the object Degraded: a reason (CamelCase) and a message."""

    reason: str
    message: str


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    kind: str,
    status: bool,
    *,
    reason: str,
    message: str,
    generation: int,
    previous: Sequence[Mapping[str, Any]],
    at: str,
) -> dict[str, Any]:
    """A condition; its lastTransitionTime moves only when its status changes."""
    text = "True" if status else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    since = at
    if old is not None and old.get("status") == text:
        since = old.get("lastTransitionTime", at)
    return {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def gateways_summary(desired: str, epoch: int, pods: Iterable[PodReport]) -> dict[str, Any]:
    reports = list(pods)
    switched = [p for p in reports if p.on(desired, epoch)]
    failed = [
        {"pod": p.name, "reason": p.error or f"reports {p.cluster!r} at epoch {p.epoch}"}
        for p in reports
        if not p.on(desired, epoch)
    ]
    return {
        "total": len(reports),
        "switched": len(switched),
        "failed": failed,
        "summary": f"{len(switched)}/{len(reports)}",
    }


def compute(
    *,
    desired: str,
    generation: int,
    pods: Sequence[PodReport],
    problems: Sequence[Problem],
    switching: bool,
    previous: Mapping[str, Any] | None,
    last_switch: Mapping[str, Any] | None = None,
    switchover: Mapping[str, Any] | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """The whole ``status`` of a KafkaFailover."""
    at = at or now_iso()
    previous = previous or {}
    old_conditions = previous.get("conditions") or []
    gateways = gateways_summary(desired, generation, pods)
    all_on = bool(pods) and gateways["switched"] == gateways["total"]
    ready, ready_reason, ready_message = _readiness(all_on, pods, problems, desired)
    degraded = bool(problems) or (bool(gateways["failed"]) and not switching)
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "desiredCluster": desired,
        "activeCluster": desired if all_on else previous.get("activeCluster"),
        "gateways": gateways,
        "conditions": [
            condition(
                READY,
                ready,
                reason=ready_reason,
                message=ready_message,
                generation=generation,
                previous=old_conditions,
                at=at,
            ),
            condition(
                SWITCHING,
                switching,
                reason="SwitchInProgress" if switching else "Idle",
                message=f"switching gateways to {desired}" if switching else "no switch running",
                generation=generation,
                previous=old_conditions,
                at=at,
            ),
            _degraded(
                degraded, problems, gateways, generation=generation, previous=old_conditions, at=at
            ),
        ],
    }
    if last_switch is not None or previous.get("lastSwitch") is not None:
        status["lastSwitch"] = last_switch if last_switch is not None else previous["lastSwitch"]
    for carried in CARRIED:  # written by other steps (automatic failover, failback guard)
        if previous.get(carried) is not None:
            status[carried] = previous[carried]
    if switchover is not None or previous.get("switchover") is not None:
        status["switchover"] = dict(
            switchover if switchover is not None else previous["switchover"]
        )
    return status


def _readiness(
    all_on: bool, pods: Sequence[PodReport], problems: Sequence[Problem], desired: str
) -> tuple[bool, str, str]:
    if problems:
        return False, problems[0].reason, problems[0].message
    if not pods:
        return False, "NoReadyPods", "no gateway pod is ready yet"
    if not all_on:
        return False, "PodsNotSwitched", f"not every ready gateway pod serves {desired}"
    return True, "AllPodsSwitched", f"all {len(pods)} ready gateway pods serve {desired}"


def _degraded(
    degraded: bool,
    problems: Sequence[Problem],
    gateways: Mapping[str, Any],
    *,
    generation: int,
    previous: Sequence[Mapping[str, Any]],
    at: str,
) -> dict[str, Any]:
    if problems:
        reason = problems[0].reason
        message = "; ".join(p.message for p in problems)
    elif degraded:
        reason = "PodsNotSwitched"
        message = "; ".join(f"{f['pod']}: {f['reason']}" for f in gateways["failed"])
    else:
        reason, message = "AsExpected", "nothing is wrong"
    return condition(
        DEGRADED,
        degraded,
        reason=reason,
        message=message,
        generation=generation,
        previous=previous,
        at=at,
    )
