"""The typed model of a ``KafkaFailover`` object: the single source of the CRD and the operator.

Why it exists: the CRD's OpenAPI schema (``crds/kafkafailover.yaml``) is generated from these
pydantic models (see ``crd_building``), and the operator parses every object through the same
models, so the schema users are validated against and the fields the operator reads cannot drift
apart (a test regenerates the CRD and compares). Secrets are only ever referenced, never inline:
the operator mounts them into gateway pods and the gateway config names the files.

Cross-field rules are declared once (``Rule``): their CEL goes into the schema, so the API server
refuses a bad object at ``kubectl apply``, and the same check in Python runs when the operator
parses an object (one stored before a rule existed is reported, not acted on).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from failover_gateway.config import regular_expression

GROUP = "kafka-failover.github.io"
VERSION = "v1alpha1"
KIND = "KafkaFailover"
PLURAL = "kafkafailovers"
SINGULAR = "kafkafailover"
SHORT_NAMES = ("kfo",)
CLUSTER_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
DEFAULT_IMAGE = "ghcr.io/kafka-failover/gateway:0.1.0"


SECRET_PROPERTIES = (
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.truststore.password",
)
"""Kafka properties that carry credentials: refused in ``properties`` (they would land in the
ConfigMap); ``credentialsSecret`` and ``tlsSecret`` provide them from Secrets instead."""


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: CEL for the API server, the same predicate for the operator."""

    cel: str
    message: str
    field_path: str
    reason: Literal["FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden"]
    holds: Callable[[Any], bool]

    def schema(self) -> dict[str, str]:
        return {
            "rule": self.cel,
            "message": self.message,
            "fieldPath": self.field_path,
            "reason": self.reason,
        }


def _validations(rules: Sequence[Rule]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [rule.schema() for rule in rules]}


def _check(value: Any, rules: Sequence[Rule]) -> None:
    broken = [rule.message for rule in rules if not rule.holds(value)]
    if broken:
        raise ValueError("; ".join(broken))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SecretRef(_Spec):
    """A Secret in the object's namespace (the field that references it names its keys)."""

    name: str = Field(
        min_length=1, max_length=253, description="Name of a Secret in the same namespace."
    )


def _sasl(protocol: str) -> bool:
    return protocol.startswith("SASL_")


def _tls(protocol: str) -> bool:
    return protocol.endswith("SSL")


_CLUSTER_SASL = "has(self.securityProtocol) && self.securityProtocol.startsWith('SASL_')"
_CLUSTER_TLS = "has(self.securityProtocol) && self.securityProtocol.endsWith('SSL')"
CLUSTER_RULES = (
    Rule(
        f"!({_CLUSTER_SASL}) || has(self.credentialsSecret)",
        "credentialsSecret (a Secret with keys username and password) is required when "
        "securityProtocol is SASL_PLAINTEXT or SASL_SSL",
        ".credentialsSecret",
        "FieldValueRequired",
        lambda c: not _sasl(c.security_protocol) or c.credentials_secret is not None,
    ),
    Rule(
        f"!({_CLUSTER_SASL}) || has(self.saslMechanism)",
        "saslMechanism is required when securityProtocol is SASL_PLAINTEXT or SASL_SSL",
        ".saslMechanism",
        "FieldValueRequired",
        lambda c: not _sasl(c.security_protocol) or c.sasl_mechanism is not None,
    ),
    Rule(
        f"!has(self.credentialsSecret) || ({_CLUSTER_SASL})",
        "credentialsSecret is only used with securityProtocol SASL_PLAINTEXT or SASL_SSL",
        ".credentialsSecret",
        "FieldValueForbidden",
        lambda c: c.credentials_secret is None or _sasl(c.security_protocol),
    ),
    Rule(
        f"!has(self.saslMechanism) || ({_CLUSTER_SASL})",
        "saslMechanism is only used with securityProtocol SASL_PLAINTEXT or SASL_SSL",
        ".saslMechanism",
        "FieldValueForbidden",
        lambda c: c.sasl_mechanism is None or _sasl(c.security_protocol),
    ),
    Rule(
        f"!has(self.tlsSecret) || ({_CLUSTER_TLS})",
        "tlsSecret is only used with securityProtocol SSL or SASL_SSL",
        ".tlsSecret",
        "FieldValueForbidden",
        lambda c: c.tls_secret is None or _tls(c.security_protocol),
    ),
    Rule(
        "!has(self.properties) || self.properties.all(k, !(k in ["
        + ", ".join(f"'{key}'" for key in SECRET_PROPERTIES)
        + "]))",
        "properties must not hold credentials (" + ", ".join(SECRET_PROPERTIES) + "): they would "
        "be stored in a ConfigMap; use credentialsSecret and tlsSecret",
        ".properties",
        "FieldValueForbidden",
        lambda c: not set(c.properties) & set(SECRET_PROPERTIES),
    ),
)


