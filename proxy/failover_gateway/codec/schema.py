"""Generic decode/encode of a message body at one version, driven by its Kafka JSON spec.

Why our own: kafka-python's codec drops tagged fields it does not know when it re-encodes, and a
gateway that re-encodes a broker's answer must hand every byte it does not own back untouched.
So this codec keeps unknown tagged fields as raw bytes keyed by tag (under :data:`UNKNOWN_TAGS`)
and re-emits them merged with the known ones in ascending tag order.

Values are plain dicts keyed by the spec's field names (``"NodeId"``, ``"Host"``). Known tagged
fields appear in a dict only when they were on the wire, and are written only when present in
the dict: that is what makes decode → encode byte-identical.

Speed: each (message, version) is compiled once into a plan of closures, then cached. A decode
is a walk over prebuilt ``(name, reader)`` pairs with no spec lookups. :func:`decode_prefix`
stops after a named field so callers can rewrite the head of a large body (Metadata brokers)
and splice the untouched rest.

Lenient on nullability: a null marker is accepted and written back wherever it appears, since
the gateway forwards what brokers say rather than validating it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from failover_gateway.codec import errors, primitives, specs
from failover_gateway.codec.primitives import Buffer, Reader, Writer

UNKNOWN_TAGS = "_unknown_tagged_fields"
"""Key under which a struct's unrecognised tagged fields live: ``dict[int, bytes]`` (tag → data)."""

Struct = dict[str, Any]

_FIXED_WIDTH = {
    "int8": primitives.INT8,
    "int16": primitives.INT16,
    "uint16": primitives.UINT16,
    "int32": primitives.INT32,
    "uint32": struct.Struct(">I"),
    "int64": primitives.INT64,
    "float64": primitives.FLOAT64,
}
_CACHED_ARRAY_LAYOUTS = 64  # element counts whose struct layout is kept; replica lists are short
_READ_ERRORS = (struct.error, IndexError, ValueError)  # ValueError covers UnicodeDecodeError
_WRITE_ERRORS = (struct.error, TypeError, AttributeError, KeyError, ValueError, OverflowError)


@dataclass(frozen=True, slots=True)
class StructPlan:
    """A compiled layout: untagged fields in wire order, then (flexible only) a tag section."""

    readers: tuple[tuple[str, Reader], ...]
    writers: tuple[tuple[str, Writer], ...]
    tagged: dict[int, tuple[str, Reader, Writer]]
    flexible: bool


_plans: dict[tuple[str, int, str | None], StructPlan] = {}


def plan(spec: specs.MessageSpec, version: int, stop_after_field: str | None = None) -> StructPlan:
    """The cached plan for ``spec`` at ``version``, optionally cut after ``stop_after_field``.

    A cut plan has no tag section: the top-level tags sit at the end of the body, in the part
    the caller splices back untouched.
    """
    key = (spec.name, version, stop_after_field)
    cached = _plans.get(key)
    if cached is None:
        if not spec.is_valid(version):
            raise errors.UnsupportedVersion(
                f"{spec.name} has no version {version} (valid: {spec.valid_versions})",
                api_key=spec.api_key,
                api_version=version,
            )
        cached = _compile_struct(spec.fields, version, spec.is_flexible(version))
        if stop_after_field is not None:
            cached = _cut(cached, stop_after_field, spec.name)
        _plans[key] = cached
    return cached


def decode(spec: specs.MessageSpec, version: int, data: Buffer) -> Struct:
    """Decode a whole body; trailing bytes are an error."""
    values, end = _read_guarded(plan(spec, version), data, 0, spec.name)
    if end != len(data):
        raise errors.MalformedFrame(f"{spec.name} v{version}: {len(data) - end} trailing bytes")
    return values


