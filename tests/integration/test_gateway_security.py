"""Both trust boundaries on real brokers: clients authenticate to the gateway, the gateway to
each cluster with its own credentials, and a switch changes credentials and mechanism at once.

Main speaks SASL_SSL with SCRAM-SHA-512; failover speaks SASL_SSL with PLAIN and demands a client
certificate. Clients only ever hold the gateway's credentials and never change anything.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover_gateway.auth import users
from kafka_testbed import admin, security, workloads
from kafka_testbed.clusters import Cluster
from kafka_testbed.gateways import GatewayProcess

CLIENT_USER, CLIENT_PASSWORD = "orders-app", "client-scram-secret-5b2e"
MTLS_RULES = "RULE:^CN=([^,]+),.*$/$1/L,DEFAULT"


def jaas(module: str, user: str, password: str) -> str:
    return (
        f"org.apache.kafka.common.security.{module} required "
        f'username="{user}" password="{password}";'
    )


def upstream_settings(
    tls: security.TlsMaterial, main: Cluster, failover: Cluster, main_password: str
) -> dict[str, dict[str, str]]:
    return {
        "main": {
            "bootstrap.servers": main.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": "${env:MAIN_JAAS}",
            "ssl.ca.location": str(tls.ca_pem),
        },
        "failover": {
            "bootstrap.servers": failover.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN",
            "sasl.username": security.FAILOVER_USER,
            "sasl.password": "${env:FAILOVER_PASSWORD}",
            "ssl.truststore.location": str(tls.ca_p12),
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.password": security.CA_P12_PASSWORD,
            "ssl.keystore.location": str(tls.client_p12),
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.password": security.CLIENT_P12_PASSWORD,
        },
    }


def secret_env(main_password: str) -> dict[str, str]:
    return {
        "MAIN_JAAS": jaas("scram.ScramLoginModule", security.MAIN_USER, main_password),
        "FAILOVER_PASSWORD": security.FAILOVER_PASSWORD,
    }


def users_file(folder: Path) -> Path:
    path = folder / "users.yaml"
    entries = {
        mechanism: users.entry_for(mechanism, CLIENT_PASSWORD)
        for mechanism in ("SCRAM-SHA-512", "PLAIN")
    }
    path.write_text(yaml.safe_dump({"users": {CLIENT_USER: entries}}))
    return path


def sasl_listener(tls: security.TlsMaterial, folder: Path) -> dict[str, Any]:
    return {
        "security": {
            "protocol": "SASL_SSL",
            "saslMechanisms": ["SCRAM-SHA-512", "PLAIN"],
            "usersFile": str(users_file(folder)),
            "tls": {"certificate": str(tls.server_cert_pem), "key": str(tls.server_key_pem)},
        }
    }


@pytest.fixture
def secured_gateway(
    gateway_factory: Any,
    lab_tls: security.TlsMaterial,
    kafka_scram_tls: Cluster,
    kafka_plain_mtls: Cluster,
    tmp_path: Path,
) -> GatewayProcess:
    return start(
        gateway_factory,
        lab_tls,
        kafka_scram_tls,
        kafka_plain_mtls,
        sasl_listener(lab_tls, tmp_path),
        main_password=security.MAIN_PASSWORD,
    )


def start(
    gateway_factory: Any,
    tls: security.TlsMaterial,
    main: Cluster,
    failover: Cluster,
    listener: dict[str, Any],
    *,
    main_password: str,
) -> GatewayProcess:
    gateway: GatewayProcess = gateway_factory(
        upstream_settings(tls, main, failover, main_password),
        gateway_extra={"listener": listener},
        env=secret_env(main_password),
        broker_port_count=8,
    )
    return gateway


def client_settings(tls: security.TlsMaterial, password: str = CLIENT_PASSWORD) -> dict[str, Any]:
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": CLIENT_USER,
        "sasl.password": password,
        "ssl.ca.location": str(tls.ca_pem),
    }


def direct(cluster_security: security.BrokerSecurity) -> dict[str, str]:
    return security.client_config(cluster_security)


def test_clients_authenticated_at_the_gateway_switch_between_differently_secured_clusters(
    secured_gateway: GatewayProcess,
    lab_tls: security.TlsMaterial,
    kafka_scram_tls: Cluster,
    kafka_plain_mtls: Cluster,
) -> None:
    topic = f"secure-{uuid.uuid4().hex[:6]}"
    main_direct = direct(security.scram_tls(lab_tls))
    failover_direct = direct(security.plain_mtls(lab_tls))
    admin.create_topic(kafka_scram_tls.bootstrap, topic, partitions=1, config=main_direct)
    admin.create_topic(kafka_plain_mtls.bootstrap, topic, partitions=1, config=failover_direct)
    client = workloads.ConfluentProducer(
        secured_gateway.bootstrap, {"enable.idempotence": True, **client_settings(lab_tls)}
    )
    producer = workloads.SequencedProducer(client, topic, rate=50).start()
    tails = [
        workloads.ClusterTail(
            kafka_scram_tls.bootstrap, topic, 1, cluster="main", settings=main_direct
        ).start(),
        workloads.ClusterTail(
            kafka_plain_mtls.bootstrap, topic, 1, cluster="failover", settings=failover_direct
        ).start(),
    ]
    try:
        # Bounded waits, not fixed sleeps: under load the TLS + SCRAM set-up alone can take seconds.
        assert producer.wait_acked(50, timeout=60), "nothing acknowledged through main in 60 s"
        before_switch = len(producer.log.snapshot()[1])
        assert secured_gateway.switch("failover").status == 200
        assert producer.wait_acked(before_switch + 100, timeout=60), "no acks after the switch"
        producer.stop(flush_timeout=30)
        _, acked, _ = producer.log.snapshot()
        missing = workloads.wait_until_landed(tails, acked, timeout=30)
        where = workloads.landed(tails)
    finally:
        for tail in tails:
            tail.stop()
    assert len(acked) >= before_switch + 100 and not missing
    assert any(where[s] == {"main"} for s in acked) and any(where[s] == {"failover"} for s in acked)
    log = secured_gateway.log_tail(400)
    assert "authenticated client=" in log and f"principal={CLIENT_USER}" in log
    # The audit names each connection the switch took off main: moved under its client (TLS and
    # SCRAM with the client kept, the broker side re-dialled with mTLS) or disconnected.
    assert "move client=" in log or "disconnect client=" in log
    assert "reason=switch main -> failover" in log


def test_a_wrong_client_password_gets_an_authentication_error_and_no_broker_connection(
    secured_gateway: GatewayProcess,
    lab_tls: security.TlsMaterial,
) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    client = AdminClient(
        {
            "bootstrap.servers": secured_gateway.bootstrap,
            "error_cb": lambda error: errors.append(str(error)),
            **client_settings(lab_tls, password="not-the-password"),
        }
    )
    with pytest.raises(KafkaException):
        client.list_topics(timeout=5)
    client.poll(1)  # serves error_cb
    assert any("Authentication failed: invalid user name or password" in e for e in errors)
    log = secured_gateway.log_tail(200)
    assert "authentication failed client=127.0.0.1" in log
    assert "not-the-password" not in log
    del client  # librdkafka retries with backoff while the client lives: each try is refused
    deadline = time.monotonic() + 15
    while secured_gateway.state()["openConnections"] != {"main": 0, "failover": 0}:
        assert time.monotonic() < deadline, secured_gateway.state()["openConnections"]
        time.sleep(0.2)


def test_a_wrong_upstream_password_shows_in_health_and_state(
    gateway_factory: Any,
    lab_tls: security.TlsMaterial,
    kafka_scram_tls: Cluster,
    kafka_plain_mtls: Cluster,
    tmp_path: Path,
) -> None:
    gateway = start(
        gateway_factory,
        lab_tls,
        kafka_scram_tls,
        kafka_plain_mtls,
        sasl_listener(lab_tls, tmp_path),
        main_password="wrong-upstream-secret",
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and gateway.state()["upstreams"]["main"]["checkedAt"] is None:
        time.sleep(0.2)
    main = gateway.state()["upstreams"]["main"]
    assert main["reachable"] is False and "authentication" in (main["error"] or "").lower()
    assert main["verdict"] == "down" and main["downForSeconds"] >= 0
    assert gateway.state()["upstreams"]["failover"]["reachable"] is True
    assert 'kafka_failover_upstream_reachable{cluster="main"} 0.0' in gateway.metrics()
    assert "wrong-upstream-secret" not in gateway.log_tail(400)


def mtls_listener(tls: security.TlsMaterial) -> dict[str, Any]:
    return {
        "security": {
            "protocol": "SSL",
            "tls": {
                "certificate": str(tls.server_cert_pem),
                "key": str(tls.server_key_pem),
                "clientCa": str(tls.ca_pem),
                "clientAuth": "required",
            },
            "principalMappingRules": MTLS_RULES,
        }
    }


def test_mtls_clients_get_a_principal_from_their_certificate_and_bad_ones_are_refused(
    gateway_factory: Any,
    lab_tls: security.TlsMaterial,
    kafka_scram_tls: Cluster,
    kafka_plain_mtls: Cluster,
) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    gateway = start(
        gateway_factory,
        lab_tls,
        kafka_scram_tls,
        kafka_plain_mtls,
        mtls_listener(lab_tls),
        main_password=security.MAIN_PASSWORD,
    )
    base = {
        "bootstrap.servers": gateway.bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": str(lab_tls.ca_pem),
    }
    good = AdminClient(
        {
            **base,
            "ssl.certificate.location": str(lab_tls.client_cert_pem),
            "ssl.key.location": str(lab_tls.client_key_pem),
        }
    )
    assert good.list_topics(timeout=15).brokers
    for cert, key in (
        (lab_tls.expired_client_cert_pem, lab_tls.expired_client_key_pem),
        (lab_tls.other_ca_client_cert_pem, lab_tls.other_ca_client_key_pem),
    ):
        bad = AdminClient(
            {**base, "ssl.certificate.location": str(cert), "ssl.key.location": str(key)}
        )
        with pytest.raises(KafkaException):
            bad.list_topics(timeout=5)
    log = gateway.log_tail(300)
    assert "open client=127.0.0.1" in log and "principal=gateway-client" in log
    assert "TLS handshake refused client=127.0.0.1" in log


def test_no_secret_of_the_suite_appears_in_gateway_logs(
    secured_gateway: GatewayProcess,
    lab_tls: security.TlsMaterial,
) -> None:
    from confluent_kafka.admin import AdminClient

    AdminClient(
        {"bootstrap.servers": secured_gateway.bootstrap, **client_settings(lab_tls)}
    ).list_topics(timeout=15)
    text = secured_gateway.log_path.read_text()
    leaked = set(security.secrets_in([text])) | {s for s in (CLIENT_PASSWORD,) if s in text}
    assert not leaked