class ClusterSpec(_Spec):
    """One physical Kafka cluster."""

    model_config = ConfigDict(json_schema_extra=_validations(CLUSTER_RULES))

    name: str = Field(
        pattern=CLUSTER_NAME_PATTERN,
        max_length=63,
        description="Name clients' traffic is switched by (e.g. main, failover).",
    )
    bootstrap_servers: str = Field(
        alias="bootstrapServers",
        min_length=1,
        description="Kafka bootstrap servers, host:port[,host:port...].",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", alias="securityProtocol", description="Kafka security.protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None,
        alias="saslMechanism",
        description="Kafka sasl.mechanism (SASL protocols only).",
    )
    credentials_secret: SecretRef | None = Field(
        default=None,
        alias="credentialsSecret",
        description=(
            "Secret with the gateway's own SASL credentials for this cluster, keys `username` "
            "and `password` (required for SASL_PLAINTEXT and SASL_SSL). Mounted read-only into "
            "gateway pods; the gateway config only names the files. Changing it rolls the pods."
        ),
    )
    tls_secret: SecretRef | None = Field(
        default=None,
        alias="tlsSecret",
        description=(
            "Secret with TLS material for this cluster (SSL and SASL_SSL): key `ca.crt` (PEM CA "
            "certificates the brokers' certificates are checked against) and, for mutual TLS, "
            "`tls.crt` and `tls.key` (PEM client certificate chain and unencrypted PKCS#8 key), "
            "as in a kubernetes.io/tls Secret. Without it the system CAs are used. Mounted "
            "read-only into gateway pods; changing it rolls the pods."
        ),
    )
    role: Literal["main", "failover"] | None = Field(
        default=None, description="failover marks a failover cluster (gateway.roles)."
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description=(
            "Further non-secret Kafka client properties passed to the gateway (stored in a "
            "ConfigMap, so credentials are refused here)."
        ),
    )

    @model_validator(mode="after")
    def _rules(self) -> ClusterSpec:
        _check(self, CLUSTER_RULES)
        return self


CLIENT_RULES = (
    Rule(
        "!self.protocol.startsWith('SASL_') || has(self.usersSecret)",
        "usersSecret (a Secret with key users.yaml) is required when protocol is "
        "SASL_PLAINTEXT or SASL_SSL",
        ".usersSecret",
        "FieldValueRequired",
        lambda s: not _sasl(s.protocol) or s.users_secret is not None,
    ),
    Rule(
        "!self.protocol.endsWith('SSL') || has(self.tlsSecret)",
        "tlsSecret (a Secret with keys tls.crt and tls.key) is required when protocol is SSL "
        "or SASL_SSL",
        ".tlsSecret",
        "FieldValueRequired",
        lambda s: not _tls(s.protocol) or s.tls_secret is not None,
    ),
    Rule(
        "!has(self.usersSecret) || self.protocol.startsWith('SASL_')",
        "usersSecret is only used with protocol SASL_PLAINTEXT or SASL_SSL",
        ".usersSecret",
        "FieldValueForbidden",
        lambda s: s.users_secret is None or _sasl(s.protocol),
    ),
    Rule(
        "!has(self.tlsSecret) || self.protocol.endsWith('SSL')",
        "tlsSecret is only used with protocol SSL or SASL_SSL",
        ".tlsSecret",
        "FieldValueForbidden",
        lambda s: s.tls_secret is None or _tls(s.protocol),
    ),
    Rule(
        "!has(self.clientAuth) || self.clientAuth == 'none' || self.protocol.endsWith('SSL')",
        "clientAuth requested or required needs protocol SSL or SASL_SSL (client certificates "
        "come with TLS)",
        ".clientAuth",
        "FieldValueInvalid",
        lambda s: s.client_auth == "none" or _tls(s.protocol),
    ),
)


