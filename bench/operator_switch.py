"""Benchmark: ``kubectl patch kafkafailover ... active=X`` -> every gateway pod switched.

A real kube-apiserver and kube-controller-manager (kube_testbed), the operator process,
and N gateway pods run as real processes by the kubelet stand-in. Each round patches
``spec.active`` (alternating main/failover) and measures until the status says the switch
completed on every pod (``status.activeCluster`` = the new cluster, ``gateways.summary`` = N/N,
``observedGeneration`` = the new generation), polled every 20 ms through the API server. Prints
p50/p99/max. Goal: < 2 s with 10 pods.

With ``--hung N``, N pods are frozen (SIGSTOP) first and one switch is measured per healthy pod:
from the patch until that pod's own switch record (``lastSwitch`` in ``/api/v1/state``, timed by
the pod, on the same host clock) says it serves the new cluster; until the frozen pods are fenced
(deleted, ``podTimeoutSeconds`` 3 here); until status is true of the ready pods left (Ready,
``activeCluster``, N/N of them); and until status counts every pod again (replacements ready).
Goal (issue 15): healthy pods' p99 < 500 ms with 30 pods, one hung; status true within 1 s of
the fence.

    .venv/bin/python bench/operator_switch.py [--pods 10] [--switches 10] [--hung 0]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_testbed import launching
from kube_testbed import control_plane
from kube_testbed.gateway_kubelet import FIRST_POD_OCTET
from kube_testbed.operated_gateways import (
    GROUP,
    PLURAL,
    PODS_UP_TIMEOUT_SECONDS,
    POLL_SECONDS,
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


def served_since(admin_url: str, auth: str, cluster: str) -> float | None:
    """When (wall clock, s) the pod's own switch record says it began serving ``cluster``, None
    while it does not serve it. The pod times its switch itself, so the bench can poll slowly and
    not load the two cores the pods and the operator share."""
    request = urllib.request.Request(f"{admin_url}/api/v1/state", headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(request, timeout=0.5) as answer:
            state = json.loads(answer.read())
    except OSError:
        return None
    last = state.get("lastSwitch") or {}
    if state.get("active") != cluster or last.get("to") != cluster:
        return None
    began = datetime.datetime.fromisoformat(last["startedAt"].replace("Z", "+00:00"))
    return began.timestamp() + float(last["durationMs"]) / 1000


def admin_auth(lab: OperatedGateways) -> str:
    secret = lab.kubelet.core.read_namespaced_secret(f"{NAME}-gateway-admin", NAMESPACE)
    user, password = (
        base64.b64decode(secret.data[key]).decode() for key in ("username", "password")
    )
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class HungSwitch:
    served_ms: list[float]  # from the patch to each healthy pod serving failover
    fenced_ms: float | None  # to the last hung pod deleted
    status_ms: float | None  # to status telling the truth about the pods left, after the fence
    replaced_ms: float | None  # to status counting every pod again (replacements ready)


def status_true_of(lab: OperatedGateways, pods: set[str]) -> bool:
    """Status says failover, Ready, and counts exactly ``pods`` pods, all switched."""
    status = lab.status(NAME)
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions", []) if c["type"] == "Ready"), {}
    )
    count = len(pods)
    return bool(
        status.get("activeCluster") == "failover"
        and ready.get("status") == "True"
        and status.get("gateways", {}).get("summary") == f"{count}/{count}"
    )


def switch_with_hung_pods(lab: OperatedGateways, hung: int, pods: int) -> HungSwitch:
    """Freeze ``hung`` pods, patch, and time the healthy pods, the fence and status after it."""
    running = lab.kubelet.running()
    frozen = sorted(running)[:hung]
    for name in frozen:
        lab.kubelet.freeze(name)
    healthy = {name: pod.admin_url for name, pod in running.items() if name not in frozen}
    auth = admin_auth(lab)
    started, patched_at = time.perf_counter(), time.time()
    lab.api.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, NAME, {"spec": {"active": "failover"}}
    )
    deadline = started + SWITCH_TIMEOUT_SECONDS

    def watch(url: str) -> float | None:
        """One thread per healthy pod, so one slow answer does not delay the others' times."""
        while time.perf_counter() < deadline:
            since = served_since(url, auth, "failover")
            if since is not None:
                return (since - patched_at) * 1000
            time.sleep(0.2)
        return None

    fenced_at: float | None = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(healthy)) as pool:
        watched = [pool.submit(watch, url) for url in healthy.values()]
        while fenced_at is None and time.perf_counter() < deadline:
            if not set(frozen) & pod_names(lab):
                fenced_at = (time.perf_counter() - started) * 1000
            time.sleep(POLL_SECONDS)
        served = [at for at in (future.result() for future in watched) if at is not None]
    status_at = replaced_at = None
    while replaced_at is None and time.perf_counter() < deadline:
        ready = ready_pods(lab)
        if status_true_of(lab, ready):
            at = (time.perf_counter() - started) * 1000
            status_at = at if status_at is None else status_at
            replaced_at = at if len(ready) == pods else None
        time.sleep(POLL_SECONDS)
    return HungSwitch(served, fenced_at, status_at, replaced_at)


def listed_pods(lab: OperatedGateways) -> list[dict[str, Any]]:
    """The namespace's pods as raw JSON: the client's models cost ~10 ms a pod to build, which
    would blur the fence time by a few hundred ms with 30 pods."""
    answer = lab.kubelet.core.list_namespaced_pod(NAMESPACE, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(answer.data)["items"]
    return [item for item in items if not item["metadata"].get("deletionTimestamp")]


def ready_pods(lab: OperatedGateways) -> set[str]:
    """Pods not being deleted whose Ready condition is True: the ones status must count."""
    return {
        item["metadata"]["name"]
        for item in listed_pods(lab)
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions") or []
        )
    }


def pod_names(lab: OperatedGateways) -> set[str]:
    return {item["metadata"]["name"] for item in listed_pods(lab)}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(pods: int, switches: int, workdir: Path, hung: int = 0) -> list[float] | HungSwitch:
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
                return switch_with_hung_pods(lab, hung, pods)
            targets = ["failover", "main"] * switches
            return [one_switch(lab, cluster, pods) for cluster in targets[:switches]]
    finally:
        plane.stop()
        main.stop()
        failover.stop()


def _ms(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} ms"


def print_hung(result: HungSwitch, hung: int, pods: int) -> None:
    served = result.served_ms
    since_fence = (
        None
        if result.status_ms is None or result.fenced_ms is None
        else result.status_ms - result.fenced_ms
    )
    print(
        f"kubectl patch with {hung} of {pods} pods hung: {len(served)} healthy pods served "
        f"failover after p50 {statistics.median(served):.0f} ms, "
        f"p99 {percentile(served, 0.99):.0f} ms, max {max(served):.0f} ms; hung pods fenced "
        f"after {_ms(result.fenced_ms)}; status true of the ready pods after "
        f"{_ms(result.status_ms)} ({_ms(since_fence)} after the fence), counting {pods}/{pods} "
        f"again after {_ms(result.replaced_ms)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--hung", type=int, default=0, help="pods frozen before one switch")
    parser.add_argument(
        "--workdir", type=Path, help="keep the operator's and pods' logs here, not in a temp dir"
    )
    args = parser.parse_args()
    if args.workdir is not None:
        durations = run(args.pods, args.switches, args.workdir, args.hung)
        print(f"operator log: {args.workdir / 'operator.log'}")
    else:
        with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
            durations = run(args.pods, args.switches, Path(tmp), args.hung)
    if isinstance(durations, HungSwitch):
        print_hung(durations, args.hung, args.pods)
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
