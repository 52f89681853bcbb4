"""Each pod's verdict on a cluster: how long it has been down by this pod's probes (issue 17's
evidence), reset by the first success."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from failover_gateway.config import ClusterConfig, HostPort
from failover_gateway.routing import api_versions
from failover_gateway.server import upstream_probing
from failover_gateway.server.upstream_probing import ProbeAnswer, ProbeFailed, Reachability

CLUSTER = ClusterConfig(name="main", bootstrap_servers=(HostPort("kafka-a", 9092),))


def probe(state: Reachability, monkeypatch: pytest.MonkeyPatch, *, ok: bool) -> None:
    async def answer(*_: Any) -> ProbeAnswer:
        if not ok:
            raise ProbeFailed("kafka-a:9092: ConnectionRefusedError")
        return ProbeAnswer([], api_versions.ClusterOffer.from_answer({"ApiKeys": []}))

    monkeypatch.setattr(upstream_probing, "probe_cluster", answer)
    asyncio.run(upstream_probing.probe_once(CLUSTER, state, None, 1.0))


def test_a_cluster_not_probed_yet_is_unknown_not_down() -> None:
    state = Reachability()
    assert state.verdict == "unknown" and state.down_for() == 0.0


def test_down_counts_from_the_first_failed_probe_and_a_success_resets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = Reachability()
    probe(state, monkeypatch, ok=False)
    first = state.down_since
    assert state.verdict == "down" and first is not None
    probe(state, monkeypatch, ok=False)
    assert state.down_since == first, "later failures do not restart the count"
    assert state.down_for(first + 31.0) == pytest.approx(31.0)
    assert state.as_json()["error"] == "kafka-a:9092: ConnectionRefusedError"
    assert state.as_json()["verdict"] == "down"
    probe(state, monkeypatch, ok=True)
    assert state.verdict == "healthy" and state.down_for(time.monotonic() + 60) == 0.0
