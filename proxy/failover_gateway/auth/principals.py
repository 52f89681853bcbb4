"""Kafka's ``ssl.principal.mapping.rules``: from a certificate subject to a principal name.

Rules are tried in order: ``RULE:pattern/replacement/`` with optional ``L`` (lower case) or ``U``
(upper case) after the last slash, or ``DEFAULT`` (the distinguished name as is). A rule applies
when its pattern matches the whole DN; ``$1``-style groups work as in Java. Same syntax as Kafka's
broker setting, so teams can reuse theirs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_RULE = re.compile(r"\s*(DEFAULT|RULE:((?:\\/|[^/])*)/((?:\\/|[^/])*)/([LU]?))\s*(?:,|$)")


class RuleError(Exception):
    """A mapping rule cannot be parsed; names the rule and the syntax."""


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        if not self.pattern.fullmatch(name):
            return None
        mapped = self.pattern.sub(self.replacement, name, count=1)
        return (
            mapped.lower() if self.case == "L" else mapped.upper() if self.case == "U" else mapped
        )


def parse_rules(text: str) -> tuple[Rule, ...]:
    text = text.strip() or "DEFAULT"
    rules, pos = [], 0
    while pos < len(text):
        match = _RULE.match(text, pos)
        if not match or match.end() == pos:
            raise RuleError(
                f"cannot parse principal mapping rule at {text[pos : pos + 40]!r}; expected "
                "'RULE:pattern/replacement/[LU]' or 'DEFAULT', separated by commas"
            )
        rules.append(_rule(match))
        pos = match.end()
    return tuple(rules)


def _rule(match: re.Match[str]) -> Rule:
    if match.group(1) == "DEFAULT":
        return Rule(None)
    pattern = match.group(2).replace("\\/", "/")
    replacement = re.sub(r"\$(\d+)", r"\\\1", match.group(3).replace("\\/", "/"))
    try:
        return Rule(re.compile(pattern), replacement, match.group(4))
    except re.error as error:
        raise RuleError(f"bad pattern {pattern!r} in principal mapping rule: {error}") from None


def map_principal(distinguished_name: str, rules: Sequence[Rule]) -> str | None:
    """The first rule's result, or None when no rule applies (Kafka then refuses the client)."""
    for rule in rules:
        mapped = rule.apply(distinguished_name)
        if mapped is not None:
            return mapped
    return None
