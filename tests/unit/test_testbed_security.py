"""Secured lab listeners: certificates, broker settings, SCRAM users and client settings."""

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from kafka_testbed import broker_properties, launching, security
from kafka_testbed.broker_properties import NodeSpec
from kafka_testbed.security import BrokerSecurity, TlsMaterial

PREFIX = "listener.name.client."


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return security.generate_tls_material(tmp_path_factory.mktemp("tls"))


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_broker_certificate_is_valid_for_the_loopback_ip_and_localhost(
    tls: TlsMaterial,
) -> None:
    names = certificate(tls.server_cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.value.get_values_for_type(x509.DNSName) == ["localhost"]


def test_client_certificates_are_signed_by_the_lab_ca_except_the_foreign_one(
    tls: TlsMaterial,
) -> None:
    ca = certificate(tls.ca_pem)
    for path in (tls.server_cert_pem, tls.client_cert_pem, tls.expired_client_cert_pem):
        certificate(path).verify_directly_issued_by(ca)
    with pytest.raises(ValueError):
        certificate(tls.other_ca_client_cert_pem).verify_directly_issued_by(ca)
    certificate(tls.other_ca_client_cert_pem).verify_directly_issued_by(
        certificate(tls.other_ca_pem)
    )


def test_the_expired_client_certificate_differs_from_the_good_one_only_in_being_expired(
    tls: TlsMaterial,
) -> None:
    now = datetime.datetime.now(datetime.UTC)

    assert certificate(tls.expired_client_cert_pem).not_valid_after_utc < now
    assert certificate(tls.client_cert_pem).not_valid_after_utc > now


def test_every_private_key_is_unencrypted_pkcs8_as_kafka_reads_it(tls: TlsMaterial) -> None:
    keys = [
        tls.server_key_pem,
        tls.client_key_pem,
        tls.expired_client_key_pem,
        tls.other_ca_client_key_pem,
    ]
    for key in keys:
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert key.stat().st_mode & 0o077 == 0


def test_python_ssl_loads_the_client_certificate_and_trusts_the_lab_ca(tls: TlsMaterial) -> None:
    context = ssl.create_default_context(cafile=str(tls.ca_pem))
    context.load_cert_chain(str(tls.client_cert_pem), str(tls.client_key_pem))

    assert len(context.get_ca_certs()) == 1


def test_the_client_bundle_holds_key_certificate_and_ca_behind_its_password(
    tls: TlsMaterial,
) -> None:
    key, cert, extra = pkcs12.load_key_and_certificates(
        tls.client_p12.read_bytes(), tls.client_p12_password.encode()
    )

    assert key is not None
    assert cert == certificate(tls.client_cert_pem)
    assert extra == [certificate(tls.ca_pem)]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(tls.client_p12.read_bytes(), b"wrong")


def test_the_ca_bundle_holds_only_the_ca_certificate(tls: TlsMaterial) -> None:
    key, cert, extra = pkcs12.load_key_and_certificates(
        tls.ca_p12.read_bytes(), tls.ca_p12_password.encode()
    )

    assert (key, cert, extra) == (None, None, [certificate(tls.ca_pem)])


def test_the_scram_cluster_serves_pem_tls_and_scram_sha_512_on_its_client_listener(
    tls: TlsMaterial,
) -> None:
    properties = security.client_listener_properties(security.scram_tls(tls))

    assert properties[PREFIX + "ssl.keystore.type"] == "PEM"
    assert properties[PREFIX + "ssl.keystore.certificate.chain"] == tls.server_cert_pem.read_text()
    assert properties[PREFIX + "ssl.keystore.key"] == tls.server_key_pem.read_text()
    assert properties[PREFIX + "ssl.truststore.type"] == "PEM"
    assert properties[PREFIX + "ssl.truststore.location"] == str(tls.ca_pem)
    assert properties[PREFIX + "ssl.client.auth"] == "none"
    assert properties[PREFIX + "sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert properties[PREFIX + "scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    )
    assert "connections.max.reauth.ms" not in properties


def test_the_plain_cluster_lists_its_users_in_jaas_and_requires_client_certificates(
    tls: TlsMaterial,
) -> None:
    properties = security.client_listener_properties(security.plain_mtls(tls))

    assert properties[PREFIX + "ssl.client.auth"] == "required"
    assert properties[PREFIX + "sasl.enabled.mechanisms"] == "PLAIN"
    assert properties[PREFIX + "plain.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
        f' user_{security.FAILOVER_USER}="{security.FAILOVER_PASSWORD}";'
    )


def test_sasl_plaintext_has_no_tls_settings_and_may_force_reauthentication() -> None:
    plain = BrokerSecurity(
        "SASL_PLAINTEXT",
        ("PLAIN", "SCRAM-SHA-256"),
        {"alice": "alice-secret"},
        max_reauth_ms=5000,
    )
    properties = security.client_listener_properties(plain)

    assert not any(".ssl." in key for key in properties)
    assert properties[PREFIX + "sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256"
    assert properties["connections.max.reauth.ms"] == "5000"
    assert security.scram_format_arguments(plain) == [
        "--add-scram",
        "SCRAM-SHA-256=[name=alice,password=alice-secret]",
    ]


def test_ssl_only_needs_no_sasl_settings(tls: TlsMaterial) -> None:
    properties = security.client_listener_properties(BrokerSecurity("SSL", tls=tls))

    assert not any("sasl" in key for key in properties)
    assert security.client_config(BrokerSecurity("SSL", tls=tls)) == {
        "security.protocol": "SSL",
        "ssl.ca.location": str(tls.ca_pem),
    }


def test_scram_users_are_created_at_format_time_for_every_scram_mechanism(
    tls: TlsMaterial,
) -> None:
    both = BrokerSecurity(
        "SASL_SSL", ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"), {"a": "pa", "b": "pb"}, tls=tls
    )

    assert security.scram_format_arguments(both) == [
        "--add-scram", "SCRAM-SHA-256=[name=a,password=pa]",
        "--add-scram", "SCRAM-SHA-256=[name=b,password=pb]",
        "--add-scram", "SCRAM-SHA-512=[name=a,password=pa]",
        "--add-scram", "SCRAM-SHA-512=[name=b,password=pb]",
    ]  # fmt: skip
    assert security.scram_format_arguments(security.plain_mtls(tls)) == []
    arguments = broker_properties.format_arguments("cid", Path("/c"), security.scram_tls(tls))
    assert arguments[-2:] == [
        "--add-scram",
        f"SCRAM-SHA-512=[name={security.MAIN_USER},password={security.MAIN_PASSWORD}]",
    ]
    assert broker_properties.format_arguments("cid", Path("/c"))[-1] == "--ignore-formatted"


def test_a_secured_node_keeps_controller_and_replication_on_plaintext_listeners(
    tls: TlsMaterial,
) -> None:
    nodes = [NodeSpec(1, 9001, 9101, 9201), NodeSpec(2, 9002, 9102, 9202)]
    properties = broker_properties.server_properties(
        nodes[1], nodes, Path("/data"), security=security.scram_tls(tls)
    )

    assert properties["listeners"] == (
        "CLIENT://127.0.0.1:9002,BROKER://127.0.0.1:9202,CONTROLLER://127.0.0.1:9102"
    )
    assert properties["advertised.listeners"] == ("CLIENT://127.0.0.1:9002,BROKER://127.0.0.1:9202")
    assert properties["inter.broker.listener.name"] == "BROKER"
    assert properties["controller.listener.names"] == "CONTROLLER"
    assert properties["listener.security.protocol.map"] == (
        "CLIENT:SASL_SSL,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
    )
    assert properties[PREFIX + "sasl.enabled.mechanisms"] == "SCRAM-SHA-512"


def test_a_secured_node_without_an_inter_broker_port_is_refused(tls: TlsMaterial) -> None:
    node = NodeSpec(1, 9001, 9101)

    with pytest.raises(ValueError, match="broker_port"):
        broker_properties.server_properties(
            node, [node], Path("/d"), security=security.scram_tls(tls)
        )


def test_the_pem_text_fits_on_one_escaped_properties_line(tls: TlsMaterial) -> None:
    text = broker_properties.render_properties(
        security.client_listener_properties(security.scram_tls(tls))
    )

    chain_lines = [line for line in text.splitlines() if "certificate.chain=" in line]
    assert len(chain_lines) == 1
    assert chain_lines[0].endswith("-----END CERTIFICATE-----\\n")


def test_secured_clusters_get_a_third_free_port_per_node() -> None:
    specs = launching._node_specs([1, 2], {}, secured=True)

    ports = [port for spec in specs for port in (spec.port, spec.controller_port, spec.broker_port)]
    assert None not in ports
    assert len(set(ports)) == 6
    assert all(spec.broker_port is None for spec in launching._node_specs([1], {}))


def test_client_settings_default_to_the_first_user_and_the_lab_client_certificate(
    tls: TlsMaterial,
) -> None:
    assert security.client_config(security.scram_tls(tls)) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": security.MAIN_USER,
        "sasl.password": security.MAIN_PASSWORD,
        "ssl.ca.location": str(tls.ca_pem),
    }
    mtls = security.client_config(security.plain_mtls(tls))
    assert mtls["sasl.password"] == security.FAILOVER_PASSWORD
    assert mtls["ssl.certificate.location"] == str(tls.client_cert_pem)
    assert mtls["ssl.key.location"] == str(tls.client_key_pem)


def test_client_settings_can_be_wrong_on_purpose(tls: TlsMaterial) -> None:
    mtls = security.plain_mtls(tls)

    wrong = security.client_config(mtls, password=security.WRONG_PASSWORD)
    anonymous = security.client_config(mtls, present_certificate=False)
    expired = security.client_config(
        mtls, certificate=(tls.expired_client_cert_pem, tls.expired_client_key_pem)
    )

    assert wrong["sasl.password"] == security.WRONG_PASSWORD
    assert "ssl.certificate.location" not in anonymous
    assert expired["ssl.certificate.location"] == str(tls.expired_client_cert_pem)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"protocol": "SASL_SSL", "mechanisms": ("PLAIN",), "users": {}}, "one user"),
        ({"protocol": "SASL_PLAINTEXT", "mechanisms": (), "users": {"a": "b"}}, "mechanism"),
        ({"protocol": "SSL"}, "needs TLS material"),
        ({"protocol": "PLAINTEXT"}, "unknown protocol"),
        ({"protocol": "SASL_PLAINTEXT", "mechanisms": ("GSSAPI",), "users": {"a": "b"}}, "GSSAPI"),
        (
            {"protocol": "SASL_PLAINTEXT", "mechanisms": ("PLAIN",), "users": {"a": "b"},
             "client_auth": "required"},
            "needs a TLS protocol",
        ),
        (
            {"protocol": "SASL_PLAINTEXT", "mechanisms": ("PLAIN",), "users": {"a": 'p"w;'}},
            "may only use",
        ),
        (
            {"protocol": "SASL_PLAINTEXT", "mechanisms": ("PLAIN",), "users": {"a": "b"},
             "max_reauth_ms": 0},
            "positive",
        ),
    ],
)  # fmt: skip
def test_impossible_security_settings_are_refused_when_described(
    options: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        BrokerSecurity(**options)  # type: ignore[arg-type]


def test_secrets_are_distinctive_and_found_in_leaking_text() -> None:
    assert len(set(security.SECRETS)) == len(security.SECRETS)
    assert all(len(secret) >= 16 for secret in security.SECRETS)
    leaked = f"sasl.password={security.MAIN_PASSWORD}"

    assert security.secrets_in(["clean", leaked]) == [security.MAIN_PASSWORD]
