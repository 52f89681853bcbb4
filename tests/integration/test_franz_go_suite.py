"""franz-go's own kgo integration tests, straight against Kafka and through the gateway in front of
the same broker: every test that passes straight must pass through the gateway.

franz-go's maintainers wrote these tests to break their client (groups of both protocols
rebalancing under load, transactions, regex consumers, topics deleted while consumed), so they
reach corners of the protocol our own tests were not written for. The selection, and why each
test is in or out, is in :mod:`kafka_testbed.franz_go` (``python -m kafka_testbed.franz_go
--list``). The straight run is the control: it must pass the core tests, or a broken binary or
broker would make the comparison pass vacuously (a core test that fails straight runs once more:
franz-go's ETL tests fail now and then on a loaded machine without any gateway). The comparison
table is printed to the terminal whether the test passes or not. Main is Kafka 4.4.0 (default
features, ``transaction.version=2``) and 4.1.1. The gateway's failover is the same broker as
its main: the gateway offers clients only what every configured cluster supports, so a failover
of another release would hide, say, 4.4.0's share-group APIs and franz-go's share tests would
skip through the gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kafka_testbed import franz_go, gateways
from kafka_testbed.clusters import Cluster


@pytest.fixture(scope="module")
def kgo_tests() -> Path:
    """The kgo test binary (built from the Go module proxy on first use, then cached)."""
    return franz_go.build()


@pytest.fixture
def gateway_in_front(
    backend: Cluster, gateway_factory: Callable[..., gateways.GatewayProcess]
) -> gateways.GatewayProcess:
    """A gateway whose main (and failover) cluster is the test's broker."""
    return gateway_factory({"main": backend.bootstrap, "failover": backend.bootstrap})


GATEWAY_AND_CLUSTER_START_SECONDS = 60.0


@pytest.mark.timeout(2 * franz_go.run_deadline_seconds() + GATEWAY_AND_CLUSTER_START_SECONDS)
@pytest.mark.parametrize(
    "backend", ["kafka_newest", "kafka_single"], indirect=True, ids=["kafka-4.4.0", "kafka-4.1.1"]
)
def test_every_kgo_test_that_passes_straight_against_kafka_passes_through_the_gateway(
    backend: Cluster,
    gateway_in_front: gateways.GatewayProcess,
    kgo_tests: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    straight = franz_go.rerun_not_passed(
        kgo_tests,
        franz_go.run_selection(kgo_tests, backend.bootstrap, log_dir=tmp_path / "straight"),
        franz_go.CORE_TESTS,
        log_dir=tmp_path / "straight-again",
    )
    through = franz_go.run_selection(
        kgo_tests, gateway_in_front.bootstrap, log_dir=tmp_path / "gateway"
    )

    comparison = franz_go.compare(straight.results, through.results, franz_go.selected_tests())
    logs = (*straight.logs, *through.logs, gateway_in_front.log_path)
    report = describe(backend, straight, through, comparison, logs)
    with capsys.disabled():
        print("\n" + report, flush=True)
    assert not straight.not_passed(franz_go.CORE_TESTS), (
        f"straight against {backend.name} the core tests must pass, or the comparison proves "
        f"nothing:\n{report}"
    )
    assert not comparison.regressions, (
        f"passed straight against {backend.name} but not through the gateway: "
        f"{', '.join(row.test for row in comparison.regressions)}\n{report}"
    )


def describe(
    backend: Cluster,
    straight: franz_go.SuiteRun,
    through: franz_go.SuiteRun,
    comparison: franz_go.Comparison,
    logs: tuple[Path, ...],
) -> str:
    return "\n".join(
        [
            f"franz-go {franz_go.franz_go_version()} kgo tests, straight against {backend.name} "
            f"({straight.seconds:.0f}s) and through the gateway ({through.seconds:.0f}s):",
            comparison.table(),
            "logs: " + " ".join(map(str, logs)),
        ]
    )
