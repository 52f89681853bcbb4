"""Refresh the gateway's copy of Apache Kafka's JSON message specs from Maven Central.

Why it exists: the gateway's codec is driven by Kafka's own message specs
(``clients/src/main/resources/common/message/*.json``), never by layouts typed by hand. Kafka
publishes them inside the ``kafka-clients`` *sources* jar on Maven Central (the binary jar holds
only the generated classes). This downloads that jar for one release, checks it against the
SHA-1 Maven Central publishes beside it, and writes the request, response and header specs into
``proxy/failover_gateway/codec/message_specs/`` with a ``SOURCE.json`` naming the release and the
checksum, plus Kafka's LICENSE and NOTICE. The specs are Apache-2.0, like this project.

Maven Central serves sources jars for most releases but not every one (4.4.0 has none), so the
newest release with a sources jar is the one to take. A spec update is a reviewed change: the
version policy (``failover_gateway.routing.api_versions``) only lets clients use versions whose
layout the gateway has seen, and ``tests/unit/test_api_versions_policy.py`` fails on any api key
the policy does not classify.

Usage: ``.venv/bin/python scripts/update_message_specs.py 4.3.1``
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "proxy" / "failover_gateway" / "codec" / "message_specs"
MAVEN = "https://repo1.maven.org/maven2/org/apache/kafka/kafka-clients"
SPEC_PREFIX = "common/message/"
KEPT_TYPES = ("request", "response", "header")
_TYPE = re.compile(r'"type"\s*:\s*"(\w+)"')


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as answer:
        data: bytes = answer.read()
    return data


def sources_jar(version: str) -> tuple[bytes, str]:
    """The sources jar of ``kafka-clients`` ``version`` and its SHA-1, checked."""
    base = f"{MAVEN}/{version}/kafka-clients-{version}-sources.jar"
    jar = download(base)
    expected = download(base + ".sha1").decode().split()[0].strip()
    actual = hashlib.sha1(jar).hexdigest()
    if actual != expected:
        raise SystemExit(f"{base}: SHA-1 {actual} does not match the published {expected}")
    return jar, actual


def message_type(text: str) -> str | None:
    """The top-level ``"type"`` of a spec: the first ``type`` key in the file."""
    match = _TYPE.search(text)
    return match.group(1) if match else None


def write_specs(jar: bytes, target: Path) -> list[str]:
    """Replace ``target``'s specs with the jar's request/response/header specs; their names."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    written = []
    with zipfile.ZipFile(io.BytesIO(jar)) as archive:
        for name in sorted(archive.namelist()):
            base = name.removeprefix(SPEC_PREFIX)
            if name.startswith(SPEC_PREFIX) and base.endswith(".json") and "/" not in base:
                text = archive.read(name).decode("utf-8")
                if message_type(text) in KEPT_TYPES:
                    (target / base).write_text(text, encoding="utf-8")
                    written.append(base)
            elif name in ("LICENSE", "NOTICE"):
                (target / name).write_bytes(archive.read(name))
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    version = argv[0]
    jar, sha1 = sources_jar(version)
    written = write_specs(jar, TARGET)
    (TARGET / "SOURCE.json").write_text(
        json.dumps(
            {
                "artifact": f"org.apache.kafka:kafka-clients:{version}:sources",
                "url": f"{MAVEN}/{version}/kafka-clients-{version}-sources.jar",
                "sha1": sha1,
                "specs": len(written),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {len(written)} specs of kafka-clients {version} into {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
