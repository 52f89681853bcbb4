"""Start retries: a port grabbed between choosing and binding it costs a retry, not a red build."""

from pathlib import Path

import pytest

from kafka_testbed import launching
from kafka_testbed.clusters import Cluster
from kafka_testbed.errors import ClusterStartError


class FlakyStart:
    def __init__(self, *failures: str) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.cluster = Cluster("stand-in", "flaky", {}, Path("/nonexistent"))

    def __call__(self) -> Cluster:
        self.calls += 1
        if self.failures:
            raise ClusterStartError(self.failures.pop(0))
        return self.cluster


def test_a_start_that_lost_a_port_to_another_process_is_retried_on_new_ports() -> None:
    start = FlakyStart("java.net.BindException: Address already in use", "AddrInUse")

    cluster = launching._retrying_lost_port_races(start, ports_pinned=False)

    assert cluster is start.cluster
    assert start.calls == 3


def test_a_start_keeps_losing_port_races_only_so_many_times() -> None:
    start = FlakyStart(*["Address already in use"] * launching.START_ATTEMPTS)

    with pytest.raises(ClusterStartError):
        launching._retrying_lost_port_races(start, ports_pinned=False)
    assert start.calls == launching.START_ATTEMPTS


def test_a_taken_port_the_caller_chose_is_not_retried() -> None:
    start = FlakyStart("Port already in use: 127.0.0.1:9092")

    with pytest.raises(ClusterStartError):
        launching._retrying_lost_port_races(start, ports_pinned=True)
    assert start.calls == 1


def test_other_start_failures_are_not_retried() -> None:
    start = FlakyStart("node 1 exited with status 1: ConfigException")

    with pytest.raises(ClusterStartError, match="ConfigException"):
        launching._retrying_lost_port_races(start, ports_pinned=False)
    assert start.calls == 1


@pytest.mark.parametrize("node_ids", [[], [1, 1], [-1]])
def test_node_ids_must_be_distinct_and_non_negative(node_ids: list[int]) -> None:
    with pytest.raises(ValueError, match="node_ids"):
        launching.start_kafka(node_ids)


def test_ports_for_unknown_nodes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown node ids \[5\]"):
        launching.start_kafka([1], ports={5: 9092})