class ClientSecuritySpec(_Spec):
    """How clients authenticate to the gateway (terminated there, never forwarded upstream)."""

    model_config = ConfigDict(json_schema_extra=_validations(CLIENT_RULES))

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        description="Security protocol of the client listener."
    )
    sasl_mechanisms: list[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        alias="saslMechanisms",
        description="SASL mechanisms offered to clients; default SCRAM-SHA-512, SCRAM-SHA-256, "
        "PLAIN.",
    )
    users_secret: SecretRef | None = Field(
        default=None,
        alias="usersSecret",
        description=(
            "Secret with key `users.yaml`: the gateway's client user store (salted SCRAM and "
            "PLAIN entries, written by `kafka-failover-users add`). Required for the SASL "
            "protocols. Changing it rolls the gateway pods."
        ),
    )
    tls_secret: SecretRef | None = Field(
        default=None,
        alias="tlsSecret",
        description=(
            "Secret with the gateway's listener certificate: keys `tls.crt` (PEM chain) and "
            "`tls.key` (PEM key), as in a kubernetes.io/tls Secret, and `ca.crt` (PEM CAs that "
            "sign client certificates; required when clientAuth is requested or required). "
            "Required for SSL and SASL_SSL. Changing it rolls the gateway pods."
        ),
    )
    client_auth: Literal["none", "requested", "required"] = Field(
        default="none",
        alias="clientAuth",
        description="Client certificates (mutual TLS): none, requested or required.",
    )
    principal_mapping_rules: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        alias="principalMappingRules",
        description="Kafka ssl.principal.mapping.rules for certificate subjects; default DEFAULT.",
    )

    @model_validator(mode="after")
    def _rules(self) -> ClientSecuritySpec:
        _check(self, CLIENT_RULES)
        return self


class ListenerSpec(_Spec):
    port: int = Field(default=6969, ge=1, le=65535, description="Bootstrap port.")
    advertised_host: str | None = Field(
        default=None,
        alias="advertisedHost",
        description="Host clients are told to use; default: the Service's cluster DNS name.",
    )
    broker_port_count: int = Field(
        default=32,
        ge=1,
        le=1024,
        alias="brokerPortCount",
        description="Per-broker ports after the bootstrap port.",
    )


class ServiceSpec(_Spec):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="Service type of the gateway."
    )
    annotations: dict[str, str] = Field(default_factory=dict, description="Service annotations.")


class GatewaySpec(_Spec):
    """The gateway Deployment the operator runs."""

    replicas: int = Field(default=3, ge=1, le=100, description="Gateway pods.")
    image: str = Field(default=DEFAULT_IMAGE, min_length=1, description="Gateway image.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", alias="imagePullPolicy", description="Image pull policy."
    )
    resources: dict[str, Any] | None = Field(
        default=None, description="Container resources (requests/limits)."
    )
    listener: ListenerSpec = Field(default_factory=ListenerSpec, description="Client listener.")
    client_security: ClientSecuritySpec | None = Field(
        default=None,
        alias="clientSecurity",
        description="Client authentication at the gateway (TLS, SASL users); default PLAINTEXT.",
    )
    admin_port: int = Field(
        default=8888, ge=1, le=65535, alias="adminPort", description="Admin API port."
    )
    service: ServiceSpec = Field(default_factory=ServiceSpec, description="Gateway Service.")
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, alias="podAnnotations", description="Extra pod annotations."
    )
    pod_labels: dict[str, str] = Field(
        default_factory=dict, alias="podLabels", description="Extra pod labels."
    )
    affinity: dict[str, Any] | None = Field(default=None, description="Pod affinity.")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="Tolerations.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, alias="nodeSelector", description="Node selector."
    )


class MirrorMaker2Spec(_Spec):
    """How MirrorMaker 2 names things, for a planned switch that reads its offset syncs."""

    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="MirrorMaker's alias of each cluster, by cluster name (default: the name).",
    )
    policy: Literal["identity", "default"] = Field(
        default="identity",
        description="The replication policy: identity (same topic names) or default "
        "(<source alias><separator><topic> on the target).",
    )
    separator: str = Field(
        default=".", min_length=1, description="replication.policy.separator of MirrorMaker."
    )


