"""The operator for real: kube-apiserver, kube-controller-manager, the operator, gateway pods.

The kubelet stand-in turns every gateway Pod the Deployment creates into a real gateway process on
its own loopback address, so ``kubectl patch ... active=failover`` goes all the way: the operator
calls every pod's admin API, status and Events tell the story, records land on failover.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover_operator import manifests, rbac
from kafka_testbed import admin, networking, supervising, workloads
from kafka_testbed.clusters import Cluster
from kube_testbed.control_plane import ControlPlane
from kube_testbed.gateway_kubelet import FIRST_POD_OCTET, GatewayKubelet

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "kafkafailover.yaml"
WAIT_SECONDS = 150.0
DRIFT_INTERVAL = "2"


class OperatorLab:
    """One namespace with the CRD, a kubelet stand-in and a running operator."""

    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        workdir: Path,
        *,
        drift_interval: str = DRIFT_INTERVAL,
    ) -> None:
        self.plane = plane
        self.drift_interval = drift_interval
        self.namespace = namespace
        self.workdir = workdir
        self.kubelet = GatewayKubelet(plane.kubeconfig, namespace, workdir / "pods")
        self.operator: supervising.Process | None = None

    def start(self) -> OperatorLab:
        self.plane.kubectl("apply", "-f", str(CRD))
        self.plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/kafkafailovers.kafka-failover.github.io",
        )
        self.plane.kubectl("create", "namespace", self.namespace)
        self.kubelet.start()
        self.kubeconfig = self._least_privilege_kubeconfig()
        self.start_operator()
        return self

    def start_operator(self) -> None:
        """Run the operator process (again, after :meth:`stop_operator`)."""
        self.liveness = f"http://127.0.0.1:{networking.free_ports(1)[0]}/healthz"
        env = dict(os.environ) | {
            "KUBECONFIG": str(self.kubeconfig),
            "KAFKA_FAILOVER_DRIFT_INTERVAL": self.drift_interval,
        }
        self.operator = supervising.spawn(
            [
                sys.executable,
                "-m",
                "failover_operator",
                "--namespace",
                self.namespace,
                "--liveness",
                self.liveness,
            ],
            self.workdir / "operator.log",
            env=env,
        )

    def stop_operator(self) -> None:
        if self.operator is not None:
            supervising.terminate(self.operator, grace_seconds=10)
            self.operator = None

    def _least_privilege_kubeconfig(self) -> Path:
        """The operator runs as a service account bound to exactly ``rbac.RULES``."""
        account = "kafka-failover-operator"
        self.plane.kubectl("create", "serviceaccount", account, "--namespace", self.namespace)
        for item in (
            rbac.role(account, self.namespace),
            rbac.role_binding(account, self.namespace, account),
        ):
            self.plane.apply(json.dumps(item))
        return self.plane.service_account_kubeconfig(self.namespace, account)

    def stop(self) -> None:
        if self.operator is not None:
            supervising.terminate(self.operator, grace_seconds=10)
        self.kubelet.stop()

    def kubectl(self, *args: str) -> str:
        return self.plane.kubectl(*args, "--namespace", self.namespace).stdout

    def apply(self, manifest: str) -> None:
        self.plane.kubectl("apply", "--namespace", self.namespace, "-f", "-", stdin=manifest)

    def admin_auth(self, name: str) -> str:
        secret = json.loads(self.kubectl("get", "secret", f"{name}-gateway-admin", "-o", "json"))
        user = base64.b64decode(secret["data"]["username"]).decode()
        password = base64.b64decode(secret["data"]["password"]).decode()
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def get(self, name: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "kafkafailover", name, "-o", "json"))

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def wait(self, description: str, check: Any, timeout: float = WAIT_SECONDS) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.25)
        raise AssertionError(
            f"timed out waiting for {description}; operator log:\n"
            f"{self.operator_log()[-4000:]}\nkubelet errors: "
            f"{self.kubelet.errors[-5:]}"
        )

    def operator_log(self) -> str:
        path = self.workdir / "operator.log"
        return path.read_text() if path.exists() else ""

    def events(self, name: str) -> list[str]:
        listed = json.loads(
            self.kubectl(
                "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
            )
        )
        return [item["reason"] for item in listed["items"]]


@pytest.fixture(scope="module")
def lab(
    kube_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorLab]:
    namespace = f"kfo-{uuid.uuid4().hex[:6]}"
    started = OperatorLab(kube_control_plane, namespace, tmp_path_factory.mktemp(namespace))
    started.start()
    yield started
    started.stop()


def failover_manifest(
    name: str,
    main: Cluster,
    failover: Cluster,
    *,
    replicas: int = 3,
    active: str = "main",
    extra_cluster: dict[str, Any] | None = None,
) -> str:
    document = {
        "apiVersion": "kafka-failover.github.io/v1alpha1",
        "kind": "KafkaFailover",
        "metadata": {"name": name},
        "spec": {
            "active": active,
            "clusters": [
                {"name": "main", "bootstrapServers": main.bootstrap, **(extra_cluster or {})},
                {"name": "failover", "bootstrapServers": failover.bootstrap, "role": "failover"},
            ],
            "gateway": {
                "replicas": replicas,
                "listener": {"advertisedHost": f"127.0.0.{FIRST_POD_OCTET}", "brokerPortCount": 8},
            },
            "switch": {"podTimeoutSeconds": 3},
        },
    }
    return yaml.safe_dump(document)


def all_switched(lab: OperatorLab, name: str, cluster: str, pods: int) -> bool:
    status = lab.status(name)
    ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
    return (
        status.get("activeCluster") == cluster
        and status.get("gateways", {}).get("summary") == f"{pods}/{pods}"
        and bool(ready)
        and ready[0]["status"] == "True"
    )


def patch_active(lab: OperatorLab, name: str, cluster: str) -> None:
    lab.kubectl(
        "patch",
        "kafkafailover",
        name,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"active": cluster}}),
    )


def test_patching_spec_active_switches_every_gateway_pod_without_restarting_it(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    lab.apply(failover_manifest("prod", kafka_single, kafka_failover))
    lab.wait("3 gateway pods on main", lambda: all_switched(lab, "prod", "main", 3))
    pods_before = {name: pod.uid for name, pod in lab.kubelet.running().items()}
    first_pod = min(lab.kubelet.running().values(), key=lambda pod: pod.ip)
    topic = f"operator-{uuid.uuid4().hex[:6]}"
    for cluster in (kafka_single, kafka_failover):
        admin.create_topic(cluster.bootstrap, topic, partitions=1)
    client = workloads.ConfluentProducer(f"{first_pod.ip}:6969", {"enable.idempotence": True})
    producer = workloads.SequencedProducer(client, topic, rate=50).start()
    try:
        assert producer.wait_acked(20, timeout=60), "nothing acknowledged through the pod in 60 s"
        patch_active(lab, "prod", "failover")
        lab.wait("3 gateway pods on failover", lambda: all_switched(lab, "prod", "failover", 3))
        switched_with = len(producer.log.snapshot()[1])
        assert producer.wait_acked(switched_with + 50, timeout=60), "no acks after the switch"
    finally:
        producer.stop(flush_timeout=30)
    status = lab.status("prod")
    assert status["lastSwitch"]["to"] == "failover" and status["lastSwitch"]["podsFailed"] == 0
    assert status["observedGeneration"] == lab.get("prod")["metadata"]["generation"]
    assert {n: p.uid for n, p in lab.kubelet.running().items()} == pods_before, "no pod rolled"
    assert lab.wait("switch events", lambda: _switch_events(lab, "prod"))
    _, acked, _ = producer.log.snapshot()
    tails = [
        workloads.ClusterTail(kafka_single.bootstrap, topic, 1, cluster="main").start(),
        workloads.ClusterTail(kafka_failover.bootstrap, topic, 1, cluster="failover").start(),
    ]
    try:
        missing = workloads.wait_until_landed(tails, acked, timeout=90)
        where = workloads.landed(tails)
    finally:
        for tail in tails:
            tail.stop()
    assert not missing, f"acknowledged but on neither cluster: {sorted(missing)[:10]}"
    last = max(acked)
    assert "failover" in where[last], f"the last acknowledged record is on {where[last]}"


def _switch_events(lab: OperatorLab, name: str) -> list[str] | None:
    """A pod may switch itself first (its mounted ``active`` file changed with the ConfigMap), so
    it needs no PodSwitched; status already said that every pod serves the new cluster."""
    events = lab.events(name)
    wanted = {"SwitchStarted", "SwitchCompleted", "PodSwitched"}
    return events if wanted <= set(events) else None


def test_a_frozen_gateway_pod_is_fenced_and_status_says_so(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    lab.apply(failover_manifest("fence", kafka_single, kafka_failover, replicas=2))
    lab.wait("2 pods on main", lambda: all_switched(lab, "fence", "main", 2))
    mine = sorted(n for n in lab.kubelet.running() if n.startswith("fence-"))
    frozen = mine[0]
    lab.kubelet.freeze(frozen)
    patch_active(lab, "fence", "failover")
    fenced = lab.wait("the frozen pod fenced", lambda: "PodFenced" in lab.events("fence"))
    assert fenced
    status = lab.wait("status naming the fenced pod", lambda: _fenced_in_status(lab, frozen))
    assert "fenced" in status
    lab.wait("the frozen pod deleted", lambda: frozen not in _pod_names(lab))
    lab.wait(
        "a replacement pod on failover",
        lambda: all_switched(lab, "fence", "failover", 2),
        timeout=120,
    )


def _fenced_in_status(lab: OperatorLab, pod: str) -> str | None:
    """The switch record keeps which pods failed and why (the live list moves on)."""
    last = lab.status("fence").get("lastSwitch") or {}
    text = json.dumps(last.get("failedPods", []))
    return text if pod in text and last.get("podsFailed") == 1 else None


def _pod_names(lab: OperatorLab) -> set[str]:
    listed = json.loads(lab.kubectl("get", "pods", "-o", "json"))
    return {item["metadata"]["name"] for item in listed["items"]}


def test_the_api_server_refuses_an_active_cluster_that_is_not_declared(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    manifest = failover_manifest("bad", kafka_single, kafka_failover, active="third")
    result = lab.plane.kubectl(
        "apply", "--namespace", lab.namespace, "-f", "-", stdin=manifest, check=False
    )
    assert result.returncode != 0
    assert "spec.active must name one of spec.clusters[].name" in result.stderr


def test_a_missing_secret_degrades_the_object_with_a_reason_naming_it(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    lab.apply(
        failover_manifest(
            "nosecret",
            kafka_single,
            kafka_failover,
            replicas=1,
            extra_cluster={
                "securityProtocol": "SASL_PLAINTEXT",
                "saslMechanism": "PLAIN",
                "credentialsSecret": {"name": "main-credentials"},
            },
        )
    )
    degraded = lab.wait("Degraded condition", lambda: _condition(lab, "nosecret", "Degraded"))
    assert degraded["status"] == "True" and degraded["reason"] == "SecretMissing"
    assert "main-credentials" in degraded["message"]


def _condition(lab: OperatorLab, name: str, kind: str) -> dict[str, Any] | None:
    for condition in lab.status(name).get("conditions", []):
        if condition["type"] == kind and condition["status"] == "True":
            return dict(condition)
    return None


def test_a_pod_moved_behind_the_operators_back_is_switched_back_by_the_drift_check(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    lab.apply(failover_manifest("drift", kafka_single, kafka_failover, replicas=1))
    lab.wait("1 pod on main", lambda: all_switched(lab, "drift", "main", 1))
    [pod] = [p for n, p in lab.kubelet.running().items() if n.startswith("drift-")]
    _put_active(pod.admin_url, lab, "drift", "failover")
    lab.wait("DriftCorrected event", lambda: "DriftCorrected" in lab.events("drift"))
    lab.wait("the pod back on main", lambda: _pod_active(pod.admin_url, lab, "drift") == "main")


def _put_active(admin_url: str, lab: OperatorLab, name: str, cluster: str) -> None:
    """Move one pod by hand, as an operator on call might with the runbook call."""
    request = urllib.request.Request(
        f"{admin_url}/admin/pclusters/v1/pcluster/main/switch?to={cluster}",
        method="POST",
        headers={"Authorization": lab.admin_auth(name)},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def _pod_active(admin_url: str, lab: OperatorLab, name: str) -> str:
    request = urllib.request.Request(
        f"{admin_url}/api/v1/state", headers={"Authorization": lab.admin_auth(name)}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["active"])


def test_the_operator_serves_a_liveness_endpoint(lab: OperatorLab) -> None:
    with urllib.request.urlopen(lab.liveness, timeout=10) as answer:
        assert answer.status == 200


IDEMPOTENT_FAMILIES = {
    "confluent-kafka": {"enable.idempotence": True},
    "kafka-python": {"enable_idempotence": True, "acks": "all"},
    "aiokafka": {"enable_idempotence": True, "acks": "all"},
}


def test_idempotent_producers_spread_over_the_pods_survive_kubectl_switches_back_and_forth(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    lab.apply(failover_manifest("spread", kafka_single, kafka_failover))
    lab.wait("3 pods of spread on main", lambda: all_switched(lab, "spread", "main", 3))
    pods = sorted(
        (pod for name, pod in lab.kubelet.running().items() if name.startswith("spread-")),
        key=lambda pod: pod.ip,
    )
    topic = f"spread-{uuid.uuid4().hex[:6]}"
    for cluster in (kafka_single, kafka_failover):
        admin.create_topic(cluster.bootstrap, topic, partitions=3)
    producers = []
    for index, (family, settings) in enumerate(IDEMPOTENT_FAMILIES.items()):
        client = workloads.PRODUCER_CLIENTS[family](f"{pods[index].ip}:6969", settings)
        first_seq = 1_000_000 * index
        producers.append(
            workloads.SequencedProducer(client, topic, rate=100, first_seq=first_seq).start()
        )
    try:
        target = "failover"
        for _ in range(6):  # main -> failover -> main -> ... through the operator each time
            time.sleep(1.5)
            patch_active(lab, "spread", target)
            lab.wait(f"spread on {target}", lambda t=target: all_switched(lab, "spread", t, 3))
            target = "main" if target == "failover" else "failover"
        time.sleep(1.5)
    finally:
        for producer in producers:
            producer.stop(flush_timeout=30)
    acked: set[int] = set()
    for producer in producers:
        sent, acknowledged, errors = producer.log.snapshot()
        assert not errors, f"{producer.client.name}: {list(errors.items())[:5]}"
        assert len(acknowledged) == len(sent) > 0
        acked |= set(acknowledged)
    tails = [
        workloads.ClusterTail(kafka_single.bootstrap, topic, 3, cluster="main").start(),
        workloads.ClusterTail(kafka_failover.bootstrap, topic, 3, cluster="failover").start(),
    ]
    try:
        missing = workloads.wait_until_landed(tails, acked, timeout=90)
    finally:
        for tail in tails:
            tail.stop()
    assert not missing, f"acknowledged but on neither cluster: {sorted(missing)[:10]}"


def test_gateway_pods_run_as_containers_of_the_product_image_as_their_spec_says(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    engine = lab.kubelet.mode.engine
    if engine is None:
        pytest.skip("no container engine here: the kubelet stand-in runs pods as processes")
    lab.apply(failover_manifest("imaged", kafka_single, kafka_failover, replicas=1))
    lab.wait("1 gateway pod on main", lambda: all_switched(lab, "imaged", "main", 1))
    pods = [pod for name, pod in lab.kubelet.running().items() if name.startswith("imaged-")]
    assert pods and all(pod.container for pod in pods)
    for pod in pods:
        assert pod.container is not None
        inspected = json.loads(engine.run("inspect", pod.container).stdout)[0]
        assert inspected["ImageName"] == "ghcr.io/kafka-failover/gateway:0.1.0"
        assert inspected["Config"]["User"] == "10001:10001"
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
        mounts = {mount["Destination"]: mount for mount in inspected["Mounts"]}
        assert mounts[manifests.CONFIG_DIR]["RW"] is False
        assert inspected["State"]["Running"]
    lab.kubectl("delete", "kafkafailover", "imaged", "--wait=true")
