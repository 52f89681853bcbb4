"""Hand-written hex fixtures: bytes assembled from the specs by a human, with a comment per field.

Why: fixtures for unknown tagged fields cannot come from any encoder (no encoder knows the tags),
and hand-assembled bytes document the wire layout they exercise.
"""

from __future__ import annotations

import pathlib

_HERE = pathlib.Path(__file__).parent


def load_hex(name: str) -> bytes:
    """The bytes of ``<name>.hex``: hex digits, with ``#`` comments and whitespace ignored."""
    lines = (_HERE / f"{name}.hex").read_text().splitlines()
    return bytes.fromhex("".join(line.partition("#")[0] for line in lines).replace(" ", ""))
