"""The operator's apply converges on a real kube-apiserver: what the desired object drops, goes.

A strategic merge patch keeps every field it does not mention, so an annotation, a Secret volume
or a nodeSelector key removed from a KafkaFailover stayed on the live objects forever. Server-side
apply with one field manager removes them; objects written by a release before it are adopted.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from failover_operator import kube_objects, manifests, model, reconciling
from kube_testbed.control_plane import ControlPlane

CRD = Path(__file__).resolve().parents[2] / "crds" / "kafkafailover.yaml"
BASE_SPEC: dict[str, Any] = {
    "active": "main",
    "clusters": [
        {
            "name": "main",
            "bootstrapServers": "kafka-a:9093",
            "securityProtocol": "SSL",
            "tlsSecret": {"name": "main-client-tls"},
        },
        {"name": "failover", "bootstrapServers": "kafka-b:9092", "role": "failover"},
    ],
    "gateway": {
        "replicas": 1,
        "nodeSelector": {"disk": "ssd", "zone": "a"},
        "podAnnotations": {"team": "payments", "pager": "yes"},
    },
}
PLAIN_SPEC: dict[str, Any] = {
    **BASE_SPEC,
    "clusters": [
        {"name": "main", "bootstrapServers": "kafka-a:9092"},
        BASE_SPEC["clusters"][1],
    ],
    "gateway": {"replicas": 1, "nodeSelector": {"disk": "ssd"}, "podAnnotations": {"team": "x"}},
}


@pytest.fixture(scope="module")
def namespace(kube_control_plane: ControlPlane) -> Iterator[str]:
    name = f"apply-{uuid.uuid4().hex[:6]}"
    kube_control_plane.kubectl("create", "namespace", name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kube_control_plane.kubeconfig))
        kube_objects._clients.cache_clear()
        yield name
    kube_objects._clients.cache_clear()


def owner(plane: ControlPlane, namespace: str) -> dict[str, Any]:
    """A real KafkaFailover to own what is applied (no operator watches this namespace): the
    garbage collector deletes whatever names an owner that does not exist."""
    plane.kubectl("apply", "-f", str(CRD))
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", f"crd/{model.PLURAL}.{model.GROUP}"
    )
    document = {
        "apiVersion": f"{model.GROUP}/{model.VERSION}",
        "kind": model.KIND,
        "metadata": {"name": "prod", "namespace": namespace},
        "spec": PLAIN_SPEC,
    }
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(document))
    found: dict[str, Any] = plane.kubectl_json(
        "get", model.PLURAL, "prod", "--namespace", namespace
    )
    return found


def apply_spec(namespace: str, spec: dict[str, Any], body: dict[str, Any]) -> None:
    target = reconciling.Target("prod", namespace, 1, body)
    parsed = model.parse_spec(spec)
    seen = {name: None for name in reconciling.watched_secrets("prod", parsed)}
    for item in reconciling.gateway_objects(target, parsed, seen):
        asyncio.run(kube_objects.apply(item))


def live(plane: ControlPlane, namespace: str, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = plane.kubectl_json(
        "get", kind, name, "--namespace", namespace, "--show-managed-fields"
    )
    return found


def test_a_secret_volume_a_node_selector_key_and_an_annotation_removed_from_the_spec_go(
    kube_control_plane: ControlPlane, namespace: str
) -> None:
    body = owner(kube_control_plane, namespace)
    apply_spec(namespace, BASE_SPEC, body)
    gateway = manifests.gateway_name("prod")
    before = live(kube_control_plane, namespace, "deployment", gateway)["spec"]["template"]
    assert "main-client-tls" in json.dumps(before["spec"]["volumes"])
    apply_spec(namespace, PLAIN_SPEC, body)
    after = live(kube_control_plane, namespace, "deployment", gateway)["spec"]["template"]
    volumes = json.dumps(after["spec"].get("volumes", []))
    assert "main-client-tls" not in volumes
    assert after["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert "pager" not in after["metadata"]["annotations"]
    assert after["metadata"]["annotations"]["team"] == "x"


def test_an_object_written_by_a_release_before_server_side_apply_is_adopted(
    kube_control_plane: ControlPlane, namespace: str
) -> None:
    """Created with POST (the Python client's default manager), as releases before did."""
    wanted = manifests.owned(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "legacy", "namespace": namespace, "labels": {"a": "1"}},
            "data": {"gateway.yaml": "x: 1", "stale": "gone soon"},
        },
        owner(kube_control_plane, namespace),
    )
    core = kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(config_file=str(kube_control_plane.kubeconfig))
    )
    core.create_namespaced_config_map(namespace, wanted)
    managers = {
        e["manager"]
        for e in live(kube_control_plane, namespace, "configmap", "legacy")["metadata"][
            "managedFields"
        ]
    }
    assert managers & kube_objects.LEGACY_MANAGERS, managers
    desired = {**wanted, "data": {"gateway.yaml": "x: 2"}}
    asyncio.run(kube_objects.apply(desired))
    found = live(kube_control_plane, namespace, "configmap", "legacy")
    assert found["data"] == {"gateway.yaml": "x: 2"}
    managers = {e["manager"] for e in found["metadata"]["managedFields"]}
    assert managers == {kube_objects.FIELD_MANAGER}
