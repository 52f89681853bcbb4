"""The automatic failover's quorum rule: a majority of ready pods, for long enough, never one."""

from __future__ import annotations

from failover_operator.automatic import PodView, decide


def verdict(views: list[PodView], since_last: float | None = None) -> tuple[bool, str]:
    found = decide(
        views,
        active="main",
        target="failover",
        unreachable_seconds=30,
        seconds_since_last_automatic=since_last,
        cooldown_seconds=600,
    )
    return found.switch, found.reason


def down(pod: str, seconds: float = 31, target_healthy: bool = True) -> PodView:
    return PodView(pod, seconds, target_healthy)


def test_a_majority_down_for_long_enough_with_the_target_healthy_switches() -> None:
    assert verdict([down("a"), down("b"), down("c", 0)])[0]


def test_one_pod_cut_off_from_main_never_switches_and_is_named() -> None:
    found = decide(
        [down("a"), down("b", 0), down("c", 0)],
        active="main",
        target="failover",
        unreachable_seconds=30,
        seconds_since_last_automatic=None,
        cooldown_seconds=600,
    )
    assert not found.switch and found.agreeing == ("a",) and found.disagreeing == ("b", "c")
    assert "1 of 3" in found.reason and "2 needed" in found.reason


def test_down_but_not_for_long_enough_does_not_switch() -> None:
    assert not verdict([down("a", 29), down("b", 29)])[0]


def test_a_target_the_majority_cannot_reach_is_no_place_to_go() -> None:
    assert not verdict([down("a", target_healthy=False), down("b", target_healthy=False)])[0]


def test_a_pod_that_does_not_answer_counts_against() -> None:
    assert not verdict([down("a"), PodView("b", None, False)])[0], "1 of 2 is no majority"


def test_within_the_cooldown_of_the_last_automatic_switch_nothing_switches() -> None:
    switch, reason = verdict([down("a"), down("b")], since_last=120)
    assert not switch and "cooldown" in reason
    assert verdict([down("a"), down("b")], since_last=601)[0]


def test_no_ready_pod_means_no_evidence() -> None:
    assert not verdict([])[0]


def state(main: dict[str, object], failover: dict[str, object]) -> dict[str, object]:
    return {"active": "main", "upstreams": {"main": main, "failover": failover}}


def test_a_pods_view_is_read_from_the_state_it_publishes() -> None:
    from failover_operator.automatic import view_from_state

    down = {"verdict": "down", "downForSeconds": 42.5}
    healthy = {"verdict": "healthy", "downForSeconds": 0}
    seen = view_from_state("a", state(down, healthy), active="main", target="failover")
    assert seen == PodView("a", 42.5, True)
    fine = view_from_state("b", state(healthy, healthy), active="main", target="failover")
    assert fine == PodView("b", 0.0, True)
    unknown = {"verdict": "unknown", "downForSeconds": 0}
    not_probed = view_from_state("c", state(down, unknown), active="main", target="failover")
    assert not not_probed.target_healthy, "a target not probed yet is no place to go"
    silent = view_from_state("d", None, active="main", target="failover")
    assert silent == PodView("d", None, False)


# -- the record that makes acting safe across restarts ------------------------------------------

DECIDED = {"phase": "Decided", "from": "main", "to": "failover", "generation": 4}


def test_the_target_is_the_configured_cluster_else_the_failover_role() -> None:
    from failover_operator.automatic import target_of

    assert target_of("main", None, ["failover"]) == "failover"
    assert target_of("main", "dr", ["failover"]) == "dr"
    assert target_of("failover", None, ["failover"]) is None, "already failed over"
    assert target_of("main", None, []) is None


def test_the_cooldown_counts_from_the_recorded_time_not_the_process() -> None:
    import datetime

    from failover_operator.automatic import seconds_since

    now = datetime.datetime(2026, 11, 30, 18, 10, tzinfo=datetime.UTC)
    assert seconds_since("2026-11-30T18:00:00Z", now) == 600.0
    assert seconds_since(None, now) is None


def test_a_decision_recorded_but_not_applied_is_completed_not_taken_again() -> None:
    from failover_operator.automatic import unfinished

    assert unfinished(DECIDED, active="main", generation=4), "the patch never landed"
    assert not unfinished(DECIDED, active="failover", generation=5), "it landed"
    assert not unfinished(DECIDED, active="main", generation=5), "a human changed the spec"
    assert not unfinished(DECIDED | {"phase": "DryRun"}, active="main", generation=4)
    assert not unfinished(None, active="main", generation=4)


def test_only_the_change_the_decision_made_is_switched_as_automatic() -> None:
    from failover_operator.automatic import made_this_change

    assert made_this_change(DECIDED, active="failover", generation=5)
    assert made_this_change(DECIDED | {"phase": "Switched"}, active="failover", generation=5)
    assert not made_this_change(DECIDED, active="failover", generation=7), "a later human change"
    assert not made_this_change(DECIDED | {"phase": "DryRun"}, active="failover", generation=5)
