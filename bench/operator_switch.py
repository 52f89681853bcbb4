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
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kafka_testbed import launching
from kube_testbed import control_plane
from kube_testbed.gateway_kubelet import FIRST_POD_OCTET
from kube_testbed.operated_gateways import (
    GROUP,
    PLURAL,
    PODS_UP_TIMEOUT_SECONDS,
    SWITCH_TIMEOUT_SECONDS,
    VERSION,
    OperatedGateways,
    manifest,
    operated_gateways,
)

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
NAME = "bench"


def one_switch(lab: OperatedGateways, cluster: str, pods: int) -> float:
    started = time.perf_counter()
    body = lab.api.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, NAME, {"spec": {"active": cluster}}
    )
    generation = int(body["metadata"]["generation"])
    lab.wait_completed(NAME, cluster, pods, generation, SWITCH_TIMEOUT_SECONDS)
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(pods: int, switches: int, workdir: Path) -> list[float]:
    main = launching.start_kafka(node_ids=[1], name="bench-main")
    failover = launching.start_kafka(node_ids=[7], name="bench-failover")
    plane = control_plane.start(workdir / "plane")
    try:
        with operated_gateways(plane, NAMESPACE, workdir) as lab:
            lab.apply(
                manifest(
                    NAME,
                    main.bootstrap,
                    failover.bootstrap,
                    replicas=pods,
                    advertised_host=f"127.0.0.{FIRST_POD_OCTET}",
                )
            )
            lab.wait_completed(NAME, "main", pods, None, PODS_UP_TIMEOUT_SECONDS)
            targets = ["failover", "main"] * switches
            return [one_switch(lab, cluster, pods) for cluster in targets[:switches]]
    finally:
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
