"""A stand-in for a Kubernetes Service in front of several gateway pods: one address, many pods.

Why it exists: the gateway must hold across several pods behind one Service, where one client's
connections land on different pods (its InitProducerId through one pod, its produce through
another; its metadata from one, its broker connection to another). Tests need that spreading
without Kubernetes: this listens on one loopback address at every port of the gateways' port
block and sends each new TCP connection to the next pod in turn, at the same port on the pod's
own loopback address, copying bytes both ways until either side closes (kube-proxy's
round-robin mode does the same per connection).

Runs an asyncio loop in a thread of its own; :meth:`ServiceBalancer.stop` closes every listener
and connection. Binds 127.0.0.0/8 addresses only.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Sequence

from kafka_testbed import loop_threads
from kafka_testbed.errors import TestbedError

_CHUNK = 256 * 1024


class ServiceBalancer:
    """Round-robin TCP forwarding from ``host:port`` to ``pod:port`` for each port."""

    def __init__(self, host: str, ports: Sequence[int], pods: Sequence[str]) -> None:
        if not host.startswith("127.") or not all(pod.startswith("127.") for pod in pods):
            raise TestbedError("the service balancer binds and dials loopback addresses only")
        self.host = host
        self.ports = tuple(ports)
        self.pods = tuple(pods)
        self.connections = 0
        self._next_pod = itertools.cycle(range(len(self.pods)))
        self._loop = loop_threads.LoopThread("service-balancer")
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> ServiceBalancer:
        self._loop.start(self._listen())
        return self

    def stop(self) -> None:
        self._loop.stop(self._close())

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.ports[0]}"

    async def _listen(self) -> None:
        for port in self.ports:
            accept = functools.partial(self._accept, port=port)
            self._servers.append(await asyncio.start_server(accept, self.host, port))

    def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, port: int
    ) -> None:
        self.connections += 1
        pod = self.pods[next(self._next_pod)]
        task = asyncio.get_running_loop().create_task(self._forward(reader, writer, pod, port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pod: str, port: int
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(pod, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _copy(reader, upstream_writer), _copy(upstream_reader, writer), return_exceptions=True
        )

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()
