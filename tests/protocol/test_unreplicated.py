"""Counting what a cluster left by an unplanned switch holds that the other never got, against
fake clusters serving real record batches: copies are told from the target's own writes."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder
from test_switchover import FakeCluster

from failover_gateway.config import SwitchoverConfig
from failover_gateway.server import unreplicated
from failover_gateway.server.cluster_admin import TopicPartition, UnknownPartition
from failover_gateway.server.switching import SwitchRefused

TP = ("orders", 0)
SYNCS = ("mm2-offset-syncs.failover.internal", 0)
Entry = tuple[bytes | None, bytes, int]  # key, value, timestamp


def batch(entries: list[Entry], base_offset: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 22)
    for delta, (key, value, timestamp) in enumerate(entries):
        builder.append(delta, timestamp=timestamp, key=key, value=value, headers=[])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base_offset)
    return bytes(data)


def sync(upstream: int, downstream: int) -> Entry:
    topic = TP[0].encode()
    key = struct.pack(">h", len(topic)) + topic + struct.pack(">i", TP[1])
    return key, struct.pack(">qq", upstream, downstream), 0


@dataclass
class LoggedCluster(FakeCluster):
    logs: dict[TopicPartition, list[Entry]] = field(default_factory=dict)

    async def read(self, tp: TopicPartition, offset: int, max_bytes: int = 1 << 20) -> bytes:
        if tp not in self.logs:
            raise UnknownPartition(f"no {tp}")
        tail = self.logs[tp][offset:]
        return batch(tail, offset) if tail else b""


def written(prefix: str, first: int, last: int) -> list[Entry]:
    return [(None, f"{prefix}{i}".encode(), 1_000 + i) for i in range(first, last)]


@dataclass
class Backend:
    clusters: dict[str, Any]

    def cluster_admin(self, cluster: str) -> Any:
        return self.clusters[cluster]


def measure(main: LoggedCluster, failover: LoggedCluster, replication: str) -> dict[str, Any]:
    settings = SwitchoverConfig.model_validate({"replication": replication})
    backend = Backend({"main": main, "failover": failover})
    return asyncio.run(unreplicated.measure(backend, settings, source="main", target="failover"))


def test_records_after_the_last_copy_are_counted_and_the_targets_own_writes_are_not() -> None:
    on_main = written("v", 0, 10)
    main = LoggedCluster("main", {TP: 10}, logs={TP: on_main, SYNCS: [sync(5, 5)]})
    # Failover got 0-7 (the syncs only say up to 5), then clients wrote their own records.
    failover = LoggedCluster("failover", logs={TP: on_main[:8] + written("new", 8, 12)})
    found = measure(main, failover, "mirrorMaker2")
    assert found["records"] == 2 and found["partitions"] == {"orders-0": 2}


def test_everything_after_the_sync_is_missing_when_nothing_more_was_copied() -> None:
    main = LoggedCluster("main", {TP: 10}, logs={TP: written("v", 0, 10), SYNCS: [sync(9, 9)]})
    assert measure(main, LoggedCluster("failover", logs={}), "mirrorMaker2")["records"] == 0
    main.logs[SYNCS] = [sync(3, 3)]
    found = measure(main, LoggedCluster("failover", logs={}), "mirrorMaker2")
    assert found["records"] == 6, "the copy does not exist: 4-9 were never copied"


def test_offset_preserving_replication_cannot_be_counted_and_says_why() -> None:
    with pytest.raises(SwitchRefused, match="mirrorMaker2 only") as refused:
        measure(LoggedCluster("main"), LoggedCluster("failover"), "offsetPreserving")
    assert refused.value.status == 400
