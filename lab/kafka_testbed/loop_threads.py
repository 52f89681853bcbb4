"""An asyncio event loop in a thread of its own, for lab servers driven by blocking tests.

Why it exists: the lab's stand-in servers (the service balancer, the hostile broker) are asyncio
servers, while the tests and harness that use them are blocking code. Each runs its loop in a
daemon thread, opens its listeners there and closes them there; this is that plumbing, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

START_TIMEOUT_SECONDS = 10.0


class LoopThread:
    """A loop run by a daemon thread; coroutines are handed to it from the caller's thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self, opening: Coroutine[Any, Any, None]) -> None:
        """Start the thread and run ``opening`` (binding listeners) to its end, or raise."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(opening, self.loop).result(START_TIMEOUT_SECONDS)

    def stop(self, closing: Coroutine[Any, Any, None]) -> None:
        """Run ``closing`` (best effort, bounded), then stop the loop and join the thread."""
        future = asyncio.run_coroutine_threadsafe(closing, self.loop)
        with contextlib.suppress(Exception):
            future.result(START_TIMEOUT_SECONDS)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(START_TIMEOUT_SECONDS)
