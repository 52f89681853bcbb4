"""Every Secret a KafkaFailover references: where gateway pods mount it, which keys it must hold.

Why it exists: three places need the same list. The manifests mount each reference as its own
read-only volume and write into the gateway config only the paths of its files; the reconciler
degrades the object when a Secret or a key is missing and puts every Secret's resourceVersion into
the pod template's hash, so rotating a Secret rolls the pods; the Secret watch asks which objects a
changed Secret concerns. Only names, key names and resourceVersions pass through here, never
Secret data, so nothing secret can reach a ConfigMap, the status or an Event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from failover_operator import model
from failover_operator.status import Problem

SECRETS_DIR = "/etc/kafka-failover/secrets"
CLIENTS_DIR = "/etc/kafka-failover/clients"
FILE_MODE = 0o400
"""Owner-read only; the pod's fsGroup gives the gateway's group (UID/GID 10001) read access."""
CA, CERTIFICATE, KEY = "ca.crt", "tls.crt", "tls.key"
USERNAME, PASSWORD = "username", "password"
USERS = "users.yaml"
MISSING = "missing"


@dataclass(frozen=True)
class Mount:
    """One referenced Secret as a read-only volume of the gateway pods."""

    secret: str
    field: str
    """Where the spec references it, for messages (``spec.clusters[main].tlsSecret``)."""
    volume: str
    path: str
    required: tuple[str, ...]
    together: tuple[str, ...] = ()
    """Optional keys that only make sense all together (a client certificate and its key)."""

    def file(self, key: str) -> str:
        return f"{self.path}/{key}"


@dataclass(frozen=True)
class Observed:
    """What the operator saw of one Secret: its version and key names, never its data."""

    resource_version: str
    keys: frozenset[str]


Seen = Mapping[str, Observed | None]
"""Observed Secrets by name; ``None`` for one that does not exist."""


def credentials(index: int, cluster: model.ClusterSpec) -> Mount | None:
    ref = cluster.credentials_secret
    if ref is None:
        return None
    return Mount(
        ref.name,
        f"spec.clusters[{cluster.name}].credentialsSecret",
        f"cluster-{index}-credentials",
        f"{SECRETS_DIR}/{cluster.name}/credentials",
        (USERNAME, PASSWORD),
    )


def cluster_tls(index: int, cluster: model.ClusterSpec) -> Mount | None:
    ref = cluster.tls_secret
    if ref is None:
        return None
    return Mount(
        ref.name,
        f"spec.clusters[{cluster.name}].tlsSecret",
        f"cluster-{index}-tls",
        f"{SECRETS_DIR}/{cluster.name}/tls",
        (CA,),
        (CERTIFICATE, KEY),
    )


def client_users(client: model.ClientSecuritySpec | None) -> Mount | None:
    if client is None or client.users_secret is None:
        return None
    return Mount(
        client.users_secret.name,
        "spec.gateway.clientSecurity.usersSecret",
        "clients-users",
        f"{CLIENTS_DIR}/users",
        (USERS,),
    )


def client_tls(client: model.ClientSecuritySpec | None) -> Mount | None:
    if client is None or client.tls_secret is None:
        return None
    needs_ca = client.client_auth != "none"
    return Mount(
        client.tls_secret.name,
        "spec.gateway.clientSecurity.tlsSecret",
        "clients-tls",
        f"{CLIENTS_DIR}/tls",
        (CERTIFICATE, KEY, CA) if needs_ca else (CERTIFICATE, KEY),
    )


def mounts(spec: model.KafkaFailoverSpec) -> list[Mount]:
    """Every Secret volume of the gateway pods, in a stable order."""
    found: list[Mount | None] = []
    for index, cluster in enumerate(spec.clusters):
        found += [credentials(index, cluster), cluster_tls(index, cluster)]
    client = spec.gateway.client_security
    found += [client_users(client), client_tls(client)]
    return [mount for mount in found if mount is not None]


def has_keys(seen: Seen, secret: str, keys: Iterable[str]) -> bool:
    observed = seen.get(secret)
    return observed is not None and set(keys) <= observed.keys


def problems(spec_mounts: Iterable[Mount], seen: Seen, namespace: str) -> list[Problem]:
    """A missing Secret, or a missing key in one, named with the field that references it."""
    found = []
    for mount in spec_mounts:
        observed = seen.get(mount.secret)
        if observed is None:
            found.append(
                Problem(
                    "SecretMissing",
                    f"Secret {mount.secret} ({mount.field}) not found in namespace {namespace}",
                )
            )
            continue
        found += _key_problems(mount, observed)
    return found


def _key_problems(mount: Mount, observed: Observed) -> list[Problem]:
    missing = [key for key in mount.required if key not in observed.keys]
    partial = set(mount.together) & observed.keys
    if partial and partial != set(mount.together):
        missing += sorted(set(mount.together) - partial)
    return [
        Problem("SecretKeyMissing", f"Secret {mount.secret} ({mount.field}) has no key {key}")
        for key in missing
    ]


def versions(names: Iterable[str], seen: Seen) -> dict[str, str]:
    """``secret/<name>`` -> resourceVersion (or ``missing``): what rolls the pods on rotation.

    The resourceVersion, not a hash of the data: a pod annotation readable by anyone who may read
    Deployments must not let a weak password be guessed offline.
    """
    result = {}
    for name in sorted(set(names)):
        observed = seen.get(name)
        result[f"secret/{name}"] = observed.resource_version if observed else MISSING
    return result
