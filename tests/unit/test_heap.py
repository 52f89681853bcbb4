"""Returning the C heap's free pages: measured on this process's own resident memory."""

from __future__ import annotations

import os
import resource

from failover_gateway.server import heap

PAGE = resource.getpagesize()


def resident_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def test_trimming_gives_back_freed_buffers_that_a_live_one_pins_in_the_heap() -> None:
    buffers = [bytearray(4000) for _ in range(40_000)]  # ~160 MB of malloc'd frames
    pinned = buffers[::64]  # every 64th stays alive: glibc cannot shrink the heap past them
    del buffers
    before = resident_bytes()
    assert heap.trim(), "glibc's malloc_trim found nothing to release"
    after = resident_bytes()
    assert before - after > 80_000_000, f"resident {before} -> {after}"
    assert len(pinned) == 625
