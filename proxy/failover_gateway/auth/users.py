"""The gateway's client user store: salted credentials per user and mechanism, never passwords.

File format (YAML, usually a mounted Kubernetes Secret)::

    users:
      alice:
        SCRAM-SHA-512: {salt: <base64>, iterations: 8192, storedKey: <base64>, serverKey: <base64>}
        PLAIN: {salt: <base64>, iterations: 100000, hash: <base64 PBKDF2-HMAC-SHA256>}

``kafka-failover-users add`` writes entries. PLAIN needs to check a password the client sends, so
it stores a PBKDF2 hash; SCRAM stores what RFC 5802 servers store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from failover_gateway.auth import scram

PLAIN_ITERATIONS = 100_000
MECHANISMS = ("PLAIN", *scram.MECHANISMS)


class UserStoreError(Exception):
    """The user store file is unreadable or malformed; names the user and the field."""


@dataclass(frozen=True)
class PlainCredential:
    salt: bytes
    iterations: int
    hash: bytes

    def matches(self, password: str) -> bool:
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt, self.iterations)
        return hmac.compare_digest(candidate, self.hash)


@dataclass(frozen=True)
class UserStore:
    plain: Mapping[str, PlainCredential] = field(default_factory=dict)
    scram_credentials: Mapping[str, Mapping[str, scram.ScramCredential]] = field(
        default_factory=dict
    )

    def check_plain(self, username: str, password: str) -> bool:
        credential = self.plain.get(username)
        if credential is None:
            # Same work for unknown users, so timing does not tell who exists.
            PlainCredential(b"x" * 16, PLAIN_ITERATIONS, b"").matches(password)
            return False
        return credential.matches(password)

    def scram_credential(self, mechanism: str, username: str) -> scram.ScramCredential | None:
        return self.scram_credentials.get(mechanism, {}).get(username)

    @property
    def user_count(self) -> int:
        names = set(self.plain)
        for users in self.scram_credentials.values():
            names |= set(users)
        return len(names)


def _b64(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise UserStoreError(f"{where}: not base64") from None


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserStoreError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _entry(mechanism: str, raw: Mapping[str, Any], where: str) -> Any:
    try:
        if mechanism == "PLAIN":
            return PlainCredential(
                _b64(raw["salt"], f"{where}.salt"),
                _int(raw["iterations"], f"{where}.iterations"),
                _b64(raw["hash"], f"{where}.hash"),
            )
        return scram.ScramCredential(
            mechanism,
            _b64(raw["salt"], f"{where}.salt"),
            _int(raw["iterations"], f"{where}.iterations"),
            _b64(raw["storedKey"], f"{where}.storedKey"),
            _b64(raw["serverKey"], f"{where}.serverKey"),
        )
    except KeyError as missing:
        raise UserStoreError(f"{where}: missing {missing.args[0]}") from None
    except TypeError:
        raise UserStoreError(f"{where}: expected a map") from None


def parse(document: Any, source: str) -> UserStore:
    if not isinstance(document, Mapping) or not isinstance(document.get("users"), Mapping):
        raise UserStoreError(f"{source}: expected a map with a 'users' key")
    plain: dict[str, PlainCredential] = {}
    scram_users: dict[str, dict[str, scram.ScramCredential]] = {m: {} for m in scram.MECHANISMS}
    for user, entries in document["users"].items():
        if not isinstance(entries, Mapping):
            raise UserStoreError(f"{source}: users.{user}: expected a map of mechanism -> entry")
        for mechanism, raw in entries.items():
            where = f"{source}: users.{user}.{mechanism}"
            if mechanism not in MECHANISMS:
                raise UserStoreError(f"{where}: unknown mechanism; valid: {', '.join(MECHANISMS)}")
            credential = _entry(mechanism, raw, where)
            if mechanism == "PLAIN":
                plain[str(user)] = credential
            else:
                scram_users[mechanism][str(user)] = credential
    return UserStore(plain, scram_users)


def load(path: Path) -> UserStore:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UserStoreError(f"cannot read user store {path}: {error.strerror}") from None
    except yaml.YAMLError:
        raise UserStoreError(f"user store {path} is not valid YAML") from None
    return parse(document, str(path))


def entry_for(mechanism: str, password: str) -> dict[str, Any]:
    """A new stored entry for one user and mechanism (what ``kafka-failover-users add`` writes)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    if mechanism == "PLAIN":
        salt = os.urandom(16)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PLAIN_ITERATIONS)
        return {"salt": b64(salt), "iterations": PLAIN_ITERATIONS, "hash": b64(digest)}
    credential = scram.make_credential(mechanism, password)
    return {
        "salt": b64(credential.salt),
        "iterations": credential.iterations,
        "storedKey": b64(credential.stored_key),
        "serverKey": b64(credential.server_key),
    }
