"""Preparing a planned switch across every gateway pod: fence all, one prepares, check, or abort.

Why it exists: the gateway can prepare a planned switch on its own (consumers finish, replication
catches up, offsets are handed off), but with several pods behind one Service the fenced end is
only the end once *no* pod writes any more. The operator therefore fences every ready pod first
(each on its own task, all by ``podTimeoutSeconds``), asks one of them to prepare, then asks every
ready pod, including any that became ready meanwhile, whether it still holds the fence: a pod
restarted or added in between may have written past the fenced end, so the switch aborts rather
than lose those records. Any failure lifts the fence on every pod and names the reason. The
switch itself, once prepared, is the ordinary one (:mod:`.reconciling`), which lifts each pod's
fence as it closes its connections.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from failover_operator import leadership, model, pod_fencing
from failover_operator.pod_switching import Credentials, GatewayPod

# The fence outlives the steps' own limits by this much, then lifts itself on every pod: an
# operator that died mid-switch never leaves writes held for good.
FENCE_MARGIN_SECONDS = 30.0
# How long the preparing pod may take beyond its own limits before the operator gives up on it.
PREPARE_MARGIN_SECONDS = 15.0
STATE_TIMEOUT_SECONDS = 2.0
FENCE_DRAIN_MS = 5000


@dataclass
class Preparation:
    """What preparing the fleet did: ready to switch, or aborted with the reason."""

    ok: bool = False
    reason: str = ""
    fenced: list[pod_fencing.FenceOutcome] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    fenced_at: float = 0.0  # time.monotonic() when the first fence call went out
    phases: list[dict[str, Any]] = field(default_factory=list)
    lift_failures: list[str] = field(default_factory=list)

    @property
    def fence_summary(self) -> str:
        done = sum(1 for outcome in self.fenced if outcome.acknowledged)
        return f"{done}/{len(self.fenced)}"

    @property
    def fence_by_pod(self) -> list[dict[str, Any]]:
        """Each pod's fence acknowledgement, for status."""
        return [
            {"pod": o.pod, "acknowledged": o.acknowledged, "ms": round(o.duration_ms, 1)}
            | ({"error": o.error} if o.error else {})
            for o in self.fenced
        ]


class _Abort(Exception):
    pass


def fence_limit(switch: model.SwitchSpec) -> float:
    """How long a pod's fence may stay up if no one lifts it or switches it."""
    return float(
        switch.pod_timeout_seconds
        + switch.consumer_drain_seconds
        + switch.max_catch_up_seconds
        + FENCE_MARGIN_SECONDS
    )


async def prepare_fleet(
    pods: Sequence[GatewayPod],
    *,
    spec: model.KafkaFailoverSpec,
    credentials: Credentials,
    since: float,
    ready_pods: Callable[[], Awaitable[Sequence[GatewayPod]]],
    on_phase: Callable[[str, dict[str, Any]], Awaitable[None]],
    replication: str | None = None,
) -> Preparation:
    """Fence every pod, prepare on one, check every ready pod still holds the fence.

    ``since`` (``time.monotonic()``) is when the operator saw the change: the fence deadline
    counts from it. ``ready_pods`` lists the ready pods again before the check; ``on_phase`` is
    told each phase as it starts (status and Events). On abort the fence is lifted everywhere.
    """
    result = Preparation()
    port = spec.gateway.admin_port
    told: list[GatewayPod] = list(pods)
    try:
        if not pods:
            raise _Abort("no gateway pod is ready to take part in the switch")
        await _fence(result, pods, spec, credentials, since)
        await on_phase(
            "CatchingUp", {"fencedPods": result.fence_summary, "fence": result.fence_by_pod}
        )
        switch = spec.switch
        timeout = switch.consumer_drain_seconds + switch.max_catch_up_seconds
        leadership.ensure_held()
        prepared = await pod_fencing.prepare(
            pods[0],
            credentials=credentials,
            port=port,
            to=spec.active,
            timeout=timeout + PREPARE_MARGIN_SECONDS,
            replication=replication,
        )
        result.report = prepared.report
        if not prepared.ok:
            raise _Abort(prepared.reason)
        now = list(await ready_pods())
        told += [pod for pod in now if pod not in told]
        missing = await pod_fencing.unfenced(
            now, credentials=credentials, port=port, timeout=STATE_TIMEOUT_SECONDS
        )
        if missing:
            raise _Abort("not every ready pod holds the fence: " + "; ".join(missing))
    except _Abort as abort:
        result.reason = str(abort)
        result.lift_failures = await pod_fencing.lift_all(told, credentials=credentials, port=port)
        return result
    result.ok = True
    return result


async def _fence(
    result: Preparation,
    pods: Sequence[GatewayPod],
    spec: model.KafkaFailoverSpec,
    credentials: Credentials,
    since: float,
) -> None:
    switch = spec.switch
    leadership.ensure_held()
    result.fenced_at = time.monotonic()
    result.fenced = await pod_fencing.fence_all(
        pods,
        credentials=credentials,
        port=spec.gateway.admin_port,
        max_seconds=fence_limit(switch),
        drain_ms=FENCE_DRAIN_MS,
        deadline=since + switch.pod_timeout_seconds,
    )
    slowest = max((o.duration_ms for o in result.fenced), default=0.0)
    result.phases.append({"phase": "Fencing", "ms": round(slowest, 1)})
    silent = [o for o in result.fenced if not o.acknowledged]
    if silent:
        named = "; ".join(f"{o.pod}: {o.error}" for o in silent)
        raise _Abort(
            f"{len(silent)} of {len(pods)} gateway pod(s) did not acknowledge the write fence "
            f"within {switch.pod_timeout_seconds}s ({named})"
        )