def decode_tolerant(spec: specs.MessageSpec, version: int, data: Buffer) -> tuple[Struct, int]:
    """Decode a whole body and say where it ended: bytes after it are the caller's to keep.

    For requests a client wrote: Kafka brokers ignore bytes after the last field, and clients
    rely on it (librdkafka's all-topics Metadata v9+ request leaves its real last three fields
    behind four zero bytes that the broker reads instead), so a gateway that re-encodes a
    request must keep them, not refuse it."""
    return _read_guarded(plan(spec, version), data, 0, spec.name)


def decode_prefix(
    spec: specs.MessageSpec, version: int, data: Buffer, *, stop_after_field: str
) -> tuple[Struct, int]:
    """Decode up to ``stop_after_field`` (included); return the values and where the rest begins."""
    return _read_guarded(plan(spec, version, stop_after_field), data, 0, spec.name)


def encode(spec: specs.MessageSpec, version: int, values: Struct) -> bytes:
    """Encode a whole body."""
    return _write_guarded(plan(spec, version), values, spec.name)


def encode_prefix(
    spec: specs.MessageSpec, version: int, values: Struct, *, stop_after_field: str
) -> bytes:
    """Encode the fields :func:`decode_prefix` returned, to be joined with the untouched rest."""
    return _write_guarded(plan(spec, version, stop_after_field), values, spec.name)


def decode_suffix(
    spec: specs.MessageSpec, version: int, data: Buffer, start: int, *, from_field: str
) -> Struct:
    """Decode from ``from_field`` (found at ``start``, see :mod:`.skipping`) to the end of the
    body, top-level tags included; for a tagged ``from_field``, only the tag section."""
    compiled = _suffix_plan(spec, version, from_field)
    values, end = _read_guarded(compiled, data, start, spec.name)
    if end != len(data):
        raise errors.MalformedFrame(f"{spec.name} v{version}: {len(data) - end} trailing bytes")
    return values


def encode_suffix(
    spec: specs.MessageSpec, version: int, values: Struct, *, from_field: str
) -> bytes:
    """Encode what :func:`decode_suffix` returned, to follow the untouched head of the body."""
    return _write_guarded(_suffix_plan(spec, version, from_field), values, spec.name)


def _suffix_plan(spec: specs.MessageSpec, version: int, from_field: str) -> StructPlan:
    key = (spec.name, version, f"from:{from_field}")
    cached = _plans.get(key)
    if cached is None:
        whole = plan(spec, version)
        names = [name for name, _ in whole.readers]
        tagged_names = {name for name, _, _ in whole.tagged.values()}
        if from_field in names:
            start = names.index(from_field)
        elif from_field in tagged_names:
            start = len(names)
        else:
            raise ValueError(f"{spec.name} has no field {from_field} at version {version}")
        cached = StructPlan(
            whole.readers[start:], whole.writers[start:], whole.tagged, whole.flexible
        )
        _plans[key] = cached
    return cached


def _read_guarded(compiled: StructPlan, data: Buffer, pos: int, what: str) -> tuple[Struct, int]:
    try:
        return read_struct(compiled, data, pos)
    except errors.CodecError:
        raise
    except _READ_ERRORS as exc:
        raise errors.MalformedFrame(f"{what}: truncated or malformed body ({exc})") from exc


def _write_guarded(compiled: StructPlan, values: Struct, what: str) -> bytes:
    out = bytearray()
    try:
        write_struct(compiled, values, out)
    except errors.CodecError:
        raise
    except _WRITE_ERRORS as exc:
        raise errors.UnencodableValue(f"{what}: cannot encode {exc!r}") from exc
    return bytes(out)


def read_struct(compiled: StructPlan, buf: Buffer, pos: int) -> tuple[Struct, int]:
    out: Struct = {}
    for name, read in compiled.readers:
        out[name], pos = read(buf, pos)
    if compiled.flexible:
        pos = _read_tags(compiled, buf, pos, out)
    return out, pos


