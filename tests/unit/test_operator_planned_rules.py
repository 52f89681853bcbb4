"""The operator's planned-switch rules that need no cluster: when a change of ``spec.active`` is
planned, what the gateways are told, and that an aborted switch holds until the spec changes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from failover_gateway.config import config_from_mapping
from failover_operator import manifests, model, reconciling
from failover_operator.status import compute

CLUSTERS = [
    {"name": "main", "bootstrapServers": "kafka-a:9092"},
    {"name": "failover", "bootstrapServers": "kafka-b:9092"},
]


def spec(active: str = "failover", **switch: Any) -> model.KafkaFailoverSpec:
    return model.parse_spec({"active": active, "clusters": CLUSTERS, "switch": switch})


def test_a_change_is_planned_only_when_replication_is_declared() -> None:
    assert not spec().switch.planned, "nothing to wait for: the switch is immediate"
    assert spec(replication="mirrorMaker2").switch.planned
    assert not spec(replication="mirrorMaker2", mode="immediate").switch.planned


def test_a_topics_pattern_that_is_not_a_regex_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"topics[\s\S]*not a regular expression"):
        spec(replication="offsetPreserving", topics="orders-(")


def test_the_gateway_config_carries_the_switchover_settings_the_gateway_accepts() -> None:
    declared = spec(
        replication="mirrorMaker2",
        topics="orders-.*",
        maxCatchUpSeconds=12,
        consumerDrainSeconds=3,
        mirrorMaker2={"aliases": {"main": "dc1"}, "policy": "default", "separator": "_"},
    )
    config_map = manifests.config_map("prod", "ns", declared, 4)
    parsed = config_from_mapping(yaml.safe_load(config_map["data"][manifests.CONFIG_FILE]))
    switchover = parsed.gateway.switchover
    assert switchover.replication == "mirrorMaker2" and switchover.topics == "orders-.*"
    assert (switchover.max_catch_up_seconds, switchover.consumer_drain_seconds) == (12, 3)
    assert switchover.mirror_maker2.remote_topic("main", "orders") == "dc1_orders"


def test_a_planned_switch_keeps_the_live_active_document_until_it_is_prepared() -> None:
    live = manifests.active_document("main", 3)
    config_map = manifests.config_map("prod", "ns", spec(), 4, active=live)
    assert config_map["data"][manifests.ACTIVE_KEY] == live
    unchanged = manifests.config_map("prod", "ns", spec(), 4)
    assert manifests.config_hash(config_map) == manifests.config_hash(unchanged), "no pod rolls"


def aborted_status(generation: int) -> dict[str, Any]:
    return compute(
        desired="failover",
        generation=generation,
        pods=[],
        problems=[],
        switching=False,
        previous={"activeCluster": "main"},
        switchover={"phase": "Aborted", "to": "failover", "generation": generation},
    )


def test_an_aborted_switch_holds_at_its_generation_and_a_spec_change_retries_it() -> None:
    previous = aborted_status(5)
    declared = spec(replication="offsetPreserving")
    assert reconciling.held_after_abort(previous, declared, 5)
    assert not reconciling.retrying(previous, declared, 5)
    assert reconciling.retrying(previous, declared, 6)
    assert not reconciling.held_after_abort(previous, declared, 6)


def test_switching_back_to_the_cluster_an_aborted_switch_stayed_on_is_no_retry() -> None:
    previous = aborted_status(5)
    back = spec(active="main", replication="offsetPreserving")
    assert not reconciling.held_after_abort(previous, back, 6)
    assert not reconciling.retrying(previous, back, 6)


def test_status_keeps_the_last_switchover_until_a_new_one_is_written() -> None:
    kept = compute(
        desired="failover",
        generation=6,
        pods=[],
        problems=[],
        switching=False,
        previous=aborted_status(5),
    )
    assert kept["switchover"]["phase"] == "Aborted" and kept["activeCluster"] == "main"
