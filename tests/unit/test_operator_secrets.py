"""Secrets in gateway pods: mounted read-only, named by path in the config, never copied into it;
a new Secret version rolls the pods, a switch still does not; a missing Secret or key is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from failover_gateway.config import config_from_mapping
from failover_operator import manifests, model, reconciling, secret_mounts
from failover_operator.secret_mounts import Observed

NAMESPACE = "kafka"
OWNER = {"metadata": {"name": "prod", "uid": "1234"}}
SECRET_VALUES = ("s3cr3t-password", "-----BEGIN PRIVATE KEY-----", "users:")


def secured_spec(**client: Any) -> model.KafkaFailoverSpec:
    return model.parse_spec(
        {
            "active": "main",
            "clusters": [
                {
                    "name": "main",
                    "bootstrapServers": "kafka-a:9093",
                    "securityProtocol": "SASL_SSL",
                    "saslMechanism": "SCRAM-SHA-512",
                    "credentialsSecret": {"name": "main-credentials"},
                    "tlsSecret": {"name": "main-tls"},
                },
                {
                    "name": "failover",
                    "bootstrapServers": "kafka-b:9093",
                    "securityProtocol": "SASL_SSL",
                    "saslMechanism": "PLAIN",
                    "credentialsSecret": {"name": "failover-credentials"},
                    "tlsSecret": {"name": "failover-tls"},
                    "role": "failover",
                },
            ],
            "gateway": {
                "clientSecurity": {
                    "protocol": "SASL_SSL",
                    "saslMechanisms": ["SCRAM-SHA-512"],
                    "usersSecret": {"name": "gateway-users"},
                    "tlsSecret": {"name": "gateway-tls"},
                    **client,
                }
            },
        }
    )


def everything_seen(**versions: str) -> dict[str, Observed | None]:
    keys = {
        "main-credentials": {"username", "password"},
        "failover-credentials": {"username", "password"},
        "main-tls": {"ca.crt"},
        "failover-tls": {"ca.crt", "tls.crt", "tls.key"},
        "gateway-users": {"users.yaml"},
        "gateway-tls": {"tls.crt", "tls.key"},
        "prod-gateway-admin": {"username", "password"},
    }
    return {
        name: Observed(versions.get(name.replace("-", "_"), "1"), frozenset(found))
        for name, found in keys.items()
    }


def target(generation: int = 1) -> reconciling.Target:
    return reconciling.Target("prod", NAMESPACE, generation, OWNER)


def objects(spec: model.KafkaFailoverSpec, seen: Any, generation: int = 1) -> dict[str, Any]:
    built = reconciling.gateway_objects(target(generation), spec, seen)
    return {item["kind"]: item for item in built}


def pod_template(spec: model.KafkaFailoverSpec, seen: Any, generation: int = 1) -> Any:
    return objects(spec, seen, generation)["Deployment"]["spec"]["template"]


def config_document(spec: model.KafkaFailoverSpec, seen: Any) -> dict[str, Any]:
    text = objects(spec, seen)["ConfigMap"]["data"]["gateway.yaml"]
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def config_hash(spec: model.KafkaFailoverSpec, seen: Any, generation: int = 1) -> str:
    annotations = pod_template(spec, seen, generation)["metadata"]["annotations"]
    return str(annotations[manifests.CONFIG_HASH_ANNOTATION])


def test_every_referenced_secret_is_its_own_read_only_volume_readable_by_the_gateway() -> None:
    pod = pod_template(secured_spec(), everything_seen())["spec"]
    secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert secret_volumes == {
        "cluster-0-credentials": {"secretName": "main-credentials", "defaultMode": 0o400},
        "cluster-0-tls": {"secretName": "main-tls", "defaultMode": 0o400},
        "cluster-1-credentials": {"secretName": "failover-credentials", "defaultMode": 0o400},
        "cluster-1-tls": {"secretName": "failover-tls", "defaultMode": 0o400},
        "clients-users": {"secretName": "gateway-users", "defaultMode": 0o400},
        "clients-tls": {"secretName": "gateway-tls", "defaultMode": 0o400},
    }
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["cluster-1-tls"] == {
        "name": "cluster-1-tls",
        "mountPath": "/etc/kafka-failover/secrets/failover/tls",
        "readOnly": True,
    }
    assert mounts["clients-users"]["mountPath"] == "/etc/kafka-failover/clients/users"
    assert all(mounts[name]["readOnly"] for name in secret_volumes)
    assert mounts["config"]["mountPath"] == "/etc/kafka-failover/config"
    assert pod["securityContext"]["fsGroup"] == manifests.RUN_AS_USER


def test_the_gateway_config_only_names_the_mounted_files() -> None:
    document = config_document(secured_spec(clientAuth="none"), everything_seen())
    main, failover = document["config"]["main"], document["config"]["failover"]
    base = "/etc/kafka-failover/secrets"
    assert main["sasl.username"] == "${file:" + base + "/main/credentials/username}"
    assert main["sasl.password"] == "${file:" + base + "/main/credentials/password}"
    assert main["ssl.ca.location"] == base + "/main/tls/ca.crt"
    assert "ssl.certificate.location" not in main, "main-tls holds no client certificate"
    assert failover["ssl.certificate.location"] == base + "/failover/tls/tls.crt"
    assert failover["ssl.key.location"] == base + "/failover/tls/tls.key"
    assert document["gateway"]["listener"]["security"] == {
        "protocol": "SASL_SSL",
        "saslMechanisms": ["SCRAM-SHA-512"],
        "usersFile": "/etc/kafka-failover/clients/users/users.yaml",
        "tls": {
            "certificate": "/etc/kafka-failover/clients/tls/tls.crt",
            "key": "/etc/kafka-failover/clients/tls/tls.key",
            "clientAuth": "none",
        },
    }


def test_the_gateway_accepts_the_config_once_the_secrets_are_mounted(tmp_path: Path) -> None:
    seen = everything_seen()
    text = objects(secured_spec(clientAuth="required"), seen)["ConfigMap"]["data"]["gateway.yaml"]
    for mount in secret_mounts.mounts(secured_spec(clientAuth="required")):
        folder = tmp_path / mount.path.lstrip("/")
        folder.mkdir(parents=True)
        for key in seen[mount.secret].keys | {"ca.crt"}:  # type: ignore[union-attr]
            (folder / key).write_text(f"{mount.secret}/{key}")
    local = text.replace("/etc/kafka-failover", str(tmp_path / "etc/kafka-failover"))
    config = config_from_mapping(yaml.safe_load(local))
    assert config.clusters["main"].security.sasl is not None
    assert config.clusters["main"].security.sasl.password == "main-credentials/password"
    assert config.clusters["failover"].security.tls is not None
    assert config.clusters["failover"].security.tls.certificate is not None
    listener = config.gateway.listener.security
    assert listener.tls is not None and listener.tls.client_auth == "required"
    assert listener.tls.client_ca is not None


def test_the_config_map_holds_no_secret_value() -> None:
    config_map = objects(secured_spec(), everything_seen())["ConfigMap"]
    text = yaml.safe_dump(config_map)
    assert not [value for value in SECRET_VALUES if value in text]
    for properties in yaml.safe_load(config_map["data"]["gateway.yaml"])["config"].values():
        for key in model.SECRET_PROPERTIES:
            assert properties.get(key, "${file:/etc/kafka-failover/secrets/").startswith(
                "${file:/etc/kafka-failover/secrets/"
            )


def test_a_new_version_of_any_used_secret_rolls_the_pods() -> None:
    spec, before = secured_spec(), config_hash(secured_spec(), everything_seen())
    for rotated in ("main_credentials", "failover_tls", "gateway_users", "prod_gateway_admin"):
        assert config_hash(spec, everything_seen(**{rotated: "2"})) != before, rotated


def test_switching_the_active_cluster_leaves_a_secured_pod_template_unchanged() -> None:
    spec, seen = secured_spec(), everything_seen()
    flipped = spec.model_copy(update={"active": "failover"})
    assert pod_template(spec, seen, 1) == pod_template(flipped, seen, 2)


def test_a_secret_appearing_rolls_the_pods_and_its_client_certificate_is_configured() -> None:
    spec = secured_spec()
    seen = everything_seen()
    missing = {**seen, "failover-tls": None}
    assert config_hash(spec, missing) != config_hash(spec, seen)
    failover = config_document(spec, missing)["config"]["failover"]
    assert failover["ssl.ca.location"].endswith("/failover/tls/ca.crt")
    assert "ssl.certificate.location" not in failover


def test_missing_secrets_and_keys_are_named_with_the_field_referencing_them() -> None:
    seen = everything_seen()
    seen["main-credentials"] = None
    seen["failover-tls"] = Observed("1", frozenset({"ca.crt", "tls.crt"}))
    seen["gateway-tls"] = Observed("1", frozenset({"tls.crt", "tls.key"}))
    problems = reconciling.secret_problems(target(), secured_spec(clientAuth="required"), seen)
    assert [(p.reason, p.message) for p in problems] == [
        (
            "SecretMissing",
            "Secret main-credentials (spec.clusters[main].credentialsSecret) not found in "
            "namespace kafka",
        ),
        (
            "SecretKeyMissing",
            "Secret failover-tls (spec.clusters[failover].tlsSecret) has no key tls.key",
        ),
        (
            "SecretKeyMissing",
            "Secret gateway-tls (spec.gateway.clientSecurity.tlsSecret) has no key ca.crt",
        ),
    ]
    assert not reconciling.secret_problems(target(), secured_spec(), everything_seen())


def test_the_watched_secrets_include_the_admin_secret() -> None:
    assert reconciling.watched_secrets("prod", secured_spec()) == {
        "main-credentials",
        "main-tls",
        "failover-credentials",
        "failover-tls",
        "gateway-users",
        "gateway-tls",
        "prod-gateway-admin",
    }


def test_the_hash_names_no_secret_data_only_versions() -> None:
    versions = secret_mounts.versions(["b", "a"], {"a": Observed("17", frozenset({"x"}))})
    assert versions == {"secret/a": "17", "secret/b": "missing"}


def raw_cluster(**fields: Any) -> dict[str, Any]:
    return {"name": "main", "bootstrapServers": "kafka-a:9093", **fields}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"securityProtocol": "SASL_SSL", "saslMechanism": "PLAIN"}, "credentialsSecret .* is req"),
        (
            {"securityProtocol": "SASL_SSL", "credentialsSecret": {"name": "c"}},
            "saslMechanism is r",
        ),
        ({"credentialsSecret": {"name": "c"}}, "credentialsSecret is only used"),
        ({"securityProtocol": "SASL_PLAINTEXT", "tlsSecret": {"name": "t"}}, "tlsSecret is only"),
        ({"properties": {"sasl.jaas.config": "x"}}, "properties must not hold credentials"),
    ],
)
def test_the_operator_refuses_what_the_cel_rules_refuse_for_clusters(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        model.ClusterSpec.model_validate(raw_cluster(**fields))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"protocol": "SASL_PLAINTEXT"}, "usersSecret .* is required"),
        ({"protocol": "SSL"}, "tlsSecret .* is required"),
        ({"protocol": "PLAINTEXT", "usersSecret": {"name": "u"}}, "usersSecret is only used"),
        ({"protocol": "PLAINTEXT", "tlsSecret": {"name": "t"}}, "tlsSecret is only used"),
        ({"protocol": "PLAINTEXT", "clientAuth": "required"}, "clientAuth requested or required"),
    ],
)
def test_the_operator_refuses_what_the_cel_rules_refuse_for_clients(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        model.ClientSecuritySpec.model_validate(fields)


def test_every_rule_is_in_the_crd_with_its_message() -> None:
    from failover_operator import crd_building

    spec = crd_building.spec_schema()
    cluster = spec["properties"]["clusters"]["items"]
    client = spec["properties"]["gateway"]["properties"]["clientSecurity"]
    assert cluster["x-kubernetes-validations"] == [r.schema() for r in model.CLUSTER_RULES]
    assert client["x-kubernetes-validations"] == [r.schema() for r in model.CLIENT_RULES]


class RecordedEvents:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def info(self, reason: str, message: str) -> None:
        self.items.append((reason, message))

    def warn(self, reason: str, message: str) -> None:
        self.items.append((reason, message))


async def test_a_secret_change_re_applies_the_gateway_only_when_the_pod_template_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from failover_operator import kube_objects

    applied: list[str] = []
    running = {"hash": config_hash(secured_spec(), everything_seen())}

    async def deployment_hash(namespace: str, name: str) -> str:
        return running["hash"]

    async def apply(manifest: dict[str, Any]) -> None:
        applied.append(manifest["kind"])

    monkeypatch.setattr(kube_objects, "deployment_hash", deployment_hash)
    monkeypatch.setattr(kube_objects, "apply", apply)
    events = RecordedEvents()

    async def refresh(seen: Any) -> bool:
        return await reconciling.refresh_if_stale(
            target(), secured_spec(), seen, events, reason="SecretChanged", message="m"
        )

    assert not await refresh(everything_seen())
    assert applied == [] and events.items == []
    assert await refresh(everything_seen(gateway_users="2"))
    assert applied == ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    assert events.items == [("SecretChanged", "m")]
