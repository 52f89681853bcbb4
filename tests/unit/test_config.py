"""The config file contract: the Conduktor-shaped cluster block, gateway settings, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from failover_gateway.config import (
    ConfigError,
    admin_credentials_from_env,
    config_from_mapping,
    load_config,
)


def document(**gateway: Any) -> dict[str, Any]:
    return {
        "config": {
            "main": {"bootstrap.servers": "kafka-primary:9092"},
            "failover": {"bootstrap.servers": "kafka-secondary:9092", "gateway.roles": "failover"},
        },
        "gateway": {
            "listener": {"host": "0.0.0.0", "port": 6969, "advertisedHost": "gateway.example.com"},
            "admin": {"host": "0.0.0.0", "port": 8888},
            "active": "main",
            **gateway,
        },
    }


def test_the_example_from_the_readme_parses() -> None:
    config = config_from_mapping(document())
    assert config.clusters["failover"].is_failover
    assert not config.clusters["main"].is_failover
    assert str(config.clusters["main"].bootstrap_servers[0]) == "kafka-primary:9092"
    assert config.gateway.listener.advertised_host == "gateway.example.com"
    assert config.gateway.listener.first_broker_port == 6970


def test_a_yaml_file_is_loaded_and_an_unreadable_one_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope.yaml"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("config: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["config"]["main"].update({"bootstrap.server": "x:1"}),
            r"config.main: unknown key\(s\) bootstrap.server; known keys: .*bootstrap.servers",
        ),
        (
            lambda d: d["config"]["main"].update({"bootstrap.servers": "nohost"}),
            r"config.main.bootstrap.servers: bad server 'nohost'.*expected host:port",
        ),
        (
            lambda d: d["config"]["main"].update({"security.protocol": "SASL_SSL"}),
            r"config.main.sasl.mechanism: '\(missing\)' is not supported; valid: PLAIN, "
            r"SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            lambda d: d["config"]["main"].update(
                {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI"}
            ),
            r"'GSSAPI' is not supported; valid: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            lambda d: d["config"]["main"].update({"security.protocol": "TLS"}),
            r"'TLS' is not a Kafka security protocol; valid: PLAINTEXT, SSL, SASL_PLAINTEXT, "
            r"SASL_SSL",
        ),
        (
            lambda d: d["config"]["main"].update({"sasl.mechanism": "PLAIN"}),
            r"config.main.sasl.mechanism: not used with security.protocol PLAINTEXT",
        ),
        (
            lambda d: d["config"]["main"].update(
                {
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule "
                    'required username="u" password="p";',
                }
            ),
            r"PlainLoginModule does not do SCRAM-SHA-512; use the SCRAM module",
        ),
        (
            lambda d: d["config"]["main"].update(
                {
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN",
                    "sasl.username": "u",
                    "sasl.password": "${env:KFO_TEST_UNSET_VARIABLE}",
                }
            ),
            r"config.main.sasl.password: environment variable KFO_TEST_UNSET_VARIABLE is not set",
        ),
        (
            lambda d: d["config"]["main"].update(
                {
                    "security.protocol": "SSL",
                    "ssl.truststore.location": __file__,
                    "ssl.truststore.type": "JKS",
                }
            ),
            r"config.main.ssl.truststore.type: Java keystores \(JKS\) cannot be read.*keytool",
        ),
        (
            lambda d: d["config"]["main"].update(
                {"security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"}
            ),
            r"config.main.ssl.ca.location: file /nonexistent/ca.pem does not exist",
        ),
        (
            lambda d: d["gateway"]["listener"].update({"security": {"protocol": "SASL_SSL"}}),
            r"gateway.listener.security.tls is required for protocol SASL_SSL",
        ),
        (
            lambda d: d["gateway"].update({"active": "third"}),
            r"gateway.active: 'third' names no cluster; valid: main, failover",
        ),
        (
            lambda d: d["gateway"]["listener"].update({"port": 70000}),
            r"gateway.listener.port: .*less than or equal to 65535 \(got 70000\)",
        ),
        (
            lambda d: d["gateway"].update({"colour": "blue"}),
            r"gateway.colour: Extra inputs are not permitted",
        ),
        (
            lambda d: d["gateway"].update({"switchover": {"replication": "mm2"}}),
            r"gateway.switchover.replication: Input should be 'none', 'offsetPreserving' or "
            r"'mirrorMaker2'",
        ),
        (
            lambda d: d["gateway"].update({"switchover": {"topics": "orders-("}}),
            r"gateway.switchover.topics: .*'orders-\(' is not a regular expression",
        ),
        (
            lambda d: d["gateway"].update({"switchover": {"maxCatchUpSeconds": 0}}),
            r"gateway.switchover.maxCatchUpSeconds: .*greater than 0",
        ),
        (
            lambda d: d["gateway"].update({"admin": {"maxBodyBytes": 10}}),
            r"gateway.admin.maxBodyBytes: .*greater than or equal to 1024 \(got 10\)",
        ),
        (
            lambda d: d["gateway"].update({"admin": {"authFailuresPerMinute": 0}}),
            r"gateway.admin.authFailuresPerMinute: .*greater than 0",
        ),
        (
            lambda d: d["gateway"].update({"timeouts": {"clientFrameMs": 5}}),
            r"gateway.timeouts.clientFrameMs: .*greater than or equal to 100 \(got 5\)",
        ),
        (lambda d: d["config"].pop("failover"), r"needs at least two clusters"),
        (
            lambda d: d.update({"extra": 1}),
            r"unknown top-level key\(s\) extra; valid: config, gateway",
        ),
    ],
)
def test_bad_config_is_refused_with_the_key_the_value_and_what_is_valid(
    change: Any, message: str
) -> None:
    raw = document()
    change(raw)
    with pytest.raises(ConfigError, match=message):
        config_from_mapping(raw)


def test_admin_abuse_limits_have_small_defaults_and_take_camel_case_keys() -> None:
    raw = document()
    defaults = config_from_mapping(raw).gateway.admin
    assert (defaults.max_body_bytes, defaults.keepalive_timeout_ms) == (64 * 1024, 15_000)
    raw["gateway"]["admin"] = {"maxBodyBytes": 2048, "authFailureBurst": 3, "bodyTimeoutMs": 500}
    admin = config_from_mapping(raw).gateway.admin
    assert (admin.max_body_bytes, admin.auth_failure_burst, admin.body_timeout_ms) == (
        2048,
        3,
        500,
    )


def test_client_bounds_default_to_what_no_real_client_comes_near() -> None:
    raw = document()
    timeouts = config_from_mapping(raw).gateway.timeouts
    assert (
        timeouts.client_first_request_ms,
        timeouts.client_authentication_ms,
        timeouts.client_frame_ms,
    ) == (10_000, 30_000, 60_000)
    raw["gateway"]["timeouts"] = {"clientFirstRequestMs": 2000, "clientAuthenticationMs": 4000}
    timeouts = config_from_mapping(raw).gateway.timeouts
    assert (timeouts.client_first_request_ms, timeouts.client_authentication_ms) == (2000, 4000)


def test_mirror_maker_topic_names_follow_the_replication_policy() -> None:
    raw = document()
    raw["gateway"]["switchover"] = {
        "replication": "mirrorMaker2",
        "mirrorMaker2": {"policy": "default", "aliases": {"main": "dc1"}},
    }
    mm2 = config_from_mapping(raw).gateway.switchover.mirror_maker2
    assert mm2.remote_topic("main", "orders") == "dc1.orders"
    assert mm2.alias("failover") == "failover"
    raw["gateway"]["switchover"]["mirrorMaker2"] = {}
    assert (
        config_from_mapping(raw).gateway.switchover.mirror_maker2.remote_topic("main", "orders")
        == "orders"
    )


def test_admin_credentials_have_no_default() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_ADMIN_USER and GATEWAY_ADMIN_PASSWORD"):
        admin_credentials_from_env({})
    with pytest.raises(ConfigError, match="set GATEWAY_ADMIN_PASSWORD"):
        admin_credentials_from_env({"GATEWAY_ADMIN_USER": "admin"})


def test_admin_credentials_can_come_from_files_and_never_print_the_password(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    credentials = admin_credentials_from_env(
        {"GATEWAY_ADMIN_USER": "ops", "GATEWAY_ADMIN_PASSWORD_FILE": str(secret)}
    )
    assert credentials.password == "s3cret"
    assert "s3cret" not in repr(credentials)


def test_upstream_sasl_credentials_come_from_the_jaas_string_and_never_print(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = document()
    raw["config"]["main"].update(
        {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.jaas.config": "${env:KFO_TEST_JAAS}",
        }
    )
    monkeypatch.setenv(
        "KFO_TEST_JAAS",
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="main-key" password="main-secret-4e1";',
    )
    config = config_from_mapping(raw)
    sasl = config.clusters["main"].security.sasl
    assert sasl is not None and (sasl.username, sasl.password) == ("main-key", "main-secret-4e1")
    assert "main-secret-4e1" not in repr(config)
