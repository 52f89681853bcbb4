"""Building the Kubernetes objects that run the gateway for one KafkaFailover: pure functions.

Why it exists: the operator's handlers stay thin by calling these and applying the result, and the
manifests are unit tested without a cluster. Two rules shape them:

- the active cluster never enters the pod template (a switch must not roll pods): it lives in the
  ``active`` key of the ConfigMap, mounted as the gateway's ``activeFile``, and running pods are
  switched through their admin API;
- everything else that configures the gateway does, through a hash annotation, so any other change
  rolls the pods, including a new version of any Secret the pods mount.

Secrets are mounted, each as its own read-only volume (``secret_mounts``), and the gateway config
only names their files (``${file:...}`` for SASL credentials, plain paths for TLS material), so
the ConfigMap never holds a secret value. The ConfigMap itself is mounted at
``/etc/kafka-failover/config``, beside (not above) the Secret volumes: a runtime cannot create a
nested mount point inside a read-only ConfigMap volume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import yaml

from failover_operator import model, secret_mounts
from failover_operator.secret_mounts import Mount, Seen

CONFIG_DIR = "/etc/kafka-failover/config"
CONFIG_FILE = "gateway.yaml"
ACTIVE_KEY = "active"
CONFIG_HASH_ANNOTATION = f"{model.GROUP}/config-hash"
INSTANCE_LABEL = "app.kubernetes.io/instance"
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT = "kafka-failover-gateway"
RUN_AS_USER = 10001
ADMIN_USER = "admin"

Manifest = dict[str, Any]


def gateway_name(name: str) -> str:
    return f"{name}-gateway"


def admin_secret_name(name: str) -> str:
    return f"{name}-gateway-admin"


def selector_labels(name: str) -> dict[str, str]:
    return {NAME_LABEL: COMPONENT, INSTANCE_LABEL: name}


def _labels(name: str) -> dict[str, str]:
    return {**selector_labels(name), "app.kubernetes.io/managed-by": "kafka-failover-operator"}


def _metadata(name: str, namespace: str, object_name: str) -> dict[str, Any]:
    return {"name": object_name, "namespace": namespace, "labels": _labels(name)}


def advertised_host(name: str, namespace: str, spec: model.KafkaFailoverSpec) -> str:
    host = spec.gateway.listener.advertised_host
    return host or f"{gateway_name(name)}.{namespace}.svc"


def _file_reference(path: str) -> str:
    return "${file:" + path + "}"


def upstream_secret_properties(
    index: int, cluster: model.ClusterSpec, seen: Seen
) -> dict[str, str]:
    """File references to the cluster's mounted Secrets; the client certificate only if present."""
    properties = {}
    credentials = secret_mounts.credentials(index, cluster)
    if credentials is not None:
        properties["sasl.username"] = _file_reference(credentials.file(secret_mounts.USERNAME))
        properties["sasl.password"] = _file_reference(credentials.file(secret_mounts.PASSWORD))
    tls = secret_mounts.cluster_tls(index, cluster)
    if tls is not None:
        properties["ssl.ca.location"] = tls.file(secret_mounts.CA)
        if secret_mounts.has_keys(seen, tls.secret, tls.together):
            properties["ssl.certificate.location"] = tls.file(secret_mounts.CERTIFICATE)
            properties["ssl.key.location"] = tls.file(secret_mounts.KEY)
    return properties


def cluster_properties(
    cluster: model.ClusterSpec, index: int = 0, seen: Seen | None = None
) -> dict[str, str]:
    """The Conduktor-shaped ``config.<name>`` block: plain Kafka client properties, no secrets."""
    properties = {**cluster.properties, "bootstrap.servers": cluster.bootstrap_servers}
    if cluster.security_protocol != "PLAINTEXT":
        properties["security.protocol"] = cluster.security_protocol
    if cluster.sasl_mechanism:
        properties["sasl.mechanism"] = cluster.sasl_mechanism
    properties |= upstream_secret_properties(index, cluster, seen or {})
    if cluster.role == "failover":
        properties["gateway.roles"] = "failover"
    return properties


def listener_security(client: model.ClientSecuritySpec, seen: Seen) -> dict[str, Any]:
    """``gateway.listener.security``: the protocol, and paths into the mounted client Secrets."""
    security: dict[str, Any] = {"protocol": client.protocol}
    if client.sasl_mechanisms:
        security["saslMechanisms"] = list(client.sasl_mechanisms)
    users = secret_mounts.client_users(client)
    if users is not None:
        security["usersFile"] = users.file(secret_mounts.USERS)
    tls = secret_mounts.client_tls(client)
    if tls is not None:
        security["tls"] = _listener_tls(client, tls, seen)
    if client.principal_mapping_rules:
        security["principalMappingRules"] = client.principal_mapping_rules
    return security


