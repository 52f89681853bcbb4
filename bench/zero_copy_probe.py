"""Does zero-copy forwarding (``os.splice``) beat the gateway's uvloop relay on this machine?

Why it exists: issue 18 asks whether the gateway's data path should forward the frames it does
not rewrite with ``splice(2)`` (socket -> pipe -> socket, no copy into Python) instead of
uvloop's transports (``data_received`` -> ``write``: two copies through user space). Rewriting
the pump around raw file descriptors is a large change; this probe answers first whether it
would pay, with the same frame pattern the gateway sees and nothing else in the way.

Each relay runs in a process of its own between a sender and a sink on loopback; the sender
writes size-prefixed frames (a Kafka frame's shape) as fast as the relay takes them. Measured:
throughput, and the relay's CPU seconds per GB (user + system, from ``wait4``). Relays:

* ``uvloop``: an ``asyncio.Protocol`` pair on uvloop that parses each frame's size prefix and
  streams the rest through, as the pump does for frames it does not rewrite;
* ``splice``: reads each frame's first bytes (size and header) into Python, then moves the
  rest of the frame with ``os.splice`` through a pipe (blocking calls: its best case).

    .venv/bin/python bench/zero_copy_probe.py --frame-kib 16 --frame-kib 1024 --gib 2
"""

from __future__ import annotations

import argparse
import fcntl
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence

HEADER_BYTES = 64  # what the pump reads of a frame it streams: size prefix and request header
PIPE_BYTES = 1 << 20
F_SETPIPE_SZ = 1031


def _listener() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


def relay_uvloop(client: socket.socket, upstream: socket.socket) -> None:
    import asyncio

    import uvloop

    class Side(asyncio.Protocol):
        def __init__(self) -> None:
            self.peer: asyncio.Transport | None = None
            self.remaining = 0
            self.head = bytearray()
            self.done = asyncio.get_event_loop().create_future()

        def data_received(self, data: bytes) -> None:
            assert self.peer is not None
            view = memoryview(data)
            while view:
                if self.remaining:
                    taken = view[: self.remaining]
                    self.peer.write(taken)
                    self.remaining -= len(taken)
                    view = view[len(taken) :]
                    continue
                need = HEADER_BYTES - len(self.head)
                self.head += view[:need]
                view = view[need:]
                if len(self.head) == HEADER_BYTES:
                    size = int.from_bytes(self.head[:4], "big")
                    self.peer.write(bytes(self.head))
                    self.remaining = size + 4 - HEADER_BYTES
                    self.head.clear()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.done.done():
                self.done.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        up_transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, upstream)
        side = Side()
        side.peer = up_transport  # type: ignore[assignment]
        await loop.connect_accepted_socket(lambda: side, client)
        await side.done
        up_transport.close()

    uvloop.run(main())


def relay_splice(client: socket.socket, upstream: socket.socket) -> None:
    """Blocking calls: the cheapest splice relay can be (a gateway would add a poll per wait)."""
    pipe_r, pipe_w = os.pipe()
    fcntl.fcntl(pipe_w, F_SETPIPE_SZ, PIPE_BYTES)
    src, dst = client.fileno(), upstream.fileno()
    head = bytearray(HEADER_BYTES)
    while True:
        got = 0
        while got < HEADER_BYTES:
            chunk = client.recv_into(memoryview(head)[got:])
            if chunk == 0:
                return
            got += chunk
        upstream.sendall(head)
        remaining = int.from_bytes(head[:4], "big") + 4 - HEADER_BYTES
        while remaining:
            moved = os.splice(src, pipe_w, min(remaining, PIPE_BYTES), flags=os.SPLICE_F_MOVE)
            if moved == 0:
                return
            remaining -= moved
            while moved:
                moved -= os.splice(pipe_r, dst, moved, flags=os.SPLICE_F_MOVE)


RELAYS: dict[str, Callable[[socket.socket, socket.socket], None]] = {
    "uvloop": relay_uvloop,
    "splice": relay_splice,
}


def measure(relay: str, frame_bytes: int, total_bytes: int) -> tuple[float, float]:
    """(MB/s, relay CPU seconds per GB) for one relay and frame size."""
    entry, sink = _listener(), _listener()
    received = [0]

    def drain() -> None:
        connection, _ = sink.accept()
        buffer = bytearray(1 << 20)
        while (got := connection.recv_into(buffer)) > 0:
            received[0] += got
        connection.close()

    draining = threading.Thread(target=drain, daemon=True)
    draining.start()
    pid = os.fork()
    if pid == 0:  # the relay
        client, _ = entry.accept()
        upstream = socket.create_connection(sink.getsockname())
        try:
            RELAYS[relay](client, upstream)
        finally:
            upstream.close()
            os._exit(0)
    sender = socket.create_connection(entry.getsockname())
    frame = (frame_bytes - 4).to_bytes(4, "big") + os.urandom(frame_bytes - 4)
    frames = max(1, total_bytes // frame_bytes)
    batch = frame * max(1, (1 << 20) // frame_bytes)
    per_batch = len(batch) // frame_bytes
    started = time.perf_counter()
    sent = 0
    while sent < frames:
        sender.sendall(batch)
        sent += per_batch
    sender.close()
    draining.join(timeout=120)
    elapsed = time.perf_counter() - started
    _, _, usage = os.wait4(pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    moved = received[0]
    return moved / elapsed / 1e6, cpu / (moved / 1e9)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame-kib", type=int, action="append", help="repeatable")
    parser.add_argument("--gib", type=float, default=1.0, help="bytes per measurement")
    parser.add_argument("--repetitions", type=int, default=3)
    options = parser.parse_args(argv)
    sizes = options.frame_kib or [16, 1024]
    print(
        f"{'frame':>8} {'relay':>7} {'MB/s':>8} {'CPU s/GB':>9}   (median of {options.repetitions})"
    )
    for kib in sizes:
        for relay in RELAYS:
            runs = sorted(
                (
                    measure(relay, kib * 1024, int(options.gib * 2**30))
                    for _ in range(options.repetitions)
                ),
                key=lambda r: r[1],
            )
            rate, cpu = runs[len(runs) // 2]
            print(f"{kib:>6} K {relay:>7} {rate:>8.0f} {cpu:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
