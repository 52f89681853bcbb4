"""Finding where a field starts in a message body without decoding what comes before it.

Why it exists: KIP-951 put broker addresses (``NodeEndpoints``) at the *end* of Produce, Fetch,
ShareFetch and ShareAcknowledge responses, after every partition and its records. To rewrite
them the gateway must know where the end section starts, and a Fetch response is mostly record
bytes. Decoding the body would build a dict per partition and copy every record set; this module
instead steps over the fields, reading only length prefixes and counts: record sets are passed by
their length, never touched, so the cost is a few small reads per partition whatever the size of
the data.

How: for each (message, version, field) the walk is generated once from the same JSON spec as
the codec, as the source of one plain Python function (``pos += 30`` for a Fetch partition's five
numbers, a loop per array, an inline fast path for one-byte varints), compiled with ``exec`` and
cached. A chain of closures, one call per field, cost ten times more per partition on a Fetch
answer of many partitions (``bench/leader_hint_rewrite.py``). The generated source depends only
on the shipped specs, never on input; :func:`walker_source` shows it. Pure: no I/O, raises
:class:`~failover_gateway.codec.errors.MalformedFrame` on a body that ends early or announces
impossible sizes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, cast

from failover_gateway.codec import errors, primitives, specs
from failover_gateway.codec.primitives import Buffer

Walker = Callable[[Buffer], int]
SpanWalker = Callable[[Buffer, list[Any]], int]

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
_NAMESPACE = {
    "uvarint": primitives.read_uvarint,
    "int16_at": primitives.INT16.unpack_from,
    "int32_at": primitives.INT32.unpack_from,
    "skip_tags": primitives.skip_tagged_fields,
    "Malformed": errors.MalformedFrame,
}

_cache: dict[tuple[str, int, str], Walker] = {}
_span_cache: dict[tuple[str, int, bool, tuple[tuple[str, ...], ...]], SpanWalker] = {}


def field_offset(spec: specs.MessageSpec, version: int, body: Buffer, field: str) -> int:
    """Where ``field`` starts in ``body``: for an untagged top-level field, its first byte; for a
    tagged one, the first byte of the top-level tagged-field section that may hold it."""
    walk = _walker(spec, version, field)
    try:
        end = walk(body)
    except errors.CodecError:
        raise
    except _READ_ERRORS as exc:
        raise errors.MalformedFrame(f"{spec.name} v{version}: truncated body ({exc})") from exc
    if end > len(body):
        raise errors.MalformedFrame(f"{spec.name} v{version}: body ends before field {field}")
    return end


def value_spans(
    spec: specs.MessageSpec, version: int, body: Buffer, *paths: tuple[str, ...]
) -> list[tuple[int, int]]:
    """Where the value of every occurrence of the field at ``path`` lies in ``body``
    (``("TopicData", "PartitionData", "Records")`` in a Produce request, ``("Responses",
    "TopicId")`` in a Fetch response), as ``(start, end)`` offsets; a null value has none.
    Strings, bytes, records and fixed-width fields; a body too short for its fields raises."""
    spans: list[tuple[int, int]] = []
    _walk_spans(spec, version, body, paths, spans, tagged=False)
    return spans


def tagged_spans(
    spec: specs.MessageSpec, version: int, body: Buffer, *paths: tuple[str, ...]
) -> list[tuple[int, int, int]]:
    """:func:`value_spans` for several paths at once, each span as ``(path index, start, end)``
    in the order the values come: which topic a partition's fields belong to is the last topic
    field before them."""
    spans: list[tuple[int, int, int]] = []
    _walk_spans(spec, version, body, paths, spans, tagged=True)
    return spans


def _walk_spans(
    spec: specs.MessageSpec,
    version: int,
    body: Buffer,
    paths: tuple[tuple[str, ...], ...],
    spans: list[Any],
    *,
    tagged: bool,
) -> None:
    key = (spec.name, version, tagged, paths)  # hashing the paths costs less than joining them
    walk = _span_cache.get(key)
    if walk is None:
        namespace: dict[str, object] = dict(_NAMESPACE)
        source = span_walker_source(spec, version, *paths, tagged=tagged)
        exec(source, namespace)  # source built from specs only
        walk = cast(SpanWalker, namespace["walk"])
        _span_cache[key] = walk
    try:
        end = walk(body, spans)
    except errors.CodecError:
        raise
    except _READ_ERRORS as exc:
        raise errors.MalformedFrame(f"{spec.name} v{version}: truncated body ({exc})") from exc
    if end > len(body):  # bytes after the last field are left alone, as brokers do
        raise errors.MalformedFrame(f"{spec.name} v{version}: body ends before its last field")


def span_walker_source(
    spec: specs.MessageSpec, version: int, *paths: tuple[str, ...], tagged: bool = False
) -> str:
    """The Python source of :func:`value_spans`' walk (for review and tests); ``tagged``: of
    :func:`tagged_spans`' walk."""
    _check_version(spec, version)
    emitter = _Emitter(version, spec.is_flexible(version), targets=tuple(paths), tagged=tagged)
    emitter.fields(spec.fields, depth=1)
    emitter.flush(depth=1)
    if spec.is_flexible(version):
        emitter.tags(depth=1)
    if not emitter.found:
        wanted = ", ".join(".".join(path) for path in paths)
        raise ValueError(f"{spec.name} v{version} has no field at {wanted}")
    return "def walk(buf, spans):\n    pos = 0\n" + "".join(emitter.lines) + "    return pos\n"


