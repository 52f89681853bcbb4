"""Throughput through the gateway versus straight to the broker, measured by Kafka's own tools.

Why it exists: a proxy on the data path must not become the bottleneck, and the honest yardstick
is the one Kafka users already trust — ``org.apache.kafka.tools.ProducerPerformance`` and
``ConsumerPerformance`` from the Kafka 4.1.1 jars the lab caches. Both run against the *same*
single broker, once directly and once through a gateway in front of it, alternating (direct,
gateway, direct, gateway, ...) so that drift on a shared 2-core machine (JIT warm-up, page cache,
other processes) hits both paths alike. Each producer run writes a fresh 3-partition topic with
1 KiB records and ``acks=all``; the consumer run that follows reads that topic back from the
beginning in a fresh group. Medians over the repetitions are reported.

Consumer figures are the tool's ``fetch.MB.sec`` / ``fetch.nMsg.sec``, which leave out the group
join (a handful of round trips, not throughput). The tools' "MB" is 2^20 bytes.

    python bench/throughput.py [--records 200000] [--repetitions 3] [--smoke]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kafka_testbed import admin, gateways, launching, tooling
from kafka_testbed.gateways import GatewayProcess

RECORD_SIZE = 1024
PARTITIONS = 3
FULL_RECORDS = 200_000
SMOKE_RECORDS = 5_000
FULL_REPETITIONS = 5
BROKER_JVM_OPTIONS = ("-Xms512m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")
"""Full JIT and G1: the lab's default (C1 only, serial GC) is tuned for start-up, not speed."""
TOOL_JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")
TOOL_TIMEOUT_SECONDS = 300.0
PATHS = ("direct", "gateway")

_PRODUCER_LINE = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


@dataclass(frozen=True)
class Sample:
    """One tool run."""

    path: str  # "direct" or "gateway"
    tool: str  # "produce" or "consume"
    mb_per_second: float
    records_per_second: float
    p99_latency_ms: float | None = None
    gateway_cpu_seconds: float = 0.0
    """CPU time (user + system) the gateway process used during the run."""


@dataclass(frozen=True)
class Row:
    """Medians for one tool on both paths."""

    tool: str
    direct_mb: float
    direct_records: float
    gateway_mb: float
    gateway_records: float
    gateway_cpu_seconds: float
    """Median CPU time the gateway used per gateway run."""

    @property
    def ratio(self) -> float:
        return self.gateway_mb / self.direct_mb if self.direct_mb else float("nan")


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


def produce(bootstrap: str, topic: str, records: int, path: str) -> Sample:
    arguments = [
        "--topic", topic, "--num-records", str(records), "--record-size", str(RECORD_SIZE),
        "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
    ]  # fmt: skip
    result = _java(tooling.PRODUCER_PERFORMANCE, arguments)
    mb, rps, p99 = parse_producer(result.stdout)
    return Sample(path, "produce", mb, rps, p99)


def consume(bootstrap: str, topic: str, records: int, path: str) -> Sample:
    arguments = [
        "--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
        "--group", f"{topic}-reader", "--timeout", "60000",
    ]  # fmt: skip
    result = _java(tooling.CONSUMER_PERFORMANCE, arguments)
    mb, rps = parse_consumer(result.stdout)
    return Sample(path, "consume", mb, rps)


def _java(main_class: str, arguments: Sequence[str]) -> tooling.ToolResult:
    return tooling.run_java(
        main_class, arguments, timeout=TOOL_TIMEOUT_SECONDS, jvm_options=TOOL_JVM_OPTIONS
    )


@contextmanager
def broker_and_gateway() -> Iterator[tuple[str, GatewayProcess]]:
    """One broker and a gateway whose two clusters are that broker (the config wants two)."""
    cluster = launching.start_kafka([1], name="bench-throughput", jvm_options=BROKER_JVM_OPTIONS)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-throughput-gateway-") as workdir:
            clusters = {"main": cluster.bootstrap, "failover": cluster.bootstrap}
            gateway = gateways.start_gateway(clusters, workdir=Path(workdir))
            try:
                yield cluster.bootstrap, gateway
            finally:
                gateway.stop()
    finally:
        cluster.stop()


