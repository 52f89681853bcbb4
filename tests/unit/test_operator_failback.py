"""The failback guard: back to a cluster left unplanned only over caught-up reverse
replication or with the data loss accepted; and when a cluster counts as left unplanned."""

from __future__ import annotations

from typing import Any

from failover_operator import model
from failover_operator.failback import guard, left_after

CLUSTERS = [
    {"name": "main", "bootstrapServers": "main:9092"},
    {"name": "failover", "bootstrapServers": "failover:9092", "role": "failover"},
]
LEFT = {"leftUnplanned": "main", "activeCluster": "failover", "desiredCluster": "failover"}


def spec(active: str = "main", **switch: Any) -> model.KafkaFailoverSpec:
    return model.parse_spec({"active": active, "clusters": CLUSTERS, "switch": switch})


def test_a_failback_without_reverse_replication_is_refused_naming_both_ways_forward() -> None:
    found = guard(LEFT, spec(), name="prod")
    assert found is not None and found.way == "refused"
    assert "reverseReplication" in found.message and "acceptDataLoss" in found.message
    assert "kubectl patch kafkafailover prod" in found.message


def test_a_failback_over_declared_reverse_replication_is_a_planned_switch_waiting_for_it() -> None:
    found = guard(LEFT, spec(reverseReplication="mirrorMaker2"), name="prod")
    assert found is not None and (found.way, found.replication) == ("planned", "mirrorMaker2")


def test_accepting_the_data_loss_switches_back_at_once() -> None:
    found = guard(LEFT, spec(acceptDataLoss=True, reverseReplication="mirrorMaker2"), name="p")
    assert found is not None and found.way == "immediate"


def test_a_switch_to_a_cluster_not_left_unplanned_is_no_failback() -> None:
    assert guard({"activeCluster": "main"}, spec("failover"), name="prod") is None
    assert guard(LEFT, spec("failover"), name="prod") is None


def test_an_automatic_or_replicated_immediate_switch_leaves_its_source_unplanned() -> None:
    to_failover = spec("failover")
    replicated = spec("failover", replication="mirrorMaker2", mode="immediate")
    assert left_after({}, to_failover, source="main", mode="immediate", automatic=True) == "main"
    assert left_after({}, replicated, source="main", mode="immediate", automatic=False) == "main"
    assert left_after({}, to_failover, source="main", mode="immediate", automatic=False) is None, (
        "no replication declared: nothing to protect"
    )
    assert left_after({}, replicated, source="main", mode="planned", automatic=False) is None


def test_failing_back_clears_the_mark() -> None:
    back = spec("main")
    assert left_after(LEFT, back, source="failover", mode="planned", automatic=False) is None


LEFT_FAILOVER = {"leftUnplanned": "failover", "activeCluster": "main", "desiredCluster": "main"}


def test_going_back_into_a_failover_cluster_waits_for_the_forward_replication() -> None:
    found = guard(LEFT_FAILOVER, spec("failover", replication="mirrorMaker2"), name="prod")
    assert found is not None and (found.way, found.replication) == ("planned", "mirrorMaker2")
    refused = guard(LEFT_FAILOVER, spec("failover"), name="prod")
    assert refused is not None and refused.way == "refused"
    assert '"replication":"mirrorMaker2"' in refused.message, refused.message


def test_an_automatic_switch_onto_a_cluster_left_before_marks_the_one_it_left() -> None:
    onto = spec("failover")
    assert left_after(LEFT_FAILOVER, onto, source="main", mode="immediate", automatic=True) == (
        "main"
    )


def test_a_new_cluster_left_unplanned_is_counted_again() -> None:
    from failover_operator.failback import marked

    assert marked({"leftUnplanned": "main"}, "main") == {"leftUnplanned": "main"}
    assert marked({"leftUnplanned": "main"}, None) == {"leftUnplanned": None, "unreplicated": None}
    assert marked({}, "main") == {"leftUnplanned": "main", "unreplicated": None}
