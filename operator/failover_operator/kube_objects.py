"""Reading and writing Kubernetes objects for the operator, through the official client.

Why it exists: the reconciler needs a handful of calls (apply a manifest, list ready gateway pods,
read or create the admin Secret, delete a pod to fence it). They live behind one small module so
handlers stay thin and every call runs in a worker thread (the client is synchronous; the kopf
event loop must never block on it). Library errors become ``KubeError`` naming the object.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from failover_operator import manifests, model
from failover_operator.pod_switching import Credentials, GatewayPod
from failover_operator.secret_mounts import Observed

Manifest = dict[str, Any]
NOT_FOUND = 404


class KubeError(Exception):
    """A Kubernetes API call failed; the message names the object and the API's reason."""


@dataclass(frozen=True)
class PodInfo:
    name: str
    ip: str | None
    ready: bool
    terminating: bool

    @property
    def gateway(self) -> GatewayPod:
        return GatewayPod(self.name, self.ip or "")


@functools.cache
def _clients() -> tuple[Any, Any, Any]:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        # KUBECONFIG read now, not when the client library was imported.
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    api = kubernetes.client.ApiClient()
    return (
        kubernetes.client.CoreV1Api(api),
        kubernetes.client.AppsV1Api(api),
        kubernetes.client.PolicyV1Api(api),
    )


# Where each owned kind lives in the API: (path prefix, plural).
_RESOURCES: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
}
FIELD_MANAGER = "kafka-failover-operator"
# Releases before server-side apply created owned objects with POST and patched them with a
# strategic merge patch; the API server recorded those writes under the Python client's default
# manager name. Their fields are handed to FIELD_MANAGER once (see _adopt_legacy_fields), or a
# field removed from the desired object would stay on the live one, owned by nobody who applies.
LEGACY_MANAGERS = frozenset({"OpenAPI-Generator"})


def _path(manifest: Manifest) -> str:
    prefix, plural = _RESOURCES[manifest["kind"]]
    metadata = manifest["metadata"]
    return f"{prefix}/namespaces/{metadata['namespace']}/{plural}/{metadata['name']}"


def _request(
    method: str, path: str, body: Any, content_type: str, query: list[tuple[str, str]]
) -> dict[str, Any]:
    api = _clients()[0].api_client
    answer = api.call_api(
        path,
        method,
        query_params=query,
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
    )
    return dict(json.loads(answer.data))


def _apply_sync(manifest: Manifest) -> None:
    """Server-side apply as FIELD_MANAGER, forcing conflicts: the operator owns these objects.

    The desired manifest is the whole truth: a field it no longer has is removed from the live
    object (a strategic merge patch would have left it there forever).
    """
    kind, metadata = manifest["kind"], manifest["metadata"]
    query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
    try:
        live = _request("PATCH", _path(manifest), manifest, "application/apply-patch+yaml", query)
        if _adopt_legacy_fields(manifest, live):
            _request("PATCH", _path(manifest), manifest, "application/apply-patch+yaml", query)
    except ApiException as error:
        raise KubeError(_describe(kind, metadata["namespace"], metadata["name"], error)) from None


def _adopt_legacy_fields(manifest: Manifest, live: Mapping[str, Any]) -> bool:
    """Hand the fields a pre-apply release wrote over to FIELD_MANAGER (as ``kubectl`` does when
    it upgrades client-side apply); True when it did, so the caller applies once more and every
    field no longer desired goes. Optimistic: a concurrent change fails it with 409, retried by
    the next reconciliation."""
    entries = (live.get("metadata") or {}).get("managedFields") or []
    legacy = [e for e in entries if _is_legacy(e)]
    if not legacy:
        return False
    mine = next((e for e in entries if e.get("manager") == FIELD_MANAGER), None)
    if mine is None or mine.get("operation") != "Apply":
        return False
    fields: dict[str, Any] = dict(mine.get("fieldsV1") or {})
    for entry in legacy:
        fields = merge_field_sets(fields, entry.get("fieldsV1") or {})
    kept = [e for e in entries if not _is_legacy(e) and e is not mine]
    body = {
        "metadata": {
            "resourceVersion": live["metadata"]["resourceVersion"],
            "managedFields": [*kept, {**mine, "fieldsV1": fields}],
        }
    }
    _request("PATCH", _path(manifest), body, "application/merge-patch+json", [])
    return True


