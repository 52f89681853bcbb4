"""Shared fixtures: real brokers started once per session on first use, and their logs on failure.

JVM brokers take seconds to start, so ``kafka_single``, ``kafka_triple`` and ``tansu`` are
session-scoped and lazy: a run that uses none of them starts nothing. So are the two clusters
with a secured client listener, ``kafka_scram_tls`` and ``kafka_plain_mtls`` (certificates from
``lab_tls``). Tests that break clusters (kill, stop, bad config) start their own through the
``lab`` fixture. When a test fails, the log tail of every cluster it used is attached to its
report.
"""

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator

import pytest

from kafka_testbed import clusters, security, versions
from kafka_testbed.clusters import Cluster
from kafka_testbed.labs import Lab
from kafka_testbed.security import TlsMaterial

# The Kubernetes control plane (kube_control_plane) and helm fixtures live with their harness.
pytest_plugins = ["kube_testbed.pytest_plugin", "kube_testbed.helm_plugin"]

SESSION_LOG_TAIL_LINES = 40
BACKEND_MARKERS = {
    "kafka_single": "kafka",
    "kafka_triple": "kafka",
    "kafka_scram_tls": "kafka",
    "kafka_plain_mtls": "kafka",
    "kafka_newest": "kafka",
    "kafka_transactions_v1": "kafka",
    "tansu": "tansu",
}
TEST_STOP_GRACE_SECONDS = 0.5
"""Lab data is thrown away, so stops need not wait long for a clean shutdown."""

_session_lab = Lab(grace_seconds=TEST_STOP_GRACE_SECONDS)


@pytest.fixture(scope="session")
def kafka_single() -> Iterator[Cluster]:
    """Apache Kafka, one combined broker+controller, node id 1. Shared: do not break it."""
    cluster = _session_lab.kafka([1], name="kafka-single")
    yield cluster
    cluster.stop(TEST_STOP_GRACE_SECONDS)


@pytest.fixture(scope="session")
def kafka_triple() -> Iterator[Cluster]:
    """Apache Kafka, three combined nodes (ids 1, 2, 3) in one quorum. Shared: do not break it."""
    cluster = _session_lab.kafka([1, 2, 3], name="kafka-triple")
    yield cluster
    cluster.stop(TEST_STOP_GRACE_SECONDS)


@pytest.fixture(scope="session")
def kafka_newest() -> Iterator[Cluster]:
    """The newest Apache Kafka release Maven Central serves (``versions.NEWEST_KAFKA_VERSION``),
    one node, id 1, its release's default features (``transaction.version=2``, share groups
    and streams groups on). Shared: do not break it."""
    cluster = _session_lab.kafka(
        [1], name="kafka-newest", kafka_version=versions.NEWEST_KAFKA_VERSION
    )
    yield cluster
    cluster.stop(TEST_STOP_GRACE_SECONDS)


@pytest.fixture(scope="session")
def kafka_transactions_v1() -> Iterator[Cluster]:
    """The newest release formatted with ``transaction.version=1`` (clients must use the
    pre-KIP-890-part-2 transaction protocol), one node, id 3. Shared: do not break it."""
    cluster = _session_lab.kafka(
        [3],
        name="kafka-transactions-v1",
        kafka_version=versions.NEWEST_KAFKA_VERSION,
        features={"transaction.version": 1},
    )
    yield cluster
    cluster.stop(TEST_STOP_GRACE_SECONDS)


@pytest.fixture(scope="session")
def tansu() -> Iterator[Cluster]:
    """One Tansu broker with in-memory storage. Shared: do not break it."""
    cluster = _session_lab.tansu(name="tansu")
    yield cluster
    cluster.stop(TEST_STOP_GRACE_SECONDS)


@pytest.fixture(scope="session")
def lab_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """The session's lab CA with broker, client, expired and foreign-CA certificates (PEM, P12)."""
    return security.generate_tls_material(tmp_path_factory.mktemp("lab-tls"))


