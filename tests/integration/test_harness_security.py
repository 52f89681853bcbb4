"""The lab's secured clusters accept the right credentials and refuse everything else.

The gateway's upstream SASL/TLS is tested against ``kafka_scram_tls`` (SASL_SSL, SCRAM-SHA-512)
and ``kafka_plain_mtls`` (SASL_SSL, PLAIN, client certificate required). These tests prove the
clusters themselves behave like a production listener, with confluent-kafka as the client: a
round trip works with the right secrets, and a wrong password, a missing, expired or foreign
client certificate each fail fast with the matching error.
"""

import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_testbed import security
from kafka_testbed.clusters import Cluster
from kafka_testbed.security import BrokerSecurity, TlsMaterial

RECORD_COUNT = 10
ROUND_TRIP_TIMEOUT_SECONDS = 30.0
REFUSAL_TIMEOUT_SECONDS = 10.0
"""How long a client may wait for a refusal before the test calls it a success of the intruder."""
QUICK_REFUSAL_SECONDS = 5.0
"""A wrong password must be reported within this (the round trip takes well under a second)."""
FAST_FAILURE_SETTINGS: Mapping[str, Any] = {
    "socket.connection.setup.timeout.ms": 3000,
    "reconnect.backoff.ms": 200,
    "reconnect.backoff.max.ms": 500,
    "log_level": 0,
}
TLS_ALERT = "ssl/tls alert"
"""How librdkafka reports a handshake the broker aborted (e.g. alert 42, bad certificate)."""


def round_trip(cluster: Cluster, config: Mapping[str, str]) -> list[tuple[str, str]]:
    """Create a topic, produce keyed records (acks=all), read them back in a consumer group."""
    topic, group = f"secured-{uuid.uuid4().hex[:8]}", f"group-{uuid.uuid4().hex[:8]}"
    base = {"bootstrap.servers": cluster.bootstrap, **config}
    admin_client = AdminClient(base)  # kept referenced: its futures die with it
    futures = admin_client.create_topics([NewTopic(topic, num_partitions=1)])
    futures[topic].result(timeout=ROUND_TRIP_TIMEOUT_SECONDS)

    producer = Producer({**base, "acks": "all"})
    for index in range(RECORD_COUNT):
        producer.produce(topic, key=f"key-{index}", value=f"value-{index}")
    assert producer.flush(ROUND_TRIP_TIMEOUT_SECONDS) == 0

    consumer = Consumer(
        {**base, "group.id": group, "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    )
    consumer.subscribe([topic])
    received: list[tuple[str, str]] = []
    deadline = time.monotonic() + ROUND_TRIP_TIMEOUT_SECONDS
    try:
        while len(received) < RECORD_COUNT and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            received.append((message.key().decode(), message.value().decode()))
    finally:
        consumer.close()
    return received


def first_error(cluster: Cluster, config: Mapping[str, str]) -> KafkaError:
    """The first error a producer reports while connecting; fails after the refusal timeout."""
    errors: list[KafkaError] = []
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            **FAST_FAILURE_SETTINGS,
            **config,
            "error_cb": errors.append,
        }
    )
    started = time.monotonic()
    while not errors and time.monotonic() - started < REFUSAL_TIMEOUT_SECONDS:
        producer.poll(0.2)
    assert errors, f"no error within {REFUSAL_TIMEOUT_SECONDS:.0f}s: the cluster let us in"
    return errors[0]


def expected_records() -> list[tuple[str, str]]:
    return [(f"key-{index}", f"value-{index}") for index in range(RECORD_COUNT)]


def test_a_scram_sha_512_user_produces_and_consumes_over_tls(
    kafka_scram_tls: Cluster, lab_tls: TlsMaterial
) -> None:
    config = security.client_config(security.scram_tls(lab_tls))

    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert round_trip(kafka_scram_tls, config) == expected_records()


