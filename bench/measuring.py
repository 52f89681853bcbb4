"""What the comparison benchmark reads off a proxy and a client: CPU, memory, latency, idle sockets.

Why it exists: the figures that decide whether a proxy is fit for the data path (CPU per MB
forwarded, resident memory, added latency, cost of an idle connection) must be read the same way
for every target, from outside the proxy, so that no proxy's own metrics flatter it. CPU time and
memory come from ``/proc/<pid>`` (Linux): ``utime + stime`` of the process (all its threads) and
``VmRSS`` / ``VmHWM``. Produce latency comes from librdkafka's own per-message timer
(``Message.latency()``: from ``produce()`` to the broker's acknowledgement, microsecond
resolution), at a fixed rate paced by the caller. Idle connections each complete one ApiVersions
v0 round trip first, so the proxy has whatever per-connection state (upstream socket, buffers) a
real client would cause, and then sit still while the proxy's RSS is read.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer

from kafka_testbed import networking

API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 5) + b"bench"
"""ApiVersions v0 request header with client id "bench" and an empty body."""
IDLE_CONNECT_BATCH = 200
IDLE_TIMEOUT_SECONDS = 120.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"/proc/{pid}/status has no {field} line")


@dataclass(frozen=True)
class LatencyResult:
    sent: int
    acknowledged: int
    errors: int
    rate: float
    """Records per second actually offered."""
    p50_ms: float
    p99_ms: float


class LatencyProbe:
    """One open librdkafka producer that produces at a fixed rate in slices and keeps latencies.

    Kept open across slices so that slices of different targets can be interleaved (A, B, C, A,
    B, C, ...) without paying connection set-up each time; latencies pool across its slices.
    """

    def __init__(self, bootstrap: str, topic: str, record_size: int) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.payload = b"x" * record_size
        self.latencies: list[float] = []
        self.sent = self.errors = 0
        self.seconds = 0.0
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "linger.ms": 0,
                "enable.idempotence": False,
                "metadata.recovery.strategy": "none",
            }
        )
        _warm(self.producer, topic)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.errors += 1
            return
        latency = message.latency()
        if latency is not None:
            self.latencies.append(latency)

    def run(self, rate: float, seconds: float) -> None:
        """Offer ``rate`` records/s for ``seconds``, then wait for every acknowledgement."""
        sent, started = 0, time.monotonic()
        deadline = started + seconds
        while (now := time.monotonic()) < deadline:
            due = int((now - started) * rate)
            while sent < due:
                self.producer.produce(self.topic, self.payload, on_delivery=self._delivered)
                sent += 1
            self.producer.poll(0)
            time.sleep(0.0005)
        self.seconds += time.monotonic() - started
        self.sent += sent
        remaining = self.producer.flush(30)
        if remaining:
            raise RuntimeError(
                f"{remaining} records unacknowledged 30 s after a slice via {self.bootstrap}"
            )

    def reset(self) -> None:
        """Forget what was measured so far (after a warm-up slice)."""
        self.latencies.clear()
        self.sent = self.errors = 0
        self.seconds = 0.0

    def result(self) -> LatencyResult:
        if not self.latencies:
            raise RuntimeError(f"no record acknowledged via {self.bootstrap}")
        ordered = sorted(self.latencies)
        return LatencyResult(
            sent=self.sent,
            acknowledged=len(ordered),
            errors=self.errors,
            rate=self.sent / self.seconds if self.seconds else 0.0,
            p50_ms=statistics.median(ordered) * 1000,
            p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        )


def fixed_rate_latency(
    bootstrap: str, topic: str, *, rate: float, seconds: float, record_size: int
) -> LatencyResult:
    """Produce ``rate`` records/s for ``seconds`` with acks=all, no batching delay; latencies."""
    probe = LatencyProbe(bootstrap, topic, record_size)
    probe.run(rate, seconds)
    return probe.result()


def _warm(producer: Producer, topic: str) -> None:
    """One acknowledged record first, so connection set-up is not in the figures."""
    producer.produce(topic, b"warm-up")
    if producer.flush(30):
        raise RuntimeError(f"warm-up record to {topic} not acknowledged within 30 s")


def idle_connections_rss(
    bootstrap: str, pid: int, count: int, *, settle_seconds: float = 2.0
) -> tuple[float, float]:
    """(RSS before, RSS with ``count`` idle connections open), MiB; all closed afterwards."""
    before = memory_mb(pid)
    return before, asyncio.run(_hold_idle(bootstrap, pid, count, settle_seconds))


async def _hold_idle(bootstrap: str, pid: int, count: int, settle_seconds: float) -> float:
    host, port = networking.split_address(bootstrap)
    writers: list[asyncio.StreamWriter] = []
    try:
        async with asyncio.timeout(IDLE_TIMEOUT_SECONDS):
            for start in range(0, count, IDLE_CONNECT_BATCH):
                batch = min(IDLE_CONNECT_BATCH, count - start)
                opened = await asyncio.gather(*(_open_idle(host, port) for _ in range(batch)))
                writers.extend(opened)
        await asyncio.sleep(settle_seconds)
        return memory_mb(pid)
    finally:
        for writer in writers:
            writer.close()


async def _open_idle(host: str, port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0)
    await writer.drain()
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    await reader.readexactly(size)
    return writer
