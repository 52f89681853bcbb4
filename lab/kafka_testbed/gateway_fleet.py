"""Several gateway processes behind one address, switched together, as pods behind a Service.

Why it exists: the gateway runs as several stateless pods behind one Kubernetes Service, and
what must hold for one pod must hold for the fleet (a producer id issued through one pod and
used through another, a switch that reaches the pods one after the other). Each pod here is a
real gateway process on its own loopback address (127.0.0.N) with the same ports, advertising
the service address; a :class:`~kafka_testbed.service_balancer.ServiceBalancer` spreads every
client connection over the pods. :meth:`GatewayFleet.switch` switches every pod in parallel
with one epoch, as the operator does.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka_testbed import gateways
from kafka_testbed.gateways import GatewayProcess
from kafka_testbed.service_balancer import ServiceBalancer

SERVICE_HOST = "127.0.0.100"
FIRST_POD_HOST = 111
BROKER_PORT_COUNT = 16


@dataclass
class GatewayFleet:
    """Gateway pods and the service address clients use."""

    pods: list[GatewayProcess]
    service: ServiceBalancer
    epoch: int = 0

    @property
    def bootstrap(self) -> str:
        return self.service.bootstrap

    def switch(self, to: str) -> list[gateways.AdminAnswer]:
        """Switch every pod at once under the next epoch; the answers, pod by pod."""
        self.epoch += 1
        with concurrent.futures.ThreadPoolExecutor(len(self.pods)) as pool:
            answers = pool.map(lambda pod: pod.put_active(to, self.epoch), self.pods)
            return list(answers)

    def planned_switch(self, to: str, *, fence_seconds: float = 60.0) -> gateways.AdminAnswer:
        """The operator's planned switch: fence every pod at once, prepare on the first (it
        catches up and hands offsets off), then switch every pod at once. The prepare answer;
        on a refused fence or prepare the fence is lifted everywhere and nothing switches."""
        fence = {"maxSeconds": fence_seconds, "drainTimeoutMs": 5000}
        with concurrent.futures.ThreadPoolExecutor(len(self.pods)) as pool:
            fenced = list(
                pool.map(lambda pod: pod.request("PUT", "/api/v1/fence", fence), self.pods)
            )
        prepared = (  # catching up may take the fence's whole time: wait for its answer
            self.pods[0].request(
                "POST", "/api/v1/switchover/prepare", {"to": to}, timeout=fence_seconds + 30
            )
            if all(answer.status == 200 for answer in fenced)
            else next(answer for answer in fenced if answer.status != 200)
        )
        if prepared.status != 200:
            for pod in self.pods:
                pod.request("DELETE", "/api/v1/fence")
            return prepared
        for answer in self.switch(to):
            if answer.status != 200:
                return answer
        return prepared

    def stop(self) -> None:
        self.service.stop()
        for pod in self.pods:
            pod.stop()

    def __enter__(self) -> GatewayFleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_fleet(
    clusters: Mapping[str, str | Mapping[str, str]],
    workdir: Path,
    *,
    pods: int = 3,
    gateway_extra: Mapping[str, Any] | None = None,
) -> GatewayFleet:
    """``pods`` gateways on 127.0.0.111, .112, ... behind :data:`SERVICE_HOST`."""
    base = gateways.free_port_block(BROKER_PORT_COUNT + 2)
    hosts = [f"127.0.0.{FIRST_POD_HOST + index}" for index in range(pods)]
    started: list[GatewayProcess] = []
    try:
        for host in hosts:
            pod_dir = workdir / f"pod-{host}"
            pod_dir.mkdir(parents=True, exist_ok=True)
            started.append(
                gateways.start_gateway(
                    clusters,
                    broker_port_count=BROKER_PORT_COUNT,
                    gateway_extra=gateway_extra,
                    workdir=pod_dir,
                    host=host,
                    port=base,
                    advertised_host=SERVICE_HOST,
                )
            )
        ports = range(base, base + BROKER_PORT_COUNT + 1)  # bootstrap and broker ports
        service = ServiceBalancer(SERVICE_HOST, list(ports), hosts).start()
    except BaseException:
        for pod in started:
            pod.stop()
        raise
    return GatewayFleet(started, service)
