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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from failover_operator import (
    automatic,
    failback,
    kube_objects,
    leadership,
    manifests,
    model,
    planned_switching,
    pod_switching,
    secret_mounts,
)
from failover_operator.secret_mounts import Observed, Seen
from failover_operator.status import PodReport, Problem, compute, now_iso

STATE_READ_TIMEOUT_SECONDS = 2.0
ABORTED = "Aborted"
# A switch that stopped before moving any pod: nothing moves until the spec changes.
HELD_PHASES = (ABORTED, failback.REFUSED)


class Events(Protocol):
    """Where the story goes (Kubernetes Events through kopf, or a list in tests)."""

    def info(self, reason: str, message: str) -> None: ...

    def warn(self, reason: str, message: str) -> None: ...


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
    fenced: frozenset[str] = frozenset()

    @property
    def live(self) -> list[PodReport]:
        """The reports of the pods still running: a fenced pod is gone (the switch record keeps
        it), so status counts and conditions are about the pods that serve clients."""
        return [r for r in self.reports if r.name not in self.fenced]


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


async def credentials_and_secrets(
    target: Target, spec: model.KafkaFailoverSpec
) -> tuple[pod_switching.Credentials, dict[str, Observed | None]]:
    """The admin credentials and the Secrets the pods use, read side by side.

    The first read of credentials creates the admin Secret; it is then observed again, or the pod
    template's hash would change at the next reconciliation and roll every pod for nothing.
    """
    credentials, seen = await asyncio.gather(
        kube_objects.admin_credentials(target.namespace, target.name, target.body),
        observe_secrets(target, spec),
    )
    admin = manifests.admin_secret_name(target.name)
    if seen.get(admin) is None:
        seen[admin] = await kube_objects.observe_secret(target.namespace, admin)
    return credentials, seen


def secret_problems(target: Target, spec: model.KafkaFailoverSpec, seen: Seen) -> list[Problem]:
    return secret_mounts.problems(secret_mounts.mounts(spec), seen, target.namespace)


def gateway_objects(
    target: Target, spec: model.KafkaFailoverSpec, seen: Seen, *, active: str | None = None
) -> list[dict[str, Any]]:
    """ConfigMap first: new pods must start on the current active cluster.

    The pod template's hash covers the gateway config and the version of every Secret the pods
    use, never ``spec.active``: rotating a Secret rolls the pods, a switch does not. ``active``
    keeps the live active document (a planned switch not yet prepared, or aborted).
    """
    name, namespace = target.name, target.namespace
    config_map = manifests.config_map(name, namespace, spec, target.generation, seen, active=active)
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
        await apply(item)
    events.info(reason, message)
    return True


async def reconcile(
    target: Target,
    spec_raw: Any,
    previous: Mapping[str, Any] | None,
    events: Events,
) -> None:
    """Apply everything and converge pods; status is written as the story unfolds.

    The ConfigMap goes first (pods started from then on begin on ``spec.active``); the other
    objects, which a switch leaves unchanged, are applied while the pods switch, and the
    "switching" status is written alongside, so neither stands between the patch and the pods.
    """
    seen_at = time.monotonic()  # podTimeoutSeconds counts from here, not from the first call
    previous = previous_status(target, previous)
    try:
        spec = model.parse_spec(spec_raw)
    except ValidationError as error:
        problem = _spec_problem(error)
        events.warn(problem.reason, problem.message)
        await write_status(
            target,
            compute(
                desired=str((spec_raw or {}).get("active")),
                generation=target.generation,
                pods=[],
                problems=[problem],
                switching=False,
                previous=previous,
            ),
        )
        return
    credentials, seen = await credentials_and_secrets(target, spec)
    problems = secret_problems(target, spec, seen)
    from_cluster = previous.get("activeCluster") or previous.get("desiredCluster")
    announce = previous.get("desiredCluster") not in (None, spec.active) or retrying(
        previous, spec, target.generation
    )
    held = held_after_abort(previous, spec, target.generation)
    moving = announce and from_cluster != spec.active
    decision = (previous.get("automaticFailover") or {}).get("decision")
    automatic_change = moving and automatic.made_this_change(
        decision, active=spec.active, generation=target.generation
    )
    guarded = moving and not automatic_change  # the automatic failover chose availability
    failing_back = failback.guard(previous, spec, name=target.name) if guarded else None
    if failing_back is not None and failing_back.way == "refused":
        await _refuse_failback(
            target=target, spec=spec, seen=seen, previous=previous, problems=problems,
            events=events, refusal=failing_back,
        )  # fmt: skip
        return
    planned_now = (
        failing_back.way == "planned"
        if failing_back is not None
        else spec.switch.planned and not automatic_change
    )
    if held or (moving and planned_now):
        # The live active document stays until the new cluster is ready for clients.
        live = await kube_objects.config_map_key(
            target.namespace, manifests.gateway_name(target.name), manifests.ACTIVE_KEY
        )
        config_map, *others = gateway_objects(target, spec, seen, active=live)
        await apply(config_map)
        await _apply_each(others)
        if not held:
            await _planned(
                target=target, spec=spec, credentials=credentials, problems=problems,
                previous=previous, events=events, since=seen_at,
                replication=failing_back.replication if failing_back is not None else None,
            )  # fmt: skip
        return
    await _immediate(
        target=target, spec=spec, seen=seen, credentials=credentials, problems=problems,
        previous=previous, events=events, since=seen_at, announce=announce,
        from_cluster=from_cluster, automatic_change=automatic_change, failing_back=failing_back,
        decision=decision,
    )  # fmt: skip


