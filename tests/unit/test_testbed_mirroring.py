"""MirrorMaker 2 configuration and the drill's counting helpers, without processes.

Why: the drill's honesty rests on a one-way identity flow with group offset sync and on a table
that shows what the report holds; both are cheap to pin here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_testbed import drill, mirroring


def test_mm2_properties_replicate_main_to_failover_one_way_with_topic_names_unchanged() -> None:
    settings = mirroring.MirrorSettings(topics="orders.*", emit_checkpoints_interval_seconds=3)
    properties = mirroring.mm2_properties("127.0.0.1:1", "127.0.0.1:2", settings)

    assert properties["main.bootstrap.servers"] == "127.0.0.1:1"
    assert properties["failover.bootstrap.servers"] == "127.0.0.1:2"
    assert properties["main->failover.enabled"] == "true"
    assert properties["failover->main.enabled"] == "false"
    assert properties["main->failover.topics"] == "orders.*"
    assert properties["replication.policy.class"] == mirroring.IDENTITY_POLICY
    assert properties["sync.group.offsets.enabled"] == "true"
    assert properties["emit.checkpoints.interval.seconds"] == "3"
    for key in mirroring.INTERNAL_REPLICATION_FACTOR_KEYS:
        assert properties[key] == "1"


def test_extra_mm2_properties_win() -> None:
    settings = mirroring.MirrorSettings(extra={"offset.lag.max": "100", "tasks.max": "2"})
    properties = mirroring.mm2_properties("a:1", "b:2", settings)
    assert (properties["offset.lag.max"], properties["tasks.max"]) == ("100", "2")


def test_replication_gap_is_the_acknowledged_records_the_target_lacks() -> None:
    assert mirroring.replication_gap({1, 2, 3, 4}, {1, 3, 9}) == {2, 4}


def test_report_table_shows_every_column_and_dashes_for_unknown_times() -> None:
    report = {
        "mode": "unplanned",
        "via": "kubectl",
        "acked": 10,
        "lost": 2,
        "duplicates": 0,
        "reprocessed": 3,
        "replication_gap_at_switch": 2,
        "fence_ms": None,
        "switch_to_first_ack_ms": 12.6,
        "switch_to_consumer_resumed_ms": None,
    }
    lines = drill.table([report]).splitlines()
    assert len(lines) == 3
    assert lines[2] == "| unplanned | kubectl | 10 | 2 | 0 | 3 | 2 | - | - | 13 | - |"


def test_the_unplanned_drill_must_run_last() -> None:
    with pytest.raises(ValueError, match="last"):
        drill.run_drills(["unplanned", "planned"], drill.DrillConfig(), Path("/nonexistent"))


def test_only_one_drill_may_kill_main() -> None:
    with pytest.raises(ValueError, match="at most one"):
        drill.run_drills(["unplanned", "automatic"], drill.DrillConfig(), Path("/nonexistent"))


def test_the_automatic_drill_needs_the_operator() -> None:
    with pytest.raises(ValueError, match="kubectl"):
        drill.run_drills(["automatic"], drill.DrillConfig(), Path("/nonexistent"), "admin")


def test_the_drill_takes_a_sync_interval_and_refuses_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert drill._parse(["--sync-interval", "5"]).sync_interval == 5
    with pytest.raises(SystemExit):
        drill._parse(["--sync-interval", "0"])
    assert "whole number of seconds >= 1, got '0'" in capsys.readouterr().err
