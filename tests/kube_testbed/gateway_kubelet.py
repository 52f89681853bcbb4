"""A kubelet stand-in for gateway Pods: each Pod becomes a real gateway process on its own address.

There is no kubelet (nor container runtime) on these machines, so this plays one for the Pods of
the operator's gateway Deployments: for every Pod it sees, it materialises the Pod's ConfigMap
volume into a folder, resolves the ``secretKeyRef`` environment, starts ``python -m
failover_gateway`` bound to its own loopback address (127.0.0.N stands for the pod IP, as a network
namespace would give each pod one), waits for ``/readyz`` and patches the Pod's status (podIP,
phase Running, Ready). Like a kubelet it refreshes mounted ConfigMap files while the Pod runs
(this is how the operator's ``active`` key reaches pods), and it kills the process when the Pod is
deleted. ``freeze`` sends SIGSTOP, for fencing tests.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

from kafka_testbed import supervising

POLL_SECONDS = 0.25
READY_TIMEOUT_SECONDS = 30.0
FIRST_POD_OCTET = 10
GATEWAY_SELECTOR = "app.kubernetes.io/name=kafka-failover-gateway"
CONFIG_MOUNT = "/etc/kafka-failover"


class KubeletError(Exception):
    """A Pod could not be started; the message names the Pod and what was missing."""


@dataclass
class RunningPod:
    name: str
    uid: str
    ip: str
    folder: Path
    process: supervising.Process
    config_map: str
    admin_port: int
    ready: bool = False

    @property
    def admin_url(self) -> str:
        return f"http://{self.ip}:{self.admin_port}"


class GatewayKubelet:
    """Watches one namespace's gateway Pods from a thread and runs them as local processes."""

    def __init__(self, kubeconfig: Path, namespace: str, workdir: Path) -> None:
        api = kubernetes.config.new_client_from_config(str(kubeconfig))
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace
        self.workdir = workdir
        self.pods: dict[str, RunningPod] = {}
        self.errors: list[str] = []
        self._octets = itertools.count(FIRST_POD_OCTET)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubelet-{namespace}", daemon=True)

    def start(self) -> GatewayKubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            for pod in list(self.pods.values()):
                self._kill(pod)
            self.pods.clear()

    def running(self) -> dict[str, RunningPod]:
        with self._lock:
            return dict(self.pods)

    def freeze(self, pod_name: str) -> None:
        os.kill(self.running()[pod_name].process.pid, signal.SIGSTOP)

    def thaw(self, pod_name: str) -> None:
        pod = self.running().get(pod_name)
        if pod is not None and pod.process.poll() is None:
            os.kill(pod.process.pid, signal.SIGCONT)

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_once()
            except Exception as error:  # keep serving other pods; tests read self.errors
                self.errors.append(f"{type(error).__name__}: {error}")
            self._stop.wait(POLL_SECONDS)

    def _sync_once(self) -> None:
        listed = self.core.list_namespaced_pod(self.namespace, label_selector=GATEWAY_SELECTOR)
        alive = {}
        for pod in listed.items:
            if pod.metadata.deletion_timestamp is not None:
                self._finish_deletion(pod)
                continue
            alive[pod.metadata.name] = pod
        with self._lock:
            gone = [name for name in self.pods if name not in alive]
            for name in gone:
                self._kill(self.pods.pop(name))
        for name, pod in alive.items():
            running = self.running().get(name)
            if running is None or running.uid != pod.metadata.uid:
                self._launch(pod)
            else:
                self._refresh(running)

    def _finish_deletion(self, pod: Any) -> None:
        with self._lock:
            running = self.pods.pop(pod.metadata.name, None)
        if running is not None:
            self._kill(running)
        try:
            self.core.delete_namespaced_pod(
                pod.metadata.name, self.namespace, grace_period_seconds=0
            )
        except ApiException as error:
            if error.status != 404:
                raise

    # -- starting a pod -------------------------------------------------------------------

    def _launch(self, pod: Any) -> None:
        name = pod.metadata.name
        ip = f"127.0.0.{next(self._octets)}"
        folder = self.workdir / name
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "config").mkdir(parents=True)
        container = pod.spec.containers[0]
        config_map = _config_map_volume(pod)
        self._write_config(config_map, folder / "config", ip)
        env = dict(os.environ) | self._environment(container)
        admin_port = _admin_port(container)
        process = supervising.spawn(
            [
                sys.executable,
                "-m",
                "failover_gateway",
                "--config",
                str(folder / "config" / "gateway.yaml"),
            ],
            folder / "gateway.log",
            env=env,
        )
        running = RunningPod(name, pod.metadata.uid, ip, folder, process, config_map, admin_port)
        with self._lock:
            self.pods[name] = running
        self._await_ready(running)
        self._report_running(running)

    def _write_config(self, config_map: str, target: Path, ip: str) -> None:
        data = self.core.read_namespaced_config_map(config_map, self.namespace).data or {}
        for key, value in data.items():
            text = value
            if key == "gateway.yaml":
                text = _localised_gateway_config(value, ip, target)
            (target / key).write_text(text)

    def _environment(self, container: Any) -> dict[str, str]:
        env = {}
        for variable in container.env or []:
            if variable.value is not None:
                env[variable.name] = variable.value
            elif variable.value_from is not None and variable.value_from.secret_key_ref:
                ref = variable.value_from.secret_key_ref
                secret = self.core.read_namespaced_secret(ref.name, self.namespace)
                encoded = (secret.data or {}).get(ref.key)
                if encoded is None:
                    raise KubeletError(f"Secret {ref.name} has no key {ref.key}")
                env[variable.name] = base64.b64decode(encoded).decode()
        return env

    def _await_ready(self, pod: RunningPod) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if pod.process.poll() is not None:
                log = (pod.folder / "gateway.log").read_text()[-2000:]
                raise KubeletError(f"gateway of pod {pod.name} exited: {log}")
            try:
                with urllib.request.urlopen(pod.admin_url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        pod.ready = True
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise KubeletError(f"gateway of pod {pod.name} not ready in {READY_TIMEOUT_SECONDS}s")

    def _report_running(self, pod: RunningPod) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        status = {
            "phase": "Running",
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": conditions,
        }
        self.core.patch_namespaced_pod_status(pod.name, self.namespace, {"status": status})

    # -- while it runs ----------------------------------------------------------------------

    def _refresh(self, pod: RunningPod) -> None:
        """Mounted ConfigMaps follow their source, as a kubelet's volume refresh does."""
        try:
            data = self.core.read_namespaced_config_map(pod.config_map, self.namespace).data or {}
        except ApiException:
            return
        active = pod.folder / "config" / "active"
        if "active" in data and (not active.exists() or active.read_text() != data["active"]):
            temporary = active.with_suffix(".new")
            temporary.write_text(data["active"])
            temporary.replace(active)

    def _kill(self, pod: RunningPod) -> None:
        if pod.process.poll() is None:
            os.kill(pod.process.pid, signal.SIGCONT)
        supervising.terminate(pod.process, grace_seconds=5)


def _config_map_volume(pod: Any) -> str:
    for volume in pod.spec.volumes or []:
        if volume.config_map is not None:
            return str(volume.config_map.name)
    raise KubeletError(f"pod {pod.metadata.name} mounts no ConfigMap")


def _admin_port(container: Any) -> int:
    for port in container.ports or []:
        if port.name == "admin":
            return int(port.container_port)
    raise KubeletError("gateway container declares no 'admin' port")


def _localised_gateway_config(text: str, ip: str, folder: Path) -> str:
    """Bind to the pod's own address; point the active file at the materialised volume."""
    document: dict[str, Any] = yaml.safe_load(text)
    gateway: dict[str, Any] = document["gateway"]
    gateway["listener"]["host"] = ip
    gateway["admin"]["host"] = ip
    active_file = gateway.get("activeFile")
    if isinstance(active_file, str) and active_file.startswith(CONFIG_MOUNT):
        gateway["activeFile"] = str(folder / active_file.removeprefix(CONFIG_MOUNT + "/"))
    return yaml.safe_dump(document, sort_keys=False)


def pod_addresses(kubelet: GatewayKubelet) -> Mapping[str, str]:
    return {name: pod.ip for name, pod in kubelet.running().items()}