def _check_version(spec: specs.MessageSpec, version: int) -> None:
    if not spec.is_valid(version):
        raise errors.UnsupportedVersion(
            f"{spec.name} has no version {version}", api_key=spec.api_key, api_version=version
        )


def walker_source(spec: specs.MessageSpec, version: int, field: str) -> str:
    """The Python source of the walk to ``field`` (for review and tests)."""
    _check_version(spec, version)
    flexible = spec.is_flexible(version)
    present = [f for f in spec.fields if f.present_in(version)]
    target = next((f for f in present if f.name == field), None)
    if target is None:
        raise ValueError(f"{spec.name} v{version} has no field {field}")
    untagged = [f for f in present if not (flexible and f.tagged_in(version))]
    tagged = flexible and target.tagged_in(version)
    before = untagged if tagged else untagged[: untagged.index(target)]
    emitter = _Emitter(version, flexible)
    emitter.fields(before, depth=1)
    emitter.flush(depth=1)
    return "def walk(buf):\n    pos = 0\n" + "".join(emitter.lines) + "    return pos\n"


def _walker(spec: specs.MessageSpec, version: int, field: str) -> Walker:
    key = (spec.name, version, field)
    cached = _cache.get(key)
    if cached is None:
        namespace: dict[str, object] = dict(_NAMESPACE)
        exec(walker_source(spec, version, field), namespace)  # source built from specs only
        cached = cast(Walker, namespace["walk"])
        _cache[key] = cached
    return cached