def test_a_plain_user_with_a_client_certificate_produces_and_consumes(
    kafka_plain_mtls: Cluster, lab_tls: TlsMaterial
) -> None:
    config = security.client_config(security.plain_mtls(lab_tls))

    assert config["sasl.mechanism"] == "PLAIN"
    assert config["ssl.certificate.location"] == str(lab_tls.client_cert_pem)
    assert round_trip(kafka_plain_mtls, config) == expected_records()


def test_clients_are_told_only_the_secured_listener_of_each_broker(
    kafka_scram_tls: Cluster, kafka_plain_mtls: Cluster, lab_tls: TlsMaterial
) -> None:
    for cluster, cluster_security in (
        (kafka_scram_tls, security.scram_tls(lab_tls)),
        (kafka_plain_mtls, security.plain_mtls(lab_tls)),
    ):
        client = AdminClient(
            {"bootstrap.servers": cluster.bootstrap, **security.client_config(cluster_security)}
        )
        metadata = client.list_topics(timeout=ROUND_TRIP_TIMEOUT_SECONDS)

        advertised = {b.id: f"{b.host}:{b.port}" for b in metadata.brokers.values()}
        assert advertised == cluster.brokers


@pytest.mark.parametrize(
    ("cluster_fixture", "make_security"),
    [("kafka_scram_tls", security.scram_tls), ("kafka_plain_mtls", security.plain_mtls)],
)
def test_a_wrong_password_is_refused_quickly_with_an_authentication_error(
    cluster_fixture: str,
    make_security: Any,
    lab_tls: TlsMaterial,
    request: pytest.FixtureRequest,
) -> None:
    cluster: Cluster = request.getfixturevalue(cluster_fixture)
    cluster_security: BrokerSecurity = make_security(lab_tls)
    config = security.client_config(cluster_security, password=security.WRONG_PASSWORD)

    started = time.monotonic()
    error = first_error(cluster, config)

    assert error.code() == KafkaError._AUTHENTICATION, error
    assert "Authentication failed" in error.str()
    assert time.monotonic() - started < QUICK_REFUSAL_SECONDS


def test_the_mtls_cluster_refuses_the_tls_handshake_without_a_client_certificate(
    kafka_plain_mtls: Cluster, lab_tls: TlsMaterial
) -> None:
    config = security.client_config(security.plain_mtls(lab_tls), present_certificate=False)

    error = first_error(kafka_plain_mtls, config)

    assert error.code() == KafkaError._TRANSPORT, error
    assert TLS_ALERT in error.str()
    assert "bad certificate" in error.str()


@pytest.mark.parametrize("certificate", ["expired", "signed by another CA"])
def test_the_mtls_cluster_refuses_a_client_certificate_it_must_not_trust(
    certificate: str, kafka_plain_mtls: Cluster, lab_tls: TlsMaterial
) -> None:
    pairs: dict[str, tuple[Path, Path]] = {
        "expired": (lab_tls.expired_client_cert_pem, lab_tls.expired_client_key_pem),
        "signed by another CA": (
            lab_tls.other_ca_client_cert_pem,
            lab_tls.other_ca_client_key_pem,
        ),
    }
    config = security.client_config(security.plain_mtls(lab_tls), certificate=pairs[certificate])

    error = first_error(kafka_plain_mtls, config)

    assert error.code() == KafkaError._TRANSPORT, error
    assert TLS_ALERT in error.str()


def test_a_client_that_does_not_trust_the_lab_ca_refuses_the_broker(
    kafka_scram_tls: Cluster, lab_tls: TlsMaterial
) -> None:
    config = security.client_config(security.scram_tls(lab_tls))
    config["ssl.ca.location"] = str(lab_tls.other_ca_pem)

    error = first_error(kafka_scram_tls, config)

    assert error.code() == KafkaError._SSL, error
    assert "certificate verify failed" in error.str()


def test_the_brokers_never_log_the_lab_secrets(
    kafka_scram_tls: Cluster, kafka_plain_mtls: Cluster
) -> None:
    logs = [
        node.log_path.read_text(errors="replace")
        for cluster in (kafka_scram_tls, kafka_plain_mtls)
        for node in cluster.nodes.values()
    ]

    assert security.secrets_in(logs) == []