async def _immediate(
    *,
    target: Target,
    spec: model.KafkaFailoverSpec,
    seen: Seen,
    credentials: pod_switching.Credentials,
    problems: list[Problem],
    previous: dict[str, Any],
    events: Events,
    since: float,
    announce: bool,
    from_cluster: str | None,
    automatic_change: bool,
    failing_back: failback.Failback | None,
    decision: Mapping[str, Any] | None,
) -> None:
    """Switch every pod at once (or bring them to ``spec.active`` when nothing changed)."""
    config_map, *others = gateway_objects(target, spec, seen)
    await apply(config_map)
    alongside = [asyncio.create_task(_apply_each(others))]
    switchover = None
    if announce:
        switchover = {
            "phase": "Switching",
            "mode": "immediate",
            "from": from_cluster,
            "to": spec.active,
            "generation": target.generation,
            "startedAt": now_iso(),
        }
        switching = compute(
            desired=spec.active,
            generation=target.generation,
            pods=[],
            problems=problems,
            switching=True,
            previous=previous,
            switchover=switchover,
        )
        alongside.append(asyncio.create_task(write_status(target, switching)))
        previous = switching
    try:
        result = await converge(
            target,
            spec,
            credentials,
            events,
            announce=announce,
            from_cluster=previous.get("activeCluster"),
            since=since,
        )
    finally:
        failures = [
            e for e in await asyncio.gather(*alongside, return_exceptions=True) if e is not None
        ]
    last_switch = None
    if switchover is not None:
        last_switch = _switch_record(previous, spec, target, result) | {
            "mode": "immediate",
            "trigger": "automatic" if automatic_change else "spec",
        }
        if failing_back is not None:
            last_switch["acceptedDataLoss"] = True
        phase = "Switched" if not result.failed else "SwitchFailed"
        switchover = switchover | {"phase": phase, "completedAt": now_iso()}
    status = compute(
        desired=spec.active,
        generation=target.generation,
        pods=result.live,
        problems=problems,
        switching=False,
        previous=previous,
        last_switch=last_switch,
        switchover=switchover,
    )
    if switchover is not None:
        status |= failback.marked(
            previous,
            failback.left_after(
                previous, spec, source=from_cluster, mode="immediate", automatic=automatic_change
            ),
        )
    if automatic_change and decision is not None:
        status["automaticFailover"] = dict(status.get("automaticFailover") or {}) | {
            "decision": dict(decision) | {"phase": automatic.SWITCHED, "switchedAt": now_iso()}
        }
    await write_status(target, status)
    if failures:
        raise failures[0]


async def _apply_each(objects: list[dict[str, Any]]) -> None:
    for item in objects:
        await apply(item)


async def apply(item: dict[str, Any]) -> None:
    """Server-side apply one owned object (only by the leader)."""
    leadership.ensure_held()
    await kube_objects.apply(item)


