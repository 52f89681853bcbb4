"""``make soak`` in small: 3 minutes of every client family through 3 gateways, every fault once.

Why: the soak's figures are published; this proves, on every ``make test``, that its machinery
holds together (each fault happens, each family produces and consumes, samples are taken) and
that its invariants hold on a short run: nothing acknowledged lost outside a replication gap,
no fatal client error. Speed is not asserted (that is the benchmarks' job). One broker per
cluster keeps it affordable on 2 cores: killing main's broker is then a short outage of main.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kafka_testbed import soak_schedule, soaking


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir: Path = tmp_path_factory.mktemp("soak")
    return soaking.run_soak(soaking.SMOKE, workdir)


@pytest.mark.timeout(900)
def test_a_smoke_soak_loses_no_acknowledged_record_outside_a_replication_gap(
    report: dict[str, Any],
) -> None:
    for name, family in report["families"].items():
        assert family["acknowledged"] > 0, f"{name} produced nothing"
        assert family["lost_outside_gaps"] == 0, f"{name}: {family}"
        assert family["lost"] == family["lost_in_gaps"] + family["lost_outside_gaps"]
        assert sum(family["on_cluster"].values()) > 0


def test_a_smoke_soak_has_no_fatal_client_error(report: dict[str, Any]) -> None:
    fatal = {name: f["fatal_errors"] for name, f in report["families"].items() if f["fatal_errors"]}
    assert fatal == {}


def test_every_client_family_produced_and_consumed(report: dict[str, Any]) -> None:
    assert set(report["families"]) == set(soaking.FAMILIES)
    for name, family in report["families"].items():
        assert family["consumed_distinct"] > 0, f"the {name} group read nothing"
        assert family["longest_ack_wait_ms"] > 0


def test_every_fault_happened_and_completed(report: dict[str, Any]) -> None:
    done = {fault["fault"] for fault in report["faults"]}
    assert done == {fault.value for fault in soak_schedule.Fault}
    assert report["fault_errors"] == []
    assert report["switches"]["planned"] + report["switches"]["planned_aborted"] >= 1
    assert report["switches"]["immediate"] >= 3
    assert report["kills"] == {"broker": 1, "gateway": 1}


def test_every_gateway_was_sampled_and_the_killed_one_restarted(report: dict[str, Any]) -> None:
    gateways = report["gateways"]
    assert len(gateways) == soaking.SMOKE.pods
    for figures in gateways.values():
        assert figures["samples"] >= 3
        assert figures["rss_bytes_end"] > 0 and figures["open_fds_end"] > 0
    assert sorted(g["restarts"] for g in gateways.values()) == [0, 0, 1]
    assert report["idle_connections"]["opened"] >= soaking.SMOKE.idle_connections
    assert report["missed_goals"] == []
