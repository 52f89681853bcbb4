"""The frame splitter: sizes checked before bodies, PASS frames streamed, BUFFER frames whole."""

from __future__ import annotations

import struct

import pytest

from failover_gateway.pump.framing import Decision, FrameError, FrameSplitter


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


class Recorder:
    def __init__(self, decide: Decision = Decision.PASS, prefix_bytes: int = 4) -> None:
        self.decide = decide
        self.sunk: list[bytes] = []
        self.frames: list[bytes] = []
        self.prefixes: list[bytes] = []
        self.splitter = FrameSplitter(
            classify=self.classify,
            sink=self.sunk.append,
            on_frame=self.frames.append,
            max_frame_bytes=1000,
            prefix_bytes=prefix_bytes,
        )

    def classify(self, prefix: memoryview, size: int) -> Decision:
        self.prefixes.append(bytes(prefix))
        return self.decide


def test_pass_frames_come_out_byte_for_byte_whatever_the_chunking() -> None:
    stream = frame(b"abcdefgh") + frame(b"12") + frame(b"") + frame(b"xyz" * 50)
    for chunk_size in (1, 2, 3, 5, 7, 64, len(stream)):
        recorder = Recorder()
        for start in range(0, len(stream), chunk_size):
            recorder.splitter.feed(stream[start : start + chunk_size])
        assert b"".join(recorder.sunk) == stream
        assert recorder.prefixes == [b"abcd", b"12", b"", b"xyzx"]


def test_buffer_frames_are_delivered_whole_and_classified_once() -> None:
    stream = frame(b"first-frame") + frame(b"second")
    recorder = Recorder(Decision.BUFFER)
    for byte in stream:
        recorder.splitter.feed(bytes([byte]))
    assert recorder.frames == [frame(b"first-frame"), frame(b"second")]
    assert len(recorder.prefixes) == 2
    assert recorder.sunk == []


def test_a_negative_size_is_refused() -> None:
    recorder = Recorder()
    with pytest.raises(FrameError, match="negative"):
        recorder.splitter.feed(struct.pack(">i", -5))


def test_an_oversized_frame_is_refused_before_its_body_arrives() -> None:
    recorder = Recorder()
    with pytest.raises(FrameError, match="exceeds the maximum of 1000"):
        recorder.splitter.feed(struct.pack(">i", 1001))
    assert recorder.sunk == []


def test_a_partial_size_waits_for_more_bytes() -> None:
    recorder = Recorder()
    recorder.splitter.feed(b"\x00\x00")
    assert recorder.sunk == [] and recorder.splitter.buffered == 2
    recorder.splitter.feed(b"\x00\x04ab")
    recorder.splitter.feed(b"cd")
    assert b"".join(recorder.sunk) == frame(b"abcd")


class Alternating(Recorder):
    """BUFFER for bodies starting with ``B``, PASS otherwise (a rewrite between streamed ones)."""

    def classify(self, prefix: memoryview, size: int) -> Decision:
        self.prefixes.append(bytes(prefix))
        return Decision.BUFFER if bytes(prefix[:1]) == b"B" else Decision.PASS


MIXED_BODIES = [b"Bfirst", b"pass-1", b"B" + bytes(range(200)), b"p", b"B", b"pass-2" * 20]


def alternating_recorder() -> tuple[Alternating, list[tuple[str, bytes]]]:
    """A splitter that buffers frames starting with B and passes the rest, and its events."""
    recorder = Alternating()
    events: list[tuple[str, bytes]] = []
    recorder.splitter = FrameSplitter(
        classify=recorder.classify,
        sink=lambda chunk: events.append(("pass", bytes(chunk))),
        on_frame=lambda whole: events.append(("frame", bytes(whole))),
        max_frame_bytes=1000,
        prefix_bytes=1,
    )
    return recorder, events


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 100, 10_000])
def test_mixed_buffer_and_pass_frames_keep_their_order_and_bytes_whatever_the_chunking(
    chunk_size: int,
) -> None:
    bodies = MIXED_BODIES
    stream = b"".join(frame(body) for body in bodies)
    recorder, events = alternating_recorder()

    for start in range(0, len(stream), chunk_size):
        recorder.splitter.feed(stream[start : start + chunk_size])

    rebuilt = b"".join(data for _, data in events)
    assert rebuilt == stream
    assert [data for kind, data in events if kind == "frame"] == [
        frame(body) for body in bodies if body.startswith(b"B")
    ]
    assert recorder.splitter.buffered == 0


