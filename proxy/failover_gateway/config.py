"""The gateway's typed configuration: parsed once at the edge, validated, frozen afterwards.

Why a module of its own: the YAML file is a contract with users (the ``config:`` block is the shape
Conduktor Gateway users already write, plain Kafka client properties per physical cluster) and with
the operator, which builds the same file for gateway pods. Both sides import this model and nothing
else of the gateway. Every error names the key, the bad value and what would be valid.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from failover_gateway import config_security
from failover_gateway.config_security import (
    AdminTls,
    ListenerSecurity,
    SecurityConfigError,
    UpstreamSecurity,
)

# Kafka client properties the config model knows. A key outside this set is refused (a typo such as
# ``bootstrap.server`` must not be silently ignored); values are checked by ``ClusterConfig``.
KNOWN_CLUSTER_KEYS = frozenset(
    {
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.jaas.config",
        "sasl.username",
        "sasl.password",
        "sasl.oauthbearer.token.endpoint.url",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.keystore.location",
        "ssl.keystore.password",
        "ssl.keystore.type",
        "ssl.truststore.location",
        "ssl.truststore.password",
        "ssl.truststore.type",
        "ssl.endpoint.identification.algorithm",
        "ssl.truststore.certificates",
        "client.id",
        "request.timeout.ms",
        "gateway.roles",
    }
)
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?$")


class ConfigError(Exception):
    """The configuration is invalid; the message names the key, the value and what is valid."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_bootstrap_servers(value: str) -> tuple[HostPort, ...]:
    """Split a Kafka ``bootstrap.servers`` string into host/port pairs, refusing bad entries."""
    servers = []
    for entry in (part.strip() for part in value.split(",")):
        match = _HOST_PORT.match(entry)
        if not entry or not match or not 0 < int(match.group(2)) < 65536:
            raise ValueError(
                f"bad server {entry!r} in {value!r}: expected host:port[,host:port...] "
                "with a port between 1 and 65535"
            )
        servers.append(HostPort(match.group(1).strip("[]"), int(match.group(2))))
    return tuple(servers)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ClusterConfig(_Frozen):
    """One physical Kafka cluster, described with plain Kafka client properties."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    bootstrap_servers: tuple[HostPort, ...]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    roles: tuple[str, ...] = ()
    request_timeout_ms: int = 10_000
    properties: Mapping[str, str] = Field(default_factory=dict, repr=False)
    security: UpstreamSecurity = Field(
        default_factory=lambda: UpstreamSecurity("PLAINTEXT", None, None)
    )

    @property
    def is_failover(self) -> bool:
        return "failover" in self.roles


class ListenerConfig(_Frozen):
    """Where clients connect. Port ``port`` is the bootstrap port; broker ports follow it."""

    host: str = "0.0.0.0"
    port: int = Field(default=6969, ge=1, le=65535)
    advertised_host: str = Field(default="localhost", alias="advertisedHost", min_length=1)
    broker_port_count: int = Field(default=32, ge=1, le=1024, alias="brokerPortCount")
    # Per-broker ports start right after the bootstrap port unless set.
    broker_port_base: int | None = Field(default=None, ge=1, le=65535, alias="brokerPortBase")
    security: ListenerSecurity = Field(default_factory=ListenerSecurity)

    @property
    def first_broker_port(self) -> int:
        return self.broker_port_base if self.broker_port_base is not None else self.port + 1

    @model_validator(mode="after")
    def _ports_fit(self) -> ListenerConfig:
        last = self.first_broker_port + self.broker_port_count - 1
        if last > 65535:
            raise ValueError(
                f"listener ports run past 65535 (first broker port {self.first_broker_port} + "
                f"brokerPortCount {self.broker_port_count}); lower brokerPortCount or the port"
            )
        if self.first_broker_port <= self.port <= last:
            raise ValueError(
                f"listener.port {self.port} falls inside the broker port range "
                f"{self.first_broker_port}-{last}; move brokerPortBase"
            )
        return self


class AdminConfig(_Frozen):
    """The admin HTTP API (switch, state, health, metrics)."""

    host: str = "0.0.0.0"
    port: int = Field(default=8888, ge=1, le=65535)
    tls: AdminTls | None = None
    # Abuse limits (README, "Admin API under abuse"). Admin bodies are small JSON objects.
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024, alias="maxBodyBytes"
    )
    # Time for a request body to arrive once its headers have.
    body_timeout_ms: int = Field(default=10_000, ge=100, le=600_000, alias="bodyTimeoutMs")
    # A connection must send complete request headers within this long of opening or of its
    # last answer: idle keep-alive connections and slowly sent headers both end here.
    keepalive_timeout_ms: int = Field(
        default=15_000, ge=100, le=3_600_000, alias="keepaliveTimeoutMs"
    )
    # Wrong credentials per client address: this many at once, refilled at the rate below;
    # beyond that the address gets 429 without its credentials being checked.
    auth_failure_burst: int = Field(default=10, ge=1, le=10_000, alias="authFailureBurst")
    auth_failures_per_minute: float = Field(
        default=6.0, gt=0, le=60_000, alias="authFailuresPerMinute"
    )


class LimitsConfig(_Frozen):
    """Protective limits; a client exceeding one loses its own connection only."""

    max_frame_bytes: int = Field(default=100 * 1024 * 1024, ge=1024, alias="maxFrameBytes")
    max_connections: int = Field(default=10_000, ge=1, alias="maxConnections")
    # Bytes buffered towards a slow peer before the other side stops being read.
    high_water_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, alias="highWaterBytes")
    # Requests awaiting a response per connection before reading the client pauses.
    max_in_flight: int = Field(default=1000, ge=1, alias="maxInFlight")
    # Broker dials at once (new connections, and every connection moving at a switch); the rest
    # wait their turn, those a client waits on first (failover_gateway.pump.dial_queue).
    max_concurrent_dials: int = Field(default=64, ge=1, le=10_000, alias="maxConcurrentDials")


class TimeoutsConfig(_Frozen):
    """Every wait of the gateway has a bound; these are the ones users may want to tune."""

    upstream_connect_ms: int = Field(default=5000, ge=100, alias="upstreamConnectMs")
    metadata_refresh_ms: int = Field(default=30_000, ge=1000, alias="metadataRefreshMs")
    probe_interval_ms: int = Field(default=5000, ge=200, alias="probeIntervalMs")
    # Every cluster's topic ids are fetched again at least this often (and sooner when a client
    # uses an id the gateway cannot translate yet); see failover_gateway.routing.topic_ids.
    topic_refresh_ms: int = Field(default=60_000, ge=1000, alias="topicRefreshMs")
    drain_ms: int = Field(default=0, ge=0, le=60_000, alias="drainMs")
    # How long a broker may take over one response frame once it has begun (time spent holding
    # the broker back for a slow client not counted) before that client's connection is closed;
    # 0: no bound. Generous: every client family gives up on a request sooner by default.
    response_frame_ms: int = Field(default=120_000, ge=0, alias="responseFrameMs")
    active_file_poll_ms: int = Field(default=1000, ge=100, alias="activeFilePollMs")
    # Bounds on slow and half-open client connections (failover_gateway.pump.client_deadlines):
    # the first request complete after the accept, SASL over after the accept (SASL listeners),
    # a started frame complete (reading time: pauses of the gateway's own do not count).
    client_first_request_ms: int = Field(default=10_000, ge=100, alias="clientFirstRequestMs")
    client_authentication_ms: int = Field(default=30_000, ge=100, alias="clientAuthenticationMs")
    client_frame_ms: int = Field(default=60_000, ge=100, alias="clientFrameMs")


class MirrorMaker2Config(_Frozen):
    """How MirrorMaker 2 names things, for a switchover that reads its offset syncs."""

    # MirrorMaker's alias of each gateway cluster (default: the cluster's own name).
    aliases: Mapping[str, str] = Field(default_factory=dict)
    # "identity" (IdentityReplicationPolicy: same topic names) or "default" (DefaultReplication
    # Policy: <source alias><separator><topic> on the target).
    policy: Literal["identity", "default"] = "identity"
    separator: str = Field(default=".", min_length=1)

    def alias(self, cluster: str) -> str:
        return self.aliases.get(cluster, cluster)

    def remote_topic(self, source: str, topic: str) -> str:
        if self.policy == "identity":
            return topic
        return f"{self.alias(source)}{self.separator}{topic}"


class SwitchoverConfig(_Frozen):
    """A planned switchover: fence writes, let consumers finish, wait for replication, hand off
    offsets, switch (README, "Planned switchover")."""

    # What copies main to failover: "none" refuses planned switches (nothing to wait for).
    replication: Literal["none", "offsetPreserving", "mirrorMaker2"] = "none"
    # Regex of the replicated topics (internal topics, names starting with "__" or "mm2-" or
    # ending ".internal", are never part of it).
    topics: str = ".*"
    mirror_maker2: MirrorMaker2Config = Field(
        default_factory=MirrorMaker2Config, alias="mirrorMaker2"
    )
    max_catch_up_seconds: float = Field(default=30.0, gt=0, le=600, alias="maxCatchUpSeconds")
    consumer_drain_seconds: float = Field(default=5.0, ge=0, le=300, alias="consumerDrainSeconds")

    @field_validator("topics")
    @classmethod
    def _topics_is_a_regex(cls, value: str) -> str:
        return regular_expression(value)


def regular_expression(value: str) -> str:
    """``value`` if it compiles as a Python regular expression, else a ValueError saying why."""
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"{value!r} is not a regular expression: {error}") from None
    return value


class GatewaySettings(_Frozen):
    """The ``gateway:`` block of the config file."""

    listener: ListenerConfig = Field(default_factory=ListenerConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    active: str = "main"
    active_file: Path | None = Field(default=None, alias="activeFile")
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", alias="logLevel"
    )
    switchover: SwitchoverConfig = Field(default_factory=SwitchoverConfig)
    # A switch moves connections with nothing in flight to the new cluster under their clients
    # instead of closing them (README, "Switch latency"); false closes every connection.
    move_idle_connections: bool = Field(default=True, alias="moveIdleConnections")
    # A topic on every cluster whose partition 0's leader each probe asks for its latest offset
    # (server.upstream_probing): a cluster whose leaders do not answer is judged down.
    canary_topic: str | None = Field(
        default=None, alias="canaryTopic", pattern=r"^[A-Za-z0-9._-]{1,249}$"
    )

    @field_validator("active")
    @classmethod
    def _active_is_a_name(cls, value: str) -> str:
        if not _CLUSTER_NAME.match(value):
            raise ValueError(f"{value!r} is not a cluster name (lowercase letters, digits, '-')")
        return value


class GatewayConfig(_Frozen):
    """The whole file: physical clusters by name, and the gateway's own settings."""

    clusters: Mapping[str, ClusterConfig]
    gateway: GatewaySettings


