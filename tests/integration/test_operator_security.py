"""The operator with secured clusters on a real control plane: Secrets in, nothing secret out.

Main is SASL_SSL with SCRAM (``kafka_scram_tls``), failover SASL_SSL with PLAIN and a required
client certificate (``kafka_plain_mtls``); clients authenticate to the gateway pods with SCRAM over
TLS, their users in a Secret. Credentials and TLS material reach the pods only as mounted Secrets
(the kubelet stand-in materialises them): the KafkaFailover, its status, the ConfigMap, the
Deployment and the Events hold none of them, and rotating the users Secret rolls the pods onto
the new password without any change to the KafkaFailover.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator import OperatorLab, all_switched, patch_active

from failover_gateway.auth import users
from kafka_testbed import admin, security, workloads
from kafka_testbed.clusters import Cluster
from kube_testbed.control_plane import ControlPlane
from kube_testbed.gateway_kubelet import FIRST_POD_OCTET

NAME = "sec"
PODS = 2
CLIENT_USER = "orders-app"
CLIENT_PASSWORD = "client-scram-secret-7d3a"
ROTATED_PASSWORD = "client-scram-rotated-2e9c"
ALL_SECRETS = (*security.SECRETS, CLIENT_PASSWORD, ROTATED_PASSWORD)
ROLL_SECONDS = 120.0
PRODUCE_SECONDS = 30.0


@dataclass(frozen=True)
class SecuredLab:
    lab: OperatorLab
    tls: security.TlsMaterial
    gateway_ca: Path
    main: Cluster
    failover: Cluster


def secret_manifest(name: str, data: Mapping[str, bytes]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "Opaque",
            "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
        }
    )


def users_yaml(password: str) -> bytes:
    entry = users.entry_for("SCRAM-SHA-512", password)
    return yaml.safe_dump({"users": {CLIENT_USER: {"SCRAM-SHA-512": entry}}}).encode()


def gateway_certificate(folder: Path) -> tuple[Path, bytes, bytes]:
    """A CA and a listener certificate for every pod address the kubelet stand-in hands out."""
    import trustme

    ca = trustme.CA(organization_name="kafka-failover gateway test", key_type=trustme.KeyType.RSA)
    addresses = [f"127.0.0.{octet}" for octet in range(FIRST_POD_OCTET, FIRST_POD_OCTET + 90)]
    leaf = ca.issue_cert(*addresses, "localhost", key_type=trustme.KeyType.RSA)
    ca_file = folder / "gateway-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return ca_file, chain, leaf.private_key_pem.bytes()


def create_secrets(lab: OperatorLab, tls: security.TlsMaterial, chain: bytes, key: bytes) -> None:
    secrets = {
        "main-credentials": {
            "username": security.MAIN_USER.encode(),
            "password": security.MAIN_PASSWORD.encode(),
        },
        "main-tls": {"ca.crt": tls.ca_pem.read_bytes()},
        "failover-credentials": {
            "username": security.FAILOVER_USER.encode(),
            "password": security.FAILOVER_PASSWORD.encode(),
        },
        "failover-tls": {
            "ca.crt": tls.ca_pem.read_bytes(),
            "tls.crt": tls.client_cert_pem.read_bytes(),
            "tls.key": tls.client_key_pem.read_bytes(),
        },
        "gateway-tls": {"tls.crt": chain, "tls.key": key},
        "gateway-users": {"users.yaml": users_yaml(CLIENT_PASSWORD)},
    }
    for name, data in secrets.items():
        lab.apply(secret_manifest(name, data))


def upstream(name: str, cluster: Cluster, mechanism: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "bootstrapServers": cluster.bootstrap,
        "securityProtocol": "SASL_SSL",
        "saslMechanism": mechanism,
        "credentialsSecret": {"name": f"{name}-credentials"},
        "tlsSecret": {"name": f"{name}-tls"},
        **extra,
    }


def kafka_failover(main: Cluster, failover: Cluster, **client: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kafka-failover.github.io/v1alpha1",
        "kind": "KafkaFailover",
        "metadata": {"name": NAME},
        "spec": {
            "active": "main",
            "clusters": [
                upstream("main", main, "SCRAM-SHA-512"),
                upstream("failover", failover, "PLAIN", role="failover"),
            ],
            "gateway": {
                "replicas": PODS,
                "listener": {"brokerPortCount": 8},  # advertised: the Service name -> the pod
                "clientSecurity": {
                    "protocol": "SASL_SSL",
                    "saslMechanisms": ["SCRAM-SHA-512"],
                    "usersSecret": {"name": "gateway-users"},
                    "tlsSecret": {"name": "gateway-tls"},
                    **client,
                },
            },
            "switch": {"podTimeoutSeconds": 3},
        },
    }


@pytest.fixture(scope="module")
def secured(
    kube_control_plane: ControlPlane,
    tmp_path_factory: pytest.TempPathFactory,
    lab_tls: security.TlsMaterial,
    kafka_scram_tls: Cluster,
    kafka_plain_mtls: Cluster,
) -> Iterator[SecuredLab]:
    namespace = f"kfo-sec-{uuid.uuid4().hex[:6]}"
    workdir = tmp_path_factory.mktemp(namespace)
    lab = OperatorLab(kube_control_plane, namespace, workdir).start()
    try:
        gateway_ca, chain, key = gateway_certificate(workdir)
        create_secrets(lab, lab_tls, chain, key)
        yield SecuredLab(lab, lab_tls, gateway_ca, kafka_scram_tls, kafka_plain_mtls)
    finally:
        lab.stop()


def client_settings(lab: SecuredLab, password: str) -> dict[str, Any]:
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": CLIENT_USER,
        "sasl.password": password,
        "ssl.ca.location": str(lab.gateway_ca),
    }


def gateway_pods(lab: OperatorLab) -> dict[str, str]:
    """Ready gateway pods of the object: name -> bootstrap address."""
    return {
        name: f"{pod.ip}:6969"
        for name, pod in lab.kubelet.running().items()
        if name.startswith(f"{NAME}-gateway-") and pod.ready
    }


def produce(bootstrap: str, settings: Mapping[str, Any], topic: str, seqs: range) -> list[str]:
    """Produce ``seqs`` through one gateway pod; the delivery errors (empty: all acknowledged)."""
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer(
        {"bootstrap.servers": bootstrap, "message.timeout.ms": 20_000, "log_level": 2, **settings}
    )
    for seq in seqs:
        producer.produce(
            topic,
            workloads.encode_value(seq),
            on_delivery=lambda error, _message: errors.append(str(error)) if error else None,
        )
    undelivered = producer.flush(PRODUCE_SECONDS)
    return errors + ([f"{undelivered} record(s) undelivered"] if undelivered else [])


def authentication_refused(bootstrap: str, settings: Mapping[str, Any]) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    client = AdminClient(
        {"bootstrap.servers": bootstrap, "error_cb": lambda e: errors.append(str(e)), **settings}
    )
    try:
        client.list_topics(timeout=5)
    except KafkaException:
        client.poll(1)
        return any("Authentication failed" in error for error in errors)
    return False


def direct_settings(lab: SecuredLab) -> dict[str, dict[str, str]]:
    return {
        "main": security.client_config(security.scram_tls(lab.tls)),
        "failover": security.client_config(security.plain_mtls(lab.tls)),
    }


def assert_landed(lab: SecuredLab, topic: str, seqs: range, cluster: str) -> None:
    bootstrap = {"main": lab.main.bootstrap, "failover": lab.failover.bootstrap}
    settings = direct_settings(lab)
    tails = [
        workloads.ClusterTail(
            bootstrap[name], topic, 1, cluster=name, settings=settings[name]
        ).start()
        for name in ("main", "failover")
    ]
    try:
        assert workloads.wait_until_landed(tails, seqs, timeout=30) == set()
        where = workloads.landed(tails)
    finally:
        for tail in tails:
            tail.stop()
    assert {where[seq] for seq in seqs} == {frozenset({cluster})}


def rolled(lab: OperatorLab, before: set[str]) -> dict[str, str] | None:
    """The new pods once every old one is gone and PODS new ones are ready."""
    now = gateway_pods(lab)
    listed = json.loads(lab.kubectl("get", "pods", "-o", "json"))["items"]
    names = {item["metadata"]["name"] for item in listed}
    fresh = len(now) == PODS and not set(now) & before and names == set(now)
    return now if fresh else None


def pod_template_hash(lab: OperatorLab) -> str:
    deployment = json.loads(lab.kubectl("get", "deployment", f"{NAME}-gateway", "-o", "json"))
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    return str(annotations["kafka-failover.github.io/config-hash"])


def everything_visible(lab: OperatorLab) -> str:
    """What anyone allowed to read these objects sees, plus the operator's own log."""
    texts = [
        lab.kubectl("get", "kafkafailover", NAME, "-o", "yaml"),
        lab.kubectl("get", "configmap", "-o", "yaml"),
        lab.kubectl("get", "deployment", "-o", "yaml"),
        lab.kubectl("get", "events", "-o", "yaml"),
        lab.operator_log(),
    ]
    return "\n".join(texts)


