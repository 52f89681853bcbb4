"""kopf handlers for KafkaFailover: thin, they call ``reconciling`` and write its status.

Why it exists: this is the only module that knows kopf. Create, update and resume run the full
reconciliation; a timer runs the drift check (every ready pod must report the desired cluster and
epoch; one that does not, e.g. started mid-switch, is switched and the fix recorded). A bad object
never crashes the operator: every failure ends in status and an Event, and kopf retries.

Secrets: an index maps (namespace, Secret name) to the KafkaFailovers whose pods use it, so the
Secret watch drops every other Secret at once; a change of a used one re-applies the gateway's
objects when the pod template's hash moved, which rolls the pods (status follows at the next drift
check). Only a raw-event handler watches Secrets: kopf keeps no state on them and
never writes to them. The drift check re-applies a stale pod template, in case an event was missed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any, cast

import kopf
import kubernetes
from pydantic import ValidationError

from failover_operator import kube_objects, model, reconciling
from failover_operator import status as status_building

SecretKey = tuple[str, str]
DRIFT_INTERVAL_SECONDS = float(os.environ.get("KAFKA_FAILOVER_DRIFT_INTERVAL", "10"))
FINALIZER = f"{model.GROUP}/finalizer"
log = logging.getLogger("failover_operator")


class KopfEvents:
    """Events posted on the KafkaFailover object, mirrored to the operator log."""

    def __init__(self, body: kopf.Body) -> None:
        self._body = body

    def info(self, reason: str, message: str) -> None:
        log.info("%s: %s", reason, message)
        kopf.info(self._body, reason=reason, message=message)

    def warn(self, reason: str, message: str) -> None:
        log.warning("%s: %s", reason, message)
        kopf.warn(self._body, reason=reason, message=message)


def _target(body: kopf.Body) -> reconciling.Target:
    meta = body["metadata"]
    return reconciling.Target(meta["name"], meta["namespace"], int(meta.get("generation", 1)), body)


def _status_writer(target: reconciling.Target) -> reconciling.StatusWriter:
    async def write(status: Mapping[str, Any]) -> None:
        await asyncio.to_thread(_patch_status_sync, target, dict(status))

    return write


def _patch_status_sync(target: reconciling.Target, status: dict[str, Any]) -> None:
    api = kubernetes.client.CustomObjectsApi()
    api.patch_namespaced_custom_object_status(
        model.GROUP,
        model.VERSION,
        target.namespace,
        model.PLURAL,
        target.name,
        {"status": status},
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=model.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=model.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 60
    settings.networking.request_timeout = 30
    # Least-privilege RBAC (rbac.RULES) cannot list namespaces or CRDs at cluster scope; kopf
    # would retry those lists for about a minute at every start before falling back to this.
    settings.scanning.disabled = True


@kopf.index(model.GROUP, model.VERSION, model.PLURAL)
def secret_users(
    name: str, namespace: str | None, spec: kopf.Spec, **_: Any
) -> dict[SecretKey, str]:
    """(namespace, Secret) -> names of the KafkaFailovers whose gateway pods use that Secret."""
    try:
        parsed = model.parse_spec(dict(spec))
    except ValidationError:
        return {}
    return {(namespace or "", secret): name for secret in reconciling.watched_secrets(name, parsed)}


def _users_of(namespace: str | None, name: str, kwargs: Mapping[str, Any]) -> list[str]:
    index: kopf.Index[SecretKey, str] = kwargs["secret_users"]
    key = (namespace or "", name)
    return sorted(set(index[key])) if key in index else []


def _used(name: str, namespace: str | None, **kwargs: Any) -> bool:
    return bool(_users_of(namespace, name, kwargs))


@kopf.on.event("", "v1", "secrets", when=_used)
async def secret_changed(
    event: kopf.RawEvent, name: str, namespace: str | None, **kwargs: Any
) -> None:
    if event["type"] is None or namespace is None:
        return  # the initial listing: the resume handlers reconcile every object anyway
    for owner in _users_of(namespace, name, kwargs):
        try:
            await _refresh_for_secret(namespace, owner, name, str(event["type"]))
        except kube_objects.KubeError as error:
            log.warning(
                "Secret %s/%s changed; reconciling %s failed: %s (the drift check retries)",
                namespace,
                name,
                owner,
                error,
            )


async def _refresh_for_secret(namespace: str, owner: str, secret: str, change: str) -> None:
    """Roll the owner's pods if the Secret's new version changes their template; else nothing.

    The object is read under its lock: one read before might apply a spec a handler has just
    replaced.
    """
    async with reconciling.lock_named(namespace, owner):
        raw = await kube_objects.kafka_failover(namespace, owner)
        if raw is None:
            return
        try:
            spec = model.parse_spec(raw.get("spec"))
        except ValidationError:
            return  # the reconciliation reports it in status
        body = kopf.Body(cast(kopf.RawBody, raw))
        target = _target(body)
        seen = await reconciling.observe_secrets(target, spec)
        await reconciling.refresh_if_stale(
            target,
            spec,
            seen,
            KopfEvents(body),
            reason="SecretChanged",
            message=f"Secret {secret} {change.lower()}: re-applied the gateway, its pods roll",
        )


@kopf.on.resume(model.GROUP, model.VERSION, model.PLURAL)
@kopf.on.create(model.GROUP, model.VERSION, model.PLURAL)
@kopf.on.update(model.GROUP, model.VERSION, model.PLURAL)
async def reconcile(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, **_: Any
) -> None:
    target = _target(body)
    async with reconciling.lock_for(target):
        try:
            new_status = await reconciling.reconcile(
                target, dict(spec), dict(status), KopfEvents(body), _status_writer(target)
            )
        except kube_objects.KubeError as error:
            raise kopf.TemporaryError(str(error), delay=5) from error
    patch.status.update(new_status)


@kopf.timer(
    model.GROUP,
    model.VERSION,
    model.PLURAL,
    interval=DRIFT_INTERVAL_SECONDS,
    initial_delay=DRIFT_INTERVAL_SECONDS,
)
async def drift_check(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    """``body`` and ``status`` are kopf's live views: read after the lock, they are the newest."""
    meta = body["metadata"]
    async with reconciling.lock_named(meta["namespace"], meta["name"]):
        target = _target(body)
        try:
            parsed = model.parse_spec(dict(body["spec"]))
        except ValidationError:
            return  # the reconciliation already reported it in status
        try:
            result, problems = await _drift_check_locked(target, parsed, KopfEvents(body))
        except kube_objects.KubeError as error:
            log.warning("drift check of %s/%s failed: %s", target.namespace, target.name, error)
            return
    patch.status.update(
        status_building.compute(
            desired=parsed.active,
            generation=target.generation,
            pods=result.reports,
            problems=problems,
            switching=False,
            previous=dict(status),
        )
    )


async def _drift_check_locked(
    target: reconciling.Target, spec: model.KafkaFailoverSpec, events: KopfEvents
) -> tuple[reconciling.Convergence, list[status_building.Problem]]:
    credentials = await kube_objects.admin_credentials(target.namespace, target.name, target.body)
    seen = await reconciling.observe_secrets(target, spec)
    await reconciling.refresh_if_stale(
        target,
        spec,
        seen,
        events,
        reason="GatewayRefreshed",
        message="the gateway pod template was out of date (a Secret changed); re-applied, its "
        "pods roll",
    )
    result = await reconciling.converge(target, spec, credentials, events, announce=False)
    return result, reconciling.secret_problems(target, spec, seen)