def write_struct(compiled: StructPlan, values: Struct, out: bytearray) -> None:
    for name, write in compiled.writers:
        write(values[name], out)
    if compiled.flexible:
        _write_tags(compiled, values, out)


def _read_tags(compiled: StructPlan, buf: Buffer, pos: int, out: Struct) -> int:
    count, pos = primitives.read_uvarint(buf, pos)
    unknown: dict[int, bytes] = {}
    for _ in range(count):
        tag, pos = primitives.read_uvarint(buf, pos)
        size, pos = primitives.read_uvarint(buf, pos)
        raw, end = primitives.take(buf, pos, size)
        known = compiled.tagged.get(tag)
        if known is None:
            unknown[tag] = bytes(raw)
        else:
            name, read, _ = known
            out[name], used = read(buf, pos)
            if used != end:
                raise errors.MalformedFrame(f"tagged field {name} (tag {tag}) overran its size")
        pos = end
    if unknown:
        out[UNKNOWN_TAGS] = unknown
    return pos


def _write_tags(compiled: StructPlan, values: Struct, out: bytearray) -> None:
    unknown: dict[int, bytes] = values.get(UNKNOWN_TAGS) or {}
    entries: list[tuple[int, bytes | bytearray]] = []
    for tag, (name, _, write) in compiled.tagged.items():
        if name in values:
            encoded = bytearray()
            write(values[name], encoded)
            entries.append((tag, encoded))
    if not entries and not unknown:
        out.append(0)
        return
    for tag, raw in unknown.items():
        if tag in compiled.tagged:
            raise errors.UnencodableValue(
                f"tag {tag} is known; it cannot also be kept as raw bytes"
            )
        entries.append((tag, raw))
    entries.sort(key=itemgetter(0))  # Kafka requires ascending tags
    primitives.write_uvarint(len(entries), out)
    for tag, data in entries:
        primitives.write_uvarint(tag, out)
        primitives.write_uvarint(len(data), out)
        out += data


def _cut(compiled: StructPlan, stop_after_field: str, message_name: str) -> StructPlan:
    names = [name for name, _ in compiled.readers]
    if stop_after_field not in names:
        raise ValueError(f"{message_name} has no field {stop_after_field} at this version")
    end = names.index(stop_after_field) + 1
    return StructPlan(compiled.readers[:end], compiled.writers[:end], {}, flexible=False)


def _compile_struct(fields: Iterable[specs.FieldSpec], version: int, flexible: bool) -> StructPlan:
    readers: list[tuple[str, Reader]] = []
    writers: list[tuple[str, Writer]] = []
    tagged: dict[int, tuple[str, Reader, Writer]] = {}
    for field in fields:
        if not field.present_in(version):
            continue
        read, write = _compile_field(field, version, flexible)
        if flexible and field.tag is not None and field.tagged_in(version):
            tagged[field.tag] = (field.name, read, write)
        else:
            readers.append((field.name, read))
            writers.append((field.name, write))
    ordered_tags = dict(sorted(tagged.items()))
    return StructPlan(tuple(readers), tuple(writers), ordered_tags, flexible)


def _compile_field(field: specs.FieldSpec, version: int, flexible: bool) -> tuple[Reader, Writer]:
    # A field may opt out of compact encoding (RequestHeader.ClientId: "flexibleVersions": "none").
    compact = flexible
    if field.has_flexible_override:
        compact = field.flexible_versions is not None and version in field.flexible_versions
    if field.is_struct:
        element = _struct_codec(_compile_struct(field.fields, version, flexible))
        if not field.is_array and field.nullable_in(version):
            return _nullable_struct(*element)
    else:
        width = _FIXED_WIDTH.get(field.element_type)
        if field.is_array and width is not None:
            return _fixed_width_array(width, compact=compact)
        element = _scalar(field.element_type, compact)
    if field.is_array:
        return _array(*element, compact=compact)
    return element