def test_secured_gateway_pods_authenticate_switch_and_roll_on_a_rotated_users_secret(
    secured: SecuredLab,
) -> None:
    lab = secured.lab
    lab.apply(yaml.safe_dump(kafka_failover(secured.main, secured.failover)))
    lab.wait(f"{PODS} secured gateway pods on main", lambda: all_switched(lab, NAME, "main", PODS))
    topic = f"secured-{uuid.uuid4().hex[:6]}"
    for cluster, settings in zip(
        (secured.main, secured.failover), direct_settings(secured).values(), strict=True
    ):
        admin.create_topic(cluster.bootstrap, topic, partitions=1, config=settings)
    pods = gateway_pods(lab)
    address = sorted(pods.values())[0]
    assert produce(address, client_settings(secured, CLIENT_PASSWORD), topic, range(0, 50)) == []
    assert_landed(secured, topic, range(0, 50), "main")

    patch_active(lab, NAME, "failover")
    lab.wait("every pod on failover", lambda: all_switched(lab, NAME, "failover", PODS))
    assert {n: p for n, p in gateway_pods(lab).items()} == pods, "a switch rolls no pod"
    assert produce(address, client_settings(secured, CLIENT_PASSWORD), topic, range(50, 100)) == []
    assert_landed(secured, topic, range(50, 100), "failover")

    hash_before = pod_template_hash(lab)
    lab.apply(secret_manifest("gateway-users", {"users.yaml": users_yaml(ROTATED_PASSWORD)}))
    new_pods = lab.wait("the pods rolled", lambda: rolled(lab, set(pods)), timeout=ROLL_SECONDS)
    assert pod_template_hash(lab) != hash_before
    lab.wait("the new pods on failover", lambda: all_switched(lab, NAME, "failover", PODS))
    address = sorted(new_pods.values())[0]
    assert (
        produce(address, client_settings(secured, ROTATED_PASSWORD), topic, range(100, 150)) == []
    )
    assert_landed(secured, topic, range(100, 150), "failover")
    assert authentication_refused(address, client_settings(secured, CLIENT_PASSWORD))
    assert "SecretChanged" in lab.events(NAME)

    visible = everything_visible(lab)
    assert [secret for secret in ALL_SECRETS if secret in visible] == []
    assert "PRIVATE KEY" not in visible and "storedKey" not in visible
    users_secret = json.loads(lab.kubectl("get", "secret", "gateway-users", "-o", "json"))
    annotations = users_secret["metadata"].get("annotations") or {}
    assert not [key for key in annotations if "kopf" in key or "kafka-failover" in key]
    assert not users_secret["metadata"].get("finalizers"), "the operator never writes to it"


