"""Reading credentials out of a Kafka ``sasl.jaas.config`` string.

Why: users already write ``org.apache.kafka.common.security.plain.PlainLoginModule required
username="..." password="...";`` (or ScramLoginModule) in their client properties, and the
gateway takes the same string for its own upstream credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOGIN_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": "PLAIN",
    "org.apache.kafka.common.security.scram.ScramLoginModule": "SCRAM",
}
_HEAD = re.compile(r"^\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\s*(.*?);?\s*$", re.S)
_OPTION = re.compile(r'\s*([\w.]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))\s*')


class JaasError(Exception):
    """The string is not a JAAS configuration the gateway can use (never echoes passwords)."""


@dataclass(frozen=True)
class JaasLogin:
    module: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"JaasLogin(module={self.module!r}, username={self.username!r}, password=<hidden>)"

    @property
    def family(self) -> str:
        return LOGIN_MODULES[self.module]


def parse(text: str) -> JaasLogin:
    head = _HEAD.match(text)
    if not head:
        raise JaasError('expected \'<LoginModule> required username="..." password="...";\'')
    module, _, rest = head.groups()
    if module not in LOGIN_MODULES:
        raise JaasError(
            f"login module {module} is not supported; valid: {', '.join(LOGIN_MODULES)}"
        )
    options, pos = {}, 0
    while pos < len(rest):
        option = _OPTION.match(rest, pos)
        if not option:
            raise JaasError(f"cannot read the options of {module} (near position {pos})")
        quoted, bare = option.group(2), option.group(3)
        value = quoted.replace('\\"', '"').replace("\\\\", "\\") if quoted is not None else bare
        options[option.group(1)] = value
        pos = option.end()
    missing = [key for key in ("username", "password") if not options.get(key)]
    if missing:
        raise JaasError(f"{module} needs {' and '.join(missing)}")
    return JaasLogin(module, options["username"], options["password"])
