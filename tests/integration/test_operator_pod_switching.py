"""The operator's parallel pod switch against real gateway processes (no Kubernetes needed)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from failover_operator import pod_switching
from kafka_testbed import gateways
from kafka_testbed.clusters import Cluster

CREDENTIALS = pod_switching.Credentials(gateways.ADMIN_USER, gateways.ADMIN_PASSWORD)
POD_BROKER_PORTS = 4


def pods_of(started: list[gateways.GatewayProcess]) -> list[pod_switching.GatewayPod]:
    return [pod_switching.GatewayPod(f"gw-{index}", "127.0.0.1") for index in range(len(started))]


async def switch_each(
    started: list[gateways.GatewayProcess], *, cluster: str, epoch: int, timeout: float
) -> list[pod_switching.PodOutcome]:
    """One switch_all per gateway (each listens on its own admin port), all at once."""
    calls = [
        pod_switching.switch_all(
            [pod],
            credentials=CREDENTIALS,
            port=gateway.admin_port,
            cluster=cluster,
            epoch=epoch,
            drain_ms=0,
            timeout=timeout,
        )
        for pod, gateway in zip(pods_of(started), started, strict=True)
    ]
    return [outcome for outcomes in await asyncio.gather(*calls) for outcome in outcomes]


def test_every_gateway_acknowledges_a_switch_and_reports_the_new_epoch(
    gateway_factory: Any, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    clusters = {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}
    started = [gateway_factory(clusters) for _ in range(3)]
    outcomes = asyncio.run(switch_each(started, cluster="failover", epoch=4, timeout=5))
    assert all(o.acknowledged and o.attempts == 1 for o in outcomes), outcomes
    assert {(g.state()["active"], g.state()["epoch"]) for g in started} == {("failover", 4)}


def test_an_older_epoch_is_reported_as_superseded_not_as_a_failure(
    gateway: gateways.GatewayProcess,
) -> None:
    assert gateway.put_active("failover", epoch=9).status == 200
    [outcome] = asyncio.run(switch_each([gateway], cluster="main", epoch=8, timeout=5))
    assert not outcome.acknowledged and outcome.superseded
    assert "stale epoch 8" in (outcome.error or "")
    assert gateway.state()["active"] == "failover"


def test_a_frozen_gateway_is_retried_until_the_deadline_and_reported_unacknowledged(
    gateway_factory: Any, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    clusters = {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}
    healthy, frozen = gateway_factory(clusters), gateway_factory(clusters)
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        started_at = time.monotonic()
        outcomes = asyncio.run(
            switch_each([healthy, frozen], cluster="failover", epoch=1, timeout=2)
        )
        elapsed = time.monotonic() - started_at
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
    assert outcomes[0].acknowledged
    assert not outcomes[1].acknowledged and not outcomes[1].superseded
    assert outcomes[1].attempts >= 1 and "Timeout" in (outcomes[1].error or "")
    assert elapsed < 4, "the deadline bounds the whole switch"


def test_wrong_credentials_are_not_an_acknowledgement(gateway: gateways.GatewayProcess) -> None:
    async def call() -> list[pod_switching.PodOutcome]:
        return await pod_switching.switch_all(
            [pod_switching.GatewayPod("gw-0", "127.0.0.1")],
            credentials=pod_switching.Credentials("admin", "wrong"),
            port=gateway.admin_port,
            cluster="failover",
            epoch=1,
            drain_ms=0,
            timeout=1.5,
        )

    [outcome] = asyncio.run(call())
    assert not outcome.acknowledged and "HTTP 401" in (outcome.error or "")
    assert gateway.state()["active"] == "main"


def test_a_pod_is_left_alone_once_the_leadership_guard_says_no(
    gateway: gateways.GatewayProcess,
) -> None:
    """A frozen leader that resumes past its lease must not switch anyone back."""

    async def call() -> pod_switching.PodOutcome:
        async with aiohttp.ClientSession(
            headers=pod_switching.auth_headers(CREDENTIALS)
        ) as session:
            return await pod_switching.switch_pod(
                session, pods_of([gateway])[0], port=gateway.admin_port, cluster="failover",
                epoch=50, drain_ms=0, deadline=time.monotonic() + 3, may_act=lambda: False,
            )  # fmt: skip

    outcome = asyncio.run(call())
    assert not outcome.acknowledged and outcome.attempts == 0
    assert outcome.error == pod_switching.NOT_LEADER
    assert gateway.state()["epoch"] != 50


def test_each_pod_is_settled_on_its_own_so_a_hung_pod_delays_only_itself(
    kafka_single: Cluster, kafka_failover: Cluster, tmp_path: Path
) -> None:
    clusters = {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}
    base = gateways.free_port_block(POD_BROKER_PORTS + 2)
    hosts = [f"127.0.0.{octet}" for octet in (141, 142, 143)]
    started = [
        gateways.start_gateway(
            clusters, host=host, port=base, broker_port_count=POD_BROKER_PORTS,
            workdir=directory(tmp_path / host),
        )
        for host in hosts
    ]  # fmt: skip
    pods = [pod_switching.GatewayPod(f"pod-{host}", host) for host in hosts]
    hung = pods[2].name
    settled: list[tuple[str, float]] = []

    async def record(outcome: pod_switching.PodOutcome) -> None:
        settled.append((outcome.pod, time.monotonic()))

    def converge(epoch: int) -> list[pod_switching.PodOutcome]:
        return asyncio.run(
            pod_switching.converge_each(
                pods, credentials=CREDENTIALS, port=started[0].admin_port, cluster="failover",
                epoch=epoch, drain_ms=0, deadline=time.monotonic() + 3, state_timeout=2.0,
                settled=record,
            )
        )  # fmt: skip

    os.kill(started[2].process.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        outcomes = converge(epoch=3)
    finally:
        os.kill(started[2].process.pid, signal.SIGCONT)
    try:
        assert [o.acknowledged for o in outcomes] == [True, True, False]
        assert [name for name, _ in settled][-1] == hung, settled
        healthy_done = max(at for name, at in settled if name != hung) - began
        assert healthy_done < 2.0, "the hung pod's state read (2 s) was in the healthy pods' path"
        settled.clear()
        again = converge(epoch=3)  # everyone now serves (failover, 3): nothing is sent
        assert all(o.already and o.attempts == 0 for o in again), again
    finally:
        for gateway in started:
            gateway.stop()


def directory(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
