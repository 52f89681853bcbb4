"""Terminating client SASL at the gateway: SaslHandshake and SaslAuthenticate answered here.

Why it exists: clients trust the gateway and the gateway trusts each cluster; client credentials
never travel upstream. Until a client has authenticated, the gateway answers its ApiVersions,
SaslHandshake (v0 with raw tokens, or v1) and SaslAuthenticate requests itself and opens no broker
connection at all; anything else is refused. A wrong password gets a SaslAuthenticate error
(SASL_AUTHENTICATION_FAILED) and the connection is closed, as Kafka does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from failover_gateway.auth import plain, scram
from failover_gateway.auth.users import UserStore
from failover_gateway.codec import headers, schema, specs

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58
FAILED_MESSAGE = "Authentication failed: invalid user name or password"


@dataclass(frozen=True)
class AuthStep:
    """What to send back, and what happened."""

    answer: bytes  # a whole frame, size prefix included
    principal: str | None = None  # set once authentication succeeded
    failure: str | None = None  # set when the connection must be closed (loggable, no secret)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _response(api_key: int, version: int, correlation_id: int, body: dict[str, Any]) -> bytes:
    spec = specs.response(api_key)
    assert spec is not None
    return _frame(
        headers.encode_response_header(correlation_id, api_key, version)
        + schema.encode(spec, version, body)
    )


class ClientAuthenticator:
    """One client connection's SASL state, from handshake to principal."""

    def __init__(self, mechanisms: Sequence[str], users: UserStore) -> None:
        self._mechanisms = tuple(mechanisms)
        self._users = users
        self.mechanism: str | None = None
        self.raw_tokens = False  # SaslHandshake v0: the next client frames are bare tokens
        self._scram: scram.ScramServer | None = None
        self._scram_round = 0

    def handshake(self, version: int, correlation_id: int, body: memoryview) -> AuthStep:
        spec = specs.request(SASL_HANDSHAKE)
        assert spec is not None
        mechanism = str(schema.decode(spec, version, body).get("Mechanism", ""))
        enabled = list(self._mechanisms)
        if mechanism not in enabled:
            answer = _response(
                SASL_HANDSHAKE,
                version,
                correlation_id,
                {"ErrorCode": UNSUPPORTED_SASL_MECHANISM, "Mechanisms": enabled},
            )
            return AuthStep(answer, failure=f"SASL mechanism {mechanism!r} not enabled")
        self.mechanism = mechanism
        self.raw_tokens = version == 0
        if mechanism.startswith("SCRAM"):
            self._scram = scram.ScramServer(mechanism)
        return AuthStep(
            _response(
                SASL_HANDSHAKE, version, correlation_id, {"ErrorCode": 0, "Mechanisms": enabled}
            )
        )

    def authenticate(self, version: int, correlation_id: int, body: memoryview) -> AuthStep:
        spec = specs.request(SASL_AUTHENTICATE)
        assert spec is not None
        token = bytes(schema.decode(spec, version, body).get("AuthBytes") or b"")
        reply, principal, failure = self._step(token)
        if failure is not None:
            fields = {
                "ErrorCode": SASL_AUTHENTICATION_FAILED,
                "ErrorMessage": FAILED_MESSAGE,
                "AuthBytes": b"",
                "SessionLifetimeMs": 0,
            }
            return AuthStep(
                _response(SASL_AUTHENTICATE, version, correlation_id, fields), failure=failure
            )
        fields = {"ErrorCode": 0, "ErrorMessage": None, "AuthBytes": reply, "SessionLifetimeMs": 0}
        return AuthStep(_response(SASL_AUTHENTICATE, version, correlation_id, fields), principal)

    def raw_token(self, token: bytes) -> AuthStep:
        """SaslHandshake v0: a bare token in, a bare token out (a failure just closes)."""
        reply, principal, failure = self._step(token)
        return AuthStep(b"" if failure else _frame(reply), principal, failure)

    def _step(self, token: bytes) -> tuple[bytes, str | None, str | None]:
        if self.mechanism is None:
            return b"", None, "SaslAuthenticate before SaslHandshake"
        if self.mechanism == "PLAIN":
            return self._plain(token)
        return self._scram_step(token)

    def _plain(self, token: bytes) -> tuple[bytes, str | None, str | None]:
        try:
            username, password = plain.parse(token)
        except plain.PlainError as error:
            return b"", None, str(error)
        if not self._users.check_plain(username, password):
            return b"", None, f"invalid credentials for user {username!r} (PLAIN)"
        return b"", username, None

    def _scram_step(self, token: bytes) -> tuple[bytes, str | None, str | None]:
        server = self._scram
        assert server is not None and self.mechanism is not None
        self._scram_round += 1
        try:
            if self._scram_round == 1:
                username = _scram_username(token)
                credential = self._users.scram_credential(self.mechanism, username)
                return server.first(token, credential), None, None
            reply = server.final(token)
        except scram.ScramError as error:
            return b"", None, f"{error} (user {server.username!r}, {self.mechanism})"
        return reply, server.username, None


def _scram_username(token: bytes) -> str:
    bare = token.decode(errors="replace").removeprefix("n,,")
    for part in bare.split(","):
        if part.startswith("n="):
            return part[2:].replace("=2C", ",").replace("=3D", "=")
    return ""


def refusal(api_key: int) -> str:
    return (
        f"api key {api_key} sent before SASL authentication completed; only ApiVersions, "
        "SaslHandshake and SaslAuthenticate are allowed before it"
    )
