"""Generating the KafkaFailover CustomResourceDefinition from the typed model.

Why it exists: the CRD must be a *structural* schema (no ``$ref``, no ``anyOf`` for optional
fields, free-form maps marked ``x-kubernetes-preserve-unknown-fields``), while pydantic emits plain
JSON Schema. This converts one into the other and adds what only Kubernetes knows: the CEL rule
that ``spec.active`` names a declared cluster, list-map keys, the status subresource and printer
columns. ``python -m failover_operator.crd_building`` prints the YAML kept in ``crds/``.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from failover_operator import model

_DROPPED_KEYS = frozenset({"title", "$defs", "additionalProperties", "default"})
_SCALAR_TYPES = frozenset({"string", "integer", "boolean", "number"})
ACTIVE_RULE = {
    "rule": "self.clusters.exists(c, c.name == self.active)",
    "message": "spec.active must name one of spec.clusters[].name",
    "fieldPath": ".active",
    "reason": "FieldValueInvalid",
}
PRINTER_COLUMNS = [
    {"name": "Desired", "type": "string", "jsonPath": ".spec.active"},
    {"name": "Current", "type": "string", "jsonPath": ".status.activeCluster"},
    {"name": "Switched", "type": "string", "jsonPath": ".status.gateways.summary"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.switchover.phase"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, definitions)
    return {key: _resolve(value, definitions) for key, value in node.items()}


def _without_null(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` (an optional field) becomes X: absence is the null."""
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    if len(options) != 1:
        raise ValueError(f"cannot express {node} in a structural schema")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**options[0], **rest}


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "anyOf" in node:
        return _structural(_without_null(node))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "default" and value is not None and node.get("type") in _SCALAR_TYPES:
            out["default"] = value
        elif key not in _DROPPED_KEYS:
            out[key] = _structural(value)
    if node.get("type") == "object" and "properties" not in node:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("type") in _SCALAR_TYPES:
            out["additionalProperties"] = _structural(extra)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def spec_schema() -> dict[str, Any]:
    raw = model.KafkaFailoverSpec.model_json_schema(by_alias=True)
    schema: dict[str, Any] = _structural(_resolve(raw, raw.get("$defs", {})))
    clusters = schema["properties"]["clusters"]
    clusters["x-kubernetes-list-type"] = "map"
    clusters["x-kubernetes-list-map-keys"] = ["name"]
    schema["x-kubernetes-validations"] = [ACTIVE_RULE]
    return schema


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{model.PLURAL}.{model.GROUP}"},
        "spec": {
            "group": model.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": model.KIND,
                "plural": model.PLURAL,
                "singular": model.SINGULAR,
                "shortNames": list(model.SHORT_NAMES),
                "categories": ["kafka"],
            },
            "versions": [
                {
                    "name": model.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A Kafka DR gateway: clusters, the active one, pods.",
                            "required": ["spec"],
                            "properties": {
                                "spec": spec_schema(),
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    header = (
        "# Generated by `python -m failover_operator.crd_building` from the typed model in\n"
        "# operator/failover_operator/model.py. Do not edit: a test fails when they drift.\n"
    )
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
