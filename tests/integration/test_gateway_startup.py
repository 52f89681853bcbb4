"""Starting the real gateway process: bad config or missing credentials stop it before listening."""

from __future__ import annotations

import os

from kafka_testbed import gateways

GOOD = gateways.gateway_config(
    {"main": "127.0.0.1:1", "failover": "127.0.0.1:2"},
    port=gateways.free_port_block(4),
    admin_port=gateways.free_port_block(1),
    broker_port_count=2,
)
CREDENTIALS = {"GATEWAY_ADMIN_USER": "admin", "GATEWAY_ADMIN_PASSWORD": "pw"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_ADMIN")}
    return env | extra


def test_the_gateway_refuses_to_start_without_admin_credentials() -> None:
    code, stderr = gateways.run_gateway_expecting_failure(GOOD, clean_env())
    assert code == 2
    assert "GATEWAY_ADMIN_USER and GATEWAY_ADMIN_PASSWORD" in stderr
    assert "no built-in default password" in stderr


def test_a_bad_config_exits_non_zero_naming_the_key_and_valid_values() -> None:
    bad = {**GOOD, "gateway": {**GOOD["gateway"], "active": "third"}}
    code, stderr = gateways.run_gateway_expecting_failure(bad, clean_env(**CREDENTIALS))
    assert code == 2
    assert "gateway.active: 'third' names no cluster; valid: main, failover" in stderr


def test_an_unsupported_upstream_mechanism_is_refused_not_ignored() -> None:
    config = {
        **GOOD["config"],
        "main": {
            "bootstrap.servers": "127.0.0.1:1",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
        },
    }
    code, stderr = gateways.run_gateway_expecting_failure(
        {**GOOD, "config": config}, clean_env(**CREDENTIALS)
    )
    assert code == 2
    assert "config.main.sasl.mechanism: 'OAUTHBEARER' is not supported; valid: PLAIN" in stderr


def test_a_config_that_is_not_yaml_is_named_as_such() -> None:
    code, stderr = gateways.run_gateway_expecting_failure("config: [", clean_env(**CREDENTIALS))
    assert code == 2 and "not valid YAML" in stderr
