"""Benchmark: ``kubectl patch kafkafailover ... active=X`` -> every gateway pod switched.

A real kube-apiserver and kube-controller-manager (kube_testbed), the operator under ``kopf run``,
and N gateway pods run as real processes by the kubelet stand-in. Each round patches
``spec.active`` (alternating main/failover) and measures until the status says the switch
completed on every pod (``status.activeCluster`` = the new cluster, ``gateways.summary`` = N/N,
``observedGeneration`` = the new generation), polled every 20 ms through the API server. Prints
p50/p99/max. Goal: < 2 s with 10 pods.

With ``--hung N``, N pods are frozen (SIGSTOP) first and one switch is measured per healthy pod:
from the patch until that pod's own ``/api/v1/state`` says it serves the new cluster (polled
every 10 ms), and until the frozen pods are fenced (PodFenced, ``podTimeoutSeconds`` 3 here).
Goal (issue 15): healthy pods' p99 < 500 ms with 30 pods, one hung.

    .venv/bin/python bench/operator_switch.py [--pods 10] [--switches 10] [--hung 0]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import statistics
import sys
import tempfile
import time
import urllib.request
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


def pod_serves(admin_url: str, auth: str, cluster: str) -> bool:
    request = urllib.request.Request(f"{admin_url}/api/v1/state", headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(request, timeout=0.5) as answer:
            return bool(json.loads(answer.read())["active"] == cluster)
    except OSError:
        return False


def admin_auth(lab: OperatedGateways) -> str:
    secret = lab.kubelet.core.read_namespaced_secret(f"{NAME}-gateway-admin", NAMESPACE)
    user, password = (
        base64.b64decode(secret.data[key]).decode() for key in ("username", "password")
    )
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def switch_with_hung_pods(lab: OperatedGateways, hung: int) -> tuple[list[float], float | None]:
    """(ms from the patch to each healthy pod serving failover, ms to the last fence)."""
    running = lab.kubelet.running()
    frozen = sorted(running)[:hung]
    for name in frozen:
        lab.kubelet.freeze(name)
    healthy = {name: pod.admin_url for name, pod in running.items() if name not in frozen}
    auth = admin_auth(lab)
    started = time.perf_counter()
    lab.api.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, NAME, {"spec": {"active": "failover"}}
    )
    deadline = started + SWITCH_TIMEOUT_SECONDS

    def watch(url: str) -> float | None:
        """One thread per healthy pod, so one slow answer does not delay the others' times."""
        while time.perf_counter() < deadline:
            if pod_serves(url, auth, "failover"):
                return (time.perf_counter() - started) * 1000
            time.sleep(0.01)
        return None

    fenced_at: float | None = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(healthy)) as pool:
        watched = [pool.submit(watch, url) for url in healthy.values()]
        while fenced_at is None and time.perf_counter() < deadline:
            if not set(frozen) & pod_names(lab):
                fenced_at = (time.perf_counter() - started) * 1000
            time.sleep(0.05)
        served = [at for at in (future.result() for future in watched) if at is not None]
    return served, fenced_at


def pod_names(lab: OperatedGateways) -> set[str]:
    listed = lab.kubelet.core.list_namespaced_pod(NAMESPACE)
    return {item.metadata.name for item in listed.items if item.metadata.deletion_timestamp is None}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(pods: int, switches: int, workdir: Path, hung: int = 0) -> tuple[list[float], float | None]:
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
                    pod_timeout_seconds=3 if hung else None,
                )
            )
            lab.wait_completed(NAME, "main", pods, None, PODS_UP_TIMEOUT_SECONDS)
            if hung:
                return switch_with_hung_pods(lab, hung)
            targets = ["failover", "main"] * switches
            return [one_switch(lab, cluster, pods) for cluster in targets[:switches]], None
    finally:
        plane.stop()
        main.stop()
        failover.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--hung", type=int, default=0, help="pods frozen before one switch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        durations, fenced_ms = run(args.pods, args.switches, Path(tmp), args.hung)
    if args.hung:
        print(
            f"kubectl patch with {args.hung} of {args.pods} pods hung: {len(durations)} healthy "
            f"pods served failover after p50 {statistics.median(durations):.0f} ms, "
            f"p99 {percentile(durations, 0.99):.0f} ms, max {max(durations):.0f} ms; "
            f"hung pods fenced after {fenced_ms if fenced_ms is None else round(fenced_ms)} ms"
        )
        return 0
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