def test_a_frame_collected_over_many_reads_is_one_buffer_of_its_announced_size() -> None:
    body = b"B" + b"x" * 999
    recorder = Recorder(Decision.BUFFER)
    recorder.splitter.feed(frame(body)[:10])
    assert recorder.splitter.buffered == 10

    recorder.splitter.feed(frame(body)[10:500])
    recorder.splitter.feed(frame(body)[500:] + frame(b"next")[:3])

    assert recorder.frames == [frame(body)]
    assert isinstance(recorder.frames[0], bytearray)
    assert recorder.splitter.buffered == 3


def test_a_buffer_frame_arriving_in_one_read_is_handed_over_without_a_copy() -> None:
    data = frame(b"whole")
    recorder = Recorder(Decision.BUFFER)

    recorder.splitter.feed(data)

    assert recorder.frames[0] is data


def read_into(splitter: FrameSplitter, data: bytes, most: int) -> list[int]:
    """Deliver ``data`` as a buffered transport would, at most ``most`` bytes per read; returns
    the size of each buffer the splitter offered."""
    offered, view = [], memoryview(data)
    while view:
        buffer = splitter.get_buffer()
        offered.append(len(buffer))
        taken = min(len(buffer), len(view), most)
        buffer[:taken] = view[:taken]
        splitter.buffer_updated(taken)
        view = view[taken:]
    return offered


@pytest.mark.parametrize("most", [1, 3, 9, 64, 100_000])
def test_buffered_reads_split_frames_exactly_as_fed_bytes_do(most: int) -> None:
    bodies = MIXED_BODIES
    stream = b"".join(frame(body) for body in bodies)
    recorder, events = alternating_recorder()

    read_into(recorder.splitter, stream, most)

    assert b"".join(data for _, data in events) == stream
    assert [data for kind, data in events if kind == "frame"] == [
        frame(body) for body in bodies if body.startswith(b"B")
    ]


def test_the_body_of_a_frame_being_collected_is_read_straight_into_its_own_buffer() -> None:
    body = b"B" + bytes(range(256)) * 3
    recorder = Recorder(Decision.BUFFER)
    recorder.splitter.feed(frame(body)[:10])  # the head, from a read of its own

    offered = read_into(recorder.splitter, frame(body)[10:], most=300)

    assert offered[0] == len(frame(body)) - 10, "the rest of the frame, not a scratch area"
    assert recorder.frames == [frame(body)]


def test_a_whole_frame_from_a_buffered_read_is_handed_over_mutable_for_an_in_place_rewrite() -> (
    None
):
    recorder = Recorder(Decision.BUFFER)
    read_into(recorder.splitter, frame(b"Bwhole") + frame(b"Bnext"), most=100)
    assert recorder.frames == [frame(b"Bwhole"), frame(b"Bnext")]
    assert all(isinstance(whole, bytearray) for whole in recorder.frames)


@pytest.mark.parametrize("decide", [Decision.PASS, Decision.BUFFER])
def test_a_frame_partly_through_says_how_many_bytes_it_still_awaits(decide: Decision) -> None:
    recorder = Recorder(decide)
    splitter = recorder.splitter
    assert splitter.idle and splitter.missing == 0
    splitter.feed(b"\x00\x00")
    assert not splitter.idle and splitter.missing is None  # its size is not known yet
    splitter.feed(b"\x00\x0a" + b"ab")
    assert not splitter.idle and splitter.missing == 8  # its header not all in: not classified
    splitter.feed(b"cdef")
    assert not splitter.idle and splitter.missing == 4
    splitter.feed(b"ghij")
    assert splitter.idle and splitter.missing == 0


def test_frames_are_counted_once_each_as_they_begin_however_they_are_cut() -> None:
    stream = frame(b"abcdefgh") + frame(b"12")
    recorder = Recorder(prefix_bytes=6)
    for byte in stream[:7]:  # the first frame's size and part of its prefix
        recorder.splitter.feed(bytes([byte]))
    assert recorder.splitter.frames_begun == 0
    for byte in stream[7:]:
        recorder.splitter.feed(bytes([byte]))
    assert recorder.splitter.frames_begun == 2


def test_a_released_splitter_keeps_its_state_refuses_bytes_and_calls_nobody() -> None:
    recorder = Recorder()
    recorder.splitter.feed(frame(b"abcdefgh")[:9])  # a PASS frame partly through
    recorder.splitter.release()
    assert not recorder.splitter.idle and recorder.splitter.missing == 3
    recorder.splitter.feed(b"fgh")  # the rest of the frame goes nowhere
    assert b"".join(recorder.sunk) == frame(b"abcdefgh")[:9]
    with pytest.raises(FrameError, match="stream has ended"):
        recorder.splitter.feed(frame(b"next"))
    assert recorder.prefixes == [b"abcd"]
