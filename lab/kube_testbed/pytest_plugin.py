"""The pytest side of the Kubernetes testbed: the ``kube_control_plane`` session fixture.

Starting etcd and kube-apiserver takes seconds, so one control plane is shared by the session and
started lazily, only when a selected test asks for it. Building the binaries can take many
minutes from cold caches, far longer than a test's timeout, so when a selected test needs the
control plane the build happens right after collection, outside every test's timeout (``make
fetch`` normally did it already, making this a quick check). Register with
``pytest_plugins = ["kube_testbed.pytest_plugin"]`` in the root conftest.py.
"""

from collections.abc import Generator, Iterator

import pytest

from kube_testbed import building, control_plane
from kube_testbed.control_plane import ControlPlane

FIXTURE_NAME = "kube_control_plane"


@pytest.fixture(scope="session")
def kube_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager, shared by the session: keep it tidy.

    Act as cluster-admin with ``kube_control_plane.kubectl(...)`` or its ``kubeconfig``; use a
    namespace of your own per test. No kubelet or scheduler runs, so Pods stay Pending.
    """
    plane = control_plane.start(tmp_path_factory.mktemp("kube-control-plane"))
    yield plane
    plane.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Build the binaries before the first test when a selected test needs the control plane."""
    if any(FIXTURE_NAME in getattr(item, "fixturenames", ()) for item in items):
        building.build()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the control plane's log tails to the report of a failing test that used it."""
    report: pytest.TestReport = yield
    plane = getattr(item, "funcargs", {}).get(FIXTURE_NAME)
    if report.failed and isinstance(plane, ControlPlane):
        report.sections.append(("log tail of the kube control plane", plane.logs()))
    return report