@pytest.fixture(scope="session")
def kafka_scram_tls(lab_tls: TlsMaterial) -> Iterator[Cluster]:
    """Apache Kafka, node id 1, client listener SASL_SSL + SCRAM-SHA-512 (``security.MAIN_USER``).

    Connect with ``security.client_config(security.scram_tls(lab_tls))``. Shared: do not break it.
    """
    cluster = _session_lab.kafka([1], name="kafka-scram-tls", security=security.scram_tls(lab_tls))
    yield cluster
    cluster.stop(TEST_STOP_GRACE_SECONDS)


@pytest.fixture(scope="session")
def kafka_plain_mtls(lab_tls: TlsMaterial) -> Iterator[Cluster]:
    """Apache Kafka, node id 7, client listener SASL_SSL + PLAIN + required client certificate.

    The PLAIN user is ``security.FAILOVER_USER``; the certificate must be signed by the lab CA.

    Connect with ``security.client_config(security.plain_mtls(lab_tls))``. Shared: do not break it.
    """
    cluster = _session_lab.kafka(
        [7], name="kafka-plain-mtls", security=security.plain_mtls(lab_tls)
    )
    yield cluster
    cluster.stop(TEST_STOP_GRACE_SECONDS)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Cluster:
    """The shared cluster named by indirect parametrization (``kafka_single``, ``tansu``, ...)."""
    cluster: Cluster = request.getfixturevalue(request.param)
    return cluster


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Start throwaway clusters for this test only; all are stopped when it ends."""
    with Lab(grace_seconds=TEST_STOP_GRACE_SECONDS) as test_lab:
        yield test_lab


LEFT_TASKS_GRACE_SECONDS = 2.0
LEFT_TASKS_ROUNDS = 5


@pytest.fixture
async def no_task_outlives_its_test() -> AsyncIterator[None]:
    """Cancel the tasks a test left running in its loop (a dial waiting on a gate that never
    opens, a worker between dials). Left alone they are destroyed pending when the loop is
    garbage collected, during whichever later test that happens in, and asyncio logs an error
    into that test's captured records. Used by the tiers without real peers (their conftests)."""
    yield
    current = asyncio.current_task()
    for _ in range(LEFT_TASKS_ROUNDS):  # a cancelled task may start another as it ends
        left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
        if not left:
            return
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=LEFT_TASKS_GRACE_SECONDS)
        await asyncio.sleep(0)


def pytest_configure(config: pytest.Config) -> None:
    """kafka-python 3.0 loads its protocol schemas through a deprecated importlib API."""
    config.addinivalue_line(
        "filterwarnings", "ignore:.*is deprecated. Use files:DeprecationWarning"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the brokers they need, so ``-m 'not kafka'`` deselects JVM tests."""
    for item in items:
        for name in _backends_used(item):
            item.add_marker(BACKEND_MARKERS[name])


def _backends_used(item: pytest.Item) -> set[str]:
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        names |= {value for value in callspec.params.values() if isinstance(value, str)}
    return names & set(BACKEND_MARKERS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the log tail of every cluster the test used to its report."""
    report: pytest.TestReport = yield
    if report.failed:
        for cluster in _clusters_used(item):
            title = f"log tail of {cluster.kind} cluster {cluster.name}"
            report.sections.append((title, cluster.log_tail(SESSION_LOG_TAIL_LINES)))
    return report


def _clusters_used(item: pytest.Item) -> list[Cluster]:
    found: list[Cluster] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Cluster):
            found.append(value)
        elif isinstance(value, Lab):
            found.extend(value.started)
    return list({id(cluster): cluster for cluster in found}.values())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how long each shared cluster took to start: the suite's fixed cost."""
    for cluster in _session_lab.started:
        terminalreporter.write_line(f"kafka_testbed: {cluster.describe()}")


def pytest_sessionfinish() -> None:
    """Whatever happened, no broker outlives the session."""
    clusters.stop_all(_session_lab.started, TEST_STOP_GRACE_SECONDS)
