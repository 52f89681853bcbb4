"""SASL PLAIN (RFC 4616) messages: ``[authzid] NUL authcid NUL passwd``."""

from __future__ import annotations


class PlainError(Exception):
    """The message is not a PLAIN message (never echoes its content: it holds a password)."""


def client_message(username: str, password: str) -> bytes:
    return b"\x00" + username.encode() + b"\x00" + password.encode()


def parse(message: bytes) -> tuple[str, str]:
    """(username, password) from a client's PLAIN message; an authzid must match the user."""
    parts = message.split(b"\x00")
    if len(parts) != 3 or not parts[1]:
        raise PlainError("malformed SASL/PLAIN message")
    try:
        authzid, username, password = (part.decode() for part in parts)
    except UnicodeDecodeError:
        raise PlainError("SASL/PLAIN message is not UTF-8") from None
    if authzid and authzid != username:
        raise PlainError("SASL/PLAIN authorization id differs from the user name")
    return username, password