async def read_current(namespace: str, name: str) -> tuple[Target, model.KafkaFailoverSpec] | None:
    """The object as it is now, with its parsed spec; None when it is gone or its spec is invalid
    (the reconciliation reports that in status). Call it under the object's lock."""
    raw = await kube_objects.kafka_failover(namespace, name)
    if raw is None:
        return None
    try:
        spec = model.parse_spec(raw.get("spec"))
    except ValidationError:
        return None
    return Target(name, namespace, int(raw["metadata"].get("generation", 1)), raw), spec


async def refresh(
    namespace: str, name: str, events_for: Callable[[Mapping[str, Any]], Events], *, stale: bool
) -> None:
    """Bring status (and any pod left behind) up to date with the pods as they are now.

    What a change of a gateway pod (added, ready, gone) and the periodic drift check run: every
    ready pod not on (spec.active, generation) is switched, a silent one fenced, and status is
    computed from the pods that remain. With ``stale`` the pod template is also re-applied when a
    Secret it mounts changed (the drift check's safety net for a missed Secret event). Nothing is
    done while a change of ``spec.active`` waits for its handler: that handler tells the story.
    """
    async with lock_named(namespace, name):
        current = await read_current(namespace, name)
        if current is None:
            return
        target, spec = current
        raw = target.body
        previous = previous_status(target, raw.get("status"))
        if previous.get("desiredCluster") != spec.active or held_after_abort(
            previous, spec, target.generation
        ):
            return
        events = events_for(raw)
        credentials, seen = await credentials_and_secrets(target, spec)
        if stale:
            await refresh_if_stale(
                target,
                spec,
                seen,
                events,
                # The same reason as the Secret watch: whichever sees the change first tells it.
                reason="SecretChanged",
                message="a Secret the gateway mounts changed (found by the drift check): "
                "re-applied the gateway, its pods roll",
            )
        result = await converge(target, spec, credentials, events, announce=False)
        status = compute(
            desired=spec.active,
            generation=target.generation,
            pods=result.live,
            problems=secret_problems(target, spec, seen),
            switching=False,
            previous=previous,
        )
        if status != previous:
            await write_status(target, status)


_written: dict[tuple[str, str], dict[str, Any]] = {}


def previous_status(target: Target, seen: Mapping[str, Any] | None) -> dict[str, Any]:
    """The status last written for the object by this process, else the one the event carried.

    The operator is the status' only writer (one leader): what it wrote last is newer than the
    status in an event that was queued while a pod change was being reported.
    """
    return dict(_written.get((target.namespace, target.name)) or seen or {})


async def write_status(target: Target, status: Mapping[str, Any]) -> None:
    """The one path by which status is written (only by the leader)."""
    leadership.ensure_held()
    await kube_objects.write_status(target.namespace, target.name, status)
    _written[(target.namespace, target.name)] = dict(status)


def forget(namespace: str, name: str) -> None:
    """Drop what is kept of a deleted object."""
    _written.pop((namespace, name), None)
    _locks.pop((namespace, name), None)


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
    since: float | None = None,
) -> Convergence:
    """Switch every ready pod that is not on (spec.active, generation); fence the silent ones.

    Each pod is settled on its own (:func:`pod_switching.converge_each`): its Event is posted and,
    if it never acknowledged, it is fenced the moment its own outcome is known, at most
    ``podTimeoutSeconds`` after ``since`` (when the operator saw the change; default: now),
    whatever the other pods do."""
    started_at, clock = now_iso(), time.perf_counter()
    deadline = (since or time.monotonic()) + spec.switch.pod_timeout_seconds
    pods = await ready_pods(target)
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
        may_act=leadership.held,
        read_first=not announce,
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
    fenced = frozenset(r.name for r in ordered if r.fenced)
    return Convergence(ordered, behind, started_at, duration, failed, fenced)


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
    if outcome.superseded or outcome.error == pod_switching.NOT_LEADER:
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
    leadership.ensure_held()  # a frozen leader, resumed, must not delete a pod the new one uses
    await kube_objects.delete_pod(target.namespace, outcome.pod)
    events.warn(
        "PodFenced",
        f"{outcome.pod} did not acknowledge within "
        f"{spec.switch.pod_timeout_seconds}s ({outcome.error}); deleted",
    )
    return PodReport(outcome.pod, None, None, error=f"fenced: {outcome.error}", fenced=True)


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


