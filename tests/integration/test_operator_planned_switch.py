"""The operator's planned switch for real: gateway pods, two Kafka clusters, MirrorMaker 2.

``kubectl patch ... active=failover`` on an object that declares its replication fences every
pod, lets one of them wait for MirrorMaker and hand the consumer offsets over, then switches them
all: nothing acknowledged is lost or written twice, the group reads nothing again, status says so.
When replication is stalled or a pod cannot be fenced, nothing switches and status says why.
"""

from __future__ import annotations

import collections
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from test_operator import OperatorLab, all_switched, failover_manifest, patch_active

from kafka_testbed import admin, mirroring, workloads
from kafka_testbed.clusters import Cluster
from kube_testbed.control_plane import ControlPlane
from kube_testbed.gateway_kubelet import RunningPod

PARTITIONS = 2
RATE = 100.0


@pytest.fixture(scope="module")
def lab(
    kube_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorLab]:
    namespace = f"kfo-planned-{uuid.uuid4().hex[:6]}"
    # No drift check: it would fence a frozen pod on its own before the switch gets to it.
    started = OperatorLab(
        kube_control_plane, namespace, tmp_path_factory.mktemp(namespace), drift_interval="3600"
    )
    started.start()
    yield started
    started.stop()


def planned_manifest(
    name: str, main: Cluster, failover: Cluster, *, catch_up_seconds: int = 20
) -> str:
    document = yaml.safe_load(failover_manifest(name, main, failover, replicas=2))
    # Each pod advertises its own address (the kubelet's default): a client stays on its pod.
    del document["spec"]["gateway"]["listener"]["advertisedHost"]
    document["spec"]["switch"] = {
        "podTimeoutSeconds": 5,
        "replication": "mirrorMaker2",
        "topics": "planned-.*",  # what the shared MirrorMaker copies
        "consumerDrainSeconds": 5,
        "maxCatchUpSeconds": catch_up_seconds,
    }
    return yaml.safe_dump(document)


def pods_of(lab: OperatorLab, name: str) -> list[RunningPod]:
    return sorted(
        (p for n, p in lab.kubelet.running().items() if n.startswith(f"{name}-")),
        key=lambda pod: pod.ip,
    )


def pod_state(lab: OperatorLab, name: str, pod: RunningPod) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{pod.admin_url}/api/v1/state", headers={"Authorization": lab.admin_auth(name)}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        state: dict[str, Any] = json.loads(answer.read())
        return state


def topic_on_both(main: Cluster, failover: Cluster) -> str:
    topic = f"planned-{uuid.uuid4().hex[:8]}"
    # failover first: MirrorMaker creates a topic it sees on main on failover by itself
    for cluster in (failover, main):
        admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
    return topic


def condition(lab: OperatorLab, name: str, kind: str) -> dict[str, Any]:
    found = [c for c in lab.status(name).get("conditions", []) if c["type"] == kind]
    return found[0] if found else {}


def phase(lab: OperatorLab, name: str) -> str | None:
    return (lab.status(name).get("switchover") or {}).get("phase")


def test_a_planned_switch_of_every_pod_loses_duplicates_and_rereads_nothing(
    lab: OperatorLab,
    kafka_single: Cluster,
    kafka_failover: Cluster,
    mirror_maker: mirroring.MirrorMaker,
) -> None:
    lab.apply(planned_manifest("planned", kafka_single, kafka_failover))
    lab.wait("2 pods on main", lambda: all_switched(lab, "planned", "main", 2))
    first, second = pods_of(lab, "planned")
    topic = topic_on_both(kafka_single, kafka_failover)
    group = f"planned-{uuid.uuid4().hex[:6]}"
    client = workloads.ConfluentProducer(f"{first.ip}:6969", {"enable.idempotence": True})
    producer = workloads.SequencedProducer(client, topic, rate=RATE).start()
    consumer = workloads.GroupConsumer(
        f"{second.ip}:6969", topic, group, {"auto.commit.interval.ms": 200}
    ).start()
    tail = workloads.ClusterTail(kafka_failover.bootstrap, topic, PARTITIONS, cluster="failover")
    main_tail = workloads.ClusterTail(kafka_single.bootstrap, topic, PARTITIONS, cluster="main")
    tail.start()
    main_tail.start()
    try:
        assert producer.wait_acked(200, timeout=60), "nothing acknowledged before the switch"
        lab.wait("MirrorMaker copying the topic", lambda: bool(tail.sequences()), timeout=90)
        patch_active(lab, "planned", "failover")
        lab.wait("2 pods on failover", lambda: all_switched(lab, "planned", "failover", 2))
        time.sleep(3.0)
        producer.stop(flush_timeout=30)
        _, acked, _ = producer.log.snapshot()
        missing = workloads.wait_until_landed([tail], acked, timeout=60)
        time.sleep(2.0)  # the consumer reads the last records from failover
        received = [r.seq for r in consumer.received()]
    finally:
        consumer.stop()
        tail.stop()
        main_tail.stop()
    status = lab.status("planned")
    last = status["lastSwitch"]
    assert last["mode"] == "planned" and last["rpoRecords"] == 0 and last["podsFailed"] == 0, last
    assert last["groupsHandedOff"] >= 1 and last["fenceMs"] > 0, last
    assert [p["phase"] for p in last["phases"]][:1] == ["Fencing"], last
    assert {"CatchingUp", "HandingOffOffsets"} <= {p["phase"] for p in last["phases"]}, last
    assert status["switchover"]["phase"] == "Switched", status["switchover"]
    fence = status["switchover"]["fence"]
    assert {f["pod"] for f in fence} == {first.name, second.name}, fence
    assert all(f["acknowledged"] for f in fence), fence
    events = set(lab.events("planned"))
    wanted = {"SwitchoverStarted", "SwitchoverFenced", "SwitchoverPrepared", "SwitchoverCompleted"}
    assert wanted <= events, events
    assert not missing, f"acknowledged but not on failover: {sorted(missing)[:20]}"
    on_failover = collections.Counter(seq for seq, _, _ in tail.placements())
    assert max(on_failover.values()) == 1, "a record is twice on failover"
    reread = {seq for seq, n in collections.Counter(received).items() if n > 1}
    before_switch = main_tail.sequences()
    assert not reread & before_switch, (
        f"the group read {len(reread & before_switch)} records from before the switch again"
    )
    assert not reread, f"{len(reread)} records written after the switch read twice"
    assert set(acked) <= set(received), "the group read every acknowledged record"
    print(f"operator planned switch: {last}")


