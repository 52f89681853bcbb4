"""The gateway's own requests on a client's upstream connection (KIP-368 re-authentication).

Why it exists: a broker with ``connections.max.reauth.ms`` closes connections whose SASL session
expired, so the gateway re-authenticates in band: its SaslHandshake/SaslAuthenticate requests are
slipped between the client's (at a frame boundary), recorded in the same in-flight FIFO, and their
answers are delivered here instead of to the client.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from failover_gateway.codec import headers, schema, specs

CLIENT_ID = "kafka-failover-gateway"
# Negative correlation ids cannot be mistaken for the client's in a log; order is what matters.
_ids = itertools.count(-1, -1)


@dataclass
class InternalRequest:
    correlation_id: int
    api_key: int
    api_version: int
    frame: bytes
    future: asyncio.Future[dict[str, Any]]

    def answer(self, frame: bytes) -> None:
        if self.future.done():
            return
        spec = specs.response(self.api_key)
        assert spec is not None
        payload = memoryview(frame)[4:]
        try:
            header = headers.parse_response_header(payload, self.api_key, self.api_version)
            self.future.set_result(
                schema.decode(spec, self.api_version, payload[header.body_offset :])
            )
        except Exception as error:  # delivered to the awaiting coroutine, not raised here
            self.future.set_exception(error)


class InternalRequests:
    """Requests prepared but not yet written, and their futures."""

    def __init__(self) -> None:
        self._ready: list[InternalRequest] = []
        self._waiting: list[InternalRequest] = []

    def prepare(
        self, api_key: int, version: int, body: dict[str, Any]
    ) -> asyncio.Future[dict[str, Any]]:
        spec = specs.request(api_key)
        assert spec is not None
        correlation_id = next(_ids)
        payload = headers.encode_request_header(api_key, version, correlation_id, CLIENT_ID)
        payload += schema.encode(spec, version, body)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        request = InternalRequest(
            correlation_id, api_key, version, len(payload).to_bytes(4, "big") + payload, future
        )
        self._ready.append(request)
        return future

    def take_ready(self) -> list[InternalRequest]:
        ready, self._ready = self._ready, []
        self._waiting = [r for r in self._waiting if not r.future.done()] + ready
        return ready

    @property
    def pending(self) -> bool:
        """Whether a request is prepared and not yet written, or written and not answered."""
        return bool(self._ready) or any(not r.future.done() for r in self._waiting)

    def fail_all(self, error: Exception) -> None:
        for request in self._ready + self._waiting:
            if not request.future.done():
                request.future.set_exception(error)
        self._ready, self._waiting = [], []