def held_after_abort(
    previous: Mapping[str, Any], spec: model.KafkaFailoverSpec, generation: int
) -> bool:
    """Whether a planned switch to ``spec.active`` aborted at this generation: the pods stay on
    the cluster they serve, and nothing switches them until the spec changes (a retry)."""
    switchover = previous.get("switchover") or {}
    return (
        switchover.get("phase") in HELD_PHASES
        and switchover.get("to") == spec.active
        and switchover.get("generation") == generation
    )


def retrying(previous: Mapping[str, Any], spec: model.KafkaFailoverSpec, generation: int) -> bool:
    """Whether the spec changed after a planned switch to ``spec.active`` aborted: try again."""
    switchover = previous.get("switchover") or {}
    return (
        switchover.get("phase") in HELD_PHASES
        and switchover.get("to") == spec.active
        and switchover.get("generation") != generation
    )


async def _planned(
    *,
    target: Target,
    spec: model.KafkaFailoverSpec,
    credentials: pod_switching.Credentials,
    problems: list[Problem],
    previous: dict[str, Any],
    events: Events,
    since: float,
    replication: str | None = None,
) -> None:
    """Fence every pod, prepare on one, switch them all; or abort and stay (README, "Planned
    switchover"). Status shows each phase as it starts. ``replication``: what the switch waits
    for when not the configured kind (a failback waits for the reverse replication)."""
    source = str(previous.get("activeCluster") or previous.get("desiredCluster"))
    pods = await ready_pods(target)
    switchover: dict[str, Any] = {
        "phase": "Fencing",
        "mode": "planned",
        "from": source,
        "to": spec.active,
        "generation": target.generation,
        "startedAt": now_iso(),
    }
    events.info(
        "SwitchoverStarted",
        f"planned switch of {len(pods)} gateway pod(s) from {source} to {spec.active} "
        f"(epoch {target.generation}): fencing writes to {source}",
    )
    state = {"previous": previous}

    async def show(phase: str, detail: Mapping[str, Any], *, switching: bool = True) -> None:
        switchover.update(phase=phase, **detail)
        status = compute(
            desired=spec.active,
            generation=target.generation,
            pods=[],
            problems=problems,
            switching=switching,
            previous=state["previous"],
            switchover=switchover,
        )
        status["gateways"] = state["previous"].get("gateways", status["gateways"])
        await write_status(target, status)
        state["previous"] = status

    async def fenced(phase: str, detail: dict[str, Any]) -> None:
        events.info(
            "SwitchoverFenced",
            f"writes to {source} fenced on {detail['fencedPods']} gateway pod(s); "
            f"consumers finish, then replication catches up to {spec.active}",
        )
        await show(phase, detail)

    await show("Fencing", {})
    prepared = await planned_switching.prepare_fleet(
        [p.gateway for p in pods],
        spec=spec,
        credentials=credentials,
        since=since,
        ready_pods=lambda: ready_gateways(target),
        on_phase=fenced,
        replication=replication,
    )
    if not prepared.ok:
        await _aborted(
            target=target, spec=spec, prepared=prepared, source=source, events=events,
            show=show, problems=problems,
        )  # fmt: skip
        return
    report = prepared.report
    events.info(
        "SwitchoverPrepared",
        f"{spec.active} holds everything written to {source} ({_lag(report)} record(s) were "
        f"still to copy at the fence; {report.get('groupsHandedOff', 0)} consumer group(s) "
        "handed off): switching",
    )
    await show("Switching", {"catchUpLag": _lag(report)})
    config_map = gateway_objects(target, spec, await observe_secrets(target, spec))[0]
    await apply(config_map)
    result = await converge(target, spec, credentials, events, announce=True, from_cluster=source)
    fence_ms = (time.monotonic() - prepared.fenced_at) * 1000
    phases = [*prepared.phases, *report.get("phases", [])]
    last_switch = _switch_record(state["previous"], spec, target, result) | {
        "from": source,
        "mode": "planned",
        "fenceMs": round(fence_ms, 1),
        "catchUpLag": _lag(report),
        "rpoRecords": report.get("lagAtSwitch", 0),
        "groupsHandedOff": report.get("groupsHandedOff", 0),
        "recordsReread": report.get("recordsReread", 0),
        "phases": phases,
    }
    done = "Switched" if not result.failed else "SwitchFailed"
    switchover.update(phase=done, fenceMs=round(fence_ms, 1), completedAt=now_iso())
    events.info(
        "SwitchoverCompleted",
        f"planned switch {source} -> {spec.active}: writes held {fence_ms:.0f} ms, "
        f"RPO {last_switch['rpoRecords']} record(s), {result.failed} pod(s) failed",
    )
    status = compute(
        desired=spec.active,
        generation=target.generation,
        pods=result.live,
        problems=problems,
        switching=False,
        previous=state["previous"],
        last_switch=last_switch,
        switchover=switchover,
    )
    left = failback.left_after(
        state["previous"], spec, source=source, mode="planned", automatic=False
    )
    status |= failback.marked(state["previous"], left)
    await write_status(target, status)


