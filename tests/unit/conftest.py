"""The unit tier (pure code): no test leaves a task behind for a later test's loop."""

import pytest


@pytest.fixture(autouse=True)
def _tasks_cancelled(no_task_outlives_its_test: None) -> None:
    """Every test of this tier gets the root conftest's task cleanup."""
