"""What holding and walking KIP-951 responses costs the gateway per Fetch answer, in isolation.

Why it exists: since issue 12 the gateway forwards Fetch v16+ and Produce v10+ instead of capping
them, so every such response is collected whole and walked to its end section to find
``NodeEndpoints`` (real broker addresses). ``make bench`` measures the effect on throughput with
real clients; this isolates the CPU time of the walk itself (and of the rare rewrite) per answer,
for answers shaped like a consumer's: few or many partitions, small or large record sets.

    .venv/bin/python bench/leader_hint_rewrite.py
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from failover_gateway.codec import headers, schema, specs
from failover_gateway.routing import response_rewriting

FETCH, VERSION = 1, 17
SHAPES = [(1, 1_048_576), (10, 104_857), (100, 10_485), (1000, 1_048)]  # partitions, bytes each


def fetch_frame(partitions: int, record_bytes: int, *, endpoints: bool) -> bytes:
    records = b"r" * record_bytes
    values: dict[str, Any] = {
        "ThrottleTimeMs": 0,
        "ErrorCode": 0,
        "SessionId": 1,
        "Responses": [
            {
                "TopicId": uuid.UUID(int=1),
                "Partitions": [
                    {
                        "PartitionIndex": p,
                        "ErrorCode": 0,
                        "HighWatermark": 10,
                        "LastStableOffset": 10,
                        "LogStartOffset": 0,
                        "AbortedTransactions": None,
                        "PreferredReadReplica": -1,
                        "Records": records,
                    }
                    for p in range(partitions)
                ],
            }
        ],
    }
    if endpoints:
        values["NodeEndpoints"] = [{"NodeId": 2, "Host": "kafka-2", "Port": 9093, "Rack": None}]
    body = schema.encode(specs.message("FetchResponse"), VERSION, values)
    payload = headers.encode_response_header(1, FETCH, VERSION) + body
    return len(payload).to_bytes(4, "big") + payload


def advertise(node_id: int, host: str, port: int) -> tuple[str, int]:
    return "gateway", 7000 + node_id


def per_call_us(action: Callable[[], object], minimum_seconds: float = 0.5) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < minimum_seconds:
        action()
        calls += 1
    return elapsed / calls * 1e6


def main() -> None:
    print(f"Fetch v{VERSION} answers of about 1 MiB; microseconds per answer (1 core, CPython)")
    columns = ("walk, no endpoints", "rewrite endpoints", "copy 1 MiB")
    print(f"{'partitions':>10} {columns[0]:>20} {columns[1]:>18} {columns[2]:>11}")
    for partitions, record_bytes in SHAPES:
        plain = fetch_frame(partitions, record_bytes, endpoints=False)
        hinted = fetch_frame(partitions, record_bytes, endpoints=True)
        walk = per_call_us(
            lambda f=plain: response_rewriting.rewrite_frame(FETCH, VERSION, f, advertise)
        )
        rewrite = per_call_us(
            lambda f=hinted: response_rewriting.rewrite_frame(FETCH, VERSION, f, advertise)
        )
        copy = per_call_us(lambda f=plain: bytearray(f))
        print(f"{partitions:>10} {walk:>20.1f} {rewrite:>18.1f} {copy:>11.1f}")


if __name__ == "__main__":
    main()