def _lag(report: Mapping[str, Any]) -> int:
    """The records not yet copied when catching up began (the prepare report's phase)."""
    for phase in report.get("phases", []):
        if phase.get("phase") == "CatchingUp":
            return int(phase.get("lag", 0))
    return 0


async def _aborted(
    *,
    target: Target,
    spec: model.KafkaFailoverSpec,
    prepared: planned_switching.Preparation,
    source: str,
    events: Events,
    show: Callable[..., Awaitable[None]],
    problems: list[Problem],
) -> None:
    unlifted = (
        f" (fence not lifted on {'; '.join(prepared.lift_failures)}: it lifts itself)"
        if prepared.lift_failures
        else ""
    )
    message = (
        f"planned switch to {spec.active} aborted: {prepared.reason}; every gateway pod stays on "
        f"{source} and its writes go on there{unlifted}. Fix the cause, then retry with "
        f"`kubectl patch kafkafailover {target.name} --type merge -p "
        f'\'{{"spec":{{"switch":{{"retry":{spec.switch.retry + 1}}}}}}}\'`, or switch '
        f"without waiting for replication with spec.switch.mode: immediate"
    )
    events.warn("SwitchoverAborted", message)
    problems.append(Problem("SwitchoverAborted", message))
    await show(
        ABORTED,
        {
            "reason": prepared.reason,
            "fencedPods": prepared.fence_summary,
            "fence": prepared.fence_by_pod,
            "completedAt": now_iso(),
        },
        switching=False,
    )


async def _refuse_failback(
    *,
    target: Target,
    spec: model.KafkaFailoverSpec,
    seen: Seen,
    previous: Mapping[str, Any],
    problems: list[Problem],
    events: Events,
    refusal: failback.Failback,
) -> None:
    """Stay where the pods are (new pods start there too) and say why and what to do."""
    live = await kube_objects.config_map_key(
        target.namespace, manifests.gateway_name(target.name), manifests.ACTIVE_KEY
    )
    await _apply_each(gateway_objects(target, spec, seen, active=live))
    events.warn(failback.REFUSED, refusal.message)
    source = previous.get("activeCluster") or previous.get("desiredCluster")
    switchover = {
        "phase": failback.REFUSED,
        "mode": "failback",
        "from": source,
        "to": spec.active,
        "generation": target.generation,
        "reason": refusal.message,
        "completedAt": now_iso(),
    }
    status = compute(
        desired=spec.active,
        generation=target.generation,
        pods=[],
        problems=[*problems, Problem(failback.REFUSED, refusal.message)],
        switching=False,
        previous=previous,
        switchover=switchover,
    )
    status["gateways"] = previous.get("gateways", status["gateways"])
    await write_status(target, status)


async def ready_pods(target: Target) -> list[kube_objects.PodInfo]:
    return [
        p
        for p in await kube_objects.gateway_pods(target.namespace, target.name)
        if p.ready and not p.terminating
    ]


async def ready_gateways(target: Target) -> list[pod_switching.GatewayPod]:
    return [p.gateway for p in await ready_pods(target)]
