"""The typed model of a ``KafkaFailover`` object: the single source of the CRD and the operator.

Why it exists: the CRD's OpenAPI schema (``crds/kafkafailover.yaml``) is generated from these
pydantic models (see ``crd_building``), and the operator parses every object through the same
models, so the schema users are validated against and the fields the operator reads cannot drift
apart (a test regenerates the CRD and compares). Secrets are only ever referenced, never inline.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "kafka-failover.github.io"
VERSION = "v1alpha1"
KIND = "KafkaFailover"
PLURAL = "kafkafailovers"
SINGULAR = "kafkafailover"
SHORT_NAMES = ("kfo",)
CLUSTER_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
DEFAULT_IMAGE = "ghcr.io/kafka-failover/gateway:0.1.0"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SecretKeyRef(_Spec):
    """A Secret in the object's namespace."""

    name: str = Field(min_length=1, description="Name of a Secret in the same namespace.")


class ClusterSpec(_Spec):
    """One physical Kafka cluster."""

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
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = (
        Field(default=None, alias="saslMechanism", description="Kafka sasl.mechanism.")
    )
    credentials_secret: SecretKeyRef | None = Field(
        default=None,
        alias="credentialsSecret",
        description="Secret with the gateway's own credentials for this cluster.",
    )
    tls_secret: SecretKeyRef | None = Field(
        default=None,
        alias="tlsSecret",
        description="Secret with TLS material (ca.crt, tls.crt, tls.key) for this cluster.",
    )
    role: Literal["main", "failover"] | None = Field(
        default=None, description="failover marks a failover cluster (gateway.roles)."
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        description="Further non-secret Kafka client properties passed to the gateway.",
    )


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


class SwitchSpec(_Spec):
    """How a change of ``spec.active`` is carried out."""

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

    def cluster(self, name: str) -> ClusterSpec | None:
        return next((c for c in self.clusters if c.name == name), None)


def parse_spec(raw: Any) -> KafkaFailoverSpec:
    """Parse ``spec`` of an object as the API server stored it (pydantic errors propagate)."""
    return KafkaFailoverSpec.model_validate(raw)
