"""The Helm chart installed into a real kube-apiserver: install, upgrade, uninstall, and RBAC used.

A rendered manifest can look right and still be refused (Pod Security admission, RBAC escalation
rules, CRD validation with CEL), so the chart goes into the session's control plane: the namespace
enforces the ``restricted`` Pod Security Standard, the operator Pod must be admitted, the chart's
ServiceAccount must be able to do exactly the operator's work (the real operator runs with its
token and reconciles a KafkaFailover), ``helm upgrade`` moves to watching all namespaces, and
``helm uninstall`` leaves the CRD and the kept KafkaFailover objects.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from failover_operator import rbac
from kafka_testbed import networking, supervising
from kube_testbed.control_plane import ControlPlane
from kube_testbed.helm_commands import Helm

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kafka-failover"
EXAMPLES = CHART / "examples"
CRD_NAME = "kafkafailovers.kafka-failover.github.io"
WAIT_SECONDS = 60.0
OPERATOR_STOP_SECONDS = 10.0
NO_MONITORING = (
    "--set",
    "monitoring.serviceMonitor.enabled=false",
    "--set",
    "monitoring.prometheusRule.enabled=false",
)


class Release:
    """One release of the chart in a namespace of its own (and a second namespace for later)."""

    def __init__(self, plane: ControlPlane, helm: Helm, workdir: Path) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.plane, self.helm, self.workdir = plane, helm, workdir
        self.name = f"chart-{suffix}"
        self.namespace = f"chart-{suffix}"
        self.other_namespace = f"chart-{suffix}-other"
        self.operator_name = f"{self.name}-kafka-failover-operator"

    def helm_run(self, *args: str) -> str:
        return self.helm.run(
            *args, "--namespace", self.namespace, kubeconfig=self.plane.kubeconfig
        ).stdout

    def get(self, *args: str, namespace: str | None = None) -> Any:
        return self.plane.kubectl_json("get", *args, "--namespace", namespace or self.namespace)

    def exists(self, *args: str, namespace: str | None = None) -> bool:
        result = self.plane.kubectl(
            "get", *args, "--namespace", namespace or self.namespace, check=False
        )
        return result.returncode == 0

    def can(self, verb: str, resource: str, namespace: str) -> bool:
        account = f"system:serviceaccount:{self.namespace}:{self.operator_name}"
        result = self.plane.kubectl(
            "auth", "can-i", verb, resource, "--as", account, "--namespace", namespace, check=False
        )
        return result.stdout.strip() == "yes"

    def wait(self, description: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {WAIT_SECONDS:.0f}s waiting for {description}"
                )
            time.sleep(0.25)

    def restricted_namespace(self, name: str) -> None:
        self.plane.kubectl("create", "namespace", name)
        self.plane.kubectl(
            "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted"
        )


@pytest.fixture(scope="module")
def release(
    kube_control_plane: ControlPlane, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    created = Release(kube_control_plane, helm, tmp_path_factory.mktemp("chart-install"))
    for namespace in (created.namespace, created.other_namespace):
        created.restricted_namespace(namespace)
    yield created
    created.helm.run(
        "uninstall", created.name, "--namespace", created.namespace,
        kubeconfig=kube_control_plane.kubeconfig, check=False,
    )  # fmt: skip
    for namespace in (created.namespace, created.other_namespace):
        kube_control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def run_operator(release: Release, *scope: str) -> supervising.Process:
    """The real operator, acting as the chart's ServiceAccount (so only with the chart's RBAC)."""
    kubeconfig = release.plane.service_account_kubeconfig(release.namespace, release.operator_name)
    liveness = f"http://127.0.0.1:{networking.free_ports(1)[0]}/healthz"
    log = release.workdir / f"operator-{uuid.uuid4().hex[:4]}.log"
    return supervising.spawn(
        [sys.executable, "-m", "failover_operator", *scope, "--liveness", liveness],
        log,
        # POD_NAMESPACE as the chart's Deployment sets it: where the leader-election Lease lives.
        env=dict(os.environ) | {"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": release.namespace},
    )


def kafka_failover(name: str, namespace: str) -> str:
    document = {
        "apiVersion": "kafka-failover.github.io/v1alpha1",
        "kind": "KafkaFailover",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "active": "main",
            "clusters": [
                {"name": "main", "bootstrapServers": "kafka-main:9092"},
                {"name": "failover", "bootstrapServers": "kafka-failover:9092", "role": "failover"},
            ],
            "gateway": {"replicas": 1},
        },
    }
    return json.dumps(document)


def test_install_creates_the_crd_the_operator_its_account_and_exact_role(
    release: Release,
) -> None:
    output = release.helm_run(
        "install", release.name, str(CHART), "--values", str(EXAMPLES / "values-prod.yaml"),
        *NO_MONITORING,
    )  # fmt: skip
    assert "kubectl get kfo --namespace" in output
    crd = release.plane.kubectl_json("get", "crd", CRD_NAME)
    assert crd["spec"]["group"] == "kafka-failover.github.io"
    deployment = release.get("deployment", release.operator_name)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert release.exists("serviceaccount", release.operator_name)
    assert release.get("role", release.operator_name)["rules"] == rbac.RULES
    binding = release.get("rolebinding", release.operator_name)
    assert binding["subjects"][0]["name"] == release.operator_name
    kfo = release.get("kafkafailover", "prod")
    assert kfo["spec"]["active"] == "main" and kfo["spec"]["gateway"]["replicas"] == 3


def test_the_operator_pod_is_admitted_under_the_restricted_pod_security_standard(
    release: Release,
) -> None:
    def operator_pods() -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={release.name}"
        pods: list[dict[str, Any]] = release.get("pods", "-l", selector)["items"]
        return pods

    release.wait("the operator Pod (no kubelet: it stays Pending)", lambda: bool(operator_pods()))
    replica_sets = release.get("replicasets", "-l", f"app.kubernetes.io/instance={release.name}")
    for replica_set in replica_sets["items"]:
        failures = [
            c for c in replica_set["status"].get("conditions", []) if c["type"] == "ReplicaFailure"
        ]
        assert not failures, failures


def test_the_service_account_may_do_the_operators_work_and_nothing_more(release: Release) -> None:
    here, other = release.namespace, release.other_namespace
    assert release.can("watch", "kafkafailovers.kafka-failover.github.io", here)
    assert release.can("patch", "kafkafailovers.kafka-failover.github.io/status", here)
    assert release.can("create", "deployments.apps", here)
    assert release.can("delete", "pods", here)
    assert release.can("watch", "secrets", here)  # a rotated Secret rolls the gateway pods
    assert not release.can("delete", "secrets", here)
    assert not release.can("delete", "deployments.apps", here)
    assert not release.can("create", "roles.rbac.authorization.k8s.io", here)
    assert not release.can("watch", "kafkafailovers.kafka-failover.github.io", other)
    assert release.can("update", "leases.coordination.k8s.io/kafka-failover-operator", here)
    assert not release.can("update", "leases.coordination.k8s.io/kube-scheduler", here)


def test_the_operator_reconciles_with_the_charts_namespaced_rbac(release: Release) -> None:
    operator = run_operator(release, "--namespace", release.namespace)
    try:
        release.wait(
            "the operator to create prod's gateway Deployment",
            lambda: release.exists("deployment", "prod-gateway"),
        )
        release.wait(
            "prod's status from the operator",
            lambda: bool(release.get("kafkafailover", "prod").get("status")),
        )
    finally:
        supervising.terminate(operator, OPERATOR_STOP_SECONDS)


def test_upgrade_flips_active_from_values_and_moves_to_all_namespaces(release: Release) -> None:
    generation = release.get("kafkafailover", "prod")["metadata"]["generation"]
    release.helm_run(
        "upgrade", release.name, str(CHART),
        "--values", str(EXAMPLES / "values-prod.yaml"),
        "--values", str(EXAMPLES / "values-failover.yaml"),
        "--values", str(EXAMPLES / "values-all-namespaces.yaml"),
        *NO_MONITORING, "--set", "verbose=true",
    )  # fmt: skip
    kfo = release.get("kafkafailover", "prod")
    assert kfo["spec"]["active"] == "failover"
    assert kfo["metadata"]["generation"] == generation + 1
    assert not release.exists("role", release.operator_name)
    cluster_role = release.plane.kubectl_json("get", "clusterrole", release.operator_name)
    assert cluster_role["rules"] == rbac.RULES
    args = release.get("deployment", release.operator_name)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert args[0] == "--all-namespaces" and "--verbose" in args
    assert release.can("watch", "kafkafailovers.kafka-failover.github.io", release.other_namespace)


def test_the_operator_reconciles_other_namespaces_with_the_cluster_role(release: Release) -> None:
    other = release.other_namespace
    release.plane.apply(kafka_failover("team", other))
    operator = run_operator(release, "--all-namespaces")
    try:
        release.wait(
            "the operator to create team's gateway Deployment in another namespace",
            lambda: release.exists("deployment", "team-gateway", namespace=other),
        )
    finally:
        supervising.terminate(operator, OPERATOR_STOP_SECONDS)


def test_uninstall_removes_the_operator_but_keeps_the_crd_and_kafka_failovers(
    release: Release,
) -> None:
    release.helm_run("uninstall", release.name)
    release.wait(
        "the operator Deployment to go",
        lambda: not release.exists("deployment", release.operator_name),
    )
    assert not release.exists("serviceaccount", release.operator_name)
    assert release.plane.kubectl(
        "get", "clusterrole", release.operator_name, check=False
    ).returncode
    assert release.plane.kubectl("get", "crd", CRD_NAME, check=False).returncode == 0
    assert release.get("kafkafailover", "prod")["spec"]["active"] == "failover"