def _is_legacy(entry: Mapping[str, Any]) -> bool:
    return (
        entry.get("manager") in LEGACY_MANAGERS
        and entry.get("operation") == "Update"
        and not entry.get("subresource")
    )


def merge_field_sets(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    """The union of two managedFields ``fieldsV1`` sets (nested maps of ``f:``/``k:`` keys)."""
    merged = dict(left)
    for key, value in right.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_field_sets(merged[key], value)
        elif key not in merged:
            merged[key] = value
    return merged


def _describe(kind: str, namespace: str, name: str, error: ApiException) -> str:
    return f"{kind} {namespace}/{name}: HTTP {error.status} {error.reason}"


async def apply(manifest: Manifest) -> None:
    """Server-side apply the manifest (create it, or make the live object match it)."""
    await asyncio.to_thread(_apply_sync, manifest)


def _observe_secret_sync(namespace: str, name: str) -> Observed | None:
    core, _, _ = _clients()
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == NOT_FOUND:
            return None
        raise KubeError(_describe("Secret", namespace, name, error)) from None
    keys = frozenset(secret.data or {}) | frozenset(secret.string_data or {})
    return Observed(str(secret.metadata.resource_version), keys)


async def observe_secret(namespace: str, name: str) -> Observed | None:
    """A Secret's resourceVersion and key names (its data is dropped at once), None if absent."""
    return await asyncio.to_thread(_observe_secret_sync, namespace, name)


def _deployment_hash_sync(namespace: str, name: str) -> str | None:
    _, apps, _ = _clients()
    try:
        deployment = apps.read_namespaced_deployment(name, namespace)
    except ApiException as error:
        if error.status == NOT_FOUND:
            return None
        raise KubeError(_describe("Deployment", namespace, name, error)) from None
    annotations = deployment.spec.template.metadata.annotations or {}
    value = annotations.get(manifests.CONFIG_HASH_ANNOTATION)
    return None if value is None else str(value)


async def deployment_hash(namespace: str, name: str) -> str | None:
    """The config-hash annotation of a Deployment's pod template, None if there is none."""
    return await asyncio.to_thread(_deployment_hash_sync, namespace, name)


def _config_map_key_sync(namespace: str, name: str, key: str) -> str | None:
    core, _, _ = _clients()
    try:
        found = core.read_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status == NOT_FOUND:
            return None
        raise KubeError(_describe("ConfigMap", namespace, name, error)) from None
    value = (found.data or {}).get(key)
    return None if value is None else str(value)


async def config_map_key(namespace: str, name: str, key: str) -> str | None:
    """One key of a ConfigMap, None when the ConfigMap or the key is absent."""
    return await asyncio.to_thread(_config_map_key_sync, namespace, name, key)


def _kafka_failover_sync(namespace: str, name: str) -> dict[str, Any] | None:
    api = kubernetes.client.CustomObjectsApi(_clients()[0].api_client)
    try:
        body = api.get_namespaced_custom_object(
            model.GROUP, model.VERSION, namespace, model.PLURAL, name
        )
    except ApiException as error:
        if error.status == NOT_FOUND:
            return None
        raise KubeError(_describe(model.KIND, namespace, name, error)) from None
    return dict(body)


async def kafka_failover(namespace: str, name: str) -> dict[str, Any] | None:
    """The current KafkaFailover object, None when it is gone."""
    return await asyncio.to_thread(_kafka_failover_sync, namespace, name)


def _admin_credentials_sync(namespace: str, name: str, owner: Mapping[str, Any]) -> Credentials:
    core, _, _ = _clients()
    secret_name = manifests.admin_secret_name(name)
    try:
        secret = core.read_namespaced_secret(secret_name, namespace)
    except ApiException as error:
        if error.status != NOT_FOUND:
            raise KubeError(_describe("Secret", namespace, secret_name, error)) from None
        password = secrets.token_urlsafe(32)
        manifest = manifests.owned(manifests.admin_secret(name, namespace, password), owner)
        _apply_sync(manifest)
        return Credentials(manifests.ADMIN_USER, password)
    data = secret.data or {}
    return Credentials(_decode(data, "username"), _decode(data, "password"))


def _decode(data: Mapping[str, str], key: str) -> str:
    return base64.b64decode(data.get(key, "")).decode()


async def admin_credentials(namespace: str, name: str, owner: Mapping[str, Any]) -> Credentials:
    """The gateway admin credentials: read from the owned Secret, generated once if missing."""
    return await asyncio.to_thread(_admin_credentials_sync, namespace, name, owner)


def _pods_sync(namespace: str, name: str) -> list[PodInfo]:
    core, _, _ = _clients()
    selector = ",".join(f"{k}={v}" for k, v in manifests.selector_labels(name).items())
    try:
        # The raw JSON, not the client's models: deserialising full Pod objects costs about 50 ms
        # a pod, which stood between every spec.active patch and the first pod's switch call.
        answer = core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False
        )
    except ApiException as error:
        raise KubeError(_describe("Pod", namespace, selector, error)) from None
    return [pod_info(pod) for pod in json.loads(answer.data).get("items") or []]


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    """Name, IP, readiness and whether it is terminating, from a Pod as the API serves it."""
    metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    ip = status.get("podIP")
    return PodInfo(
        str(metadata.get("name")), ip, ready and bool(ip),
        metadata.get("deletionTimestamp") is not None,
    )  # fmt: skip