def _cluster_from_properties(name: str, props: Mapping[str, Any]) -> ClusterConfig:
    where = f"config.{name}"
    if not isinstance(props, Mapping):
        raise ConfigError(f"{where}: expected a map of Kafka client properties, got {props!r}")
    unknown = sorted(set(props) - KNOWN_CLUSTER_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: "
            f"{', '.join(sorted(KNOWN_CLUSTER_KEYS))}"
        )
    values = {key: str(value) for key, value in props.items()}
    if "bootstrap.servers" not in values:
        raise ConfigError(f"{where}.bootstrap.servers is required (e.g. kafka-1:9092,kafka-2:9092)")
    try:
        servers = parse_bootstrap_servers(values["bootstrap.servers"])
    except ValueError as error:
        raise ConfigError(f"{where}.bootstrap.servers: {error}") from None
    try:
        security = config_security.upstream_security(values, where)
    except SecurityConfigError as error:
        raise ConfigError(str(error)) from None
    return ClusterConfig(
        name=name,
        bootstrap_servers=servers,
        security_protocol=security.protocol,
        security=security,
        sasl_mechanism=values.get("sasl.mechanism"),
        roles=tuple(r.strip() for r in values.get("gateway.roles", "").split(",") if r.strip()),
        request_timeout_ms=_int_property(where, values, "request.timeout.ms", 10_000),
        properties=values,
    )


