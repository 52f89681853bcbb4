"""The soak's fault plan, its loss accounting and its memory slope, on plain values.

Why: ``make soak`` publishes "nothing lost, memory flat"; those words are only as good as the
rules that compute them, so the rules are checked here without a cluster.
"""

from __future__ import annotations

import itertools
import types
from pathlib import Path
from typing import Any, cast

import pytest

from kafka_testbed import soak_accounting, soak_lab, soak_schedule, soaking, workloads
from kafka_testbed.soak_accounting import FamilyRecords, Sample
from kafka_testbed.soak_schedule import CYCLE, Fault

MIB = soak_schedule.MIB


def test_a_three_minute_plan_holds_every_fault_once_after_the_warm_up() -> None:
    plan = soak_schedule.plan(180.0, warm_up=20.0, tail=15.0)
    assert [planned.fault for planned in plan] == list(CYCLE)
    assert set(CYCLE) == set(Fault)
    assert plan[0].at == 20.0
    assert all(later.at > earlier.at for earlier, later in itertools.pairwise(plan))
    assert plan[-1].at < 180.0 - 15.0


def test_an_hour_holds_four_cycles_spread_evenly() -> None:
    plan = soak_schedule.plan(3600.0, warm_up=120.0, tail=60.0)
    assert len(plan) == 4 * len(CYCLE)
    gaps = {round(later.at - earlier.at, 6) for earlier, later in itertools.pairwise(plan)}
    assert len(gaps) == 1


def test_every_cycle_ends_on_main_so_the_next_planned_switch_can_run() -> None:
    active = "main"
    for fault in CYCLE * 2:
        if fault is Fault.PLANNED_TO_FAILOVER:
            assert active == "main"
        if fault in soak_schedule.SWITCH_KINDS:
            active = "failover" if "failover" in fault.value else "main"
    assert active == "main"


def test_a_plan_refuses_a_negative_length_naming_what_it_got() -> None:
    with pytest.raises(ValueError, match="seconds > 0"):
        soak_schedule.plan(-1.0, warm_up=0.0, tail=0.0)


def test_the_slope_of_a_line_is_its_rise_per_hour() -> None:
    samples = [(t * 10.0, 100.0 + t * 10.0 / 3600.0 * MIB) for t in range(50)]
    slope = soak_schedule.slope_per_hour(samples)
    assert slope == pytest.approx(MIB)


def test_too_few_samples_have_no_slope() -> None:
    assert soak_schedule.slope_per_hour([(0.0, 1.0), (10.0, 2.0)]) is None


def _records(**changes: Any) -> FamilyRecords:
    base: dict[str, Any] = {
        "sent_at": {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0},
        "acked_at": {1: 0.5, 2: 1.0, 3: 2.5},
        "errors": {4: "timed out"},
        "copies": {"main": [1, 2], "failover": [1, 1]},
        "gap": frozenset(),
        "consumed": [1, 1, 2],
        "fatal_errors": [],
    }
    return FamilyRecords(**(base | changes))


def test_an_acknowledged_record_on_neither_cluster_is_lost_outside_any_gap() -> None:
    report = soak_accounting.family_report(_records())
    assert report["acknowledged"] == 3
    assert report["failed"] == 1
    assert report["lost"] == report["lost_outside_gaps"] == 1
    assert report["lost_in_gaps"] == 0


def test_a_lost_record_inside_a_replication_gap_is_counted_apart() -> None:
    report = soak_accounting.family_report(_records(gap=frozenset({3, 2})))
    assert report["lost_in_gaps"] == 1
    assert report["lost_outside_gaps"] == 0
    assert report["replication_gap_records"] == 2


def test_two_copies_on_one_cluster_are_a_duplicate_but_one_per_cluster_is_not() -> None:
    report = soak_accounting.family_report(_records())
    assert report["duplicated"] == 1
    assert report["on_cluster"] == {"main": 2, "failover": 1}


def test_the_longest_ack_wait_is_the_slowest_records_send_to_ack() -> None:
    assert soak_accounting.family_report(_records())["longest_ack_wait_ms"] == 2500.0


