"""Kafka's JSON message specs, loaded once and indexed by message name and api key.

Why: every layout the gateway decodes must come from Apache Kafka's own specs, never from tables
typed by hand. The request, response and header specs of one Kafka release ship with the gateway
as package data (``message_specs/``, taken from the ``kafka-clients`` sources jar on Maven
Central by ``scripts/update_message_specs.py``; ``SOURCE.json`` names the release). One release
for every api key means no api is missing a layout (share groups, streams groups and KIP-848
included), and the gateway needs no Kafka client library at run time.

The spec files are JSON with ``//`` comments; field trees may refer to ``commonStructs`` by name,
which are resolved here so the schema layer only ever sees plain nested fields.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from failover_gateway.codec import errors

_SPEC_FOLDER = "message_specs"


@dataclass(frozen=True, slots=True)
class VersionRange:
    """An inclusive version range as written in specs: ``"0+"``, ``"1-3"``, ``"4"``, ``"none"``."""

    low: int
    high: int | None  # None: open-ended ("3+")

    @classmethod
    def parse(cls, text: str | None) -> VersionRange | None:
        if text is None or text == "none":
            return None
        if text.endswith("+"):
            return cls(int(text[:-1]), None)
        low, _, high = text.partition("-")
        return cls(int(low), int(high or low))

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, int):
            return False
        return self.low <= version and (self.high is None or version <= self.high)


def _in(version_range: VersionRange | None, version: int) -> bool:
    return version_range is not None and version in version_range


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a message or struct, with the versions in which it exists and how."""

    name: str
    type: str  # as in the spec: "int32", "string", "[]int32", "[]Broker", "Cursor", ...
    versions: VersionRange | None
    nullable_versions: VersionRange | None
    tagged_versions: VersionRange | None
    tag: int | None
    flexible_versions: VersionRange | None  # field-level override (RequestHeader.ClientId: none)
    has_flexible_override: bool
    entity_type: str | None  # what the value names: "producerId", "brokerId", "topicName", ...
    fields: tuple[
        FieldSpec, ...
    ]  # children of struct / struct-array fields, commonStructs resolved

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def element_type(self) -> str:
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self) -> bool:
        return self.element_type[:1].isupper()

    def present_in(self, version: int) -> bool:
        return _in(self.versions, version)

    def tagged_in(self, version: int) -> bool:
        return self.tag is not None and _in(self.tagged_versions, version)

    def nullable_in(self, version: int) -> bool:
        return _in(self.nullable_versions, version)


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A top-level message (request, response, header or data) from one spec file."""

    name: str
    type: str
    api_key: int | None
    valid_versions: VersionRange | None  # None: "none" (an api whose every version is retired)
    flexible_versions: VersionRange | None
    fields: tuple[FieldSpec, ...]
    latest_version_unstable: bool = False

    @property
    def max_version(self) -> int:
        """The highest version in the spec (-1 when no version is valid any more)."""
        if self.valid_versions is None:
            return -1
        assert self.valid_versions.high is not None, "specs always bound validVersions"
        return self.valid_versions.high

    @property
    def max_stable_version(self) -> int:
        """The highest version brokers offer by default: an unstable latest version is only
        advertised by brokers started with ``unstable.api.versions.enable``."""
        return self.max_version - 1 if self.latest_version_unstable else self.max_version

    def is_valid(self, version: int) -> bool:
        return self.valid_versions is not None and version in self.valid_versions

    def is_flexible(self, version: int) -> bool:
        return _in(self.flexible_versions, version)

    def has_path(self, version: int, path: tuple[str, ...]) -> bool:
        """Whether the field at ``path`` (``("Topics", "Partitions", "LeaderEpoch")``) and every
        struct above it exist in ``version``."""
        fields = self.fields
        for name in path:
            field = next((f for f in fields if f.name == name and f.present_in(version)), None)
            if field is None:
                return False
            fields = field.fields
        return True


def strip_comments(text: str) -> str:
    """Drop ``//`` comments outside JSON strings (``about`` texts may contain ``http://``)."""
    return "\n".join(_strip_line_comment(line) for line in text.splitlines())


_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|//')


def _strip_line_comment(line: str) -> str:
    for match in _STRING_OR_COMMENT.finditer(line):
        if match.group() == "//":
            return line[: match.start()]
    return line


