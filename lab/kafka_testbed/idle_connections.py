"""Thousands of mostly idle Kafka client connections, as a fleet of quiet services holds them.

Why it exists: in production most connections to a gateway carry almost nothing (services that
produce once a minute, consumers of quiet topics), yet each costs the gateway memory, descriptors
and an upstream connection, and each must survive switches and restarts. The soak holds
thousands of them: each does ApiVersions and Metadata (as every client starts), then sends an
ApiVersions every ``heartbeat_seconds`` (jittered) and reads the answer. A connection the gateway
closes (a switch, a restart) is opened again after a jittered back-off, as client libraries do.

Requests are encoded once with the gateway's spec-driven codec and sent as raw frames from one
asyncio loop in a thread of its own; answers are read by their length prefix and not decoded.
Binds nothing; dials loopback addresses only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from failover_gateway.codec import headers, schema, specs
from kafka_testbed import loop_threads, networking
from kafka_testbed.errors import TestbedError

API_VERSIONS, METADATA = 18, 3
CONNECT_SPREAD_SECONDS = 20.0
"""Opening is spread over this long: thousands of services do not start in one millisecond."""
RECONNECT_BACKOFF_SECONDS = (1.0, 5.0)
ANSWER_TIMEOUT_SECONDS = 30.0
_LENGTH = struct.Struct(">i")


def _frame(api_key: int, version: int, body: dict[str, object], correlation_id: int) -> bytes:
    spec = specs.request(api_key)
    if spec is None:
        raise TestbedError(f"no request spec for api key {api_key}")
    header = headers.encode_request_header(api_key, version, correlation_id, "soak-idle")
    payload = header + schema.encode(spec, version, body)
    return _LENGTH.pack(len(payload)) + payload


HELLO = _frame(API_VERSIONS, 0, {}, 1) + _frame(METADATA, 1, {"Topics": []}, 2)
HEARTBEAT = _frame(API_VERSIONS, 0, {}, 3)


@dataclass
class IdleCounts:
    """What the idle fleet went through (read while it runs; approximate between reads)."""

    open: int = 0
    opened: int = 0
    """Connections that got their ApiVersions and Metadata answered."""
    closed_by_peer: int = 0
    refused: int = 0
    heartbeats: int = 0


class IdleConnections:
    """``count`` connections spread round robin over ``addresses`` (``host:port``)."""

    def __init__(
        self, addresses: Sequence[str], count: int, *, heartbeat_seconds: float = 60.0
    ) -> None:
        if not addresses or not all(a.startswith("127.") for a in addresses):
            raise TestbedError(f"idle connections dial loopback addresses only, got {addresses}")
        self.addresses = [networking.split_address(address) for address in addresses]
        self.count = count
        self.heartbeat_seconds = heartbeat_seconds
        self.counts = IdleCounts()
        self._loop = loop_threads.LoopThread("idle-connections")
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> IdleConnections:
        self._loop.start(self._start())
        return self

    def stop(self) -> None:
        self._loop.stop(self._stop())

    async def _start(self) -> None:
        for index in range(self.count):
            host, port = self.addresses[index % len(self.addresses)]
            delay = random.uniform(0.0, CONNECT_SPREAD_SECONDS)
            self._tasks.append(
                asyncio.get_running_loop().create_task(self._hold(host, port, delay))
            )

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _hold(self, host: str, port: int, delay: float) -> None:
        """Keep one connection open for good, opening it again whenever it is lost."""
        await asyncio.sleep(delay)
        while True:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                await self._session(host, port)
            await asyncio.sleep(random.uniform(*RECONNECT_BACKOFF_SECONDS))

    async def _session(self, host: str, port: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            self.counts.refused += 1
            raise
        self.counts.open += 1
        try:
            writer.write(HELLO)
            await _answers(reader, 2)
            self.counts.opened += 1
            while True:
                await asyncio.sleep(self.heartbeat_seconds * random.uniform(0.5, 1.5))
                writer.write(HEARTBEAT)
                await _answers(reader, 1)
                self.counts.heartbeats += 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            self.counts.closed_by_peer += 1
            raise
        finally:
            self.counts.open -= 1
            writer.close()


async def _answers(reader: asyncio.StreamReader, count: int) -> None:
    async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
        for _ in range(count):
            (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
            await reader.readexactly(size)