async def gateway_pods(namespace: str, name: str) -> list[PodInfo]:
    """Every pod of the object's gateway Deployment."""
    return await asyncio.to_thread(_pods_sync, namespace, name)


def _delete_pod_sync(namespace: str, pod: str) -> None:
    core, _, _ = _clients()
    try:
        core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0)
    except ApiException as error:
        if error.status != NOT_FOUND:
            raise KubeError(_describe("Pod", namespace, pod, error)) from None


async def delete_pod(namespace: str, pod: str) -> None:
    """Fence a pod: delete it at once, so it stops serving whatever cluster it was on."""
    await asyncio.to_thread(_delete_pod_sync, namespace, pod)


def _write_status_sync(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    where = f"/apis/{model.GROUP}/{model.VERSION}/namespaces/{namespace}/{model.PLURAL}"
    path = f"{where}/{name}/status"
    try:
        _request("PATCH", path, {"status": dict(status)}, "application/merge-patch+json", [])
    except ApiException as error:
        if error.status != NOT_FOUND:  # deleted meanwhile: nothing to tell
            raise KubeError(_describe(model.KIND, namespace, name, error)) from None


async def write_status(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """Replace the KafkaFailover's status (its ``status`` subresource) with ``status``."""
    await asyncio.to_thread(_write_status_sync, namespace, name, status)


AUTOMATIC_FIELD_MANAGER = "kafka-failover-automatic"


def _patch_active_sync(
    namespace: str,
    name: str,
    active: str,
    *,
    expected: tuple[str, int],
    annotations: Mapping[str, str],
) -> int:
    where = f"/apis/{model.GROUP}/{model.VERSION}/namespaces/{namespace}/{model.PLURAL}/{name}"
    was, generation = expected
    # JSON patch "test" operations are the precondition: applied only if nobody changed the
    # spec since the decision (status writes do not count, as a resourceVersion would).
    body = [
        {"op": "test", "path": "/metadata/generation", "value": generation},
        {"op": "test", "path": "/spec/active", "value": was},
        {"op": "replace", "path": "/spec/active", "value": active},
    ]
    query = [("fieldManager", AUTOMATIC_FIELD_MANAGER)]
    try:
        live = _request("PATCH", where, body, "application/json-patch+json", query)
        _request(
            "PATCH", where, {"metadata": {"annotations": dict(annotations)}},
            "application/merge-patch+json", query,
        )  # fmt: skip
    except ApiException as error:
        raise KubeError(_describe(model.KIND, namespace, name, error)) from None
    return int(live["metadata"]["generation"])


async def patch_active(
    namespace: str,
    name: str,
    active: str,
    *,
    expected: tuple[str, int],
    annotations: Mapping[str, str],
) -> int:
    """Change ``spec.active`` as the automatic failover (its own field manager, so GitOps tools
    can tell it from a human's change), only if it is still ``expected`` (active cluster,
    generation): someone else's change since the decision fails it. Then annotate why. The
    object's new generation."""
    call = functools.partial(_patch_active_sync, expected=expected, annotations=annotations)
    return await asyncio.to_thread(call, namespace, name, active)
