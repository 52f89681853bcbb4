"""The DR drill (``make drill``) on real clusters, MirrorMaker 2 and the gateway, small volume.

Why: the drill's report is only useful if its counts are right. Both modes run once on a lab of
their own (the unplanned mode kills main, so the session clusters cannot be used), and every
count of the report is recomputed here from the record sets the run kept. Through the operator
(``--via kubectl``, on the session's control plane) the planned mode runs switched with
``kubectl patch``, then the automatic mode kills main and lets the operator fail over.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka_testbed import drill
from kafka_testbed.workloads import ClusterTail
from kube_testbed.control_plane import ControlPlane

CONFIG = drill.DrillConfig(rate=50.0, producers=2, seconds_before=2.0, seconds_after=2.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, drill.DrillRun]]:
    workdir: Path = tmp_path_factory.mktemp("drill")
    yield {run.mode: run for run in drill.run_drills(drill.DEFAULT_MODES["admin"], CONFIG, workdir)}


def _check_counts_consistent(run: drill.DrillRun) -> None:
    report = run.report()
    assert report["acked"] == len(run.acked) > 0
    assert report["lost"] == len(run.lost)
    assert report["duplicates"] >= 0
    assert report["reprocessed"] == run.consumed - run.consumed_distinct >= 0
    assert run.consumed_distinct <= run.sent
    assert report["switch_to_first_ack_ms"] is not None
    assert report["switch_to_consumer_resumed_ms"] is not None


def test_planned_drill_loses_no_acknowledged_record(runs: dict[str, drill.DrillRun]) -> None:
    run = runs["planned"]
    _check_counts_consistent(run)
    assert run.gap_at_switch == set(), "the planned switch waited for replication"
    assert run.acked - (run.on_main | run.on_failover) == set()
    assert run.acked - run.on_failover == set(), "every acknowledged record is on failover"
    assert run.lost == set() and run.duplicates == 0
    assert run.fence_ms is not None and run.fence_ms > 0, "the gateway measured the fence"
    assert run.offsets_synced, "the group's offsets were handed over"
    assert run.reprocessed == 0, "the group read nothing twice: offsets handed over, rejoin held"


def test_unplanned_drill_loses_exactly_the_replication_gap(
    runs: dict[str, drill.DrillRun],
) -> None:
    run = runs["unplanned"]
    _check_counts_consistent(run)
    never_replicated = run.acked_before_switch - run.on_failover_at_switch
    assert run.gap_at_switch == never_replicated
    assert never_replicated, "MirrorMaker was frozen before the kill: some records must be missing"
    assert run.acked - run.on_failover == never_replicated
    assert run.lost == never_replicated
    assert run.report()["replication_gap_at_switch"] == run.report()["lost"]
    assert (run.acked - run.acked_before_switch) <= run.on_failover, (
        "acked after the switch, all kept"
    )


def test_drills_through_kubectl_planned_then_automatic_lose_what_they_should(
    kube_control_plane: ControlPlane, tmp_path: Path
) -> None:
    with drill.drill_lab(tmp_path, CONFIG, "kubectl", kube_control_plane, automatic=True) as lab:
        run = drill.run_drill(lab, "planned", CONFIG)
        assert isinstance(lab.gateway, drill.KubectlSwitchedGateway)
        status = lab.gateway.operated.status(drill.FAILOVER_OBJECT)
        pods = lab.gateway.operated.kubelet.running()
        automatic = drill.run_drill(lab, "automatic", CONFIG)
        after = lab.gateway.operated.status(drill.FAILOVER_OBJECT)
        # main comes back: the product counts what it holds that failover never got.
        lab.main.restart(1)
        tail = ClusterTail(lab.main.bootstrap, automatic.topic, drill.PARTITIONS, cluster="main")
        tail.start()
        assert tail.wait_caught_up(60.0), "main read back after its restart"
        left_on_main = tail.sequences() - automatic.on_failover_at_switch
        tail.stop()
        operated = lab.gateway.operated
        counted = operated.wait_for(
            "the records left on main counted",
            lambda: operated.status(drill.FAILOVER_OBJECT).get("unreplicated"),
            timeout=90.0,
        )
        final = operated.status(drill.FAILOVER_OBJECT)
    _check_counts_consistent(run)
    assert run.report()["via"] == "kubectl"
    assert status["activeCluster"] == "failover"
    assert status["gateways"]["summary"] == f"{drill.GATEWAY_PODS}/{drill.GATEWAY_PODS}"
    assert status["lastSwitch"]["to"] == "failover" and status["lastSwitch"]["podsFailed"] == 0
    assert status["lastSwitch"]["mode"] == "planned" and status["lastSwitch"]["rpoRecords"] == 0
    assert run.fence_ms == status["lastSwitch"]["fenceMs"]
    # The clients bootstrap from both pods, so a consumer's group traffic and its fetches may
    # pass through different pods: every pod holds group members' fetches by what main listed.
    assert run.reprocessed == 0, "the group read nothing twice"
    assert run.acked - run.on_failover == set(), "every acknowledged record is on failover"
    assert len(pods) == drill.GATEWAY_PODS, "the clients went through the operator's pods"
    acked_after_switch = run.acked - run.acked_before_switch
    assert acked_after_switch, "the producers carried on after the switch"
    assert acked_after_switch <= run.on_failover, "written through the pods onto failover"
    assert acked_after_switch.isdisjoint(run.on_main)
    assert run.lost == set()
    # The automatic run: nobody switched; the operator did, and lost exactly the gap.
    _check_counts_consistent(automatic)
    never_replicated = automatic.acked_before_switch - automatic.on_failover_at_switch
    assert automatic.gap_at_switch == never_replicated and automatic.lost == never_replicated
    assert automatic.duplicates == 0
    assert after["lastSwitch"]["trigger"] == "automatic", after["lastSwitch"]
    assert after["automaticFailover"]["decision"]["phase"] == "Switched"
    assert automatic.detection_ms is not None and automatic.detection_ms > 0
    report = automatic.report()
    print(
        f"automatic drill: detection {report['detection_ms']} ms, every pod on failover "
        f"{report['switch_confirmed_ms']} ms after the kill, lost {report['lost']} = gap "
        f"{report['replication_gap_at_switch']}"
    )
    # The product's RPO, counted from the clusters once main answered, is the drill's own count
    # of main's records failover never got (the acknowledged gap, plus any record main stored
    # whose acknowledgement the kill cut off).
    assert counted["cluster"] == "main" and counted["records"] == len(left_on_main), counted
    assert left_on_main >= automatic.gap_at_switch
    assert final["lastSwitch"]["rpoRecords"] == len(left_on_main)
    print(f"records left on main, counted by the product: {counted['records']}")
