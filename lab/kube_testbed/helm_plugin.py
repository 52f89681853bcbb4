"""The pytest side of helm: the ``helm`` session fixture, with the build done before any test.

Compiling helm from cold Go caches takes minutes, longer than a test's timeout, so when a selected
test asks for ``helm`` the build happens right after collection, outside every timeout, as
:mod:`kube_testbed.pytest_plugin` does for the control plane (``make fetch`` normally did it
already, which makes this a quick check). Register it in the root conftest.py's ``pytest_plugins``.
"""

from collections.abc import Iterator

import pytest

from kube_testbed import helm_building
from kube_testbed.helm_commands import Helm

FIXTURE_NAME = "helm"


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    """The pinned helm with cache, config and data folders of its own for the session."""
    yield Helm.prepared(tmp_path_factory.mktemp("helm-home"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Build helm before the first test when a selected test needs it."""
    if any(FIXTURE_NAME in getattr(item, "fixturenames", ()) for item in items):
        helm_building.build()