def _int_property(where: str, values: Mapping[str, str], key: str, default: int) -> int:
    raw = values.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{where}.{key}: {raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{where}.{key}: {value} must be a positive number of milliseconds")
    return value


def _format_validation_error(error: ValidationError, prefix: str) -> str:
    lines = []
    for issue in error.errors():
        path = ".".join(str(part) for part in (prefix, *issue["loc"]))
        value = issue.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{path}: {issue['msg']}{shown}")
    return "; ".join(lines)


def config_from_mapping(raw: Any) -> GatewayConfig:
    """Build and validate the configuration from the parsed YAML document."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the config file must be a map with the keys 'config' and 'gateway'")
    unknown = sorted(set(raw) - {"config", "gateway"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {', '.join(unknown)}; valid: config, gateway")
    clusters_raw = raw.get("config")
    if not isinstance(clusters_raw, Mapping) or not clusters_raw:
        raise ConfigError("config: expected a map of cluster name -> Kafka client properties")
    clusters = {}
    for name, props in clusters_raw.items():
        if not isinstance(name, str) or not _CLUSTER_NAME.match(name):
            raise ConfigError(
                f"config.{name}: cluster names are lowercase letters, digits and '-' (e.g. main)"
            )
        clusters[name] = _cluster_from_properties(name, props)
    if len(clusters) < 2:
        raise ConfigError(
            f"config: a failover gateway needs at least two clusters, got {', '.join(clusters)}"
        )
    try:
        gateway = GatewaySettings.model_validate(raw.get("gateway") or {})
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, "gateway")) from None
    try:
        gateway.listener.security.check()
    except SecurityConfigError as error:
        raise ConfigError(str(error)) from None
    if gateway.active not in clusters:
        raise ConfigError(
            f"gateway.active: {gateway.active!r} names no cluster; valid: {', '.join(clusters)}"
        )
    return GatewayConfig(clusters=clusters, gateway=gateway)


def load_config(path: Path) -> GatewayConfig:
    """Read, parse and validate a config file."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    return config_from_mapping(raw)


@dataclass(frozen=True)
class AdminCredentials:
    user: str
    password: str = ""

    def __repr__(self) -> str:
        return f"AdminCredentials(user={self.user!r}, password=<hidden>)"


def _env_or_file(env: Mapping[str, str], name: str) -> str | None:
    if env.get(name):
        return env[name]
    file_name = env.get(f"{name}_FILE")
    if not file_name:
        return None
    try:
        return Path(file_name).read_text().strip() or None
    except OSError as error:
        raise ConfigError(f"{name}_FILE={file_name}: cannot read: {error.strerror}") from None


def admin_credentials_from_env(env: Mapping[str, str] | None = None) -> AdminCredentials:
    """Admin credentials from GATEWAY_ADMIN_USER/PASSWORD (or ..._FILE); there is no default."""
    env = os.environ if env is None else env
    user = _env_or_file(env, "GATEWAY_ADMIN_USER")
    password = _env_or_file(env, "GATEWAY_ADMIN_PASSWORD")
    if not user or not password:
        missing = [
            name
            for name, value in (("GATEWAY_ADMIN_USER", user), ("GATEWAY_ADMIN_PASSWORD", password))
            if not value
        ]
        raise ConfigError(
            f"admin credentials missing: set {' and '.join(missing)} (or {missing[0]}_FILE naming "
            "a file that holds it); the gateway has no built-in default password"
        )
    return AdminCredentials(user=user, password=password)