def measure(records: int, repetitions: int, *, verbose: bool = True) -> list[Sample]:
    """Alternate direct and gateway runs ``repetitions`` times each; every sample, in order."""
    samples: list[Sample] = []
    with broker_and_gateway() as (direct, gateway):
        targets = {"direct": direct, "gateway": gateway.bootstrap}
        for repetition in range(repetitions):
            for path in PATHS:
                topic = f"throughput-{path}-{repetition}-{time.time_ns()}"
                admin.create_topic(direct, topic, partitions=PARTITIONS)
                for run in (produce, consume):
                    cpu_before = _cpu_seconds(gateway.process.pid)
                    sample = run(targets[path], topic, records, path)
                    cpu = _cpu_seconds(gateway.process.pid) - cpu_before
                    sample = dataclasses.replace(sample, gateway_cpu_seconds=round(cpu, 2))
                    samples.append(sample)
                    if verbose:
                        _progress(repetition, sample)
    return samples


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _progress(repetition: int, sample: Sample) -> None:
    print(
        f"  run {repetition + 1} {sample.tool:<8} {sample.path:<8} "
        f"{sample.mb_per_second:7.1f} MB/s {sample.records_per_second:9.0f} records/s  "
        f"gateway CPU {sample.gateway_cpu_seconds:5.2f} s",
        file=sys.stderr,
        flush=True,
    )


def summarize(samples: Sequence[Sample]) -> list[Row]:
    rows = []
    for tool in ("produce", "consume"):
        chosen = {path: [s for s in samples if (s.tool, s.path) == (tool, path)] for path in PATHS}
        medians = [
            statistics.median(getattr(s, field) for s in chosen[path])
            for path in PATHS
            for field in ("mb_per_second", "records_per_second")
        ]
        cpu = statistics.median(s.gateway_cpu_seconds for s in chosen["gateway"])
        direct_mb, direct_records, gateway_mb, gateway_records = medians
        rows.append(Row(tool, direct_mb, direct_records, gateway_mb, gateway_records, cpu))
    return rows


def table(rows: Sequence[Row], records: int, repetitions: int, *, smoke: bool = False) -> str:
    lines = [
        f"throughput: {records} records of {RECORD_SIZE} B per run, acks=all, same broker, "
        f"{repetitions} alternating runs per path, medians",
        f"  {'':<8} {'direct MB/s':>11} {'records/s':>10} {'gateway MB/s':>13} {'records/s':>10}"
        f" {'gateway/direct':>15} {'gateway CPU s/run':>17}",
    ]
    if smoke:
        lines.insert(1, "  (smoke: checks the wiring; runs this short say nothing about speed)")
    for row in rows:
        lines.append(
            f"  {row.tool:<8} {row.direct_mb:>11.1f} {row.direct_records:>10.0f} "
            f"{row.gateway_mb:>13.1f} {row.gateway_records:>10.0f} {row.ratio:>15.2f}"
            f" {row.gateway_cpu_seconds:>17.2f}"
        )
    return "\n".join(lines)


def run(
    *, smoke: bool = False, records: int | None = None, repetitions: int | None = None
) -> dict[str, Any]:
    """Measure and print; return a JSON-ready result."""
    records = records or (SMOKE_RECORDS if smoke else FULL_RECORDS)
    repetitions = repetitions or (1 if smoke else FULL_REPETITIONS)
    samples = measure(records, repetitions)
    rows = summarize(samples)
    print(table(rows, records, repetitions, smoke=smoke), flush=True)
    return {
        "records": records,
        "record_size": RECORD_SIZE,
        "repetitions": repetitions,
        "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
        "samples": [asdict(sample) for sample in samples],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="one very short run of each")
    parser.add_argument("--records", type=int, help=f"records per run (default {FULL_RECORDS})")
    parser.add_argument(
        "--repetitions", type=int, help=f"runs per path (default {FULL_REPETITIONS})"
    )
    parser.add_argument("--json", help="also write the result to this file")
    options = parser.parse_args(argv)
    result = run(smoke=options.smoke, records=options.records, repetitions=options.repetitions)
    if options.json:
        with open(options.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