class SwitchSpec(_Spec):
    """How a change of ``spec.active`` is carried out."""

    mode: Literal["planned", "immediate"] = Field(
        default="planned",
        description="planned: fence writes, let consumers finish, wait for replication, hand "
        "consumer offsets over, then switch (needs replication; without it the switch is "
        "immediate); immediate: switch at once (main is gone).",
    )
    replication: Literal["none", "offsetPreserving", "mirrorMaker2"] = Field(
        default="none",
        description="What copies the active cluster to the others: a planned switch waits for it.",
    )
    topics: str = Field(
        default=".*",
        min_length=1,
        description="Regular expression of the replicated topics a planned switch waits for.",
    )
    mirror_maker2: MirrorMaker2Spec = Field(
        default_factory=MirrorMaker2Spec,
        alias="mirrorMaker2",
        description="MirrorMaker 2's naming (replication: mirrorMaker2).",
    )
    max_catch_up_seconds: int = Field(
        default=30,
        ge=1,
        le=600,
        alias="maxCatchUpSeconds",
        description="A planned switch aborts (and stays) if replication is not caught up by then.",
    )
    consumer_drain_seconds: int = Field(
        default=5,
        ge=0,
        le=300,
        alias="consumerDrainSeconds",
        description="How long consumer groups get to consume and commit up to the fenced end.",
    )
    retry: int = Field(
        default=0,
        ge=0,
        description="Change it to try an aborted planned switch again (any value, e.g. +1).",
    )
    reverse_replication: Literal["none", "offsetPreserving", "mirrorMaker2"] = Field(
        default="none",
        alias="reverseReplication",
        description="What copies the failover cluster back to main after an unplanned failover: "
        "a failback waits for it (a planned switch), else it is refused without acceptDataLoss.",
    )
    accept_data_loss: bool = Field(
        default=False,
        alias="acceptDataLoss",
        description="Let a failback to a cluster left by an unplanned failover switch at once, "
        "without reverse replication caught up (records only one cluster holds are lost).",
    )

    @field_validator("topics")
    @classmethod
    def _topics_is_a_regex(cls, value: str) -> str:
        return regular_expression(value)  # what the gateway will accept

    @property
    def planned(self) -> bool:
        """Whether a change of ``active`` is a planned switch (declared replication to wait for)."""
        return self.mode == "planned" and self.replication != "none"

    drain_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        alias="drainMs",
        description="Drain window for in-flight responses before connections are closed.",
    )
    pod_timeout_seconds: int = Field(
        default=10,
        ge=1,
        le=600,
        alias="podTimeoutSeconds",
        description="How long every pod gets to acknowledge the switch (with retries).",
    )
    fence_unacknowledged: bool = Field(
        default=True,
        alias="fenceUnacknowledged",
        description="Delete pods that did not acknowledge, so none keeps serving the old cluster.",
    )


class AutomaticFailoverSpec(_Spec):
    """Opt-in automatic failover (README, "Automatic failover and guarded failback")."""

    enabled: bool = Field(default=False, description="Switch by itself when main is judged down.")
    to: str | None = Field(
        default=None,
        pattern=CLUSTER_NAME_PATTERN,
        description="The cluster to fail over to (default: the one with role failover).",
    )
    unreachable_seconds: int = Field(
        default=30,
        ge=5,
        le=3600,
        alias="unreachableSeconds",
        description="How long a majority of ready pods must have judged the active cluster down.",
    )
    dry_run: bool = Field(
        default=False,
        alias="dryRun",
        description="Only report (status and an Event) what would have been done.",
    )
    cooldown_seconds: int = Field(
        default=600,
        ge=0,
        le=86_400,
        alias="cooldownSeconds",
        description="No second automatic switch within this window.",
    )
    canary_topic: str | None = Field(
        default=None,
        alias="canaryTopic",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="A topic on every cluster whose partition 0's leader each probe asks for "
        "its latest offset (nothing is written): leaders that do not answer mean down.",
    )
    probe_interval_seconds: int = Field(
        default=5,
        ge=1,
        le=60,
        alias="probeIntervalSeconds",
        description="How often every gateway pod probes every cluster (the evidence); changing "
        "it rolls the pods.",
    )


class KafkaFailoverSpec(_Spec):
    """spec of a KafkaFailover."""

    active: str = Field(
        pattern=CLUSTER_NAME_PATTERN, description="The cluster every client must use now."
    )
    clusters: list[ClusterSpec] = Field(
        min_length=2, max_length=16, description="The physical clusters (at least two)."
    )
    gateway: GatewaySpec = Field(default_factory=GatewaySpec, description="Gateway pods.")
    switch: SwitchSpec = Field(default_factory=SwitchSpec, description="Switch behaviour.")
    automatic_failover: AutomaticFailoverSpec = Field(
        default_factory=AutomaticFailoverSpec,
        alias="automaticFailover",
        description="Opt-in automatic failover when the active cluster is down.",
    )

    def cluster(self, name: str) -> ClusterSpec | None:
        return next((c for c in self.clusters if c.name == name), None)


def parse_spec(raw: Any) -> KafkaFailoverSpec:
    """Parse ``spec`` of an object as the API server stored it (pydantic errors propagate)."""
    return KafkaFailoverSpec.model_validate(raw)
