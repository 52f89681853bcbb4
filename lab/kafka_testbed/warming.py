"""Making Kafka's JVMs start faster with an application class-data-sharing (AppCDS) archive.

On two cores JVM startup dominates the lab: every broker and every Java tool loads thousands of
classes. A dynamic CDS archive, recorded once from a real broker run (classes the broker loaded,
already parsed and verified), cuts a broker's startup CPU time by about a third and helps every
tool using the same jars. It is an optimisation only: without an archive everything still works.

An archive is only valid for the exact JVM and classpath it was dumped with, and a truncated one
crashes the JVM, so it is dumped to a temporary file, checked with ``-Xshare:on``, and only then
renamed into place, under a name that identifies the JVM.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kafka_testbed import fetching, versions
from kafka_testbed.broker_properties import DEFAULT_JVM_OPTIONS
from kafka_testbed.errors import TestbedError

TRAINING_TIMEOUT_SECONDS = 120.0
DUMP_GRACE_SECONDS = 60.0
VERIFY_MAIN_CLASS = "org.apache.kafka.tools.ConsoleProducer"


def archive_path(jars_dir: Path) -> Path | None:
    """Where the archive for these jars and the ``java`` on PATH lives; None without Java."""
    java = shutil.which("java")
    if java is None:
        return None
    return jars_dir.parent / f"{jars_dir.name}.{_jvm_fingerprint(Path(java))}.jsa"


def archive_options(jars_dir: Path) -> tuple[str, ...]:
    """JVM options that use the archive when one exists (for a ``jars_dir/*`` classpath).

    JVM warnings are routed to stderr so that a tool's stdout stays pure data even if the JVM
    declines the archive.
    """
    archive = archive_path(jars_dir)
    if archive is None or not archive.is_file():
        return ()
    return (f"-XX:SharedArchiveFile={archive}", "-Xlog:disable", "-Xlog:all=warning:stderr")


def ensure_archive(kafka_version: str = versions.KAFKA_VERSION) -> Path | None:
    """Record the archive from one broker run unless it exists; return it (None without Java)."""
    jars_dir = fetching.kafka_jars_dir(kafka_version)
    archive = archive_path(jars_dir)
    if archive is None or archive.is_file():
        return archive
    staging = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    try:
        _record(staging, kafka_version)
        _verify(staging, jars_dir)
        staging.replace(archive)
    finally:
        staging.unlink(missing_ok=True)
    return archive


def _record(staging: Path, kafka_version: str) -> None:
    from kafka_testbed import admin, clients, launching

    options = (*DEFAULT_JVM_OPTIONS, f"-XX:ArchiveClassesAtExit={staging}")
    cluster = launching.start_kafka(
        [1],
        name="cds-training",
        jvm_options=options,
        timeout=TRAINING_TIMEOUT_SECONDS,
        kafka_version=kafka_version,
    )
    try:
        admin.create_topic(cluster.bootstrap, "warm-up", partitions=1)
        driver = clients.CLIENTS["confluent_kafka"]
        driver.produce(cluster.bootstrap, "warm-up", [("k", "v")] * 10)
        driver.consume(cluster.bootstrap, "warm-up", group="warm-up", count=10, timeout=30)
    finally:
        cluster.stop(grace_seconds=DUMP_GRACE_SECONDS)


def _verify(staging: Path, jars_dir: Path) -> None:
    """Refuse an archive the JVM cannot map (``-Xshare:on`` makes that an error, not a warning)."""
    if not staging.is_file():
        raise TestbedError(f"The training broker exited without writing {staging.name}")
    command = [
        "java", f"-XX:SharedArchiveFile={staging}", "-Xshare:on",
        "-cp", fetching.classpath(jars_dir), VERIFY_MAIN_CLASS, "--version",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise TestbedError(f"The JVM rejects the recorded archive: {result.stdout}{result.stderr}")


def _jvm_fingerprint(java: Path) -> str:
    """Identifies the JVM build without starting it: its real path, libjvm size and mtime."""
    home = java.resolve().parents[1]
    libjvm = home / "lib" / "server" / "libjvm.so"
    stat = libjvm.stat() if libjvm.is_file() else java.resolve().stat()
    identity = f"{home}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def main() -> int:
    """Record the archives if missing; failures only warn, the lab works without them."""
    for kafka_version in (versions.KAFKA_VERSION, versions.NEWEST_KAFKA_VERSION):
        try:
            archive = ensure_archive(kafka_version)
        except TestbedError as error:
            print(
                f"kafka_testbed: no JVM class-data archive for Kafka {kafka_version} ({error}); "
                "JVMs start slower",
                file=sys.stderr,
            )
            continue
        if archive is not None:
            print(f"kafka_testbed: JVM class-data archive at {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
