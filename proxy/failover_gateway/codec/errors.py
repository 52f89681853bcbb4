"""The codec's own exceptions, so callers catch one family instead of struct/Index/Unicode errors.

A gateway fed truncated or hostile bytes must fail with a typed error that names what was wrong,
never with an ``IndexError`` from deep inside a decoder. Library errors are chained (``from``).
"""

from __future__ import annotations


class CodecError(Exception):
    """Base class of every error raised by :mod:`failover_gateway.codec`."""


class MalformedFrame(CodecError):
    """The bytes do not follow the layout the spec describes (truncated, bad length, bad UTF-8)."""


class UnsupportedVersion(CodecError):
    """The api key or version is not one the codec has a layout for.

    Carries the ids so a caller can still answer or log the request it could not parse.
    """

    def __init__(self, message: str, *, api_key: int | None = None, api_version: int | None = None):
        super().__init__(message)
        self.api_key = api_key
        self.api_version = api_version


class UnencodableValue(CodecError):
    """A value handed to an encoder does not fit the field's type (e.g. None for an int32)."""
