"""A bare Kafka protocol client: one request at a chosen api version, answer decoded from the spec.

Client libraries pick their own versions; tests of the gateway must try every version of every
address-bearing api and send deliberately broken frames. This speaks the wire protocol directly,
encoding and decoding with the gateway's spec-driven codec (which has its own golden-byte tests
against an independent implementation).
"""

from __future__ import annotations

import itertools
import socket
import struct
from typing import Any

from failover_gateway.codec import headers, schema, specs
from kafka_testbed import networking

_ids = itertools.count(1)


class RawConnection:
    """One blocking TCP connection to a broker or gateway port."""

    def __init__(self, address: str, timeout: float = 10.0, client_id: str = "raw-test") -> None:
        self.sock = socket.create_connection(networking.split_address(address), timeout=timeout)
        self.client_id = client_id

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def receive_frame(self) -> bytes:
        size = struct.unpack(">i", self._exactly(4))[0]
        return self._exactly(size)

    def _exactly(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            chunk = self.sock.recv(remaining)
            if not chunk:
                raise ConnectionError(f"connection closed with {remaining} of {size} bytes unread")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def request(self, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any]:
        """Send a request (``body`` may hold fields of other versions: they are ignored)."""
        correlation_id = next(_ids)
        request_spec = specs.request(api_key)
        response_spec = specs.response(api_key)
        assert request_spec is not None and response_spec is not None
        header = headers.encode_request_header(api_key, version, correlation_id, self.client_id)
        self.send_frame(header + schema.encode(request_spec, version, body))
        frame = self.receive_frame()
        parsed = headers.parse_response_header(frame, api_key, version)
        assert parsed.correlation_id == correlation_id, "answer to another request"
        return schema.decode(response_spec, version, memoryview(frame)[parsed.body_offset :])

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True when the other side closed the connection (reads EOF or a reset)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
