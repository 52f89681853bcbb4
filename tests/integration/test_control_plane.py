"""The Kubernetes testbed runs a real control plane: API server, CEL validation, controllers, RBAC.

The operator's tests rely on these behaviours of the real kube-apiserver and
kube-controller-manager, so each is shown here once, directly, before anything builds on it.
"""

import itertools
import json
import socket
from collections.abc import Iterator

import pytest

from kafka_testbed import supervising
from kube_testbed import building, control_plane
from kube_testbed.control_plane import ControlPlane
from kube_testbed.errors import KubectlError

pytestmark = pytest.mark.kube

_names = itertools.count()

CRD_GROUP = "testbed.kafka-failover.io"
CEL_MESSAGE = "minReplicas must not exceed maxReplicas"
CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ranges.{CRD_GROUP}
spec:
  group: {CRD_GROUP}
  scope: Namespaced
  names: {{kind: Range, plural: ranges, singular: range, listKind: RangeList}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-validations:
                - rule: "self.minReplicas <= self.maxReplicas"
                  message: "{CEL_MESSAGE}"
              properties:
                minReplicas: {{type: integer}}
                maxReplicas: {{type: integer}}
"""


def range_object(name: str, namespace: str, low: int, high: int) -> str:
    return json.dumps(
        {
            "apiVersion": f"{CRD_GROUP}/v1",
            "kind": "Range",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"minReplicas": low, "maxReplicas": high},
        }
    )


@pytest.fixture
def namespace(kube_control_plane: ControlPlane) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards (without waiting)."""
    name = f"test-{next(_names)}"
    kube_control_plane.kubectl("create", "namespace", name)
    yield name
    kube_control_plane.kubectl("delete", "namespace", name, "--wait=false")


def test_the_api_server_starts_and_answers_readyz(kube_control_plane: ControlPlane) -> None:
    assert kube_control_plane.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    version = kube_control_plane.kubectl_json("version")["serverVersion"]
    assert version["gitVersion"] == building.kubernetes_version()
    assert kube_control_plane.server.startswith("https://127.0.0.1:")


def test_a_crd_cel_rule_rejects_a_bad_object_with_the_rules_message(
    kube_control_plane: ControlPlane, namespace: str
) -> None:
    kube_control_plane.apply(CRD)
    kube_control_plane.kubectl(
        "wait", "--for=condition=Established", f"crd/ranges.{CRD_GROUP}", "--timeout=30s"
    )

    kube_control_plane.apply(range_object("good", namespace, 1, 3))
    with pytest.raises(KubectlError) as rejected:
        kube_control_plane.apply(range_object("bad", namespace, 5, 2))

    assert CEL_MESSAGE in str(rejected.value)
    names = kube_control_plane.kubectl("get", "ranges", "-n", namespace, "-o", "name").stdout
    assert names.split() == [f"range.{CRD_GROUP}/good"]


def test_a_deployment_gets_a_replicaset_and_pending_pods(
    kube_control_plane: ControlPlane, namespace: str
) -> None:
    kube_control_plane.kubectl(
        "create", "deployment", "web", "-n", namespace, "--image=example.invalid/web:1",
        "--replicas=2",
    )  # fmt: skip

    def pods() -> list[dict[str, object]]:
        found = kube_control_plane.kubectl_json("get", "pods", "-n", namespace, "-l", "app=web")
        items: list[dict[str, object]] = found["items"]
        return items

    kube_control_plane.wait_for(lambda: len(pods()) == 2, 60, "2 pods of deployment web")
    replica_sets = kube_control_plane.kubectl_json("get", "replicasets", "-n", namespace)["items"]
    assert len(replica_sets) == 1
    assert replica_sets[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    for pod in pods():
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"  # type: ignore[index]
        assert pod["status"]["phase"] == "Pending"  # type: ignore[index]


def test_a_service_account_may_only_do_what_rbac_grants(
    kube_control_plane: ControlPlane, namespace: str
) -> None:
    kube_control_plane.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    as_reader = kube_control_plane.service_account_kubeconfig(namespace, "reader")

    with pytest.raises(KubectlError, match="forbidden"):
        kube_control_plane.kubectl("get", "configmaps", "-n", namespace, kubeconfig=as_reader)

    kube_control_plane.kubectl(
        "create", "role", "read-configmaps", "-n", namespace, "--verb=get,list",
        "--resource=configmaps",
    )  # fmt: skip
    kube_control_plane.kubectl(
        "create", "rolebinding", "reader-reads", "-n", namespace, "--role=read-configmaps",
        f"--serviceaccount={namespace}:reader",
    )  # fmt: skip
    kube_control_plane.kubectl("get", "configmaps", "-n", namespace, kubeconfig=as_reader)
    with pytest.raises(KubectlError, match="forbidden"):
        kube_control_plane.kubectl("get", "secrets", "-n", namespace, kubeconfig=as_reader)


def test_stop_leaves_no_process_no_port_and_no_folder() -> None:
    plane = control_plane.start(build_if_missing=False)
    pids = plane.pids()
    ports = [int(plane.server.rsplit(":", 1)[1]), int(plane.etcd_url.rsplit(":", 1)[1])]
    assert len(pids) == 3

    plane.stop()

    assert [pid for pid in pids if supervising.is_running(pid)] == []
    assert [port for port in ports if _accepts_connections(port)] == []
    assert not plane.workdir.exists()


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