def _sample(at: float, pid: int, rss: int, fds: int = 50, cpu: float = 1.0) -> Sample:
    return Sample(at, pid, rss, fds, cpu)


def test_a_restarted_gateway_is_judged_on_its_longest_lifetime_after_its_warm_up() -> None:
    first = [_sample(t, 10, 100 * MIB + int(t) * 1000) for t in range(0, 600, 10)]
    second = [_sample(t, 11, 50 * MIB) for t in range(600, 700, 10)]
    report = soak_accounting.gateway_report(first + second, warm_up=100.0)
    assert report["restarts"] == 1
    assert report["rss_slope_bytes_per_hour"] == pytest.approx(1000 * 3600, rel=1e-6)
    assert report["rss_slope_window_seconds"] == 490
    assert report["cpu_seconds"] == 2.0, "each lifetime's CPU counts once"


def _report(**changes: Any) -> dict[str, Any]:
    family = {"lost_outside_gaps": 0, "fatal_errors": [], "consumed": 10}
    report: dict[str, Any] = {
        "minutes": 60.0,
        "families": {"kafka-python": family},
        "fault_errors": [],
        "gateways": {"127.0.0.111": {"rss_slope_bytes_per_hour": 0.5 * MIB}},
    }
    return report | changes


def test_a_clean_hour_meets_every_goal() -> None:
    assert soak_schedule.missed_goals(_report()) == []


def test_loss_fatal_errors_an_idle_group_failed_faults_and_a_growing_gateway_each_miss_a_goal() -> (
    None
):
    family = {"lost_outside_gaps": 2, "fatal_errors": ["producer FATAL: fenced"], "consumed": 0}
    report = _report(
        families={"franz-go": family},
        fault_errors=[{"fault": "main broker killed and restarted"}],
        gateways={"127.0.0.111": {"rss_slope_bytes_per_hour": 2 * MIB}},
    )
    missed = soak_schedule.missed_goals(report)
    assert len(missed) == 5
    assert "2 acknowledged records lost" in missed[0]
    assert "consumed nothing: franz-go" in missed[2]


def test_a_short_run_is_not_judged_on_its_memory_slope() -> None:
    report = _report(minutes=3.0, gateways={"127.0.0.111": {"rss_slope_bytes_per_hour": None}})
    assert soak_schedule.missed_goals(report) == []


def test_a_producer_that_cannot_flush_at_the_end_is_reported_not_fatal_to_the_report() -> None:
    """kafka-python's close raises its own KafkaTimeoutError when a flush runs out of time: the
    one-hour soak lost its whole report to it once."""

    class Stuck:
        def stop(self, flush_timeout: float) -> None:
            raise TimeoutError(f"Timeout waiting for future after {flush_timeout} s")

    family = cast(soak_lab.Family, types.SimpleNamespace(producer=Stuck()))
    assert soaking._stop_producer(family) == (
        "stopping failed: TimeoutError: Timeout waiting for future after 30.0 s"
    )


def test_a_producer_acknowledged_no_more_while_sending_is_logged_once_with_thread_stacks(
    tmp_path: Path,
) -> None:
    log = workloads.ProducerLog()
    family = cast(soak_lab.Family, types.SimpleNamespace(name="kafka-python"))
    family.producer = types.SimpleNamespace(log=log)
    watch = soaking.StallWatch(tmp_path, started=1000.0)
    for seq in range(5):
        log.sent(seq)
        log.done(seq, None)
    watch.check([family], now=1010.0)
    log.sent(5)
    watch.check([family], now=1100.0)
    assert watch.stalls == []  # 90 s without an acknowledgement: not yet
    watch.check([family], now=1131.0)
    watch.check([family], now=1200.0)
    assert watch.stalls == [{"family": "kafka-python", "since": 10.0, "acked": 5, "sent": 6}]
    assert "most recent call first" in (tmp_path / "stall-kafka-python-0.txt").read_text()
    log.done(5, None)
    watch.check([family], now=1300.0)
    watch.check([family], now=1500.0)  # acknowledged again, nothing sent since: no stall
    assert len(watch.stalls) == 1
