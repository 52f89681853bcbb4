"""Running Kafka's own Java tools (console producer/consumer, topics, perf tools, MirrorMaker 2).

They are the Java client's point of view in tests, from the very jars the brokers run. Each call
is one JVM with a timeout; stdout is returned for parsing and the tools log WARN to stderr only,
so their stdout carries nothing but data.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka_testbed import broker_properties, fetching, supervising, warming
from kafka_testbed.errors import ToolError

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"
MIRROR_MAKER_2 = "org.apache.kafka.connect.mirror.MirrorMaker"

TOOL_JVM_OPTIONS: tuple[str, ...] = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
)
KEY_SEPARATOR = "\t"
DEFAULT_TIMEOUT_SECONDS = 60.0
ERROR_OUTPUT_LINES = 30


@dataclass(frozen=True)
class ToolResult:
    """What a finished tool printed."""

    stdout: str
    stderr: str
    seconds: float


def run_java(
    main_class: str,
    arguments: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    classpath: str | None = None,
    jvm_options: Sequence[str] = TOOL_JVM_OPTIONS,
) -> ToolResult:
    """Run a Java main class from the jar cache; raise :class:`ToolError` on failure or timeout.

    ``classpath`` defaults to the Kafka jars; for an older client pass
    ``fetching.classpath(fetching.fetch_old_clients())``.
    """
    java = shutil.which("java")
    if java is None:
        raise ToolError("Java (`java`) is not on PATH; the Kafka tools need Java 17+.")
    if classpath is None:
        jars_dir = fetching.fetch_kafka_jars()
        classpath = fetching.classpath(jars_dir)
        jvm_options = (*jvm_options, *warming.archive_options(jars_dir))
    command = broker_properties.java_command(
        java, classpath, main_class, arguments, log4j_config=_tools_log4j_config(),
        jvm_options=jvm_options,
    )  # fmt: skip
    started = time.monotonic()
    try:
        result = supervising.run(command, stdin=stdin, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise ToolError(
            _describe_failure(main_class, f"timed out after {timeout:.0f}s", error)
        ) from error
    if result.returncode != 0:
        problem = f"exited with status {result.returncode}"
        raise ToolError(_describe_failure(main_class, problem, result))
    return ToolResult(result.stdout, result.stderr, time.monotonic() - started)


def console_produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[str, str]],
    *,
    producer_properties: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> ToolResult:
    """Produce keyed records with ``kafka-console-producer`` (acks=all); returns once flushed."""
    lines = "".join(f"{key}{KEY_SEPARATOR}{value}\n" for key, value in records)
    arguments = [
        "--bootstrap-server", bootstrap, "--topic", topic,
        "--property", "parse.key=true", "--property", f"key.separator={KEY_SEPARATOR}",
        "--producer-property", "acks=all",
        *_repeat("--producer-property", producer_properties or {}),
    ]  # fmt: skip
    return run_java(CONSOLE_PRODUCER, arguments, stdin=lines, timeout=timeout)


def console_consume(
    bootstrap: str,
    topic: str,
    *,
    group: str,
    max_messages: int,
    consumer_properties: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> list[tuple[str, str]]:
    """Consume ``max_messages`` keyed records from the beginning as consumer group ``group``."""
    idle_ms = int(timeout * 1000)
    arguments = [
        "--bootstrap-server", bootstrap, "--topic", topic, "--group", group,
        "--from-beginning", "--max-messages", str(max_messages), "--timeout-ms", str(idle_ms),
        "--property", "print.key=true", "--property", f"key.separator={KEY_SEPARATOR}",
        *_repeat("--consumer-property", consumer_properties or {}),
    ]  # fmt: skip
    result = run_java(CONSOLE_CONSUMER, arguments, timeout=timeout + 30)
    return parse_keyed_lines(result.stdout)


def create_topic(
    bootstrap: str, topic: str, *, partitions: int = 3, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> ToolResult:
    """Create a topic with ``kafka-topics --create`` (broker default replication factor)."""
    arguments = [
        "--bootstrap-server", bootstrap, "--create", "--topic", topic,
        "--partitions", str(partitions),
    ]  # fmt: skip
    return run_java(TOPIC_COMMAND, arguments, timeout=timeout)


def parse_keyed_lines(stdout: str) -> list[tuple[str, str]]:
    """Console consumer lines ``key<TAB>value`` -> ``[(key, value), ...]``."""
    records = []
    for line in stdout.splitlines():
        key, separator, value = line.partition(KEY_SEPARATOR)
        if separator:
            records.append((key, value))
    return records


def _repeat(option: str, properties: Mapping[str, str]) -> list[str]:
    return [item for key, value in properties.items() for item in (option, f"{key}={value}")]


def _tools_log4j_config() -> Path:
    """A WARN-to-stderr log4j2 config, written once per machine (content-addressed)."""
    text = broker_properties.log4j2_properties(level="WARN", target="SYSTEM_ERR")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"kafka-testbed-tools-log4j2-{digest}.properties"
    if not path.exists():
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(text)
        staging.replace(path)
    return path


def _describe_failure(
    main_class: str,
    problem: str,
    output: subprocess.CompletedProcess[str] | subprocess.TimeoutExpired,
) -> str:
    text = "\n".join(_as_text(stream) for stream in (output.stdout, output.stderr) if stream)
    tail = "\n".join(text.splitlines()[-ERROR_OUTPUT_LINES:])
    return f"{main_class.rpartition('.')[2]} {problem}; last output lines:\n{tail}"


def _as_text(stream: str | bytes) -> str:
    return stream.decode(errors="replace") if isinstance(stream, bytes) else stream
