"""Automatic failover and the failback guard for real: an API server, gateway pods, and a main
cluster of this module's own that the tests kill (the shared clusters are never broken).

One pod cut off from main (its config points main at a black hole: a socket that never answers)
never switches anything; main killed switches every pod once, by a patch of ``spec.active`` the
operator makes under its own field manager; going back is refused until the data loss is
accepted; a dry run reports once and switches nothing; a decision recorded by an operator that
died before acting is completed once by the next one.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from test_operator import OperatorLab, all_switched, failover_manifest, patch_active
from test_operator_planned_switch import pod_state, pods_of

from kafka_testbed import admin, launching, mirroring, workloads
from kafka_testbed.clusters import Cluster
from kube_testbed.control_plane import ControlPlane

MAIN_NODE = 4
PARTITIONS = 2
UNREACHABLE_SECONDS = 5
PROBE_INTERVAL_SECONDS = 1
DETECTION_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def doomed_main() -> Iterator[Cluster]:
    """A main cluster these tests may kill and restart."""
    cluster = launching.start_kafka(node_ids=[MAIN_NODE], name="doomed-main")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def black_hole() -> Iterator[str]:
    """An address that accepts connections and never answers (a hung peer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture(scope="module")
def lab(
    kube_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorLab]:
    namespace = f"kfo-auto-{uuid.uuid4().hex[:6]}"
    started = OperatorLab(kube_control_plane, namespace, tmp_path_factory.mktemp(namespace))
    started.start()
    yield started
    started.stop()


def automatic_manifest(
    name: str, main: Cluster, failover: Cluster, *, replicas: int = 3, **settings: Any
) -> str:
    document = yaml.safe_load(failover_manifest(name, main, failover, replicas=replicas))
    del document["spec"]["gateway"]["listener"]["advertisedHost"]
    document["spec"]["automaticFailover"] = {
        "enabled": True,
        "unreachableSeconds": UNREACHABLE_SECONDS,
        "probeIntervalSeconds": PROBE_INTERVAL_SECONDS,
        **settings,
    }
    return yaml.safe_dump(document)


def alive(cluster: Cluster) -> None:
    if not cluster.unreachable_nodes():
        return
    cluster.restart(MAIN_NODE)


def section(lab: OperatorLab, name: str) -> dict[str, Any]:
    return dict(lab.status(name).get("automaticFailover") or {})


def active(lab: OperatorLab, name: str) -> str:
    return str(lab.get(name)["spec"]["active"])


def reason_of(lab: OperatorLab, name: str, kind: str) -> str | None:
    found = [c for c in lab.status(name).get("conditions", []) if c["type"] == kind]
    return found[0]["reason"] if found else None


def merge_patch(lab: OperatorLab, name: str, patch: dict[str, Any]) -> None:
    lab.kubectl("patch", "kafkafailover", name, "--type", "merge", "-p", json.dumps(patch))


def test_a_majority_switches_once_a_cut_off_pod_never_and_failback_is_guarded(
    lab: OperatorLab, doomed_main: Cluster, kafka_failover: Cluster, black_hole: str
) -> None:
    alive(doomed_main)
    cut_off: list[str] = []

    def isolate_first_pod(pod: str, config: str) -> str:
        if not cut_off:
            cut_off.append(pod)
        return config.replace(doomed_main.bootstrap, black_hole) if pod in cut_off else config

    lab.kubelet.config_rewrite = isolate_first_pod
    lab.apply(automatic_manifest("auto", doomed_main, kafka_failover))
    lab.wait("3 pods on main", lambda: all_switched(lab, "auto", "main", 3))
    # The cut-off pod judges main down; the two others do not: no switch, and status says who.
    lab.wait(
        "the cut-off pod judging main down for long enough",
        lambda: section(lab, "auto").get("evaluation", {}).get("agreeing") == cut_off,
        timeout=DETECTION_TIMEOUT,
    )
    time.sleep(4.0)  # more looks of the operator
    evaluation = section(lab, "auto")["evaluation"]
    assert active(lab, "auto") == "main" and not evaluation["wouldSwitch"], evaluation
    assert "1 of 3" in evaluation["reason"] and "2 needed" in evaluation["reason"], evaluation

    killed_at = time.monotonic()
    doomed_main.kill_all()
    lab.wait(
        "the operator switching spec.active",
        lambda: active(lab, "auto") == "failover",
        timeout=DETECTION_TIMEOUT,
    )
    detected = time.monotonic() - killed_at
    lab.wait("3 pods on failover", lambda: all_switched(lab, "auto", "failover", 3))
    switched = time.monotonic() - killed_at
    status = lab.status("auto")
    item = lab.get("auto")
    decision = status["automaticFailover"]["decision"]
    assert decision["phase"] == "Switched" and decision["from"] == "main", decision
    assert set(decision["agreeing"]) >= set(cut_off) and len(decision["agreeing"]) >= 2
    assert status["lastSwitch"]["trigger"] == "automatic", status["lastSwitch"]
    assert status["lastSwitch"]["mode"] == "immediate", status["lastSwitch"]
    assert status["leftUnplanned"] == "main"
    annotations = item["metadata"]["annotations"]
    assert annotations["kafka-failover.github.io/switched-by"] == "automatic"
    shown = json.loads(
        lab.kubectl("get", "kafkafailover", "auto", "-o", "json", "--show-managed-fields")
    )
    managers = {
        entry["manager"]
        for entry in shown["metadata"]["managedFields"]
        if "f:active" in json.dumps(entry.get("fieldsV1", {}))
    }
    assert "kafka-failover-automatic" in managers, managers
    assert any("AutomaticFailover" in line for line in lab.events("auto"))
    print(
        f"automatic failover: main killed -> spec.active patched {detected:.1f}s, 3/3 pods on "
        f"failover {switched:.1f}s (unreachableSeconds {UNREACHABLE_SECONDS}, probe every "
        f"{PROBE_INTERVAL_SECONDS}s)"
    )

    # Back to main without reverse replication: refused, nothing moves, status says what to do.
    alive(doomed_main)
    patch_active(lab, "auto", "main")
    lab.wait("the failback refused", lambda: reason_of(lab, "auto", "Ready") == "FailbackRefused")
    time.sleep(3.0)
    status = lab.status("auto")
    assert status["activeCluster"] == "failover" and status["switchover"]["phase"] == (
        "FailbackRefused"
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "acceptDataLoss" in ready["message"] and "reverseReplication" in ready["message"]

    # Accepting the loss switches back at once and clears the mark.
    merge_patch(lab, "auto", {"spec": {"switch": {"acceptDataLoss": True}}})
    lab.wait("3 pods back on main", lambda: all_switched(lab, "auto", "main", 3), timeout=90)
    status = lab.status("auto")
    assert status["lastSwitch"].get("acceptedDataLoss") is True, status["lastSwitch"]
    assert not status.get("leftUnplanned"), status.get("leftUnplanned")

    # main dies again within the cooldown: no second automatic switch.
    doomed_main.kill_all()
    lab.wait(
        "the cooldown named",
        lambda: "cooldown" in section(lab, "auto").get("evaluation", {}).get("reason", ""),
        timeout=DETECTION_TIMEOUT,
    )
    assert active(lab, "auto") == "main"
    lab.kubelet.config_rewrite = None
    lab.kubectl("delete", "kafkafailover", "auto", "--wait=true")
    alive(doomed_main)


def test_a_dry_run_reports_once_and_switches_nothing(
    lab: OperatorLab, doomed_main: Cluster, kafka_failover: Cluster
) -> None:
    alive(doomed_main)
    lab.apply(automatic_manifest("dry", doomed_main, kafka_failover, replicas=2, dryRun=True))
    lab.wait("2 pods on main", lambda: all_switched(lab, "dry", "main", 2))
    doomed_main.kill_all()
    lab.wait(
        "a dry-run decision",
        lambda: section(lab, "dry").get("decision", {}).get("phase") == "DryRun",
        timeout=DETECTION_TIMEOUT,
    )
    time.sleep(6.0)  # three more looks
    told = [line for line in lab.events("dry") if "AutomaticFailoverDryRun" in line]
    assert active(lab, "dry") == "main", "a dry run switches nothing"
    assert len(told) == 1, told
    lab.kubectl("delete", "kafkafailover", "dry", "--wait=true")
    alive(doomed_main)


def test_a_decision_recorded_by_an_operator_that_died_is_applied_once_by_the_next(
    lab: OperatorLab, doomed_main: Cluster, kafka_failover: Cluster
) -> None:
    alive(doomed_main)
    lab.apply(automatic_manifest("resumed", doomed_main, kafka_failover, replicas=2))
    lab.wait("2 pods on main", lambda: all_switched(lab, "resumed", "main", 2))
    lab.stop_operator()
    doomed_main.kill_all()
    # As when the operator died right after deciding: the pods judge main down long enough.
    lab.wait(
        "every pod judging main down",
        lambda: all(
            (pod_state(lab, "resumed", pod)["upstreams"]["main"]["downForSeconds"] or 0)
            > UNREACHABLE_SECONDS
            for pod in pods_of(lab, "resumed")
        ),
        timeout=DETECTION_TIMEOUT,
    )
    generation = lab.get("resumed")["metadata"]["generation"]
    decided_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    decision = {
        "phase": "Decided", "from": "main", "to": "failover", "generation": generation,
        "decidedAt": decided_at, "reason": "recorded by the operator that died",
        "agreeing": [], "disagreeing": [],
    }  # fmt: skip
    status = lab.status("resumed") | {
        "automaticFailover": {"decision": decision, "lastDecidedAt": decided_at}
    }
    lab.kubectl(
        "patch", "kafkafailover", "resumed", "--subresource=status", "--type", "merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    lab.start_operator()
    lab.wait("2 pods on failover", lambda: all_switched(lab, "resumed", "failover", 2), 90)
    time.sleep(4.0)
    item = lab.get("resumed")
    assert item["metadata"]["generation"] == generation + 1, "exactly one change of the spec"
    assert lab.status("resumed")["automaticFailover"]["decision"]["phase"] == "Switched"
    lab.kubectl("delete", "kafkafailover", "resumed", "--wait=true")
    alive(doomed_main)


def test_a_failback_over_caught_up_reverse_mirror_maker_loses_nothing(
    lab: OperatorLab,
    doomed_main: Cluster,
    kafka_failover: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    alive(doomed_main)
    document = yaml.safe_load(automatic_manifest("back", doomed_main, kafka_failover, replicas=2))
    document["spec"]["switch"] |= {
        "podTimeoutSeconds": 5,
        "topics": "back-.*",
        "consumerDrainSeconds": 5,
        "maxCatchUpSeconds": 30,
    }
    lab.apply(yaml.safe_dump(document))
    lab.wait("2 pods on main", lambda: all_switched(lab, "back", "main", 2))
    doomed_main.kill_all()
    lab.wait("2 pods on failover", lambda: all_switched(lab, "back", "failover", 2), 90)
    assert lab.status("back")["leftUnplanned"] == "main"
    alive(doomed_main)

    topic = f"back-{uuid.uuid4().hex[:8]}"
    for cluster in (doomed_main, kafka_failover):  # the reverse flow's target first
        admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
    first, second = pods_of(lab, "back")
    client = workloads.ConfluentProducer(f"{first.ip}:6969", {"enable.idempotence": True})
    producer: workloads.SequencedProducer | None = workloads.SequencedProducer(
        client, topic, rate=100.0
    ).start()
    consumer = workloads.GroupConsumer(
        f"{second.ip}:6969", topic, f"back-{uuid.uuid4().hex[:6]}", {"auto.commit.interval.ms": 200}
    ).start()
    settings = mirroring.MirrorSettings(
        topics="back-.*",
        groups="back-.*",
        extra={
            "main.offset.flush.interval.ms": "1000",
            "failover.consumer.isolation.level": "read_committed",
        },
    )
    reverse = mirroring.start_mirror_maker(
        kafka_failover.bootstrap,
        doomed_main.bootstrap,
        settings,
        workdir=tmp_path_factory.mktemp("reverse-mm2"),
        aliases=("failover", "main"),
    )
    on_main = workloads.ClusterTail(doomed_main.bootstrap, topic, PARTITIONS, cluster="main")
    on_main.start()
    try:
        assert producer.wait_acked(300, timeout=60), "nothing acknowledged on failover"
        lab.wait("MirrorMaker copying failover back to main", lambda: bool(on_main.sequences()))
        merge_patch(
            lab,
            "back",
            {"spec": {"active": "main", "switch": {"reverseReplication": "mirrorMaker2"}}},
        )
        lab.wait("2 pods back on main", lambda: all_switched(lab, "back", "main", 2), 120)
        acked_at_switch = len(producer.log.snapshot()[1])
        assert producer.wait_acked(acked_at_switch + 200, timeout=60), "no acks after failback"
        stopping, producer = producer, None
        stopping.stop(flush_timeout=30)
        _, acked, _ = stopping.log.snapshot()
        missing = workloads.wait_until_landed([on_main], acked, timeout=60)
        copies = collections.Counter(seq for seq, _, _ in on_main.placements())
        status = lab.status("back")
    finally:
        if producer is not None:
            producer.stop(flush_timeout=5)
        consumer.stop()
        on_main.stop()
        reverse.stop()
    last = status["lastSwitch"]
    assert last["mode"] == "planned" and last["rpoRecords"] == 0, last
    assert not status.get("leftUnplanned"), status.get("leftUnplanned")
    assert not missing, f"acknowledged, not on main after failback: {sorted(missing)[:20]}"
    assert max(copies.values()) == 1, "a record twice on main"
    print(f"failback over reverse MirrorMaker 2: {len(acked)} acked, 0 lost; {last['phases']}")
    lab.kubectl("delete", "kafkafailover", "back", "--wait=true")


def test_a_hung_main_is_judged_down_by_timeouts_and_failed_over(
    lab: OperatorLab, doomed_main: Cluster, kafka_failover: Cluster
) -> None:
    alive(doomed_main)
    lab.apply(automatic_manifest("hung", doomed_main, kafka_failover, replicas=2))
    lab.wait("2 pods on main", lambda: all_switched(lab, "hung", "main", 2))
    pid = doomed_main.pids[MAIN_NODE]
    frozen_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)  # accepts connections (the kernel does), answers nothing
    try:
        lab.wait("2 pods on failover", lambda: all_switched(lab, "hung", "failover", 2), 90)
        detected = time.monotonic() - frozen_at
    finally:
        os.kill(pid, signal.SIGCONT)
    decision = section(lab, "hung")["decision"]
    assert decision["phase"] == "Switched" and len(decision["agreeing"]) == 2, decision
    print(f"main SIGSTOPped -> 2/2 pods on failover {detected:.1f}s")
    lab.kubectl("delete", "kafkafailover", "hung", "--wait=true")


def test_a_main_that_flaps_faster_than_unreachable_seconds_is_never_failed_over(
    lab: OperatorLab, doomed_main: Cluster, kafka_failover: Cluster
) -> None:
    alive(doomed_main)
    lab.apply(
        automatic_manifest("flap", doomed_main, kafka_failover, replicas=2, unreachableSeconds=30)
    )
    lab.wait("2 pods on main", lambda: all_switched(lab, "flap", "main", 2))
    longest = 0.0
    # Down about 10 s (6 s, then a restart of a few seconds), up about 10 s: a margin of 20 s
    # to unreachableSeconds for a slow restart on a loaded machine.
    for _ in range(2):
        doomed_main.kill_all()
        watch_until = time.monotonic() + 6.0
        while time.monotonic() < watch_until:
            assert active(lab, "flap") == "main", "switched on a flap"
            time.sleep(0.5)
        alive(doomed_main)
        for pod in pods_of(lab, "flap"):  # the restart took a few seconds more
            down = pod_state(lab, "flap", pod)["upstreams"]["main"]["downForSeconds"] or 0.0
            longest = max(longest, down)
        time.sleep(10.0)
    evaluation = section(lab, "flap").get("evaluation", {})
    assert active(lab, "flap") == "main" and not section(lab, "flap").get("decision")
    assert not evaluation.get("wouldSwitch"), evaluation
    assert longest > 0, "the pods saw main go down"
    print(f"flapping main: judged down up to {longest:.1f}s at a time (limit 30 s); no switch")
    lab.kubectl("delete", "kafkafailover", "flap", "--wait=true")
