"""The comparison benchmark's arithmetic: medians, ratios, CPU per MB, goals, the markdown table.

Why: a benchmark that miscounts is worse than none, and its figures are only ever seen in a
table, so the arithmetic from samples to rows and verdicts is checked here on hand-made samples.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import comparison

SETTINGS = comparison.Settings(repetitions=2, targets=("direct", "gateway", "kroxylicious"))


def _outcome() -> comparison.Outcome:
    outcome = comparison.Outcome(SETTINGS)
    for repetition, (direct_mb, gateway_mb) in enumerate(((30.0, 29.0), (32.0, 31.0))):
        outcome.samples += [
            comparison.Sample("direct", "produce", repetition, direct_mb, direct_mb * 1024),
            comparison.Sample(
                "gateway", "produce", repetition, gateway_mb, gateway_mb * 1024,
                cpu_seconds=0.5 + repetition, megabytes=100.0,
            ),
            comparison.Sample("direct", "consume", repetition, 100.0, 102_400.0),
            comparison.Sample("gateway", "consume", repetition, 80.0, 81_920.0),
            comparison.Sample("direct", "latency", repetition, p50_ms=1.0, p99_ms=2.0),
            comparison.Sample("gateway", "latency", repetition, p50_ms=1.2, p99_ms=2.5),
        ]  # fmt: skip
    outcome.missing["kroxylicious"] = "failed during preflight: it fell over\nsecond line"
    outcome.peak_rss_mb["gateway"] = 61.94
    outcome.idle_rss_mb["gateway"] = (60.0, 86.21)
    return outcome


def _rows() -> dict[str, dict[str, Any]]:
    return {row["target"]: row for row in comparison.rows(_outcome())}


def test_rows_take_medians_and_ratios_against_direct() -> None:
    gateway = _rows()["gateway"]
    assert gateway["produce_mb_s"] == 30.0
    assert gateway["produce_vs_direct"] == round(30.0 / 31.0, 3)
    assert gateway["consume_vs_direct"] == 0.8
    assert gateway["added_p99_ms"] == 0.5


def test_cpu_per_mb_is_cpu_milliseconds_per_megabyte_forwarded() -> None:
    # 0.5 s and 1.5 s of CPU for 100 MB each: 5 and 15 ms per MB, median 10 millicores per MB/s.
    assert _rows()["gateway"]["cpu_mc_per_mb_s"] == 10.0
    assert _rows()["direct"]["cpu_mc_per_mb_s"] is None


def test_a_missing_target_keeps_its_row_with_the_reason() -> None:
    row = _rows()["kroxylicious"]
    assert row == {
        "target": "kroxylicious",
        "missing": "failed during preflight: it fell over\nsecond line",
    }
    table = comparison.markdown(comparison.rows(_outcome()))
    assert "| kroxylicious | not measured: failed during preflight: it fell over |" in table
    assert "second line" not in table
    assert len({line.count("|") for line in table.splitlines()}) == 1, "every row has every column"


def test_memory_figures_come_from_peak_and_idle_readings() -> None:
    gateway = _rows()["gateway"]
    assert (gateway["rss_mb"], gateway["idle_rss_mb"]) == (61.9, 86.2)


def test_goals_report_missed_ratio_and_a_better_peer() -> None:
    rows = comparison.rows(_outcome())
    rows.append({**rows[1], "target": "fast-peer", "consume_mb_s": 95.0})
    verdicts = {v["goal"].split(" (")[0]: v for v in comparison.goals(rows)}
    assert verdicts["produce vs direct >= 0.95"]["met"]
    assert not verdicts["consume vs direct >= 0.90"]["met"]
    assert verdicts["added p99 at 50% load < 1 ms"]["met"]
    assert not verdicts["ahead of every measured peer on consume_mb_s"]["met"]
    assert "fast-peer 95.0" in verdicts["ahead of every measured peer on consume_mb_s"]["measured"]
    assert verdicts["ahead of every measured peer on produce_mb_s"]["met"]