def _listener_tls(client: model.ClientSecuritySpec, tls: Mount, seen: Seen) -> dict[str, Any]:
    files: dict[str, Any] = {
        "certificate": tls.file(secret_mounts.CERTIFICATE),
        "key": tls.file(secret_mounts.KEY),
        "clientAuth": client.client_auth,
    }
    if client.client_auth != "none" or secret_mounts.has_keys(seen, tls.secret, [secret_mounts.CA]):
        files["clientCa"] = tls.file(secret_mounts.CA)
    return files


def _listener(
    name: str, namespace: str, spec: model.KafkaFailoverSpec, seen: Seen
) -> dict[str, Any]:
    listener = spec.gateway.listener
    document: dict[str, Any] = {
        "host": "0.0.0.0",
        "port": listener.port,
        "advertisedHost": advertised_host(name, namespace, spec),
        "brokerPortCount": listener.broker_port_count,
    }
    if spec.gateway.client_security is not None:
        document["security"] = listener_security(spec.gateway.client_security, seen)
    return document


def gateway_config(
    name: str, namespace: str, spec: model.KafkaFailoverSpec, seen: Seen | None = None
) -> dict[str, Any]:
    """The gateway's config file (the initial ``active`` is only a fallback for ``activeFile``).

    ``seen`` tells which optional keys the referenced Secrets hold (a client certificate for
    mutual TLS is configured only when its Secret has one).
    """
    seen = seen or {}
    clusters = {
        cluster.name: cluster_properties(cluster, index, seen)
        for index, cluster in enumerate(spec.clusters)
    }
    return {
        "config": clusters,
        "gateway": {
            "listener": _listener(name, namespace, spec, seen),
            "admin": {"host": "0.0.0.0", "port": spec.gateway.admin_port},
            # Only a fallback: the mounted activeFile (the ConfigMap's ``active`` key) always
            # exists and wins. Not spec.active, which would change the hash and roll pods.
            "active": spec.clusters[0].name,
            "activeFile": f"{CONFIG_DIR}/{ACTIVE_KEY}",
            "timeouts": {
                "drainMs": spec.switch.drain_ms,
                "probeIntervalMs": spec.automatic_failover.probe_interval_seconds * 1000,
            },
            "switchover": _switchover(spec.switch),
            **(
                {"canaryTopic": spec.automatic_failover.canary_topic}
                if spec.automatic_failover.canary_topic
                else {}
            ),
        },
    }


def _switchover(switch: model.SwitchSpec) -> dict[str, Any]:
    """What a gateway needs to prepare a planned switch (the operator orchestrates it)."""
    mm2 = switch.mirror_maker2
    return {
        "replication": switch.replication,
        "topics": switch.topics,
        "mirrorMaker2": {
            "aliases": dict(mm2.aliases),
            "policy": mm2.policy,
            "separator": mm2.separator,
        },
        "maxCatchUpSeconds": switch.max_catch_up_seconds,
        "consumerDrainSeconds": switch.consumer_drain_seconds,
    }


def active_document(cluster: str, epoch: int) -> str:
    return yaml.safe_dump({"cluster": cluster, "epoch": epoch}, sort_keys=False)


def config_map(
    name: str,
    namespace: str,
    spec: model.KafkaFailoverSpec,
    epoch: int,
    seen: Seen | None = None,
    *,
    active: str | None = None,
) -> Manifest:
    """The gateway's config and active document; ``active`` keeps the document that is live
    (a planned switch changes it only once the new cluster is ready for clients)."""
    config_text = yaml.safe_dump(gateway_config(name, namespace, spec, seen), sort_keys=False)
    document = active if active is not None else active_document(spec.active, epoch)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(name, namespace, gateway_name(name)),
        "data": {CONFIG_FILE: config_text, ACTIVE_KEY: document},
    }


def config_hash(config_map_manifest: Manifest, extra: Mapping[str, str] | None = None) -> str:
    """Hash of everything that must roll the pods when it changes: not the active cluster.

    ``extra`` holds the versions of the mounted Secrets (``secret_mounts.versions``).
    """
    digest = hashlib.sha256(config_map_manifest["data"][CONFIG_FILE].encode())
    for key, value in sorted((extra or {}).items()):
        digest.update(f"{key}={value}".encode())
    return digest.hexdigest()[:16]


