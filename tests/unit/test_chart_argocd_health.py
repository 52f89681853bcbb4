"""The Argo CD health check in docs/argocd-health.md, run in Lua 5.1 on statuses the operator makes.

Argo CD evaluates health checks with gopher-lua (Lua 5.1); lupa's Lua 5.1 runs the very block a
user pastes into ``argocd-cm``, and the statuses come from ``failover_operator.status.compute``, so
a change to the status shape or to the script shows up here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51  # type: ignore[import-untyped]

from failover_operator import status
from failover_operator.status import PodReport, Problem

DOC = Path(__file__).resolve().parents[2] / "docs" / "argocd-health.md"
KEY = "resource.customizations.health.kafka-failover.github.io_KafkaFailover"

Health = Callable[[dict[str, Any]], tuple[str, str]]


def health_script() -> str:
    text = DOC.read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    script: str = yaml.safe_load(block)["data"][KEY]
    return script


@pytest.fixture(scope="module")
def health() -> Health:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    function = runtime.execute(f"return function(obj)\n{health_script()}\nend")

    def evaluate(obj: dict[str, Any]) -> tuple[str, str]:
        result = function(runtime.table_from(obj, recursive=True))
        return str(result["status"]), str(result["message"])

    return evaluate


def kfo(
    *,
    active: str = "failover",
    generation: int = 2,
    pods: Sequence[PodReport] = (),
    problems: Sequence[Problem] = (),
    switching: bool = False,
    observed: int | None = None,
) -> dict[str, Any]:
    computed = status.compute(
        desired=active,
        generation=observed if observed is not None else generation,
        pods=list(pods),
        problems=list(problems),
        switching=switching,
        previous=None,
        at="2026-01-01T00:00:00Z",
    )
    return {
        "metadata": {"name": "prod", "generation": generation},
        "spec": {"active": active},
        "status": computed,
    }


def switched(count: int, cluster: str = "failover", epoch: int = 2) -> list[PodReport]:
    return [PodReport(f"gw-{i}", cluster, epoch) for i in range(count)]


def test_an_object_without_status_is_progressing(health: Health) -> None:
    state, message = health({"metadata": {"generation": 1}, "spec": {"active": "main"}})
    assert state == "Progressing" and "operator" in message


def test_a_spec_the_operator_has_not_observed_yet_is_progressing(health: Health) -> None:
    obj = kfo(generation=3, observed=2, pods=switched(3))
    assert health(obj) == ("Progressing", "Waiting for the operator to observe generation 3")


def test_a_switch_in_progress_is_progressing_with_the_pod_count(health: Health) -> None:
    pods = [*switched(2), PodReport("gw-2", "main", 1)]
    state, message = health(kfo(pods=pods, switching=True))
    assert state == "Progressing"
    assert message == "Switching to failover: 2/3 gateway pods switched"


def test_every_pod_switched_is_healthy(health: Health) -> None:
    state, message = health(kfo(pods=switched(3)))
    assert state == "Healthy"
    assert message == "all 3 ready gateway pods serve failover (3/3)"


def test_pods_left_behind_after_the_switch_are_degraded(health: Health) -> None:
    pods = [*switched(2), PodReport("gw-2", None, None, error="connection refused")]
    state, message = health(kfo(pods=pods))
    assert state == "Degraded"
    assert message == "PodsNotSwitched: gw-2: connection refused"


def test_a_problem_the_operator_reports_is_degraded(health: Health) -> None:
    problem = Problem("SecretMissing", "Secret kafka-main-credentials not found")
    state, message = health(kfo(problems=[problem]))
    assert (state, message) == (
        "Degraded",
        "SecretMissing: Secret kafka-main-credentials not found",
    )


def test_no_ready_gateway_pod_yet_is_progressing(health: Health) -> None:
    assert health(kfo()) == ("Progressing", "0/0 gateway pods serve failover")


def test_a_stale_condition_is_progressing_even_if_status_is_current(health: Health) -> None:
    obj = kfo(pods=switched(3))
    for condition in obj["status"]["conditions"]:
        condition["observedGeneration"] = 1
    state, message = health(obj)
    assert state == "Progressing" and message.endswith("from generation 1")
