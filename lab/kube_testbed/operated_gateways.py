"""Gateway pods run by the operator, outside pytest too: for the DR drill and the operator bench.

:func:`operated_gateways` installs the CRD on a control plane, creates a namespace, starts the
kubelet stand-in (each gateway Pod becomes a real gateway process on its own 127.0.0.N) and the
operator (``python -m failover_operator``, leader election on, as cluster-admin;
``tests/integration/test_operator.py`` covers the least-privilege service account), and stops
both on exit. :class:`OperatedGateways` then applies
KafkaFailover objects, switches them with ``kubectl patch`` (the real kubectl binary) and waits
until the status says the switch completed on every pod.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from kafka_testbed import networking, supervising
from kube_testbed.control_plane import ControlPlane
from kube_testbed.errors import KubeTestbedError
from kube_testbed.gateway_kubelet import GatewayKubelet

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "kafkafailover.yaml"
GROUP, VERSION, PLURAL = "kafka-failover.github.io", "v1alpha1", "kafkafailovers"
BOOTSTRAP_PORT = 6969
BROKER_PORT_COUNT = 8
POLL_SECONDS = 0.02
PODS_UP_TIMEOUT_SECONDS = 180.0
SWITCH_TIMEOUT_SECONDS = 60.0
OPERATOR_STOP_GRACE_SECONDS = 10.0
LOG_TAIL_CHARS = 4000


class OperatorLabError(KubeTestbedError):
    """Pods did not come up or a switch did not complete in time; carries the operator's log."""


def manifest(
    name: str,
    main: str,
    failover: str,
    *,
    replicas: int,
    advertised_host: str | None = None,
    pod_timeout_seconds: int | None = None,
    switch: Mapping[str, Any] | None = None,
    automatic: Mapping[str, Any] | None = None,
) -> str:
    """A KafkaFailover on main, with ``failover`` as its failover cluster (``pod_timeout_seconds``:
    ``spec.switch.podTimeoutSeconds``, the operator's default when None; ``automatic``:
    ``spec.automaticFailover``).

    Without ``advertised_host`` each pod advertises its own address (see
    :func:`kube_testbed.gateway_kubelet.localised_gateway_config`).
    """
    listener: dict[str, Any] = {"brokerPortCount": BROKER_PORT_COUNT}
    if advertised_host is not None:
        listener["advertisedHost"] = advertised_host
    switch = dict(switch or {}) | (
        {} if pod_timeout_seconds is None else {"podTimeoutSeconds": pod_timeout_seconds}
    )
    return yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "KafkaFailover",
            "metadata": {"name": name},
            "spec": {
                "active": "main",
                "clusters": [
                    {"name": "main", "bootstrapServers": main},
                    {"name": "failover", "bootstrapServers": failover, "role": "failover"},
                ],
                "gateway": {"replicas": replicas, "listener": listener},
                **({"switch": switch} if switch else {}),
                **({"automaticFailover": dict(automatic)} if automatic else {}),
            },
        }
    )


@dataclass
class OperatedGateways:
    """One namespace watched by a running operator and the kubelet stand-in."""

    plane: ControlPlane
    namespace: str
    workdir: Path
    kubelet: GatewayKubelet
    operator: supervising.Process
    api: Any
    """A ``kubernetes.client.CustomObjectsApi`` acting as cluster-admin."""

    def apply(self, document: str) -> None:
        self.plane.kubectl("apply", "--namespace", self.namespace, "-f", "-", stdin=document)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return found

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def completed(self, name: str, cluster: str, pods: int, generation: int | None = None) -> bool:
        """Status says every one of ``pods`` pods serves ``cluster`` at ``generation``."""
        found = self.get(name)
        status = found.get("status") or {}
        wanted = found["metadata"]["generation"] if generation is None else generation
        return bool(
            status.get("observedGeneration") == wanted
            and status.get("activeCluster") == cluster
            and status.get("gateways", {}).get("summary") == f"{pods}/{pods}"
        )

    def wait_completed(
        self, name: str, cluster: str, pods: int, generation: int | None, timeout: float
    ) -> None:
        self._wait(
            lambda: self.completed(name, cluster, pods, generation),
            timeout,
            f"{pods}/{pods} pods of {name} on {cluster}",
        )

    def patch_active(self, name: str, cluster: str, *, mode: str | None = None) -> int:
        """``kubectl patch kafkafailover <name> --type merge -p '{"spec":{"active":...}}'``,
        with ``spec.switch.mode`` too when ``mode`` is given (planned or immediate).

        Returns the object's new ``metadata.generation``, the one the status must observe.
        """
        patch: dict[str, Any] = {"active": cluster}
        if mode is not None:
            patch["switch"] = {"mode": mode}
        answer = self.plane.kubectl(
            "patch",
            "kafkafailover",
            name,
            "--namespace",
            self.namespace,
            "--type",
            "merge",
            "-p",
            json.dumps({"spec": patch}),
            "-o",
            "json",
        )
        return int(json.loads(answer.stdout)["metadata"]["generation"])

    def bootstrap(self, name: str) -> str:
        """``ip:port`` of every running pod of ``name``, comma-separated (a client's list)."""
        ips = sorted(
            pod.ip
            for pod_name, pod in self.kubelet.running().items()
            if pod_name.startswith(f"{name}-")
        )
        return ",".join(f"{ip}:{BOOTSTRAP_PORT}" for ip in ips)

    def operator_log(self) -> str:
        path = self.workdir / "operator.log"
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if path.exists() else ""

    def wait_for(self, what: str, found: Callable[[], Any], *, timeout: float) -> Any:
        """Wait until ``found()`` gives something (truthy); that thing."""
        seen: list[Any] = []

        def check() -> bool:
            value = found()
            if value:
                seen.append(value)
            return bool(value)

        self._wait(check, timeout, what)
        return seen[-1]

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(POLL_SECONDS)
        raise OperatorLabError(
            f"no {what} within {timeout:.0f}s; kubelet errors {self.kubelet.errors[-5:]}, "
            f"operator log {self.workdir / 'operator.log'}:\n{self.operator_log()}"
        )


@contextlib.contextmanager
def operated_gateways(
    plane: ControlPlane, namespace: str, workdir: Path
) -> Iterator[OperatedGateways]:
    """The CRD, ``namespace``, the kubelet stand-in and the operator; both stopped on exit."""
    plane.kubectl("apply", "-f", str(CRD))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}")
    plane.kubectl("create", "namespace", namespace)
    workdir.mkdir(parents=True, exist_ok=True)
    kubelet = GatewayKubelet(plane.kubeconfig, namespace, workdir / "pods").start()
    try:
        operator = supervising.spawn(
            [
                sys.executable,
                "-m",
                "failover_operator",
                "--namespace",
                namespace,
                "--liveness",
                f"http://127.0.0.1:{networking.free_ports(1)[0]}/healthz",
            ],
            workdir / "operator.log",
            env=dict(os.environ) | {"KUBECONFIG": str(plane.kubeconfig)},
        )
        try:
            api = kubernetes.client.CustomObjectsApi(
                kubernetes.config.new_client_from_config(str(plane.kubeconfig))
            )
            yield OperatedGateways(plane, namespace, workdir, kubelet, operator, api)
        finally:
            supervising.terminate(operator, grace_seconds=OPERATOR_STOP_GRACE_SECONDS)
    finally:
        kubelet.stop()