class _Emitter:
    """Writes the statements that move ``pos`` past fields; fixed widths are summed."""

    def __init__(
        self,
        version: int,
        flexible: bool,
        targets: tuple[tuple[str, ...], ...] = (),
        *,
        tagged: bool = False,
    ) -> None:
        self.version = version
        self.flexible = flexible
        self.lines: list[str] = []
        self.pending = 0
        self.names = 0
        self.targets = targets  # field paths whose value spans are recorded
        self.tagged = tagged  # each span starts with its path's index in targets
        self.path: list[str] = []
        self.found = False

    def _span(self, end: str) -> str:
        tag = f"{self.targets.index(tuple(self.path))}, " if self.tagged else ""
        return f"spans.append(({tag}pos, {end}))"

    def fields(
        self, fields: list[specs.FieldSpec] | tuple[specs.FieldSpec, ...], depth: int
    ) -> None:
        for field in fields:
            if field.present_in(self.version) and not (
                self.flexible and field.tagged_in(self.version)
            ):
                self.field(field, depth)

    def struct(self, field: specs.FieldSpec, depth: int) -> None:
        self.fields(field.fields, depth)
        if self.flexible:
            self.flush(depth)
            self.tags(depth)

    def _targeted(self) -> bool:
        return tuple(self.path) in self.targets

    def tags(self, depth: int) -> None:
        self.say(depth, "if buf[pos] == 0: pos += 1")
        self.say(depth, "else: pos = skip_tags(buf, pos)")

    def field(self, field: specs.FieldSpec, depth: int) -> None:
        self.path.append(field.name)
        try:
            self._field(field, depth)
        finally:
            self.path.pop()

    def _field(self, field: specs.FieldSpec, depth: int) -> None:
        width = _WIDTHS.get(field.type)
        if width is not None and self._targeted():
            self.found = True
            self.flush(depth)
            self.say(depth, self._span(f"pos + {width}"))
        if width is not None:
            self.pending += width
            return
        self.flush(depth)
        compact = self.compact(field)
        if field.is_array:
            self.array(field, depth, compact)
        elif field.is_struct and field.nullable_in(self.version):
            self.say(depth, "nil = buf[pos] & 0x80")
            self.say(depth, "pos += 1")
            self.say(depth, "if not nil:")
            self.struct(field, depth + 1)
            self.flush(depth + 1)
            self.say(depth + 1, "pass")
        elif field.is_struct:
            self.struct(field, depth)
        else:
            self.sized(field.type, depth, compact)

    def sized(self, type_name: str, depth: int, compact: bool) -> None:
        if type_name not in ("string", "bytes", "records"):
            raise errors.UnsupportedVersion(f"spec field type {type_name!r} is not supported")
        recorded = self._targeted()
        self.found = self.found or recorded
        if compact:
            self.compact_count(depth, "n")  # n is length + 1; 0 is null
            self.say(depth, "n -= 1")
        else:
            reader = "int16_at" if type_name == "string" else "int32_at"
            self.say(depth, f"n = {reader}(buf, pos)[0]")
            self.say(depth, f"pos += {2 if type_name == 'string' else 4}")
            self.say(depth, "if n < -1: raise Malformed(f'length {n} at offset {pos}')")
        self.say(depth, "if n > 0:")
        if recorded:
            self.say(depth + 1, self._span("pos + n"))
        self.say(depth + 1, "pos += n")

    def array(self, field: specs.FieldSpec, depth: int, compact: bool) -> None:
        count = f"c{self.names}"
        self.names += 1
        if compact:
            self.compact_count(depth, count)
            self.say(depth, f"{count} -= 1")  # -1: null
        else:
            self.say(depth, f"{count} = int32_at(buf, pos)[0]")
            self.say(depth, "pos += 4")
        self.say(depth, f"if {count} < -1 or {count} > len(buf) - pos:")
        self.say(depth + 1, f"raise Malformed(f'array of {{{count}}} elements at offset {{pos}}')")
        width = _WIDTHS.get(field.element_type)
        if width is not None:
            self.say(depth, f"if {count} > 0: pos += {count} * {width}")
            return
        self.say(depth, f"for _ in range({count}):")
        if field.is_struct:
            self.struct(field, depth + 1)
        else:
            self.sized(field.element_type, depth + 1, compact)
        self.flush(depth + 1)
        self.say(depth + 1, "pass")

    def compact_count(self, depth: int, name: str) -> None:
        self.say(depth, f"{name} = buf[pos]")
        self.say(depth, f"if {name} < 0x80: pos += 1")
        self.say(depth, f"else: {name}, pos = uvarint(buf, pos)")

    def compact(self, field: specs.FieldSpec) -> bool:
        if field.has_flexible_override:
            versions = field.flexible_versions
            return versions is not None and self.version in versions
        return self.flexible

    def flush(self, depth: int) -> None:
        if self.pending:
            self.say(depth, f"pos += {self.pending}")
            self.pending = 0

    def say(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line + "\n")
