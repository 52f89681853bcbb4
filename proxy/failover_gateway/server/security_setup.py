"""Everything security the running gateway holds, built once at start from the config.

Why it exists: TLS contexts (per upstream cluster, for the client listener, for the admin API),
the client user store and the principal mapping rules are loaded before anything listens, so a
bad file stops the gateway at start with a message naming it, never at the first connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field

from failover_gateway.auth import principals, users
from failover_gateway.config import GatewayConfig
from failover_gateway.pump.client_auth import ClientAuthenticator
from failover_gateway.server import tls

log = logging.getLogger("failover_gateway.security")


class SecuritySetupError(Exception):
    """TLS material or the user store could not be loaded; names the file."""


@dataclass
class GatewaySecurity:
    upstream: dict[str, ssl.SSLContext | None] = field(default_factory=dict)
    listener: ssl.SSLContext | None = None
    admin: ssl.SSLContext | None = None
    user_store: users.UserStore | None = None
    mechanisms: tuple[str, ...] = ()
    rules: tuple[principals.Rule, ...] = ()

    def client_authenticator(self) -> ClientAuthenticator | None:
        if self.user_store is None:
            return None
        return ClientAuthenticator(self.mechanisms, self.user_store)

    def certificate_principal(self, transport: asyncio.BaseTransport) -> str | None:
        """The mapped principal of a verified client certificate, or None without one."""
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return None
        from cryptography import x509  # imported by _build when client certificates are on

        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        mapped = principals.map_principal(subject, self.rules)
        if mapped is None:
            log.warning("no principal mapping rule applies to certificate subject %s", subject)
        return mapped or subject


def build(config: GatewayConfig) -> GatewaySecurity:
    try:
        return _build(config)
    except (tls.TlsSetupError, users.UserStoreError) as error:
        raise SecuritySetupError(str(error)) from None


def _build(config: GatewayConfig) -> GatewaySecurity:
    settings = config.gateway
    listener = settings.listener.security
    upstream = {
        name: tls.upstream_context(cluster.security.tls) if cluster.security.tls else None
        for name, cluster in config.clusters.items()
    }
    if listener.tls is not None and listener.tls.client_auth != "none":
        # Client certificates will be parsed: pay cryptography's import (~0.1 s) at start-up,
        # not on the event loop when the first client connects.
        import cryptography.x509  # noqa: F401
    store = None
    if listener.protocol.startswith("SASL") and listener.users_file is not None:
        store = users.load(listener.users_file)
        log.info("client user store %s: %d user(s)", listener.users_file, store.user_count)
    return GatewaySecurity(
        upstream=upstream,
        listener=tls.listener_context(listener.tls) if listener.tls else None,
        admin=tls.admin_context(settings.admin.tls) if settings.admin.tls else None,
        user_store=store,
        mechanisms=tuple(listener.sasl_mechanisms),
        rules=principals.parse_rules(listener.principal_mapping_rules),
    )
