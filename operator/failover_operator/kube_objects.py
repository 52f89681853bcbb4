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
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from failover_operator import manifests, model
from failover_operator.pod_switching import Credentials, GatewayPod
from failover_operator.secret_mounts import Observed

Manifest = dict[str, Any]
NOT_FOUND, CONFLICT = 404, 409


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
        kubernetes.config.load_kube_config()
    api = kubernetes.client.ApiClient()
    return (
        kubernetes.client.CoreV1Api(api),
        kubernetes.client.AppsV1Api(api),
        kubernetes.client.PolicyV1Api(api),
    )


def _calls(kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    core, apps, policy = _clients()
    table = {
        "ConfigMap": (core.create_namespaced_config_map, core.patch_namespaced_config_map),
        "Secret": (core.create_namespaced_secret, core.patch_namespaced_secret),
        "Service": (core.create_namespaced_service, core.patch_namespaced_service),
        "Deployment": (apps.create_namespaced_deployment, apps.patch_namespaced_deployment),
        "PodDisruptionBudget": (
            policy.create_namespaced_pod_disruption_budget,
            policy.patch_namespaced_pod_disruption_budget,
        ),
    }
    return table[kind]


def _apply_sync(manifest: Manifest) -> None:
    create, patch = _calls(manifest["kind"])
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        create(namespace, manifest)
    except ApiException as error:
        if error.status != CONFLICT:
            raise KubeError(_describe(manifest["kind"], namespace, name, error)) from error
        try:
            patch(name, namespace, manifest)
        except ApiException as patch_error:
            raise KubeError(_describe(manifest["kind"], namespace, name, patch_error)) from None


def _describe(kind: str, namespace: str, name: str, error: ApiException) -> str:
    return f"{kind} {namespace}/{name}: HTTP {error.status} {error.reason}"


async def apply(manifest: Manifest) -> None:
    """Create the object, or patch it to the manifest if it exists."""
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
    return [_pod_info(pod) for pod in json.loads(answer.data).get("items") or []]


def _pod_info(pod: Mapping[str, Any]) -> PodInfo:
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
