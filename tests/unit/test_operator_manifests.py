"""Manifests the operator applies: a switch never rolls pods, everything else does."""

from __future__ import annotations

from typing import Any

import yaml

from failover_gateway.config import config_from_mapping
from failover_operator import manifests, model

SPEC = model.parse_spec(
    {
        "active": "main",
        "clusters": [
            {
                "name": "main",
                "bootstrapServers": "kafka-a:9092",
                "properties": {"request.timeout.ms": "20000"},
            },
            {"name": "failover", "bootstrapServers": "kafka-b:9092", "role": "failover"},
        ],
        "gateway": {"replicas": 2, "listener": {"brokerPortCount": 4}},
    }
)


def flipped(spec: model.KafkaFailoverSpec, active: str) -> model.KafkaFailoverSpec:
    return spec.model_copy(update={"active": active})


def template(spec: model.KafkaFailoverSpec, epoch: int = 1) -> dict[str, Any]:
    config_map = manifests.config_map("prod", "kafka", spec, epoch)
    hash_ = manifests.config_hash(config_map)
    return manifests.deployment("prod", "kafka", spec, hash_)["spec"]["template"]


def test_the_gateway_config_is_one_the_gateway_itself_accepts() -> None:
    config_map = manifests.config_map("prod", "kafka", SPEC, 3)
    gateway = config_from_mapping(yaml.safe_load(config_map["data"]["gateway.yaml"]))
    assert gateway.clusters["failover"].is_failover
    assert gateway.gateway.listener.advertised_host == "prod-gateway.kafka.svc"
    assert str(gateway.gateway.active_file) == "/etc/kafka-failover/config/active"
    assert yaml.safe_load(config_map["data"]["active"]) == {"cluster": "main", "epoch": 3}


def test_the_automatic_failovers_evidence_settings_reach_the_gateway_config() -> None:
    spec = SPEC.model_copy(
        update={
            "automatic_failover": model.AutomaticFailoverSpec.model_validate(
                {"enabled": True, "canaryTopic": "canary", "probeIntervalSeconds": 2}
            )
        }
    )
    config_map = manifests.config_map("prod", "kafka", spec, 3)
    gateway = config_from_mapping(yaml.safe_load(config_map["data"]["gateway.yaml"])).gateway
    assert gateway.canary_topic == "canary" and gateway.timeouts.probe_interval_ms == 2000
    plain = config_from_mapping(
        yaml.safe_load(manifests.config_map("prod", "kafka", SPEC, 3)["data"]["gateway.yaml"])
    )
    assert plain.gateway.canary_topic is None and plain.gateway.timeouts.probe_interval_ms == 5000


def test_switching_the_active_cluster_leaves_the_pod_template_unchanged() -> None:
    assert template(SPEC, epoch=1) == template(flipped(SPEC, "failover"), epoch=2)


def test_any_other_change_rolls_the_pods_through_the_config_hash() -> None:
    changed = SPEC.model_copy(update={"switch": model.SwitchSpec(drainMs=500)})
    key = manifests.CONFIG_HASH_ANNOTATION
    assert (
        template(SPEC)["metadata"]["annotations"][key]
        != (template(changed)["metadata"]["annotations"][key])
    )


def test_gateway_pods_are_hardened() -> None:
    pod = template(SPEC)["spec"]
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not security["allowPrivilegeEscalation"]
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert pod["automountServiceAccountToken"] is False


def test_the_service_exposes_bootstrap_broker_and_admin_ports() -> None:
    ports = {
        p["name"]: p["port"] for p in manifests.service("prod", "kafka", SPEC)["spec"]["ports"]
    }
    assert ports == {
        "bootstrap": 6969,
        "broker-0": 6970,
        "broker-1": 6971,
        "broker-2": 6972,
        "broker-3": 6973,
        "admin": 8888,
    }


def test_admin_credentials_reach_the_pod_only_through_the_secret() -> None:
    container = template(SPEC)["spec"]["containers"][0]
    sources = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert sources == {
        "GATEWAY_ADMIN_USER": "prod-gateway-admin",
        "GATEWAY_ADMIN_PASSWORD": "prod-gateway-admin",
    }
    config_map = manifests.config_map("prod", "kafka", SPEC, 1)
    assert "password" not in str(config_map).lower()


def test_owned_objects_point_at_their_kafkafailover() -> None:
    owner = {"metadata": {"name": "prod", "uid": "1234"}}
    reference = manifests.owned(manifests.service("prod", "kafka", SPEC), owner)
    assert reference["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "kafka-failover.github.io/v1alpha1",
            "kind": "KafkaFailover",
            "name": "prod",
            "uid": "1234",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
