"""Acting on the automatic failover rule: read the pods' verdicts, record, then patch.

Why it exists: the quorum rule (:mod:`.automatic`) is pure; this is the part with side effects,
ordered so that nothing can switch twice. Every ``AUTOMATIC_INTERVAL_SECONDS`` the operator reads
every ready gateway pod's ``/api/v1/state`` at once (a pod that does not answer within a second
counts against), applies the rule and writes what it saw to ``status.automaticFailover`` (only
when that changed). When the rule says switch, the decision (from, to, generation, the agreeing
and disagreeing pods, the time) is written to status *before* anything is done; then
``spec.active`` is patched by field manager ``kafka-failover-automatic``, on the precondition
that the spec is still at the decision's generation, and annotated with why. An operator that
restarts or loses the API server between the two finds the decision and completes it instead of
deciding anew (judged once more: applied if the pods still agree, else abandoned); the cooldown
is counted from the recorded time, so no restart resets it. ``dryRun`` writes the decision
(phase ``DryRun``) and an Event once per spec generation, and switches nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from failover_operator import automatic, kube_objects, model, pod_switching, reconciling
from failover_operator.status import now_iso

log = logging.getLogger("failover_operator")
AUTOMATIC_INTERVAL_SECONDS = float(os.environ.get("KAFKA_FAILOVER_AUTOMATIC_INTERVAL", "2"))
STATE_TIMEOUT_SECONDS = 1.0
SWITCHED_BY = f"{model.GROUP}/switched-by"
SWITCHED_AT = f"{model.GROUP}/switched-at"


async def check(
    namespace: str, name: str, events_for: Callable[[Mapping[str, Any]], reconciling.Events]
) -> None:
    """One look: decide, record, act (under the object's lock, as every other writer)."""
    async with reconciling.lock_named(namespace, name):
        current = await reconciling.read_current(namespace, name)
        if current is None:
            return
        target, spec = current
        settings = spec.automatic_failover
        if not settings.enabled:
            return
        roles = [c.name for c in spec.clusters if c.role == "failover"]
        to = automatic.target_of(spec.active, settings.to, roles)
        previous = reconciling.previous_status(target, target.body.get("status"))
        if to is None or previous.get("desiredCluster") != spec.active:
            return  # already failed over, or a change of spec.active is still being handled
        recorded = (previous.get("automaticFailover") or {}).get("decision")
        await _evaluate(
            target=target, spec=spec, settings=settings, to=to, previous=previous,
            recorded=recorded, events_for=events_for,
        )  # fmt: skip


async def _evaluate(
    *,
    target: reconciling.Target,
    spec: model.KafkaFailoverSpec,
    settings: model.AutomaticFailoverSpec,
    to: str,
    previous: Mapping[str, Any],
    recorded: Mapping[str, Any] | None,
    events_for: Callable[[Mapping[str, Any]], reconciling.Events],
) -> None:
    pods = await reconciling.ready_gateways(target)
    credentials, _ = await reconciling.credentials_and_secrets(target, spec)
    states = await _states(pods, credentials, spec.gateway.admin_port)
    views = [
        automatic.view_from_state(pod.name, state, active=spec.active, target=to)
        for pod, state in zip(pods, states, strict=True)
    ]
    now = datetime.datetime.now(datetime.UTC)
    # A decision recorded before a restart, whose patch never landed, is judged again without
    # the cooldown it started itself: applied if the pods still agree, else abandoned.
    resuming = automatic.unfinished(recorded, active=spec.active, generation=target.generation)
    last_at = None if resuming else (previous.get("automaticFailover") or {}).get("lastDecidedAt")
    verdict = automatic.decide(
        views,
        active=spec.active,
        target=to,
        unreachable_seconds=settings.unreachable_seconds,
        seconds_since_last_automatic=automatic.seconds_since(last_at, now),
        cooldown_seconds=settings.cooldown_seconds,
    )
    if resuming:
        assert recorded is not None
        await _resume(target, previous, recorded, verdict, events_for(target.body))
        return
    evaluation = {
        "to": to,
        "wouldSwitch": verdict.switch,
        "reason": verdict.reason,
        "agreeing": list(verdict.agreeing),
        "disagreeing": list(verdict.disagreeing),
    }
    section = dict(previous.get("automaticFailover") or {}) | {"evaluation": evaluation}
    if not verdict.switch:
        if section != previous.get("automaticFailover"):
            await _write_section(target, previous, section)
        return
    decision = {
        "phase": automatic.DRY_RUN if settings.dry_run else automatic.DECIDED,
        "from": spec.active,
        "to": to,
        "generation": target.generation,
        "decidedAt": now_iso(),
        "reason": verdict.reason,
        "agreeing": list(verdict.agreeing),
        "disagreeing": list(verdict.disagreeing),
        "evidence": {v.pod: v.active_down_for for v in views},
    }
    if settings.dry_run and automatic.same_dry_run(recorded, decision):
        if section != previous.get("automaticFailover"):
            await _write_section(target, previous, section | {"decision": recorded})
        return  # told once per generation of the spec, not at every look
    section["decision"] = decision
    if not settings.dry_run:  # the cooldown counts switches, not what a dry run reported
        section["lastDecidedAt"] = decision["decidedAt"]
    previous = await _write_section(target, previous, section)
    events = events_for(target.body)
    if settings.dry_run:
        events.warn(
            "AutomaticFailoverDryRun",
            f"would switch {spec.active} -> {to} (dryRun: nothing switched): {verdict.reason}",
        )
        return
    await _switch(target, previous, decision, events, resumed=False)


async def _resume(
    target: reconciling.Target,
    previous: Mapping[str, Any],
    recorded: Mapping[str, Any],
    verdict: automatic.Verdict,
    events: reconciling.Events,
) -> None:
    if verdict.switch:
        await _switch(target, previous, recorded, events, resumed=True)
        return
    section = dict(previous.get("automaticFailover") or {})
    section["decision"] = dict(recorded) | {
        "phase": automatic.ABANDONED,
        "abandonedAt": now_iso(),
        "abandonReason": verdict.reason,
    }
    await _write_section(target, previous, section)
    events.info(
        "AutomaticFailoverAbandoned",
        f"the switch {recorded['from']} -> {recorded['to']} recorded before a restart was not "
        f"applied: the pods no longer agree ({verdict.reason})",
    )


async def _switch(
    target: reconciling.Target,
    previous: Mapping[str, Any],
    decision: Mapping[str, Any],
    events: reconciling.Events,
    *,
    resumed: bool,
) -> None:
    """Patch ``spec.active`` as the recorded decision says (once: the patch applies only while
    the spec is still at the decision's generation; a human's change in between fails it)."""
    how = "completing the decision recorded before a restart" if resumed else "switching"
    events.warn(
        "AutomaticFailover",
        f"{how} {decision['from']} -> {decision['to']}: {decision['reason']}",
    )
    annotations = {SWITCHED_BY: "automatic", SWITCHED_AT: str(decision["decidedAt"])}
    await kube_objects.patch_active(
        target.namespace,
        target.name,
        str(decision["to"]),
        expected=(str(decision["from"]), int(decision["generation"])),
        annotations=annotations,
    )


async def _write_section(
    target: reconciling.Target, previous: Mapping[str, Any], section: Mapping[str, Any]
) -> dict[str, Any]:
    status = dict(previous) | {"automaticFailover": dict(section)}
    await reconciling.write_status(target, status)
    return status


async def _states(
    pods: list[pod_switching.GatewayPod], credentials: pod_switching.Credentials, port: int
) -> list[dict[str, Any] | None]:
    """Every pod's ``/api/v1/state`` at once; None for a pod that did not answer in time."""

    async def one(session: aiohttp.ClientSession, pod: pod_switching.GatewayPod) -> Any:
        state, error = await pod_switching.state_document(session, pod, port, STATE_TIMEOUT_SECONDS)
        if state is None:
            log.info("automatic failover: %s did not answer: %s", pod.name, error)
        return state

    headers = pod_switching.auth_headers(credentials)
    async with aiohttp.ClientSession(headers=headers) as session:
        return list(await asyncio.gather(*(one(session, pod) for pod in pods)))
