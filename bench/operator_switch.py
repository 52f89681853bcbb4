"""Benchmark: ``kubectl patch kafkafailover ... active=X`` -> every gateway pod switched.

A real kube-apiserver and kube-controller-manager (kube_testbed), the operator under ``kopf run``,
and N gateway pods run as real processes by the kubelet stand-in. Each round patches
``spec.active`` (alternating main/failover) and measures until the status says the switch
completed on every pod (``status.activeCluster`` = the new cluster, ``gateways.summary`` = N/N,
``observedGeneration`` = the new generation), polled every 20 ms through the API server. Prints
p50/p99/max. Goal: < 2 s with 10 pods.

    .venv/bin/python bench/operator_switch.py [--pods 10] [--switches 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from kafka_testbed import launching, supervising
from kafka_testbed.networking import free_ports
from kube_testbed import control_plane
from kube_testbed.gateway_kubelet import FIRST_POD_OCTET, GatewayKubelet

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "kafka-failover.github.io", "v1alpha1", "kafkafailovers"
NAMESPACE = "bench"
NAME = "bench"


def manifest(main: str, failover: str, pods: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "KafkaFailover",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "active": "main",
                "clusters": [
                    {"name": "main", "bootstrapServers": main},
                    {"name": "failover", "bootstrapServers": failover, "role": "failover"},
                ],
                "gateway": {
                    "replicas": pods,
                    "listener": {
                        "advertisedHost": f"127.0.0.{FIRST_POD_OCTET}",
                        "brokerPortCount": 8,
                    },
                },
            },
        }
    )


def status_of(api: Any) -> tuple[int, dict[str, Any]]:
    body = api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME)
    return int(body["metadata"]["generation"]), body.get("status") or {}


def completed(api: Any, cluster: str, pods: int, generation: int) -> bool:
    _, status = status_of(api)
    return (
        status.get("observedGeneration") == generation
        and status.get("activeCluster") == cluster
        and status.get("gateways", {}).get("summary") == f"{pods}/{pods}"
    )


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


def one_switch(api: Any, cluster: str, pods: int) -> float:
    started = time.perf_counter()
    body = api.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, NAME, {"spec": {"active": cluster}}
    )
    generation = int(body["metadata"]["generation"])
    wait(lambda: completed(api, cluster, pods, generation), 60, f"switch to {cluster}")
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(pods: int, switches: int, workdir: Path) -> list[float]:
    main = launching.start_kafka(node_ids=[1], name="bench-main")
    failover = launching.start_kafka(node_ids=[7], name="bench-failover")
    plane = control_plane.start(workdir / "plane")
    kubelet = GatewayKubelet(plane.kubeconfig, NAMESPACE, workdir / "pods")
    operator = None
    try:
        plane.kubectl("apply", "-f", str(REPO / "crds" / "kafkafailover.yaml"))
        plane.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}"
        )
        plane.kubectl("create", "namespace", NAMESPACE)
        kubelet.start()
        env = dict(os.environ) | {"KUBECONFIG": str(plane.kubeconfig)}
        operator = supervising.spawn(
            [
                sys.executable,
                "-m",
                "failover_operator",
                "--namespace",
                NAMESPACE,
                "--liveness",
                f"http://127.0.0.1:{free_ports(1)[0]}/healthz",
            ],
            workdir / "operator.log",
            env=env,
        )
        plane.apply(manifest(main.bootstrap, failover.bootstrap, pods))
        api = kubernetes.client.CustomObjectsApi(
            kubernetes.config.new_client_from_config(str(plane.kubeconfig))
        )
        wait(lambda: completed(api, "main", pods, status_of(api)[0]), 180, f"{pods} pods up")
        targets = ["failover", "main"] * switches
        return [one_switch(api, cluster, pods) for cluster in targets[:switches]]
    finally:
        if operator is not None:
            supervising.terminate(operator, grace_seconds=10)
        kubelet.stop()
        plane.stop()
        main.stop()
        failover.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--switches", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        durations = run(args.pods, args.switches, Path(tmp))
    result = {
        "pods": args.pods,
        "switches": len(durations),
        "p50_ms": round(statistics.median(durations), 1),
        "p99_ms": round(percentile(durations, 0.99), 1),
        "max_ms": round(max(durations), 1),
        "all_ms": [round(d, 1) for d in durations],
    }
    print(
        f"kubectl patch -> {args.pods}/{args.pods} pods switched over {len(durations)} "
        f"switches: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms"
    )
    out = REPO / "bench" / "results" / "operator-switch.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
