"""Status and conditions: activeCluster only when every ready pod serves the desired cluster."""

from __future__ import annotations

from failover_operator.status import PodReport, Problem, compute


def by_type(status: dict, kind: str) -> dict:  # type: ignore[type-arg]
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_every_pod_switched_makes_the_object_ready_on_the_desired_cluster() -> None:
    pods = [PodReport(f"gw-{i}", "failover", 4) for i in range(3)]
    status = compute(
        desired="failover",
        generation=4,
        pods=pods,
        problems=[],
        switching=False,
        previous={"activeCluster": "main"},
        at="T1",
    )
    assert status["activeCluster"] == "failover"
    assert status["gateways"]["summary"] == "3/3" and status["gateways"]["failed"] == []
    assert by_type(status, "Ready")["status"] == "True"
    assert by_type(status, "Degraded")["status"] == "False"
    assert by_type(status, "Ready")["observedGeneration"] == 4


def test_one_pod_behind_keeps_the_previous_active_cluster_and_names_the_pod() -> None:
    pods = [PodReport("gw-0", "failover", 4), PodReport("gw-1", None, None, error="timed out")]
    status = compute(
        desired="failover",
        generation=4,
        pods=pods,
        problems=[],
        switching=False,
        previous={"activeCluster": "main"},
        at="T1",
    )
    assert status["activeCluster"] == "main"
    assert status["gateways"]["summary"] == "1/2"
    assert status["gateways"]["failed"] == [{"pod": "gw-1", "reason": "timed out"}]
    assert by_type(status, "Degraded")["status"] == "True"
    assert "gw-1: timed out" in by_type(status, "Degraded")["message"]


def test_a_pod_on_the_right_cluster_but_an_older_epoch_is_not_switched() -> None:
    status = compute(
        desired="failover",
        generation=5,
        pods=[PodReport("gw-0", "failover", 4)],
        problems=[],
        switching=False,
        previous=None,
        at="T1",
    )
    assert status["gateways"]["switched"] == 0


def test_a_missing_secret_is_degraded_with_a_reason_naming_it() -> None:
    problem = Problem("SecretMissing", "Secret main-creds (spec.clusters[main]) not found")
    status = compute(
        desired="main",
        generation=1,
        pods=[],
        problems=[problem],
        switching=False,
        previous=None,
        at="T1",
    )
    degraded = by_type(status, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "SecretMissing"
    assert "main-creds" in degraded["message"]
    assert by_type(status, "Ready")["status"] == "False"


def test_transition_times_move_only_when_a_condition_changes() -> None:
    pods = [PodReport("gw-0", "main", 1)]
    first = compute(
        desired="main",
        generation=1,
        pods=pods,
        problems=[],
        switching=False,
        previous=None,
        at="T1",
    )
    second = compute(
        desired="main",
        generation=1,
        pods=pods,
        problems=[],
        switching=True,
        previous=first,
        at="T2",
    )
    assert by_type(second, "Ready")["lastTransitionTime"] == "T1"
    assert by_type(second, "Switching")["lastTransitionTime"] == "T2"


def test_the_last_switch_is_kept_until_a_new_one_is_recorded() -> None:
    record = {"from": "main", "to": "failover", "epoch": 2, "durationMs": 412}
    first = compute(
        desired="failover",
        generation=2,
        pods=[],
        problems=[],
        switching=False,
        previous=None,
        last_switch=record,
        at="T1",
    )
    second = compute(
        desired="failover",
        generation=2,
        pods=[],
        problems=[],
        switching=False,
        previous=first,
        at="T2",
    )
    assert second["lastSwitch"] == record
