"""kopf handlers for KafkaFailover: thin, they call ``reconciling`` and write its status.

Why it exists: this is the only module that knows kopf. Create, update and resume run the full
reconciliation; a timer runs the drift check (every ready pod must report the desired cluster and
epoch; one that does not, e.g. started mid-switch, is switched and the fix recorded). A bad object
never crashes the operator: every failure ends in status and an Event, and kopf retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf
import kubernetes
from pydantic import ValidationError

from failover_operator import kube_objects, model, reconciling
from failover_operator import status as status_building

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
async def drift_check(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, **_: Any
) -> None:
    target = _target(body)
    try:
        parsed = model.parse_spec(dict(spec))
    except ValidationError:
        return  # the reconciliation already reported it in status
    async with reconciling.lock_for(target):
        try:
            credentials = await kube_objects.admin_credentials(
                target.namespace, target.name, target.body
            )
            result = await reconciling.converge(
                target, parsed, credentials, KopfEvents(body), announce=False
            )
        except kube_objects.KubeError as error:
            log.warning("drift check of %s/%s failed: %s", target.namespace, target.name, error)
            return
    previous = dict(status)
    problems = await reconciling.secret_problems(target, parsed)
    patch.status.update(
        status_building.compute(
            desired=parsed.active,
            generation=target.generation,
            pods=result.reports,
            problems=problems,
            switching=False,
            previous=previous,
        )
    )
