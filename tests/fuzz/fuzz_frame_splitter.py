"""Fuzz target: the frame splitter (failover_gateway.pump.framing) on any byte stream.

What must hold for every input, cut into reads of any size, fed as bytes or read into the
buffers the splitter hands out: the only error is ``FrameError``; every byte that leaves (streamed
through or handed over whole) is the input's own, in order; every byte not yet out is one the
splitter says it holds or is still waiting for; the classifier sees at most the announced
prefix of each frame. Run: ``python tests/fuzz/fuzz_frame_splitter.py -max_total_time=60``.
"""

from __future__ import annotations

import struct

import atheris
import fuzzing

with atheris.instrument_imports():
    from failover_gateway.pump import framing

PREFIX_BYTES = 12


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    max_frame = provider.ConsumeIntInRange(0, 4096)
    decisions = provider.ConsumeBytes(16) or b"\x00"
    stream = provider.ConsumeBytes(provider.remaining_bytes())
    out = bytearray()
    seen = 0

    def classify(prefix: memoryview, frame_size: int) -> framing.Decision:
        nonlocal seen
        assert len(prefix) == min(frame_size, PREFIX_BYTES), (len(prefix), frame_size)
        seen += 1
        byte = decisions[seen % len(decisions)]
        return framing.Decision.BUFFER if byte & 1 else framing.Decision.PASS

    splitter = framing.FrameSplitter(
        classify=classify,
        sink=out.extend,
        on_frame=out.extend,
        max_frame_bytes=max_frame,
        prefix_bytes=PREFIX_BYTES,
    )
    fed = 0
    reads = iter(decisions * (1 + len(stream)))
    while fed < len(stream):
        size = 1 + next(reads) % 64
        chunk = stream[fed : fed + size]
        try:
            if next(reads) & 2:
                splitter.feed(chunk)
            else:
                read_into(splitter, chunk)
        except framing.FrameError:
            return
        fed += len(chunk)
        check(stream[:fed], out, splitter)


def read_into(splitter: framing.FrameSplitter, chunk: bytes) -> None:
    """As an ``asyncio.BufferedProtocol`` is read: into the memory the splitter offers."""
    while chunk:
        buffer = splitter.get_buffer()
        taken = min(len(buffer), len(chunk))
        buffer[:taken] = chunk[:taken]
        splitter.buffer_updated(taken)
        chunk = chunk[taken:]


def check(fed: bytes, out: bytearray, splitter: framing.FrameSplitter) -> None:
    assert bytes(out) == fed[: len(out)], "bytes left the splitter changed or out of order"
    assert len(fed) - len(out) == splitter.buffered, (len(fed), len(out), splitter.buffered)


def seeds() -> list[bytes]:
    frames = b"".join(struct.pack(">i", len(body)) + body for body in (b"a" * 30, b"", b"xyz"))
    return [b"\x00\x10\x01\x03\x00" + frames, b"\x00\x10\x02" + struct.pack(">i", 5000) + b"z"]


if __name__ == "__main__":
    fuzzing.run(one_input, seeds())
