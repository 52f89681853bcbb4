"""kopf handlers for KafkaFailover: thin, they call ``reconciling``, which writes status.

Why it exists: this is the only module that knows kopf. Create, update and resume run the full
reconciliation. Status follows the pods: a gateway pod added, ready, terminating or gone
refreshes its KafkaFailover (the pod events of one step are taken together), so counts and
conditions are right within a second of the change, and a pod started mid-switch is switched at
once. A timer runs the same refresh as a safety net for events missed while a watch reconnected;
another, on objects with automatic failover enabled, runs :mod:`.automatic_acting`.
A bad object never crashes the operator: every failure ends in status and an Event, and kopf
retries.

Secrets: an index maps (namespace, Secret name) to the KafkaFailovers whose pods use it, so the
Secret watch drops every other Secret at once; a change of a used one re-applies the gateway's
objects when the pod template's hash moved, which rolls the pods. Only raw-event handlers watch
Secrets and Pods: kopf keeps no state on them and never writes to them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any, cast

import kopf
from pydantic import ValidationError

from failover_operator import (
    automatic_acting,
    kube_objects,
    manifests,
    model,
    reconciling,
    rpo_measuring,
)

SecretKey = tuple[str, str]
DRIFT_INTERVAL_SECONDS = float(os.environ.get("KAFKA_FAILOVER_DRIFT_INTERVAL", "10"))
INSTANT_EXIT_SECONDS = 1.0
CANCELLATION_POLLING_SECONDS = 1.0
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


def _events_for(raw: Mapping[str, Any]) -> KopfEvents:
    return KopfEvents(kopf.Body(cast(kopf.RawBody, raw)))


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
    # kopf never cancels a timer: a deletion that finds one mid-call (a drift check waiting on a
    # slow gateway pod) waits for it, and by default looks again only 60 s later, which held
    # `kubectl delete --wait` past a minute. Give a running call a second to end, then look
    # every second; the timers also return early once kopf says the object is going.
    settings.background.instant_exit_timeout = INSTANT_EXIT_SECONDS
    settings.background.cancellation_polling = CANCELLATION_POLLING_SECONDS
    logging.getLogger("kopf.objects").addFilter(_quiet_pod_events)


_ROUTINE = tuple(
    f"'{handler}' succeeded"
    for handler in ("gateway_pod_changed", "automatic_failover", "drift_check")
)


def _quiet_pod_events(record: logging.LogRecord) -> bool:
    """Drop kopf's "Handler 'gateway_pod_changed' succeeded." (one per pod event: half the log
    of a 30-pod switch) and the same line of the timers (one every few seconds per object);
    their failures and everything else still go through."""
    if record.levelno > logging.INFO:
        return True
    message = record.getMessage()
    return not any(routine in message for routine in _ROUTINE)


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
        current = await reconciling.read_current(namespace, owner)
        if current is None:
            return
        target, spec = current
        seen = await reconciling.observe_secrets(target, spec)
        await reconciling.refresh_if_stale(
            target,
            spec,
            seen,
            _events_for(target.body),
            reason="SecretChanged",
            message=f"Secret {secret} {change.lower()}: re-applied the gateway, its pods roll",
        )


@kopf.on.resume(model.GROUP, model.VERSION, model.PLURAL)
@kopf.on.create(model.GROUP, model.VERSION, model.PLURAL)
@kopf.on.update(model.GROUP, model.VERSION, model.PLURAL)
async def reconcile(body: kopf.Body, spec: kopf.Spec, status: kopf.Status, **_: Any) -> None:
    target = _target(body)
    async with reconciling.lock_for(target):
        try:
            await reconciling.reconcile(target, dict(spec), dict(status), KopfEvents(body))
        except kube_objects.KubeError as error:
            raise kopf.TemporaryError(str(error), delay=5) from error


@kopf.on.delete(model.GROUP, model.VERSION, model.PLURAL, optional=True)
def forget(name: str, namespace: str | None, **_: Any) -> None:
    reconciling.forget(namespace or "", name)


@kopf.timer(
    model.GROUP,
    model.VERSION,
    model.PLURAL,
    interval=DRIFT_INTERVAL_SECONDS,
    initial_delay=DRIFT_INTERVAL_SECONDS,
)
async def drift_check(name: str, namespace: str | None, **kwargs: Any) -> None:
    """The safety net: a pod event or a Secret event missed while a watch reconnected; and the
    count of what a cluster left unplanned holds, once it answers (:mod:`.rpo_measuring`)."""
    try:
        await reconciling.refresh(namespace or "", name, _events_for, stale=True)
        stopped: kopf.DaemonStopped = kwargs["stopped"]
        if stopped:
            return  # the object is being deleted (or the operator stops): its deletion waits
        await rpo_measuring.measure_if_needed(namespace or "", name, _events_for)
    except kube_objects.KubeError as error:
        log.warning("drift check of %s/%s failed: %s", namespace, name, error)


def _automatic(spec: kopf.Spec, **_: Any) -> bool:
    return bool((spec.get("automaticFailover") or {}).get("enabled"))


@kopf.timer(
    model.GROUP,
    model.VERSION,
    model.PLURAL,
    interval=automatic_acting.AUTOMATIC_INTERVAL_SECONDS,
    when=_automatic,
)
async def automatic_failover(name: str, namespace: str | None, **_: Any) -> None:
    """Opt-in automatic failover: the pods' verdicts, the quorum rule, record, then act."""
    try:
        await automatic_acting.check(namespace or "", name, _events_for)
    except kube_objects.KubeError as error:
        log.warning("automatic failover check of %s/%s failed: %s", namespace, name, error)


_pods_seen: dict[tuple[str, str], kube_objects.PodInfo] = {}
_pending: dict[tuple[str, str], asyncio.Task[None]] = {}
POD_SETTLE_SECONDS = 0.05  # pod events of one rollout step arrive together: refresh once


@kopf.on.event("", "v1", "pods", labels={manifests.NAME_LABEL: manifests.COMPONENT})
async def gateway_pod_changed(
    event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, **_: Any
) -> None:
    """A gateway pod was added, became (un)ready, began terminating or went: refresh its
    KafkaFailover's status within a second, not at the next drift check."""
    owner = labels.get(manifests.INSTANCE_LABEL)
    pod = event["object"]
    if event["type"] is None or namespace is None or owner is None:
        return  # the initial listing: the resume handlers reconcile every object anyway
    key = (namespace, str(pod["metadata"]["name"]))
    info = None if event["type"] == "DELETED" else kube_objects.pod_info(pod)
    if info is not None and _pods_seen.get(key) == info:
        return  # a change of something status does not show (e.g. a container's restart count)
    if info is None:
        _pods_seen.pop(key, None)
    else:
        _pods_seen[key] = info
    _schedule_refresh(namespace, owner)


def _schedule_refresh(namespace: str, owner: str) -> None:
    key = (namespace, owner)
    if key in _pending and not _pending[key].done():
        return  # one not yet started will see this change too
    _pending[key] = asyncio.create_task(_refresh_after_settling(namespace, owner))


async def _refresh_after_settling(namespace: str, owner: str) -> None:
    await asyncio.sleep(POD_SETTLE_SECONDS)
    _pending.pop((namespace, owner), None)
    try:
        await reconciling.refresh(namespace, owner, _events_for, stale=False)
    except kube_objects.KubeError as error:
        log.warning("refreshing %s/%s after a pod change failed: %s", namespace, owner, error)
