"""The chart carries exact copies of what the operator defines: CRD, RBAC rules, spec schema.

Helm cannot import Python, so ``scripts/sync_chart.py`` copies them into the chart; these tests fail
as soon as a copy is stale, naming the command that refreshes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from failover_operator import rbac

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kafka-failover"
SYNC = "run `.venv/bin/python scripts/sync_chart.py` (make chart-sync)"


def test_the_chart_crd_is_an_exact_copy_of_the_generated_crd() -> None:
    copy = (CHART / "crds" / "kafkafailover.yaml").read_text()
    assert copy == (REPO / "crds" / "kafkafailover.yaml").read_text(), (
        f"charts/kafka-failover/crds/kafkafailover.yaml differs from crds/: {SYNC}"
    )


def test_the_chart_crds_folder_holds_only_that_crd() -> None:
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["kafkafailover.yaml"]


def test_the_chart_rbac_rules_are_exactly_the_operators_rules() -> None:
    rules = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())
    assert rules == rbac.RULES, f"files/operator-rules.yaml differs from rbac.RULES: {SYNC}"


def test_the_values_schema_validates_kafka_failovers_with_the_crds_spec_schema() -> None:
    crd = yaml.safe_load((REPO / "crds" / "kafkafailover.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["definitions"]["kafkaFailoverSpec"] == spec, (
        f"values.schema.json's kafkaFailoverSpec differs from the CRD: {SYNC}"
    )
    item = schema["properties"]["kafkaFailovers"]["items"]
    assert item["properties"]["spec"] == {"$ref": "#/definitions/kafkaFailoverSpec"}


def test_the_values_schema_closes_the_top_level_and_covers_every_default_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) <= set(schema["properties"])
    assert schema["properties"]["replicas"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 2,
        "description": schema["properties"]["replicas"]["description"],
    }