def test_stalled_replication_aborts_stays_on_main_unfenced_until_a_retry(
    lab: OperatorLab,
    kafka_single: Cluster,
    kafka_failover: Cluster,
    mirror_maker: mirroring.MirrorMaker,
) -> None:
    name = "stalled"
    lab.apply(planned_manifest(name, kafka_single, kafka_failover, catch_up_seconds=2))
    lab.wait("2 pods on main", lambda: all_switched(lab, name, "main", 2))
    pods = pods_of(lab, name)
    topic = topic_on_both(kafka_single, kafka_failover)
    client = workloads.ConfluentProducer(f"{pods[0].ip}:6969", {"enable.idempotence": True})
    producer = workloads.SequencedProducer(client, topic, rate=RATE).start()
    try:
        assert producer.wait_acked(100, timeout=60)
        mirror_maker.stall()
        try:
            patch_active(lab, name, "failover")
            lab.wait("the switch aborted", lambda: phase(lab, name) == "Aborted")
        finally:
            mirror_maker.unstall()
        acked_before = len(producer.log.snapshot()[1])
        assert producer.wait_acked(acked_before + 50, timeout=30), "writes resumed on main"
        time.sleep(3.0)  # nothing may switch them behind the abort
        states = [pod_state(lab, name, pod) for pod in pods]
    finally:
        producer.stop(flush_timeout=30)
    ready = condition(lab, name, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "SwitchoverAborted", ready
    assert "replication did not catch up within 2s" in ready["message"], ready
    assert '"retry":1' in ready["message"], ready
    assert lab.status(name)["activeCluster"] == "main"
    assert [s["active"] for s in states] == ["main", "main"], states
    assert not any(s["writeFence"]["fenced"] for s in states), states
    assert "SwitchoverAborted" in lab.events(name)
    lab.kubectl(
        "patch", "kafkafailover", name, "--type", "merge",
        "-p", json.dumps({"spec": {"switch": {"retry": 1}}}),
    )  # fmt: skip
    lab.wait("the retry switched every pod", lambda: all_switched(lab, name, "failover", 2))
    assert lab.status(name)["lastSwitch"]["mode"] == "planned"


def test_a_pod_that_cannot_be_fenced_aborts_the_switch_and_no_pod_moves(
    lab: OperatorLab,
    kafka_single: Cluster,
    kafka_failover: Cluster,
    mirror_maker: mirroring.MirrorMaker,
) -> None:
    name = "frozen"
    lab.apply(planned_manifest(name, kafka_single, kafka_failover))
    lab.wait("2 pods on main", lambda: all_switched(lab, name, "main", 2))
    frozen, healthy = pods_of(lab, name)
    lab.kubelet.freeze(frozen.name)
    try:
        patch_active(lab, name, "failover")
        lab.wait("the switch aborted", lambda: phase(lab, name) == "Aborted")
        state = pod_state(lab, name, healthy)
    finally:
        lab.kubelet.thaw(frozen.name)
    switchover = lab.status(name)["switchover"]
    reason = switchover["reason"]
    acknowledged = {f["pod"]: f["acknowledged"] for f in switchover["fence"]}
    assert acknowledged == {frozen.name: False, healthy.name: True}, switchover
    assert "did not acknowledge the write fence within 5s" in reason and frozen.name in reason
    assert state["active"] == "main" and not state["writeFence"]["fenced"], state
    assert frozen.name in {p.name for p in pods_of(lab, name)}, "nothing was deleted"
