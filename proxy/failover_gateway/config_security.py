"""The security part of the configuration: upstream SASL/TLS per cluster and the client listener.

Why a module of its own: both trust boundaries are configured here and checked at start. Upstream,
each cluster is described with the Kafka client properties teams already use
(``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config``, librdkafka-style
``ssl.ca.location``/``ssl.certificate.location``/``ssl.key.location``, PKCS#12 keystores). Values
may be ``${env:NAME}`` or ``${file:/path}`` so secrets stay in Secrets and environment variables,
never in the config file. Every error names the key and what is valid; no secret is ever echoed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from failover_gateway.auth import jaas, principals

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
STORE_TYPES = ("PEM", "PKCS12")
_INDIRECTION = re.compile(r"^\$\{(env|file):(.+)\}$")
_JKS_HINT = (
    "Java keystores (JKS) cannot be read by the gateway; convert it with: keytool "
    "-importkeystore -srckeystore store.jks -srcstoretype JKS -destkeystore store.p12 "
    "-deststoretype PKCS12, then set the PKCS12 file and type PKCS12"
)


class SecurityConfigError(Exception):
    """A security setting is invalid; the message names the key and never the secret."""


def resolve(value: str, where: str) -> str:
    """``${env:NAME}`` and ``${file:/path}`` give the variable or the file's content."""
    match = _INDIRECTION.match(value.strip())
    if not match:
        return value
    kind, target = match.groups()
    if kind == "env":
        if target not in os.environ:
            raise SecurityConfigError(f"{where}: environment variable {target} is not set")
        return os.environ[target]
    try:
        return Path(target).read_text().strip()
    except OSError as error:
        raise SecurityConfigError(f"{where}: cannot read {target}: {error.strerror}") from None


@dataclass(frozen=True)
class SaslCredentials:
    mechanism: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"SaslCredentials({self.mechanism}, user={self.username!r}, password=<hidden>)"


@dataclass(frozen=True)
class TlsFiles:
    """Where the TLS material of one side lives; loaded into an SSLContext by the server."""

    ca: Path | None = None
    ca_type: str = "PEM"
    ca_password: str | None = None
    certificate: Path | None = None
    key: Path | None = None
    key_password: str | None = None
    keystore: Path | None = None  # PKCS#12 holding certificate and key
    keystore_password: str | None = None
    verify_hostname: bool = True

    def __repr__(self) -> str:
        return (
            f"TlsFiles(ca={self.ca}, certificate={self.certificate or self.keystore}, "
            f"verify_hostname={self.verify_hostname})"
        )


@dataclass(frozen=True)
class UpstreamSecurity:
    protocol: str
    sasl: SaslCredentials | None
    tls: TlsFiles | None


def _existing_file(values: Mapping[str, str], key: str, where: str) -> Path | None:
    raw = values.get(key)
    if raw is None:
        return None
    path = Path(resolve(raw, f"{where}.{key}"))
    if not path.is_file():
        raise SecurityConfigError(f"{where}.{key}: file {path} does not exist")
    return path


def _store_type(values: Mapping[str, str], key: str, where: str) -> str:
    kind = values.get(key, "PEM").upper()
    if kind == "JKS":
        raise SecurityConfigError(f"{where}.{key}: {_JKS_HINT}")
    if kind not in STORE_TYPES:
        raise SecurityConfigError(f"{where}.{key}: {kind!r} is not supported; valid: PEM, PKCS12")
    return kind


def _secret(values: Mapping[str, str], key: str, where: str) -> str | None:
    raw = values.get(key)
    return None if raw is None else resolve(raw, f"{where}.{key}")


def upstream_tls(values: Mapping[str, str], where: str) -> TlsFiles:
    ca = _existing_file(values, "ssl.ca.location", where)
    ca_type = "PEM"
    if ca is None:
        ca = _existing_file(values, "ssl.truststore.location", where)
        ca_type = _store_type(values, "ssl.truststore.type", where)
    keystore = _existing_file(values, "ssl.keystore.location", where)
    if keystore is not None and _store_type(values, "ssl.keystore.type", where) != "PKCS12":
        raise SecurityConfigError(
            f"{where}.ssl.keystore.type: set PKCS12 for a keystore file, "
            "or use ssl.certificate.location and ssl.key.location (PEM)"
        )
    certificate = _existing_file(values, "ssl.certificate.location", where)
    key = _existing_file(values, "ssl.key.location", where)
    if (certificate is None) != (key is None):
        raise SecurityConfigError(
            f"{where}: ssl.certificate.location and ssl.key.location go together (client TLS "
            "certificate for mTLS); set both or neither"
        )
    algorithm = values.get("ssl.endpoint.identification.algorithm", "https").lower()
    if algorithm not in ("https", ""):
        raise SecurityConfigError(
            f"{where}.ssl.endpoint.identification.algorithm: "
            f"{algorithm!r}; valid: https (default), '' (no host check)"
        )
    return TlsFiles(
        ca=ca,
        ca_type=ca_type,
        ca_password=_secret(values, "ssl.truststore.password", where),
        certificate=certificate,
        key=key,
        key_password=_secret(values, "ssl.key.password", where),
        keystore=keystore,
        keystore_password=_secret(values, "ssl.keystore.password", where),
        verify_hostname=algorithm == "https",
    )


