"""Reconciling one KafkaFailover: apply the gateway's objects, then bring every ready pod onto the
desired cluster; the same convergence serves a change of ``spec.active`` and the periodic drift
check.

Why it exists: the handlers stay thin and this module, which only talks to ``kube_objects`` and
``pod_switching``, holds the order that matters: (1) the ConfigMap gets the new active cluster
first, so pods started from now on begin there; (2) every ready pod not yet on (cluster, epoch) is
switched, each on its own; (3) a pod that never acknowledged is fenced (deleted) when fencing is
on, as soon as its own deadline passes, so none keeps serving the old cluster; (4) status and
Events tell the story, each pod's Event when that pod is settled. The Secrets the pods mount are
observed (version and key names only) before anything is applied, so a missing one degrades the
object and a rotated one rolls the pods.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from failover_operator import kube_objects, manifests, model, pod_switching, secret_mounts
from failover_operator.secret_mounts import Observed, Seen
from failover_operator.status import PodReport, Problem, compute, now_iso

STATE_READ_TIMEOUT_SECONDS = 2.0


class Events(Protocol):
    """Where the story goes (Kubernetes Events through kopf, or a list in tests)."""

    def info(self, reason: str, message: str) -> None: ...

    def warn(self, reason: str, message: str) -> None: ...


class StatusWriter(Protocol):
    async def __call__(self, status: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Target:
    """Identity of the object being reconciled."""

    name: str
    namespace: str
    generation: int
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Convergence:
    reports: list[PodReport]
    behind: int
    started_at: str
    duration_ms: float
    failed: int


_locks: dict[tuple[str, str], asyncio.Lock] = {}


def lock_for(target: Target) -> asyncio.Lock:
    """One reconciliation at a time per object (handlers and the drift timer may overlap)."""
    return lock_named(target.namespace, target.name)


def lock_named(namespace: str, name: str) -> asyncio.Lock:
    """The lock of an object by name: read what to apply only after taking it, never before."""
    return _locks.setdefault((namespace, name), asyncio.Lock())


def _spec_problem(error: ValidationError) -> Problem:
    first = error.errors()[0]
    where = "spec." + ".".join(str(part) for part in first["loc"])
    return Problem("InvalidSpec", f"{where}: {first['msg']} ({error.error_count()} error(s))")


def watched_secrets(name: str, spec: model.KafkaFailoverSpec) -> set[str]:
    """Every Secret the gateway pods of ``name`` use: the referenced ones and the admin Secret."""
    return {mount.secret for mount in secret_mounts.mounts(spec)} | {
        manifests.admin_secret_name(name)
    }


async def observe_secrets(
    target: Target, spec: model.KafkaFailoverSpec
) -> dict[str, Observed | None]:
    """Version and key names of every Secret the pods use (None: missing); never their data."""
    names = sorted(watched_secrets(target.name, spec))
    found = await asyncio.gather(
        *(kube_objects.observe_secret(target.namespace, name) for name in names)
    )
    return dict(zip(names, found, strict=True))


def secret_problems(target: Target, spec: model.KafkaFailoverSpec, seen: Seen) -> list[Problem]:
    return secret_mounts.problems(secret_mounts.mounts(spec), seen, target.namespace)


def gateway_objects(
    target: Target, spec: model.KafkaFailoverSpec, seen: Seen
) -> list[dict[str, Any]]:
    """ConfigMap first: new pods must start on the current active cluster.

    The pod template's hash covers the gateway config and the version of every Secret the pods
    use, never ``spec.active``: rotating a Secret rolls the pods, a switch does not.
    """
    name, namespace = target.name, target.namespace
    config_map = manifests.config_map(name, namespace, spec, target.generation, seen)
    versions = secret_mounts.versions(watched_secrets(name, spec), seen)
    hash_ = manifests.config_hash(config_map, versions)
    objects = [
        config_map,
        manifests.deployment(name, namespace, spec, hash_),
        manifests.service(name, namespace, spec),
        manifests.pod_disruption_budget(name, namespace),
    ]
    return [manifests.owned(item, target.body) for item in objects]


async def refresh_if_stale(
    target: Target,
    spec: model.KafkaFailoverSpec,
    seen: Seen,
    events: Events,
    *,
    reason: str,
    message: str,
) -> bool:
    """Re-apply the gateway's objects when the running pod template's hash is not the wanted one.

    What a Secret change does (an unrelated change of the Secret re-applies nothing), and the
    drift check's safety net: a rotation missed while the watch reconnected still rolls the pods.
    """
    objects = gateway_objects(target, spec, seen)
    wanted = objects[1]["spec"]["template"]["metadata"]["annotations"]
    running = await kube_objects.deployment_hash(
        target.namespace, manifests.gateway_name(target.name)
    )
    if running == wanted[manifests.CONFIG_HASH_ANNOTATION]:
        return False
    for item in objects:
        await kube_objects.apply(item)
    events.info(reason, message)
    return True


async def reconcile(
    target: Target,
    spec_raw: Any,
    previous: Mapping[str, Any] | None,
    events: Events,
    write_status: StatusWriter,
) -> dict[str, Any]:
    """Apply everything and converge pods; returns the new status."""
    previous = previous or {}
    try:
        spec = model.parse_spec(spec_raw)
    except ValidationError as error:
        problem = _spec_problem(error)
        events.warn(problem.reason, problem.message)
        return compute(
            desired=str((spec_raw or {}).get("active")),
            generation=target.generation,
            pods=[],
            problems=[problem],
            switching=False,
            previous=previous,
        )
    credentials = await kube_objects.admin_credentials(target.namespace, target.name, target.body)
    seen = await observe_secrets(target, spec)
    problems = secret_problems(target, spec, seen)
    for item in gateway_objects(target, spec, seen):
        await kube_objects.apply(item)
    announce = previous.get("desiredCluster") not in (None, spec.active)
    if announce:
        await write_status(
            compute(
                desired=spec.active,
                generation=target.generation,
                pods=[],
                problems=problems,
                switching=True,
                previous=previous,
            )
        )
    result = await converge(
        target,
        spec,
        credentials,
        events,
        announce=announce,
        from_cluster=previous.get("activeCluster"),
    )
    last_switch = _switch_record(previous, spec, target, result) if announce else None
    return compute(
        desired=spec.active,
        generation=target.generation,
        pods=result.reports,
        problems=problems,
        switching=False,
        previous=previous,
        last_switch=last_switch,
    )


def _switch_record(
    previous: Mapping[str, Any],
    spec: model.KafkaFailoverSpec,
    target: Target,
    result: Convergence,
) -> dict[str, Any]:
    return {
        "from": previous.get("activeCluster") or previous.get("desiredCluster"),
        "to": spec.active,
        "epoch": target.generation,
        "startedAt": result.started_at,
        "completedAt": now_iso(),
        "durationMs": round(result.duration_ms, 1),
        "podsSwitched": result.behind - result.failed,
        "podsFailed": result.failed,
        "failedPods": [{"pod": r.name, "reason": r.error} for r in result.reports if r.error],
    }


async def converge(
    target: Target,
    spec: model.KafkaFailoverSpec,
    credentials: pod_switching.Credentials,
    events: Events,
    *,
    announce: bool,
    from_cluster: str | None = None,
) -> Convergence:
    """Switch every ready pod that is not on (spec.active, generation); fence the silent ones.

    Each pod is settled on its own (:func:`pod_switching.converge_each`): its Event is posted and,
    if it never acknowledged, it is fenced the moment its own outcome is known, at most
    ``podTimeoutSeconds`` after this started, whatever the other pods do."""
    started_at, clock = now_iso(), time.perf_counter()
    deadline = time.monotonic() + spec.switch.pod_timeout_seconds
    pods = [
        p
        for p in await kube_objects.gateway_pods(target.namespace, target.name)
        if p.ready and not p.terminating
    ]
    if announce:
        events.info(
            "SwitchStarted",
            f"switching {len(pods)} gateway pod(s) from "
            f"{from_cluster or '?'} to {spec.active} "
            f"(epoch {target.generation})",
        )
    reports: dict[str, PodReport] = {}

    async def settled(outcome: pod_switching.PodOutcome) -> None:
        if outcome.already:
            reports[outcome.pod] = PodReport(outcome.pod, spec.active, target.generation)
        else:
            reports[outcome.pod] = await _settle(target, spec, outcome, events)

    outcomes = await pod_switching.converge_each(
        [p.gateway for p in pods],
        credentials=credentials,
        port=spec.gateway.admin_port,
        cluster=spec.active,
        epoch=target.generation,
        drain_ms=spec.switch.drain_ms,
        deadline=deadline,
        state_timeout=STATE_READ_TIMEOUT_SECONDS,
        settled=settled,
    )
    behind = sum(1 for outcome in outcomes if not outcome.already)
    ordered = [reports[p.name] for p in pods]
    duration = (time.perf_counter() - clock) * 1000
    failed = sum(1 for r in ordered if r.error)
    if announce:
        _announce_end(events, spec.active, len(pods), failed, duration)
    elif behind:
        events.info(
            "DriftCorrected",
            f"{behind} gateway pod(s) were not on "
            f"{spec.active} at epoch {target.generation}; "
            f"{behind - failed} switched",
        )
    return Convergence(ordered, behind, started_at, duration, failed)


async def _settle(
    target: Target,
    spec: model.KafkaFailoverSpec,
    outcome: pod_switching.PodOutcome,
    events: Events,
) -> PodReport:
    """One pod's report, and its Event or its fencing, as soon as its outcome is known."""
    if outcome.acknowledged:
        events.info(
            "PodSwitched",
            f"{outcome.pod} serves {spec.active} "
            f"({outcome.duration_ms:.0f} ms, {outcome.attempts} try)",
        )
        return PodReport(outcome.pod, spec.active, target.generation)
    if outcome.superseded:
        return PodReport(outcome.pod, None, None, error=outcome.error)
    return await _fence(target, spec, outcome, events)


async def _fence(
    target: Target,
    spec: model.KafkaFailoverSpec,
    outcome: pod_switching.PodOutcome,
    events: Events,
) -> PodReport:
    if not spec.switch.fence_unacknowledged:
        events.warn("PodNotSwitched", f"{outcome.pod} did not acknowledge: {outcome.error}")
        return PodReport(outcome.pod, None, None, error=f"not acknowledged: {outcome.error}")
    await kube_objects.delete_pod(target.namespace, outcome.pod)
    events.warn(
        "PodFenced",
        f"{outcome.pod} did not acknowledge within "
        f"{spec.switch.pod_timeout_seconds}s ({outcome.error}); deleted",
    )
    return PodReport(outcome.pod, None, None, error=f"fenced: {outcome.error}")


def _announce_end(events: Events, cluster: str, pods: int, failed: int, duration: float) -> None:
    if failed:
        events.warn(
            "SwitchFailed",
            f"{failed} of {pods} gateway pod(s) did not switch to {cluster} in {duration:.0f} ms",
        )
    else:
        events.info(
            "SwitchCompleted",
            f"{pods} gateway pod(s) serve {cluster}; completed in {duration:.0f} ms",
        )
