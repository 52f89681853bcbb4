"""The GitOps snippets in docs/gitops-automatic-failover.md, held against what the chart renders
and what the operator writes: group, kind, JSON pointer and field manager must all match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from failover_operator import kube_objects
from kube_testbed.helm_commands import Helm

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "gitops-automatic-failover.md"
CHART = REPO / "charts" / "kafka-failover"


def yaml_blocks() -> list[dict[str, Any]]:
    text = DOC.read_text()
    return [yaml.safe_load(part.split("```", 1)[0]) for part in text.split("```yaml\n")[1:]]


def rendered_kafka_failovers(helm: Helm) -> list[dict[str, Any]]:
    values = CHART / "examples" / "values-prod.yaml"
    objects = helm.template(CHART, namespace="payments", values=(values,), settings=())
    found = [o for o in objects if o.get("kind") == "KafkaFailover"]
    assert found, "the example renders KafkaFailover objects"
    return found


def pointer(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for part in path.strip("/").split("/"):
        node = node[part]
    return node


def test_the_argo_cd_rule_names_the_rendered_objects_and_the_operators_field_manager(
    helm: Helm,
) -> None:
    argo = yaml_blocks()[0]["spec"]
    [rule] = argo["ignoreDifferences"]
    for item in rendered_kafka_failovers(helm):
        group = item["apiVersion"].split("/")[0]
        assert (rule["group"], rule["kind"]) == (group, item["kind"])
    assert rule["managedFieldsManagers"] == [kube_objects.AUTOMATIC_FIELD_MANAGER]
    assert "RespectIgnoreDifferences=true" in argo["syncPolicy"]["syncOptions"]


def test_the_flux_drift_rule_points_at_the_field_the_automatic_failover_changes(
    helm: Helm,
) -> None:
    [ignore] = yaml_blocks()[1]["spec"]["driftDetection"]["ignore"]
    for item in rendered_kafka_failovers(helm):
        assert ignore["target"]["kind"] == item["kind"]
        for path in ignore["paths"]:
            assert pointer(item, path) == item["spec"]["active"]
