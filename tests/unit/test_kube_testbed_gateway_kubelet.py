"""The kubelet stand-in moves container paths to the Pod's materialised volumes, nothing else."""

from __future__ import annotations

from pathlib import Path

import yaml

from failover_operator import manifests, model
from kube_testbed.gateway_kubelet import Volume, localised_gateway_config, localised_path

FOLDER = Path("/pods/p1/fs")
VOLUMES = (
    Volume("configMap", "prod-gateway", "/etc/kafka-failover/config", FOLDER / "c"),
    Volume(
        "secret", "main-credentials", "/etc/kafka-failover/secrets/main/credentials", FOLDER / "m"
    ),
    Volume("secret", "gateway-users", "/etc/kafka-failover/clients/users", FOLDER / "u"),
)


def test_paths_under_a_mount_move_to_its_copy_also_inside_file_references() -> None:
    assert localised_path("/etc/kafka-failover/config/active", VOLUMES) == "/pods/p1/fs/c/active"
    assert (
        localised_path("${file:/etc/kafka-failover/secrets/main/credentials/password}", VOLUMES)
        == "${file:/pods/p1/fs/m/password}"
    )
    assert localised_path("/etc/kafka-failover/other/x", VOLUMES) == "/etc/kafka-failover/other/x"
    assert localised_path("kafka-a:9093", VOLUMES) == "kafka-a:9093"


def test_the_operators_config_binds_to_the_pod_and_advertises_it_for_the_service_name() -> None:
    spec = model.parse_spec(
        {
            "active": "main",
            "clusters": [
                {
                    "name": "main",
                    "bootstrapServers": "kafka-a:9093",
                    "securityProtocol": "SASL_PLAINTEXT",
                    "saslMechanism": "PLAIN",
                    "credentialsSecret": {"name": "main-credentials"},
                },
                {"name": "failover", "bootstrapServers": "kafka-b:9093", "role": "failover"},
            ],
            "gateway": {
                "clientSecurity": {"protocol": "SASL_PLAINTEXT", "usersSecret": {"name": "u"}}
            },
        }
    )
    text = manifests.config_map("prod", "kafka", spec, 1)["data"]["gateway.yaml"]
    document = yaml.safe_load(localised_gateway_config(text, "127.0.0.12", VOLUMES))
    listener = document["gateway"]["listener"]
    assert listener["host"] == document["gateway"]["admin"]["host"] == "127.0.0.12"
    assert listener["advertisedHost"] == "127.0.0.12"
    assert listener["security"]["usersFile"] == "/pods/p1/fs/u/users.yaml"
    assert document["gateway"]["activeFile"] == "/pods/p1/fs/c/active"
    assert document["config"]["main"]["sasl.username"] == "${file:/pods/p1/fs/m/username}"


def test_an_explicit_advertised_host_is_kept() -> None:
    text = yaml.safe_dump(
        {"gateway": {"listener": {"advertisedHost": "127.0.0.10"}, "admin": {}}, "config": {}}
    )
    document = yaml.safe_load(localised_gateway_config(text, "127.0.0.12", VOLUMES))
    assert document["gateway"]["listener"]["advertisedHost"] == "127.0.0.10"
