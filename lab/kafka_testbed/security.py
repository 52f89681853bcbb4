"""Secured client listeners for lab Kafka clusters: TLS material, SASL users, broker/client config.

The gateway authenticates to real clusters (SASL PLAIN/SCRAM over TLS, mutual TLS), so the lab
must start brokers that demand exactly that. Only the advertised *client* listener is secured; the
controller and inter-broker listeners stay PLAINTEXT on their own ports, which keeps the quorum
independent of certificates and credentials (a bad TLS setup then fails clients, not the start of
the cluster itself, and the log says why).

Everything here is pure data or file generation (no processes), so the generated broker settings
are unit tested without a JVM. Certificates come from ``trustme`` (a throwaway CA) and
``cryptography`` (PKCS#8 keys, which is what Kafka's PEM key stores accept, and PKCS#12 bundles).
Secrets are distinctive constants so that tests can scan logs for leaks.
"""

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

SecurityProtocol = Literal["SSL", "SASL_SSL", "SASL_PLAINTEXT"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
ClientAuth = Literal["none", "required"]

CLIENT_LISTENER = "CLIENT"
"""Name of the secured, advertised listener clients bootstrap from."""
BROKER_LISTENER = "BROKER"
"""Name of the PLAINTEXT inter-broker listener of a secured cluster (not advertised to clients
on its own: clients never learn it unless they connect to it)."""

SCRAM_MECHANISMS: tuple[SaslMechanism, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512")
PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"

MAIN_USER = "gateway-main"
"""SCRAM-SHA-512 user of the ``kafka_scram_tls`` cluster (the gateway's main upstream)."""
MAIN_PASSWORD = "main-scram-secret-8d1f"
FAILOVER_USER = "gateway-failover"
"""PLAIN user of the ``kafka_plain_mtls`` cluster (the gateway's failover upstream)."""
FAILOVER_PASSWORD = "failover-plain-secret-3c7a"
WRONG_PASSWORD = "wrong-password-51e0"
"""A password no lab user has: for authentication failure tests."""
CLIENT_P12_PASSWORD = "client-p12-secret-6b2e"
"""Protects ``TlsMaterial.client_p12`` (client certificate, its key and the CA)."""
CA_P12_PASSWORD = "ca-p12-secret-0f94"
"""Protects ``TlsMaterial.ca_p12`` (the CA certificate only, as a trust store)."""
SECRETS: tuple[str, ...] = (
    MAIN_PASSWORD,
    FAILOVER_PASSWORD,
    WRONG_PASSWORD,
    CLIENT_P12_PASSWORD,
    CA_P12_PASSWORD,
)
"""Every secret the lab hands out; none of them may ever appear in a gateway log."""

SERVER_IDENTITIES = ("127.0.0.1", "localhost")
"""Subject alternative names of the broker certificate: an IP SAN, as clients dial 127.0.0.1."""
CLIENT_IDENTITY = "gateway-client.kafka-failover.test"
OTHER_CA_CLIENT_IDENTITY = "stranger.kafka-failover.test"
EXPIRED_CLIENT_IDENTITY = "expired-client.kafka-failover.test"

_SAFE_CREDENTIAL = re.compile(r"[A-Za-z0-9._@+-]+")
"""Names and passwords are pasted into JAAS strings and ``--add-scram`` arguments unquoted."""


@dataclass(frozen=True)
class TlsMaterial:
    """PEM (and PKCS#12) files of one lab CA: broker, client, expired and foreign certificates.

    Keys are unencrypted PKCS#8 PEM unless named otherwise. ``*_cert_pem`` files hold the leaf
    certificate only (the CA signs leaves directly).
    """

    directory: Path
    ca_pem: Path
    """The lab CA certificate: the trust store of brokers and clients."""
    ca_p12: Path
    """The CA certificate alone in a PKCS#12 bundle (password ``ca_p12_password``)."""
    ca_p12_password: str
    server_cert_pem: Path
    """Broker certificate for ``127.0.0.1`` and ``localhost``."""
    server_key_pem: Path
    client_cert_pem: Path
    """A client certificate signed by the lab CA (mutual TLS)."""
    client_key_pem: Path
    client_p12: Path
    """Client certificate, its key and the CA in a PKCS#12 bundle (``client_p12_password``)."""
    client_p12_password: str
    expired_client_cert_pem: Path
    """Signed by the lab CA, but expired yesterday: brokers must refuse it."""
    expired_client_key_pem: Path
    other_ca_pem: Path
    """A second, unrelated CA: brokers do not trust it."""
    other_ca_client_cert_pem: Path
    """A client certificate signed by ``other_ca_pem``: brokers must refuse it."""
    other_ca_client_key_pem: Path


def generate_tls_material(directory: Path) -> TlsMaterial:
    """Create a lab CA, a broker certificate and client certificates as files in ``directory``.

    RSA keys throughout: every client (librdkafka, Java, Python's ssl) and Kafka's PEM loader
    handle them. (``trustme`` and ``cryptography`` are imported here, not with the module: most
    lab users never need certificates.)
    """
    import trustme

    rsa = trustme.KeyType.RSA
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="kafka-failover lab", key_type=rsa)
    other_ca = trustme.CA(organization_name="somebody else", key_type=rsa)
    server = ca.issue_cert(*SERVER_IDENTITIES, common_name="kafka-lab-broker", key_type=rsa)
    client = ca.issue_cert(CLIENT_IDENTITY, common_name="gateway-client", key_type=rsa)
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    expired = ca.issue_cert(
        EXPIRED_CLIENT_IDENTITY, common_name="expired-client", key_type=rsa,
        not_before=yesterday - datetime.timedelta(days=30), not_after=yesterday,
    )  # fmt: skip
    stranger = other_ca.issue_cert(OTHER_CA_CLIENT_IDENTITY, common_name="stranger", key_type=rsa)

    def write(name: str, data: bytes) -> Path:
        path = directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def leaf(cert: trustme.LeafCert) -> bytes:
        return bytes(cert.cert_chain_pems[0].bytes())

    def key(cert: trustme.LeafCert) -> bytes:
        return _pkcs8(cert.private_key_pem.bytes())

    ca_pem = ca.cert_pem.bytes()
    return TlsMaterial(
        directory=directory,
        ca_pem=write("ca.pem", ca_pem),
        ca_p12=write("ca.p12", _p12(b"lab-ca", None, None, ca_pem, CA_P12_PASSWORD)),
        ca_p12_password=CA_P12_PASSWORD,
        server_cert_pem=write("server.pem", leaf(server)),
        server_key_pem=write("server.key", key(server)),
        client_cert_pem=write("client.pem", leaf(client)),
        client_key_pem=write("client.key", key(client)),
        client_p12=write(
            "client.p12",
            _p12(b"gateway-client", key(client), leaf(client), ca_pem, CLIENT_P12_PASSWORD),
        ),
        client_p12_password=CLIENT_P12_PASSWORD,
        expired_client_cert_pem=write("expired-client.pem", leaf(expired)),
        expired_client_key_pem=write("expired-client.key", key(expired)),
        other_ca_pem=write("other-ca.pem", other_ca.cert_pem.bytes()),
        other_ca_client_cert_pem=write("other-ca-client.pem", leaf(stranger)),
        other_ca_client_key_pem=write("other-ca-client.key", key(stranger)),
    )


def _pkcs8(key_pem: bytes) -> bytes:
    """Unencrypted PKCS#8 (``BEGIN PRIVATE KEY``): Kafka's PEM loader reads no other format."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _p12(
    name: bytes, key_pem: bytes | None, cert_pem: bytes | None, ca_pem: bytes, password: str
) -> bytes:
    """A password-protected PKCS#12 bundle: an optional key and certificate, plus the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None
    if key_pem is not None:
        loaded = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError(f"unexpected key type {type(loaded).__name__}")
        key = loaded
    cert = None if cert_pem is None else x509.load_pem_x509_certificate(cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    encryption = serialization.BestAvailableEncryption(password.encode())
    return pkcs12.serialize_key_and_certificates(name, key, cert, [ca_cert], encryption)


@dataclass(frozen=True)
class BrokerSecurity:
    """How the client listener of a lab Kafka cluster is secured.

    ``mechanisms`` and ``users`` apply to the SASL protocols; ``tls`` to SSL and SASL_SSL.
    ``client_auth="required"`` asks TLS clients for a certificate signed by the lab CA (on a
    SASL_SSL listener the client then passes both checks). No authorizer is configured: every
    authenticated client may do everything.
    """

    protocol: SecurityProtocol
    mechanisms: tuple[SaslMechanism, ...] = ()
    users: Mapping[str, str] = field(default_factory=dict)
    """User name -> password, created for every enabled mechanism."""
    tls: TlsMaterial | None = None
    client_auth: ClientAuth = "none"
    max_reauth_ms: int | None = None
    """``connections.max.reauth.ms``: SASL clients must re-authenticate this often (KIP-368)."""

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError("invalid BrokerSecurity: " + "; ".join(problems))

    @property
    def uses_tls(self) -> bool:
        """True for SSL and SASL_SSL."""
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """True for SASL_SSL and SASL_PLAINTEXT."""
        return self.protocol.startswith("SASL_")

    @property
    def scram_mechanisms(self) -> tuple[SaslMechanism, ...]:
        """The enabled SCRAM mechanisms: their users are created when storage is formatted."""
        return tuple(mechanism for mechanism in self.mechanisms if mechanism in SCRAM_MECHANISMS)

    def _problems(self) -> list[str]:
        problems = []
        if self.protocol not in get_args(SecurityProtocol):
            problems.append(f"unknown protocol {self.protocol!r}")
        if self.client_auth not in get_args(ClientAuth):
            problems.append(f"client_auth must be 'none' or 'required', not {self.client_auth!r}")
        unknown = [m for m in self.mechanisms if m not in get_args(SaslMechanism)]
        if unknown:
            problems.append(f"unknown SASL mechanisms {unknown}")
        if self.uses_sasl and not (self.mechanisms and self.users):
            problems.append(f"{self.protocol} needs at least one mechanism and one user")
        if not self.uses_sasl and (self.mechanisms or self.users):
            problems.append(f"{self.protocol} has no SASL: mechanisms and users must be empty")
        if self.uses_tls and self.tls is None:
            problems.append(f"{self.protocol} needs TLS material")
        if self.client_auth == "required" and not self.uses_tls:
            problems.append("client_auth='required' needs a TLS protocol")
        unsafe = [text for item in self.users.items() for text in item]
        problems.extend(
            f"user names and passwords may only use [A-Za-z0-9._@+-], not {text!r}"
            for text in unsafe
            if not _SAFE_CREDENTIAL.fullmatch(text)
        )
        if self.max_reauth_ms is not None and self.max_reauth_ms <= 0:
            problems.append("max_reauth_ms must be positive")
        return problems


def scram_tls(tls: TlsMaterial) -> BrokerSecurity:
    """The ``kafka_scram_tls`` cluster: SASL_SSL with SCRAM-SHA-512, user :data:`MAIN_USER`."""
    return BrokerSecurity(
        "SASL_SSL", ("SCRAM-SHA-512",), {MAIN_USER: MAIN_PASSWORD}, tls=tls, client_auth="none"
    )


def plain_mtls(tls: TlsMaterial) -> BrokerSecurity:
    """The ``kafka_plain_mtls`` cluster: SASL_SSL PLAIN plus a required client certificate."""
    return BrokerSecurity(
        "SASL_SSL", ("PLAIN",), {FAILOVER_USER: FAILOVER_PASSWORD}, tls=tls, client_auth="required"
    )


def listener_protocol_map(security: BrokerSecurity) -> str:
    """``listener.security.protocol.map`` of a cluster with a secured client listener."""
    return f"{CLIENT_LISTENER}:{security.protocol},{BROKER_LISTENER}:PLAINTEXT,CONTROLLER:PLAINTEXT"


def client_listener_properties(security: BrokerSecurity) -> dict[str, str]:
    """The ``listener.name.client.*`` broker settings (TLS stores, SASL mechanisms, JAAS).

    The broker certificate and key are given inline (``ssl.keystore.certificate.chain`` and
    ``ssl.keystore.key``, read from the PEM files): a PEM key store *file* needs an encrypted
    key, and Java 17 cannot decrypt the PBES2 keys that ``cryptography`` writes.
    """
    prefix = f"listener.name.{CLIENT_LISTENER.lower()}."
    properties: dict[str, str] = {}
    if security.tls is not None and security.uses_tls:
        properties |= {
            prefix + "ssl.keystore.type": "PEM",
            prefix + "ssl.keystore.certificate.chain": security.tls.server_cert_pem.read_text(),
            prefix + "ssl.keystore.key": security.tls.server_key_pem.read_text(),
            prefix + "ssl.truststore.type": "PEM",
            prefix + "ssl.truststore.location": str(security.tls.ca_pem),
            prefix + "ssl.client.auth": security.client_auth,
        }
    if security.uses_sasl:
        properties[prefix + "sasl.enabled.mechanisms"] = ",".join(security.mechanisms)
        for mechanism in security.mechanisms:
            properties[f"{prefix}{mechanism.lower()}.sasl.jaas.config"] = _jaas(mechanism, security)
    if security.max_reauth_ms is not None:
        properties["connections.max.reauth.ms"] = str(security.max_reauth_ms)
    return properties


def _jaas(mechanism: SaslMechanism, security: BrokerSecurity) -> str:
    if mechanism == "PLAIN":
        users = "".join(f' user_{name}="{password}"' for name, password in security.users.items())
        return f"{PLAIN_LOGIN_MODULE} required{users};"
    return f"{SCRAM_LOGIN_MODULE} required;"


def scram_format_arguments(security: BrokerSecurity) -> list[str]:
    """``StorageTool format`` arguments creating every SCRAM credential in the metadata log."""
    arguments: list[str] = []
    for mechanism in security.scram_mechanisms:
        for name, password in security.users.items():
            arguments += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return arguments


def client_config(
    security: BrokerSecurity,
    user: str | None = None,
    *,
    password: str | None = None,
    mechanism: SaslMechanism | None = None,
    certificate: tuple[Path, Path] | None = None,
    present_certificate: bool | None = None,
) -> dict[str, str]:
    """librdkafka (confluent-kafka) settings that authenticate to a cluster with ``security``.

    Defaults: the first user with their own password and the first mechanism; the lab client
    certificate when the broker requires one. Tests of refusals override ``password``,
    ``certificate`` (a ``(cert_pem, key_pem)`` pair) or ``present_certificate=False``.
    """
    config: dict[str, str] = {"security.protocol": security.protocol}
    if security.uses_sasl:
        user = user if user is not None else next(iter(security.users))
        config |= {
            "sasl.mechanism": mechanism or security.mechanisms[0],
            "sasl.username": user,
            "sasl.password": password if password is not None else security.users[user],
        }
    if security.tls is not None and security.uses_tls:
        config["ssl.ca.location"] = str(security.tls.ca_pem)
        if present_certificate is None:
            present_certificate = certificate is not None or security.client_auth == "required"
        if present_certificate:
            cert, key = certificate or (security.tls.client_cert_pem, security.tls.client_key_pem)
            config |= {"ssl.certificate.location": str(cert), "ssl.key.location": str(key)}
    return config


def secrets_in(texts: Sequence[str]) -> list[str]:
    """The lab secrets (:data:`SECRETS`) that occur in any of ``texts``: for log leak checks."""
    return [secret for secret in SECRETS if any(secret in text for text in texts)]