def _scalar(type_name: str, compact: bool) -> tuple[Reader, Writer]:
    width = _FIXED_WIDTH.get(type_name)
    if width is not None:
        return primitives.fixed(width)
    if type_name == "bool":
        return primitives.read_bool, primitives.write_bool
    if type_name == "uuid":
        return primitives.read_uuid, primitives.write_uuid
    if compact:
        lengths = (primitives.read_compact_length, primitives.write_compact_length)
    elif type_name == "string":
        lengths = (primitives.read_int16_length, primitives.write_int16_length)
    else:
        lengths = (primitives.read_int32_length, primitives.write_int32_length)
    if type_name == "string":
        return primitives.string_codec(*lengths)
    if type_name in ("bytes", "records"):  # records stay opaque bytes: the gateway never edits them
        return primitives.bytes_codec(*lengths)
    raise errors.UnsupportedVersion(f"spec field type {type_name!r} is not supported")


def _struct_codec(compiled: StructPlan) -> tuple[Reader, Writer]:
    def read(buf: Buffer, pos: int) -> tuple[Any, int]:
        return read_struct(compiled, buf, pos)

    def write(value: Any, out: bytearray) -> None:
        write_struct(compiled, value, out)

    return read, write


def _nullable_struct(read_inner: Reader, write_inner: Writer) -> tuple[Reader, Writer]:
    # Kafka prefixes a nullable (non-array) struct with an int8: -1 for null, 1 for present.
    def read(buf: Buffer, pos: int) -> tuple[Any, int]:
        marker = primitives.INT8.unpack_from(buf, pos)[0]
        if marker < 0:
            return None, pos + 1
        return read_inner(buf, pos + 1)

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            out += primitives.INT8.pack(-1)
            return
        out += primitives.INT8.pack(1)
        write_inner(value, out)

    return read, write


def _fixed_width_array(item: struct.Struct, *, compact: bool) -> tuple[Reader, Writer]:
    # Replica lists and the like ([]int32) are read with one unpack instead of one per element.
    read_length = primitives.read_compact_length if compact else primitives.read_int32_length
    write_length = primitives.write_compact_length if compact else primitives.write_int32_length
    code, size = item.format[1:], item.size
    layouts: dict[int, struct.Struct] = {}

    def read(buf: Buffer, pos: int) -> tuple[Any, int]:
        count, pos = read_length(buf, pos)
        if count == -1:
            return None, pos
        end = pos + count * size
        if count < -1 or end > len(buf):
            raise errors.MalformedFrame(f"array of {count} elements at offset {pos}")
        layout = layouts.get(count)
        if layout is None:
            layout = struct.Struct(f">{count}{code}")
            if count <= _CACHED_ARRAY_LAYOUTS:
                layouts[count] = layout
        return list(layout.unpack_from(buf, pos)), end

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            write_length(-1, out)
            return
        write_length(len(value), out)
        out += struct.pack(f">{len(value)}{code}", *value)

    return read, write


def _array(read_item: Reader, write_item: Writer, *, compact: bool) -> tuple[Reader, Writer]:
    read_length = primitives.read_compact_length if compact else primitives.read_int32_length
    write_length = primitives.write_compact_length if compact else primitives.write_int32_length

    def read(buf: Buffer, pos: int) -> tuple[Any, int]:
        count, pos = read_length(buf, pos)
        if count == -1:
            return None, pos
        # Every element of every Kafka array takes at least one byte: a count larger than what
        # is left is a lie, and must not make us loop (or allocate) for billions of elements.
        if count < -1 or count > len(buf) - pos:
            raise errors.MalformedFrame(f"array of {count} elements at offset {pos}")
        items: list[Any] = []
        append = items.append
        for _ in range(count):
            item, pos = read_item(buf, pos)
            append(item)
        return items, pos

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            write_length(-1, out)
            return
        write_length(len(value), out)
        for item in value:
            write_item(item, out)

    return read, write