def upstream_sasl(values: Mapping[str, str], where: str) -> SaslCredentials:
    mechanism = values.get("sasl.mechanism", "").upper()
    if mechanism not in SASL_MECHANISMS:
        raise SecurityConfigError(
            f"{where}.sasl.mechanism: {mechanism or '(missing)'!r} is not supported; valid: "
            f"{', '.join(SASL_MECHANISMS)}"
        )
    if "sasl.jaas.config" in values:
        try:
            login = jaas.parse(resolve(values["sasl.jaas.config"], f"{where}.sasl.jaas.config"))
        except jaas.JaasError as error:
            raise SecurityConfigError(f"{where}.sasl.jaas.config: {error}") from None
        if not mechanism.startswith(login.family):
            raise SecurityConfigError(
                f"{where}.sasl.jaas.config: {login.module} does not do "
                f"{mechanism}; use the {mechanism.split('-')[0]} module"
            )
        return SaslCredentials(mechanism, login.username, login.password)
    username = _secret(values, "sasl.username", where)
    password = _secret(values, "sasl.password", where)
    if not username or not password:
        raise SecurityConfigError(
            f"{where}: SASL needs sasl.jaas.config, or sasl.username and "
            "sasl.password (values may be ${env:NAME} or ${file:/path})"
        )
    return SaslCredentials(mechanism, username, password)


def upstream_security(values: Mapping[str, str], where: str) -> UpstreamSecurity:
    protocol = values.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise SecurityConfigError(
            f"{where}.security.protocol: {protocol!r} is not a Kafka "
            f"security protocol; valid: {', '.join(SECURITY_PROTOCOLS)}"
        )
    stray = sorted(k for k in values if k.startswith("sasl.") and "SASL" not in protocol)
    stray += sorted(k for k in values if k.startswith("ssl.") and "SSL" not in protocol)
    if stray:
        raise SecurityConfigError(
            f"{where}.{stray[0]}: not used with security.protocol "
            f"{protocol}; set SASL_SSL, SASL_PLAINTEXT or SSL, or remove it"
        )
    sasl = upstream_sasl(values, where) if protocol.startswith("SASL") else None
    tls = upstream_tls(values, where) if protocol.endswith("SSL") else None
    return UpstreamSecurity(protocol, sasl, tls)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ListenerTls(_Frozen):
    """The gateway's own certificate for clients, and client certificate checks (mTLS)."""

    certificate: Path = Field(description="PEM certificate chain of the gateway")
    key: Path = Field(description="PEM private key")
    key_password: str | None = Field(default=None, alias="keyPassword")
    client_ca: Path | None = Field(default=None, alias="clientCa")
    client_auth: Literal["none", "requested", "required"] = Field(
        default="none", alias="clientAuth"
    )

    @field_validator("certificate", "key", "client_ca")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {value} does not exist")
        return value


class ListenerSecurity(_Frozen):
    """How clients authenticate to the gateway (terminated here, never forwarded upstream)."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanisms: tuple[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], ...] = Field(
        default=("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"), alias="saslMechanisms"
    )
    users_file: Path | None = Field(default=None, alias="usersFile")
    tls: ListenerTls | None = None
    principal_mapping_rules: str = Field(default="DEFAULT", alias="principalMappingRules")

    @field_validator("principal_mapping_rules")
    @classmethod
    def _rules_parse(cls, value: str) -> str:
        try:
            principals.parse_rules(value)
        except principals.RuleError as error:
            raise ValueError(str(error)) from None
        return value

    def check(self) -> None:
        """Cross-field rules, with messages naming the key."""
        if self.protocol.endswith("SSL") and self.tls is None:
            raise SecurityConfigError(
                f"gateway.listener.security.tls is required for "
                f"protocol {self.protocol} (certificate and key)"
            )
        if self.protocol.startswith("SASL") and self.users_file is None:
            raise SecurityConfigError(
                f"gateway.listener.security.usersFile is required for protocol {self.protocol}"
            )
        if self.tls and self.tls.client_auth != "none" and self.tls.client_ca is None:
            raise SecurityConfigError(
                "gateway.listener.security.tls.clientCa is required when "
                "clientAuth is requested or required"
            )


class AdminTls(_Frozen):
    certificate: Path
    key: Path

    @field_validator("certificate", "key")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"file {value} does not exist")
        return value
