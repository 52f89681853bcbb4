"""The certificates and keys of a throwaway control plane, made with ``cryptography`` in memory.

kube-apiserver refuses to run without a service-account signing key, and clients should verify
the server instead of skipping TLS checks, so each control plane gets its own small PKI: one CA
that signs the API server's serving certificate and the cluster-admin client certificate (group
``system:masters``), plus an EC key pair for service-account tokens. Everything is written as PEM
files into the control plane's folder; nothing is reused between runs.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)
SERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVER_IPS = ("127.0.0.1", "10.96.0.1")
"""Loopback, where the server listens, and the first address of the service range."""
ADMIN_USER = "kube-testbed-admin"
ADMIN_GROUP = "system:masters"


@dataclass(frozen=True)
class Pki:
    """PEM files of one control plane (all paths inside its folder)."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public_key: Path


def create_pki(directory: Path) -> Pki:
    """Write a fresh CA, serving and admin certificates and a service-account key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_cert = _sign(_name("kube-testbed-ca"), ca_key.public_key(), ca_key, None, _ca_extensions())
    server_key = _new_key()
    server_cert = _sign(
        _name("kube-apiserver"), server_key.public_key(), ca_key, ca_cert, _server_extensions()
    )
    admin_key = _new_key()
    admin_cert = _sign(
        _name(ADMIN_USER, ADMIN_GROUP),
        admin_key.public_key(),
        ca_key,
        ca_cert,
        _client_extensions(),
    )
    service_account_key = _new_key()
    pki = Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "apiserver.crt",
        server_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        service_account_key=directory / "service-account.key",
        service_account_public_key=directory / "service-account.pub",
    )
    _write_cert(pki.ca_cert, ca_cert)
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.server_cert, server_cert)
    _write_key(pki.server_key, server_key)
    _write_cert(pki.admin_cert, admin_cert)
    _write_key(pki.admin_key, admin_key)
    _write_key(pki.service_account_key, service_account_key)
    pki.service_account_public_key.write_bytes(
        service_account_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


Extension = tuple[x509.ExtensionType, bool]


def _ca_extensions() -> list[Extension]:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return [(x509.BasicConstraints(ca=True, path_length=None), True), (usage, True)]


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _server_extensions() -> list[Extension]:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVER_DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in SERVER_IPS]
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_leaf_usage(), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectAlternativeName(names), False),
    ]


def _client_extensions() -> list[Extension]:
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_leaf_usage(), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
    ]


def _sign(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    extensions: list[Extension],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, certificate: x509.Certificate) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
