"""Kafka's own performance tools as the benchmark's load: run one, parse its summary.

Why it exists: the honest yardstick for throughput is the one Kafka users already trust —
``org.apache.kafka.tools.ProducerPerformance`` and ``ConsumerPerformance`` from the Kafka 4.1.1
jars the lab caches — run as separate JVMs against any bootstrap address (the broker, our
gateway, a peer proxy), so the load generator is the same whatever is measured.
:mod:`comparison` decides what runs where; this module only runs a tool and reads its figures.

Consumer figures are the tool's ``fetch.MB.sec`` / ``fetch.nMsg.sec``, which leave out the group
join (a handful of round trips, not throughput). The tools' "MB" is 2^20 bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kafka_testbed import tooling

RECORD_SIZE = 1024
BROKER_JVM_OPTIONS = ("-Xms512m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")
"""Full JIT and G1: the lab's default (C1 only, serial GC) is tuned for start-up, not speed."""
TOOL_JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")
TOOL_TIMEOUT_SECONDS = 300.0

_PRODUCER_LINE = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


@dataclass(frozen=True)
class Sample:
    """One tool run."""

    path: str  # the target's name
    tool: str  # "produce" or "consume"
    mb_per_second: float
    records_per_second: float
    p99_latency_ms: float | None = None


def parse_producer(stdout: str) -> tuple[float, float, float]:
    """(MB/s, records/s, p99 ms) from ProducerPerformance's final summary line."""
    matches = list(_PRODUCER_LINE.finditer(stdout))
    if not matches:
        raise ValueError(f"no ProducerPerformance summary in output:\n{stdout[-2000:]}")
    last = matches[-1]
    return float(last["mbps"]), float(last["rps"]), float(last["p99"])


def parse_consumer(stdout: str) -> tuple[float, float]:
    """(fetch MB/s, fetch records/s) from ConsumerPerformance's CSV line."""
    for line in reversed(stdout.strip().splitlines()):
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 10 and fields[0][:1].isdigit():
            return float(fields[8]), float(fields[9])
    raise ValueError(f"no ConsumerPerformance result line in output:\n{stdout[-2000:]}")


def produce(
    bootstrap: str,
    topic: str,
    records: int,
    path: str,
    *,
    record_size: int = RECORD_SIZE,
    extra_props: Sequence[str] = (),
    timeout: float = TOOL_TIMEOUT_SECONDS,
) -> Sample:
    arguments = [
        "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
        "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
        *extra_props,
    ]  # fmt: skip
    result = _java(tooling.PRODUCER_PERFORMANCE, arguments, timeout)
    try:
        mb, rps, p99 = parse_producer(result.stdout)
    except ValueError as error:
        raise ValueError(f"{error}\nstderr:\n{result.stderr[-3000:]}") from None
    return Sample(path, "produce", mb, rps, p99)


def consume(
    bootstrap: str, topic: str, records: int, path: str, *, timeout: float = TOOL_TIMEOUT_SECONDS
) -> Sample:
    arguments = [
        "--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
        "--group", f"{topic}-reader", "--timeout", "60000",
    ]  # fmt: skip
    result = _java(tooling.CONSUMER_PERFORMANCE, arguments, timeout)
    mb, rps = parse_consumer(result.stdout)
    return Sample(path, "consume", mb, rps)


def _java(main_class: str, arguments: Sequence[str], timeout: float) -> tooling.ToolResult:
    return tooling.run_java(main_class, arguments, timeout=timeout, jvm_options=TOOL_JVM_OPTIONS)
