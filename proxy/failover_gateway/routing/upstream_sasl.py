"""The gateway authenticating itself to a broker: SaslHandshake v1, then SaslAuthenticate rounds.

Why it exists: every upstream connection authenticates with the gateway's own credentials for
that cluster (client credentials never cross the gateway). The same exchange runs in three places
(a new upstream connection, a probe, and KIP-368 re-authentication on a live connection, where the
requests are slipped between the client's), so it is written once against an ``Exchange``: any
async "send this request, give me the answer" function. No I/O here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from failover_gateway.auth import plain, scram
from failover_gateway.config_security import SaslCredentials

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
HANDSHAKE_VERSION, AUTHENTICATE_VERSION = 1, 1
SASL_AUTHENTICATION_FAILED = 58

Exchange = Callable[[int, int, dict[str, Any]], Awaitable[dict[str, Any]]]


class UpstreamAuthError(Exception):
    """The broker refused the gateway's credentials or mechanism; safe to log and report."""


async def _authenticate_step(exchange: Exchange, token: bytes) -> dict[str, Any]:
    answer = await exchange(SASL_AUTHENTICATE, AUTHENTICATE_VERSION, {"AuthBytes": token})
    if answer.get("ErrorCode", 0) != 0:
        message = answer.get("ErrorMessage") or f"error code {answer.get('ErrorCode')}"
        raise UpstreamAuthError(f"broker refused SASL authentication: {message}")
    return answer


async def authenticate(exchange: Exchange, credentials: SaslCredentials) -> int:
    """Authenticate; return the broker's session lifetime in ms (0: no re-authentication)."""
    mechanism = credentials.mechanism
    handshake = await exchange(SASL_HANDSHAKE, HANDSHAKE_VERSION, {"Mechanism": mechanism})
    if handshake.get("ErrorCode", 0) != 0:
        enabled = ", ".join(handshake.get("Mechanisms") or []) or "none"
        raise UpstreamAuthError(
            f"broker does not accept SASL mechanism {mechanism}; it offers: {enabled}"
        )
    if mechanism == "PLAIN":
        token = plain.client_message(credentials.username, credentials.password)
        answer = await _authenticate_step(exchange, token)
    else:
        answer = await _scram(exchange, credentials)
    return int(answer.get("SessionLifetimeMs", 0) or 0)


async def _scram(exchange: Exchange, credentials: SaslCredentials) -> dict[str, Any]:
    client = scram.ScramClient(credentials.mechanism, credentials.username, credentials.password)
    first = await _authenticate_step(exchange, client.first())
    try:
        final_message = client.final(first.get("AuthBytes") or b"")
    except scram.ScramError as error:
        raise UpstreamAuthError(f"SCRAM exchange with the broker failed: {error}") from None
    final = await _authenticate_step(exchange, final_message)
    try:
        client.verify(final.get("AuthBytes") or b"")
    except scram.ScramError as error:
        raise UpstreamAuthError(f"SCRAM exchange with the broker failed: {error}") from None
    return final
