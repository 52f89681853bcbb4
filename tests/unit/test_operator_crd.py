"""The CRD is generated from the operator's typed model and kept in crds/: they cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from failover_operator import crd_building, model

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "kafkafailover.yaml"


def test_the_crd_in_the_repository_is_the_one_the_model_generates() -> None:
    assert CRD_FILE.read_text() == crd_building.render(), (
        "crds/kafkafailover.yaml is stale: run "
        "`.venv/bin/python -m failover_operator.crd_building > crds/kafkafailover.yaml`"
    )


def test_the_schema_is_structural_no_refs_no_anyof_no_nulls() -> None:
    text = json.dumps(crd_building.build_crd())
    for forbidden in ('"$ref"', '"anyOf"', '"$defs"', '"default": null', '"title"'):
        assert forbidden not in text


def test_every_spec_field_of_the_model_is_in_the_schema() -> None:
    schema = crd_building.spec_schema()
    assert set(schema["properties"]) == {
        "active",
        "clusters",
        "gateway",
        "switch",
        "automaticFailover",
    }
    cluster = schema["properties"]["clusters"]["items"]["properties"]
    aliases = {f.alias or name for name, f in model.ClusterSpec.model_fields.items()}
    assert set(cluster) == aliases


def test_the_crd_has_the_cel_rule_short_name_status_and_printer_columns() -> None:
    crd = crd_building.build_crd()
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"][0]["rule"] == (
        "self.clusters.exists(c, c.name == self.active)"
    )
    assert crd["spec"]["names"]["shortNames"] == ["kfo"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Desired",
        "Current",
        "Switched",
        "Phase",
        "Ready",
        "Age",
    ]


def test_the_example_object_parses_with_defaults() -> None:
    spec = model.parse_spec(yaml.safe_load(EXAMPLE)["spec"])
    assert spec.active == "main" and spec.gateway.replicas == 3
    assert spec.cluster("failover") is not None and spec.switch.fence_unacknowledged


def test_a_spec_with_one_cluster_or_unknown_keys_is_refused() -> None:
    raw = yaml.safe_load(EXAMPLE)["spec"]
    with pytest.raises(ValidationError, match="at least 2"):
        model.parse_spec({**raw, "clusters": raw["clusters"][:1]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        model.parse_spec({**raw, "colour": "blue"})


EXAMPLE = """
apiVersion: kafka-failover.github.io/v1alpha1
kind: KafkaFailover
metadata: {name: prod}
spec:
  active: main
  clusters:
    - name: main
      bootstrapServers: kafka-primary:9092
    - name: failover
      bootstrapServers: kafka-secondary:9092
      role: failover
"""
