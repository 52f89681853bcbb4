"""SCRAM-SHA-256/512 (RFC 5802, RFC 7677) for both ends: the gateway authenticates to brokers as a
client and authenticates its own clients as a server.

Why our own: the exchange is a few HMACs, and owning it means one tested implementation for both
directions, with salted credentials stored instead of passwords (a server only ever needs
``StoredKey`` and ``ServerKey``). Kafka's SCRAM has no channel binding (``n,,`` gs2 header) and
allows the ``tokenauth`` extension, which the gateway does not accept from clients.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MIN_ITERATIONS = 4096
DEFAULT_ITERATIONS = 8192
_NONCE_BYTES = 24


class ScramError(Exception):
    """The exchange failed; the message is safe to log (it never contains secrets)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ScramError("malformed base64 in SCRAM message") from None


def _hash_name(mechanism: str) -> str:
    try:
        return MECHANISMS[mechanism]
    except KeyError:
        raise ScramError(
            f"unknown SCRAM mechanism {mechanism!r}; valid: {', '.join(MECHANISMS)}"
        ) from None


def _hmac(name: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, name).digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _unsaslname(text: str) -> str:
    return text.replace("=2C", ",").replace("=3D", "=")


def _attributes(message: str) -> dict[str, str]:
    values = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ScramError("malformed SCRAM message")
        values[key] = value
    return values


@dataclass(frozen=True)
class ScramCredential:
    """What a server stores for a user: no password, only salted keys."""

    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(_hash_name(mechanism), password.encode(), salt, iterations)


def make_credential(
    mechanism: str,
    password: str,
    *,
    salt: bytes | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> ScramCredential:
    name = _hash_name(mechanism)
    salt = salt if salt is not None else os.urandom(16)
    salted = salted_password(mechanism, password, salt, iterations)
    client_key = _hmac(name, salted, b"Client Key")
    stored_key = hashlib.new(name, client_key).digest()
    server_key = _hmac(name, salted, b"Server Key")
    return ScramCredential(mechanism, salt, iterations, stored_key, server_key)


class ScramClient:
    """Client side: ``first()``, then ``final(server_first)``, then ``verify(server_final)``."""

    def __init__(
        self, mechanism: str, username: str, password: str, nonce: str | None = None
    ) -> None:
        self._name = _hash_name(mechanism)
        self._mechanism = mechanism
        self._username = username
        self._password = password
        self._nonce = nonce or _b64(os.urandom(_NONCE_BYTES))
        self._client_first_bare = f"n={_saslname(username)},r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return f"n,,{self._client_first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode(errors="replace")
        values = _attributes(text)
        if "e" in values:
            raise ScramError(f"server refused: {values['e']}")
        nonce, salt, iterations = values.get("r", ""), _unb64(values.get("s", "")), values.get("i")
        if not nonce.startswith(self._nonce) or not iterations or not iterations.isdigit():
            raise ScramError("server-first-message is invalid (nonce or iteration count)")
        salted = salted_password(self._mechanism, self._password, salt, int(iterations))
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._client_first_bare},{text},{without_proof}".encode()
        client_key = _hmac(self._name, salted, b"Client Key")
        stored_key = hashlib.new(self._name, client_key).digest()
        signature = _hmac(self._name, stored_key, auth_message)
        server_key = _hmac(self._name, salted, b"Server Key")
        self._server_signature = _hmac(self._name, server_key, auth_message)
        return f"{without_proof},p={_b64(_xor(client_key, signature))}".encode()

    def verify(self, server_final: bytes) -> None:
        values = _attributes(server_final.decode(errors="replace"))
        if "e" in values:
            raise ScramError(f"server refused: {values['e']}")
        if not hmac.compare_digest(_unb64(values.get("v", "")), self._server_signature):
            raise ScramError("server signature does not match: not the expected server")


class ScramServer:
    """Server side: ``first(client_first)`` -> server-first; ``final(client_final)`` ->
    server-final, or ScramError. ``username`` is known after ``first``."""

    def __init__(
        self,
        mechanism: str,
        lookup: dict[str, ScramCredential] | None = None,
        nonce: str | None = None,
    ) -> None:
        self._name = _hash_name(mechanism)
        self._mechanism = mechanism
        self._lookup = lookup or {}
        self._nonce_suffix = nonce or _b64(os.urandom(_NONCE_BYTES))
        self.username: str | None = None
        self._credential: ScramCredential | None = None
        self._client_first_bare = ""
        self._server_first = ""

    def first(self, client_first: bytes, credential: ScramCredential | None) -> bytes:
        """``credential`` is the stored one for the user named in the message (None: unknown)."""
        text = client_first.decode(errors="replace")
        if not text.startswith("n,,"):
            raise ScramError("channel binding and authzid are not supported (expected 'n,,')")
        self._client_first_bare = text[3:]
        values = _attributes(self._client_first_bare)
        if "n" not in values or "r" not in values:
            raise ScramError("client-first-message lacks the user name or nonce")
        if any(key not in ("n", "r") for key in values):
            raise ScramError("SCRAM extensions (e.g. tokenauth) are not accepted")
        self.username = _unsaslname(values["n"])
        # An unknown user still gets a plausible challenge: the answer must not reveal who exists.
        self._credential = credential or make_credential(self._mechanism, os.urandom(8).hex())
        self._known = credential is not None
        nonce = values["r"] + self._nonce_suffix
        cred = self._credential
        self._server_first = f"r={nonce},s={_b64(cred.salt)},i={cred.iterations}"
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        assert self._credential is not None, "first() must come first"
        text = client_final.decode(errors="replace")
        without_proof, sep, proof_part = text.rpartition(",p=")
        values = _attributes(without_proof) if sep else {}
        expected_nonce = _attributes(self._server_first)["r"]
        if not sep or values.get("r") != expected_nonce or values.get("c") != "biws":
            raise ScramError("client-final-message is invalid (nonce or channel binding)")
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = _hmac(self._name, self._credential.stored_key, auth_message)
        client_key = (
            _xor(_unb64(proof_part), signature)
            if len(_unb64(proof_part)) == len(signature)
            else b""
        )
        computed = hashlib.new(self._name, client_key).digest()
        if not self._known or not hmac.compare_digest(computed, self._credential.stored_key):
            raise ScramError("invalid user name or password")
        server_signature = _hmac(self._name, self._credential.server_key, auth_message)
        return f"v={_b64(server_signature)}".encode()
