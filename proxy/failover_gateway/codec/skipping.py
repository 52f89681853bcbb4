"""Finding where a field starts in a message body without decoding what comes before it.

Why it exists: KIP-951 put broker addresses (``NodeEndpoints``) at the *end* of Produce, Fetch,
ShareFetch and ShareAcknowledge responses, after every partition and its records. To rewrite
them the gateway must know where the end section starts, and a Fetch response is mostly record
bytes. Decoding the body would build a dict per partition and copy every record set; this module
instead compiles, once per (message, version), a chain of *skippers* driven by the same JSON spec
as the codec: each moves an offset past one field, reading only length prefixes and counts.
Record sets are stepped over by their length, never touched, so the cost is a few small reads
per partition whatever the size of the data.

Consecutive fixed-width fields are folded into one step (a Fetch partition's five numbers are a
single ``pos + 30``). Pure: no I/O, raises :class:`~failover_gateway.codec.errors.MalformedFrame`
on a body that ends early or announces impossible sizes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from failover_gateway.codec import errors, primitives, specs
from failover_gateway.codec.primitives import Buffer

Skipper = Callable[[Buffer, int], int]

_WIDTHS = {
    "int8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "float64": 8,
    "bool": 1,
    "uuid": 16,
}
_READ_ERRORS = (struct.error, IndexError, ValueError)


@dataclass(frozen=True, slots=True)
class _Step:
    """Either a constant number of bytes or a skipper for one variable-size field."""

    width: int = 0
    skip: Skipper | None = None


_cache: dict[tuple[str, int, str], Skipper] = {}


def field_offset(spec: specs.MessageSpec, version: int, body: Buffer, field: str) -> int:
    """Where ``field`` starts in ``body``: for an untagged top-level field, its first byte; for a
    tagged one, the first byte of the top-level tagged-field section that may hold it."""
    skip = _prefix_skipper(spec, version, field)
    try:
        end = skip(body, 0)
    except errors.CodecError:
        raise
    except _READ_ERRORS as exc:
        raise errors.MalformedFrame(f"{spec.name} v{version}: truncated body ({exc})") from exc
    if end > len(body):
        raise errors.MalformedFrame(f"{spec.name} v{version}: body ends before field {field}")
    return end


def _prefix_skipper(spec: specs.MessageSpec, version: int, field: str) -> Skipper:
    key = (spec.name, version, field)
    cached = _cache.get(key)
    if cached is None:
        if not spec.is_valid(version):
            raise errors.UnsupportedVersion(
                f"{spec.name} has no version {version}",
                api_key=spec.api_key,
                api_version=version,
            )
        flexible = spec.is_flexible(version)
        present = [f for f in spec.fields if f.present_in(version)]
        target = next((f for f in present if f.name == field), None)
        if target is None:
            raise ValueError(f"{spec.name} v{version} has no field {field}")
        tagged = flexible and target.tagged_in(version)
        untagged = [f for f in present if not (flexible and f.tagged_in(version))]
        before = untagged if tagged else untagged[: untagged.index(target)]
        cached = _chain([_step(f, version, flexible) for f in before])
        _cache[key] = cached
    return cached


def _chain(steps: list[_Step]) -> Skipper:
    folded = _fold(steps)

    def skip(buf: Buffer, pos: int) -> int:
        for step in folded:
            pos = pos + step.width if step.skip is None else step.skip(buf, pos)
        return pos

    return skip


def _fold(steps: list[_Step]) -> tuple[_Step, ...]:
    folded: list[_Step] = []
    for step in steps:
        if step.skip is None and folded and folded[-1].skip is None:
            folded[-1] = _Step(width=folded[-1].width + step.width)
        else:
            folded.append(step)
    return tuple(folded)


def _struct_skipper(fields: tuple[specs.FieldSpec, ...], version: int, flexible: bool) -> Skipper:
    steps = [
        _step(field, version, flexible)
        for field in fields
        if field.present_in(version) and not (flexible and field.tagged_in(version))
    ]
    if flexible:
        steps.append(_Step(skip=primitives.skip_tagged_fields))
    return _chain(steps)


def _step(field: specs.FieldSpec, version: int, flexible: bool) -> _Step:
    compact = flexible
    if field.has_flexible_override:
        compact = field.flexible_versions is not None and version in field.flexible_versions
    if field.is_array:
        return _Step(skip=_array_skipper(field, version, flexible, compact))
    if field.is_struct:
        inner = _struct_skipper(field.fields, version, flexible)
        return _Step(skip=_nullable(inner) if field.nullable_in(version) else inner)
    width = _WIDTHS.get(field.type)
    if width is not None:
        return _Step(width=width)
    return _Step(skip=_sized_skipper(field.type, compact))


def _nullable(inner: Skipper) -> Skipper:
    def skip(buf: Buffer, pos: int) -> int:
        return pos + 1 if primitives.INT8.unpack_from(buf, pos)[0] < 0 else inner(buf, pos + 1)

    return skip


def _sized_skipper(type_name: str, compact: bool) -> Skipper:
    if type_name not in ("string", "bytes", "records"):
        raise errors.UnsupportedVersion(f"spec field type {type_name!r} is not supported")
    if compact:
        read_length = primitives.read_compact_length
    elif type_name == "string":
        read_length = primitives.read_int16_length
    else:
        read_length = primitives.read_int32_length

    def skip(buf: Buffer, pos: int) -> int:
        size, pos = read_length(buf, pos)
        if size < -1:
            raise errors.MalformedFrame(f"length {size} at offset {pos}")
        return pos if size == -1 else pos + size

    return skip


def _array_skipper(field: specs.FieldSpec, version: int, flexible: bool, compact: bool) -> Skipper:
    read_count = primitives.read_compact_length if compact else primitives.read_int32_length
    width = _WIDTHS.get(field.element_type)
    if width is not None:

        def skip_fixed(buf: Buffer, pos: int) -> int:
            count, pos = read_count(buf, pos)
            if count < -1:
                raise errors.MalformedFrame(f"array of {count} elements at offset {pos}")
            return pos if count == -1 else pos + count * width

        return skip_fixed
    if field.is_struct:
        element = _struct_skipper(field.fields, version, flexible)
    else:
        element = _sized_skipper(field.element_type, compact)

    def skip_each(buf: Buffer, pos: int) -> int:
        count, pos = read_count(buf, pos)
        # Every element takes at least one byte: a larger count is a lie, not a long loop.
        if count < -1 or count > len(buf) - pos:
            raise errors.MalformedFrame(f"array of {count} elements at offset {pos}")
        for _ in range(count):
            pos = element(buf, pos)
        return pos

    return skip_each