def test_the_api_server_refuses_sasl_clients_without_a_users_secret(secured: SecuredLab) -> None:
    document = kafka_failover(secured.main, secured.failover)
    del document["spec"]["gateway"]["clientSecurity"]["usersSecret"]
    document["metadata"]["name"] = "nousers"
    result = secured.lab.plane.kubectl(
        "apply", "--namespace", secured.lab.namespace, "-f", "-",
        stdin=yaml.safe_dump(document), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "usersSecret (a Secret with key users.yaml) is required" in result.stderr


def test_a_secret_without_a_required_key_degrades_the_object_naming_it(
    secured: SecuredLab,
) -> None:
    lab = secured.lab
    lab.apply(secret_manifest("half-tls", {"tls.crt": b"-----BEGIN CERTIFICATE-----\n"}))
    document = kafka_failover(secured.main, secured.failover, tlsSecret={"name": "half-tls"})
    document["metadata"]["name"] = "halftls"
    document["spec"]["gateway"]["replicas"] = 1
    lab.apply(yaml.safe_dump(document))

    def degraded() -> dict[str, Any] | None:
        for condition in lab.status("halftls").get("conditions", []):
            if condition["type"] == "Degraded" and condition["status"] == "True":
                return dict(condition)
        return None

    condition = lab.wait("Degraded naming the key", degraded)
    assert condition["reason"] == "SecretKeyMissing"
    assert (
        "Secret half-tls (spec.gateway.clientSecurity.tlsSecret) has no key tls.key"
        in (condition["message"])
    )
