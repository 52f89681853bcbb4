"""Splitting a Kafka byte stream into frames without copying the bodies that pass through.

Why it exists: Produce requests and Fetch responses are most of the bytes and need no decoding.
The splitter reads each 4-byte size, checks it against the configured maximum *before* reading the
body, shows a short prefix (enough for the headers) to a classifier, and then either streams the
rest of the frame straight to the sink chunk by chunk (PASS) or collects the whole frame for a
rewrite (BUFFER). A frame collected across reads is copied once, into a buffer of its announced
size (a KIP-951 Fetch response of megabytes is held this way); a frame that arrives inside one
read is handed over as a slice of it. Pure: no asyncio, so protocol tests feed it bytes directly.

A reader that can read into memory it is given (``asyncio.BufferedProtocol``) asks
:meth:`FrameSplitter.get_buffer` where to put the next bytes: while a frame is being collected,
that is the frame's own buffer, so the body of a rewritten Fetch response goes from the socket
to where it is rewritten without the two copies a ``bytes`` read costs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol


class FrameError(Exception):
    """The stream is not valid Kafka framing (bad size, too large, or a classifier refusal)."""


class Decision(enum.Enum):
    PASS = "pass"
    BUFFER = "buffer"


class Classifier(Protocol):
    def __call__(self, prefix: memoryview, frame_size: int) -> Decision: ...


_SIZE = 4
# Where a buffered read lands when no frame is being collected; shared by every splitter of the
# process, because each read is consumed (copied) before the event loop reads anything else.
SCRATCH = memoryview(bytearray(256 * 1024))


class FrameSplitter:
    """Feed bytes in; PASS frames leave through ``sink`` in chunks, BUFFER frames through
    ``on_frame`` whole (size prefix included)."""

    __slots__ = (
        "_buffer",
        "_classify",
        "_filled",
        "_frame",
        "_frames_begun",
        "_into_frame",
        "_max_frame",
        "_on_frame",
        "_on_pass_end",
        "_prefix_bytes",
        "_remaining",
        "_sink",
        "completed",
    )

    def __init__(
        self,
        *,
        classify: Classifier,
        sink: Callable[[bytes | bytearray], None],
        on_frame: Callable[[bytes | bytearray], None],
        max_frame_bytes: int,
        prefix_bytes: int,
        on_pass_end: Callable[[], None] | None = None,
    ) -> None:
        self._classify = classify
        self._sink = sink
        self._on_frame = on_frame
        self._on_pass_end = on_pass_end  # told when the last byte of a PASS frame has gone
        self._max_frame = max_frame_bytes
        self._prefix_bytes = prefix_bytes
        self._buffer = bytearray()  # an incomplete size prefix or header prefix
        self._remaining = 0  # bytes of the current PASS frame still to stream through
        # A BUFFER frame being collected (classified once, not again): its whole size, allocated
        # when its prefix was read, and how much of it has arrived.
        self._frame: bytearray | None = None
        self._filled = 0
        self._into_frame = False  # the last get_buffer handed out the frame's own buffer
        self._frames_begun = 0  # frames classified: tells one frame in progress from the next
        # Frames whose last byte has arrived, so far: a reader can tell a frame ended during a
        # read even when the next one began in the same read (:mod:`.client_deadlines`).
        self.completed = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer) + self._filled

    @property
    def idle(self) -> bool:
        """True when no frame is partly through: none streaming, none being collected, no part
        of a size prefix or header waiting for the rest."""
        return self._remaining == 0 and self._frame is None and not self._buffer

    @property
    def frames_begun(self) -> int:
        """How many frames have begun (size and prefix read, classified) so far."""
        return self._frames_begun

    @property
    def missing(self) -> int | None:
        """Bytes the frame partly through still awaits (0 when idle; None while its size
        prefix is incomplete)."""
        if self._remaining:
            return self._remaining
        if self._frame is not None:
            return len(self._frame) - self._filled
        if len(self._buffer) >= _SIZE:
            return _SIZE + int.from_bytes(self._buffer[:_SIZE], "big") - len(self._buffer)
        return None if self._buffer else 0

    @property
    def at_frame_boundary(self) -> bool:
        """True when no frame is half written to the sink (a whole frame may be inserted)."""
        return self._remaining == 0

    def release(self) -> None:
        """The stream has ended: drop the callbacks, and with them the connection they are
        bound to, so that the connection is freed as soon as the last reference to it goes
        rather than at the next full run of the cycle collector. The state stays readable
        (:attr:`idle`, :attr:`missing`); bytes fed from now on are refused."""
        self._classify = _released
        self._sink = self._on_frame = _dropped
        self._on_pass_end = None

    def feed(self, data: bytes | bytearray) -> None:
        if self._remaining:
            data = self._stream(data)
            if not data:
                return
        if self._frame is not None:
            data = self._collect(data)
            if not data:
                return
        elif self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        self._split(data)

    def get_buffer(self) -> memoryview:
        """Where the next read should land: the rest of the frame being collected, else a
        scratch area; then call :meth:`buffer_updated` with the number of bytes read."""
        frame = self._frame
        self._into_frame = frame is not None
        if frame is not None:
            return memoryview(frame)[self._filled :]
        return SCRATCH

    def buffer_updated(self, nbytes: int) -> None:
        if not self._into_frame:
            # A bytearray, so that a whole frame the read brought is handed over mutable: a
            # Produce whose producer id is rewritten is not copied again (:mod:`..routing`).
            self.feed(bytearray(SCRATCH[:nbytes]))
            return
        self._into_frame = False
        frame = self._frame
        assert frame is not None
        self._filled += nbytes
        if self._filled == len(frame):
            self._frame, self._filled = None, 0
            self.completed += 1
            self._on_frame(frame)

    def _collect(self, data: bytes | bytearray) -> bytes | bytearray:
        frame = self._frame
        assert frame is not None
        take = min(len(data), len(frame) - self._filled)
        frame[self._filled : self._filled + take] = memoryview(data)[:take]
        self._filled += take
        if self._filled < len(frame):
            return b""
        self._frame, self._filled = None, 0
        self.completed += 1
        self._on_frame(frame)
        return data[take:]

    def _stream(self, data: bytes | bytearray) -> bytes | bytearray:
        if len(data) <= self._remaining:
            self._remaining -= len(data)
            self._sink(data)
            if not self._remaining:
                self._pass_ended()
            return b""
        head, rest = data[: self._remaining], data[self._remaining :]
        self._remaining = 0
        self._sink(head)
        self._pass_ended()
        return rest

    def _pass_ended(self) -> None:
        self.completed += 1
        if self._on_pass_end is not None:
            self._on_pass_end()

    def _split(self, data: bytes | bytearray) -> None:
        pos, end = 0, len(data)
        while end - pos >= _SIZE:
            size = int.from_bytes(data[pos : pos + _SIZE], "big", signed=True)
            self._check_size(size)
            available = end - pos - _SIZE
            wanted = min(size, self._prefix_bytes)
            if available < wanted:
                break
            decision = self._classify(memoryview(data)[pos + _SIZE : pos + _SIZE + wanted], size)
            self._frames_begun += 1
            if decision is Decision.BUFFER:
                if available < size:
                    self._start_collecting(memoryview(data)[pos:], size)
                    return
                whole = pos == 0 and end == _SIZE + size
                self.completed += 1
                self._on_frame(data if whole else data[pos : pos + _SIZE + size])
                pos += _SIZE + size
                continue
            taken = min(size, available)
            self._sink(data[pos : pos + _SIZE + taken] if pos or taken < available else data)
            self._remaining = size - taken
            pos += _SIZE + taken
            if not self._remaining:
                self._pass_ended()
        if pos < end:
            self._buffer += data[pos:] if pos else data

    def _start_collecting(self, head: memoryview, size: int) -> None:
        self._frame = bytearray(_SIZE + size)
        self._frame[: len(head)] = head
        self._filled = len(head)

    def _check_size(self, size: int) -> None:
        if size < 0:
            raise FrameError(f"negative frame size {size}")
        if size > self._max_frame:
            raise FrameError(f"frame of {size} bytes exceeds the maximum of {self._max_frame}")


def _released(prefix: memoryview, frame_size: int) -> Decision:
    raise FrameError("the stream has ended (its connection is closed)")


def _dropped(data: bytes | bytearray) -> None:
    """Where a released splitter's bytes would go: nowhere (none reach it)."""
