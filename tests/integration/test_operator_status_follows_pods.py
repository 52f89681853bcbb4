"""Status follows the gateway pods themselves, not a timer.

The operator here runs with a drift check once an hour, so whatever status shows about pods
started, fenced, replaced or deleted comes from its watch of the gateway Pods: a new pod counted
once ready, a fenced pod gone from the counts (its switch record keeps it), a replacement counted
again, the pods gone after a scale-down dropped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from test_operator import OperatorLab, all_switched, failover_manifest, patch_active

from kafka_testbed.clusters import Cluster
from kube_testbed.control_plane import ControlPlane

NO_DRIFT_CHECK = "3600"


@pytest.fixture(scope="module")
def lab(
    kube_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorLab]:
    namespace = f"kfs-{uuid.uuid4().hex[:6]}"
    started = OperatorLab(
        kube_control_plane,
        namespace,
        tmp_path_factory.mktemp(namespace),
        drift_interval=NO_DRIFT_CHECK,
    )
    started.start()
    yield started
    started.stop()


def ready_pods(lab: OperatorLab, name: str) -> set[str]:
    listed = json.loads(lab.kubectl("get", "pods", "-o", "json"))
    return {
        item["metadata"]["name"]
        for item in listed["items"]
        if item["metadata"]["name"].startswith(f"{name}-")
        and not item["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions") or []
        )
    }


def test_pods_that_become_ready_after_the_object_was_created_are_counted_at_once(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    """At creation no pod exists yet; only the pod watch can bring status to 2/2."""
    lab.apply(failover_manifest("watch", kafka_single, kafka_failover, replicas=2))
    lab.wait("2/2 pods on main", lambda: all_switched(lab, "watch", "main", 2), timeout=120)


def test_after_a_fence_status_tells_the_truth_about_the_pods_left_and_then_the_replacement(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    lab.apply(failover_manifest("fenced", kafka_single, kafka_failover, replicas=2))
    lab.wait("2/2 pods on main", lambda: all_switched(lab, "fenced", "main", 2), timeout=120)
    frozen = sorted(n for n in lab.kubelet.running() if n.startswith("fenced-"))[0]
    lab.kubelet.freeze(frozen)
    patch_active(lab, "fenced", "failover")

    def true_of_the_pods_left() -> bool:
        ready = ready_pods(lab, "fenced")
        return frozen not in ready and all_switched(lab, "fenced", "failover", len(ready))

    lab.wait("status true of the pods left after the fence", true_of_the_pods_left, timeout=60)
    status = lab.status("fenced")
    assert frozen not in json.dumps(status["gateways"]), "a fenced pod is not a live pod"
    assert frozen in json.dumps(status["lastSwitch"]["failedPods"])
    lab.wait(
        "the replacement pod counted",
        lambda: all_switched(lab, "fenced", "failover", 2),
        timeout=120,
    )


def test_scaling_down_leaves_status_counting_only_the_pods_that_remain(
    lab: OperatorLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    """The spec change's own reconciliation still sees both pods; only the pod watch can tell
    that one of them went."""
    lab.apply(failover_manifest("scaled", kafka_single, kafka_failover, replicas=2))
    lab.wait("2/2 pods on main", lambda: all_switched(lab, "scaled", "main", 2), timeout=120)
    lab.kubectl(
        "patch", "kafkafailover", "scaled", "--type", "merge",
        "-p", json.dumps({"spec": {"gateway": {"replicas": 1}}}),
    )  # fmt: skip
    lab.wait(
        "status counting the one pod left",
        lambda: len(ready_pods(lab, "scaled")) == 1 and all_switched(lab, "scaled", "main", 1),
        timeout=120,
    )
