"""The permissions the operator needs, and nothing more: one namespaced Role.

Why it exists: least privilege is a product feature for a tool that can move every client of a
company at once. The rules are data here so the Helm chart and the tests use the same list; the
integration tests run the operator as a service account bound to exactly these rules.
"""

from __future__ import annotations

from typing import Any

from failover_operator import leadership, model

RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [model.GROUP],
        "resources": [model.PLURAL],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": [model.GROUP],
        "resources": [f"{model.PLURAL}/status"],
        "verbs": ["get", "patch"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps", "services"],
        "verbs": ["get", "create", "patch"],
    },
    # Secrets: get (the Secrets gateway pods mount, for their versions and key names), create and
    # patch (the generated admin Secret), list and watch (a rotated Secret rolls the gateway pods
    # without waiting for the next change of the KafkaFailover). list/watch read nothing that get
    # could not already read in the same namespace; they only save polling every Secret.
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    # Pods: watch, so status follows a pod added, ready or gone within a second.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch"]},
    {
        "apiGroups": ["policy"],
        "resources": ["poddisruptionbudgets"],
        "verbs": ["get", "create", "patch"],
    },
    # Leader election between replicas (leadership.py): create the Lease once, then read and
    # update only that one by name. create cannot be limited by name: the name is in the body.
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [leadership.LEASE_NAME],
        "verbs": ["get", "update"],
    },
]


def role(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": RULES,
    }


def role_binding(name: str, namespace: str, service_account: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