def _parse_field(raw: Mapping[str, Any], common: Mapping[str, list[Any]]) -> FieldSpec:
    element = raw["type"].removeprefix("[]")
    children = raw.get("fields")
    if children is None and element in common:
        children = common[element]
    return FieldSpec(
        name=raw["name"],
        type=raw["type"],
        versions=VersionRange.parse(raw.get("versions")),
        nullable_versions=VersionRange.parse(raw.get("nullableVersions")),
        tagged_versions=VersionRange.parse(raw.get("taggedVersions")),
        tag=raw.get("tag"),
        flexible_versions=VersionRange.parse(raw.get("flexibleVersions")),
        has_flexible_override="flexibleVersions" in raw,
        entity_type=raw.get("entityType"),
        fields=tuple(_parse_field(child, common) for child in children or ()),
    )


def parse_message(text: str) -> MessageSpec:
    """Build a :class:`MessageSpec` from the text of one spec file."""
    raw = json.loads(strip_comments(text))
    common = {struct["name"]: struct["fields"] for struct in raw.get("commonStructs", ())}
    return MessageSpec(
        name=raw["name"],
        type=raw["type"],
        api_key=raw.get("apiKey"),
        valid_versions=VersionRange.parse(raw["validVersions"]),
        flexible_versions=VersionRange.parse(raw.get("flexibleVersions")),
        fields=tuple(_parse_field(field, common) for field in raw.get("fields", ())),
        latest_version_unstable=bool(raw.get("latestVersionUnstable", False)),
    )


@functools.cache
def source() -> Mapping[str, Any]:
    """Which Kafka release the shipped specs come from (``SOURCE.json``)."""
    folder = importlib.resources.files(__package__).joinpath(_SPEC_FOLDER)
    loaded: Mapping[str, Any] = json.loads(folder.joinpath("SOURCE.json").read_text("utf-8"))
    return loaded


@functools.cache
def all_messages() -> Mapping[str, MessageSpec]:
    """Every shipped spec, by message name (``"MetadataResponse"``)."""
    folder = importlib.resources.files(__package__).joinpath(_SPEC_FOLDER)
    texts = sorted(
        (entry.name, entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json") and entry.name != "SOURCE.json"
    )
    if not texts:
        raise errors.CodecError(f"no Kafka message specs found in {folder}")
    specs = (parse_message(text) for _, text in texts)
    return {spec.name: spec for spec in specs}


def message(name: str) -> MessageSpec:
    """The spec called ``name``; raises :class:`UnsupportedVersion` when it is not bundled."""
    try:
        return all_messages()[name]
    except KeyError:
        raise errors.UnsupportedVersion(f"no bundled Kafka spec named {name!r}") from None


@functools.cache
def _by_api_key(kind: str) -> Mapping[int, MessageSpec]:
    return {
        spec.api_key: spec
        for spec in all_messages().values()
        if spec.type == kind and spec.api_key is not None
    }


def request(api_key: int) -> MessageSpec | None:
    """The request spec for ``api_key``, or None when no shipped spec has that api key."""
    return _by_api_key("request").get(api_key)


def response(api_key: int) -> MessageSpec | None:
    """The response spec for ``api_key``, or None when no shipped spec has that api key."""
    return _by_api_key("response").get(api_key)


def api_keys() -> tuple[int, ...]:
    """Every api key with both a request and a response spec, in order."""
    return tuple(sorted(set(_by_api_key("request")) & set(_by_api_key("response"))))


def is_flexible(api_key: int, api_version: int) -> bool:
    """Whether requests and responses of this api key and version use the flexible encoding.

    Defined for versions outside the bundled ``validVersions`` too: flexibility never goes back,
    so ``"9+"`` answers for future versions as well. Runs for every request frame, hence the
    flat lookup table.
    """
    table = _flexible_since()
    if api_key not in table:
        raise errors.UnsupportedVersion(
            f"api key {api_key} has no known layout", api_key=api_key, api_version=api_version
        )
    since = table[api_key]
    return since is not None and api_version >= since


@functools.cache
def _flexible_since() -> Mapping[int, int | None]:
    """api key → first flexible version (None: never flexible)."""
    table: dict[int, int | None] = {}
    for api_key, spec in _by_api_key("request").items():
        flexible = spec.flexible_versions
        table[api_key] = None if flexible is None else flexible.low
    return table