def admin_secret(name: str, namespace: str, password: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace, admin_secret_name(name)),
        "type": "Opaque",
        "stringData": {"username": ADMIN_USER, "password": password},
    }


def _ports(spec: model.KafkaFailoverSpec) -> list[tuple[str, int]]:
    listener = spec.gateway.listener
    brokers = [
        (f"broker-{slot}", listener.port + 1 + slot) for slot in range(listener.broker_port_count)
    ]
    return [("bootstrap", listener.port), *brokers, ("admin", spec.gateway.admin_port)]


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probe(path: str, spec: model.KafkaFailoverSpec, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "admin"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def _admin_env(name: str) -> list[dict[str, Any]]:
    return [
        {
            "name": f"GATEWAY_ADMIN_{field.upper()}",
            "valueFrom": {"secretKeyRef": {"name": admin_secret_name(name), "key": key}},
        }
        for field, key in (("user", "username"), ("password", "password"))
    ]


def _container(name: str, spec: model.KafkaFailoverSpec) -> dict[str, Any]:
    gateway = spec.gateway
    container: dict[str, Any] = {
        "name": "gateway",
        "image": gateway.image,
        "imagePullPolicy": gateway.image_pull_policy,
        "args": ["--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "ports": [
            {"name": port_name, "containerPort": port, "protocol": "TCP"}
            for port_name, port in _ports(spec)
        ],
        "env": _admin_env(name),
        "readinessProbe": _probe("/readyz", spec, 5),
        "livenessProbe": _probe("/healthz", spec, 10),
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *(
                {"name": mount.volume, "mountPath": mount.path, "readOnly": True}
                for mount in secret_mounts.mounts(spec)
            ),
        ],
    }
    container["resources"] = gateway.resources or {
        "requests": {"cpu": "250m", "memory": "128Mi"},
        "limits": {"cpu": "2", "memory": "512Mi"},
    }
    return container


def _secret_volume(mount: Mount) -> dict[str, Any]:
    return {
        "name": mount.volume,
        "secret": {"secretName": mount.secret, "defaultMode": secret_mounts.FILE_MODE},
    }


def _pod_spec(name: str, spec: model.KafkaFailoverSpec) -> dict[str, Any]:
    gateway = spec.gateway
    pod: dict[str, Any] = {
        "containers": [_container(name, spec)],
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            "fsGroup": RUN_AS_USER,
        },
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 15,
        "volumes": [
            {"name": "config", "configMap": {"name": gateway_name(name)}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            *(_secret_volume(mount) for mount in secret_mounts.mounts(spec)),
        ],
    }
    if gateway.affinity:
        pod["affinity"] = gateway.affinity
    if gateway.tolerations:
        pod["tolerations"] = gateway.tolerations
    if gateway.node_selector:
        pod["nodeSelector"] = gateway.node_selector
    return pod


def deployment(name: str, namespace: str, spec: model.KafkaFailoverSpec, hash_: str) -> Manifest:
    gateway = spec.gateway
    annotations = {**gateway.pod_annotations, CONFIG_HASH_ANNOTATION: hash_}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, namespace, gateway_name(name)),
        "spec": {
            "replicas": gateway.replicas,
            "selector": {"matchLabels": selector_labels(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": {**gateway.pod_labels, **selector_labels(name)},
                    "annotations": annotations,
                },
                "spec": _pod_spec(name, spec),
            },
        },
    }


def service(name: str, namespace: str, spec: model.KafkaFailoverSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            **_metadata(name, namespace, gateway_name(name)),
            "annotations": dict(spec.gateway.service.annotations),
        },
        "spec": {
            "type": spec.gateway.service.type,
            "selector": selector_labels(name),
            "ports": [
                {"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}
                for port_name, port in _ports(spec)
            ],
        },
    }


def pod_disruption_budget(name: str, namespace: str) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(name, namespace, gateway_name(name)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(name)}},
    }


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body["metadata"]
    return {
        "apiVersion": f"{model.GROUP}/{model.VERSION}",
        "kind": model.KIND,
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(manifest: Manifest, owner: Mapping[str, Any]) -> Manifest:
    """The manifest with an owner reference, so deleting the KafkaFailover deletes it."""
    metadata = {**manifest["metadata"], "ownerReferences": [owner_reference(owner)]}
    return {**manifest, "metadata": metadata}
