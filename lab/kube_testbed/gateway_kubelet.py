"""A kubelet stand-in for gateway Pods: each Pod becomes a real container (or process) on its own
address.

There is no kubelet on these machines, so this plays one for the Pods of the operator's gateway
Deployments: for every Pod it sees, it materialises the Pod's ConfigMap and Secret volumes (Secret
data decoded, files mode 0400, or 0440 group-owned by the Pod's ``fsGroup``, as a kubelet does)
into the Pod's folder, each at its mount path below ``<folder>/fs``, resolves the ``secretKeyRef``
environment, starts the gateway bound to its own loopback address (127.0.0.N stands for the pod
IP, as a network namespace would give each pod one), waits for its real ``/readyz`` and patches
the Pod's status (podIP, phase Running, Ready).

Two ways to run a Pod (:class:`PodMode`). ``container``, whenever a container engine is usable
(:mod:`kafka_testbed.images`): the Pod's image (the locally built product image, tagged with the
name the Pod asks for), its command and args, env, every volume bind-mounted read-only at the
path the Pod names, ``runAsUser``/``runAsGroup``, ``readOnlyRootFilesystem``, host networking.
``process``, on machines without one: ``python -m failover_gateway`` from the venv, where the
gateway config's container paths (``/etc/kafka-failover/...``, also inside ``${file:...}``) are
rewritten to the materialised copies. Like a kubelet it refreshes mounted ConfigMap and Secret
files while the Pod runs (this is how the operator's ``active`` key reaches pods); a Pod whose
volume source is missing is not started (a kubelet would keep it ContainerCreating) and is
retried. It stops the container (or process) when the Pod is deleted. ``freeze`` sends SIGSTOP
to the gateway, for fencing tests.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

from kafka_testbed import images, supervising

POLL_SECONDS = 0.25
READY_TIMEOUT_SECONDS = 30.0
FIRST_POD_OCTET = 10
GATEWAY_SELECTOR = "app.kubernetes.io/name=kafka-failover-gateway"
SECRET_FILE_MODE = 0o400
SERVICE_DOMAIN = ".svc"
MAX_ERRORS = 200


@dataclass(frozen=True)
class PodMode:
    """How Pods run: as containers of ``engine``, or (``engine`` None) as venv processes."""

    engine: images.Engine | None = None

    @property
    def name(self) -> str:
        return "process" if self.engine is None else f"container ({self.engine.name})"


@functools.cache
def pod_mode() -> PodMode:
    """Containers when the product images can be built here, else processes; ``$KUBELET_PODS``
    (``container`` or ``process``) forces one. Built images are tagged with the names Pods ask
    for (the chart's and the operator's default image names), as a registry would serve them."""
    wanted = os.environ.get("KUBELET_PODS", "")
    if wanted == "process":
        return PodMode()
    try:
        built = images.build_all(install=wanted == "container")
    except images.ImagesUnavailable:
        if wanted == "container":
            raise
        return PodMode()
    images.tag_as_released(built)
    mode = PodMode(built.engine)
    print(f"kube_testbed: gateway pods run as {mode.name} from {built.gateway}", file=sys.stderr)
    return mode


class KubeletError(Exception):
    """A Pod could not be started; the message names the Pod and what was missing."""


@dataclass(frozen=True)
class Volume:
    """A ConfigMap or Secret volume of a Pod, materialised at ``local``."""

    kind: Literal["configMap", "secret"]
    source: str
    mount_path: str
    local: Path


@dataclass(frozen=True)
class PodFiles:
    """What a Pod's container sees as files, and where this stand-in keeps them."""

    pod: str
    ip: str
    volumes: tuple[Volume, ...]
    config_path: str
    """The ``--config`` argument, a path inside the container."""
    in_container: bool = False
    owner: tuple[int, int] | None = None
    """``(uid, fsGroup)`` that owns the files (containers run as a non-root user)."""

    @property
    def local_config(self) -> str:
        return localised_path(self.config_path, self.volumes)


@dataclass
class RunningPod:
    name: str
    uid: str
    ip: str
    folder: Path
    process: supervising.Process
    admin_port: int
    files: PodFiles
    container: str | None = None
    """The container's name when the Pod runs as a container."""
    ready: bool = False

    @property
    def admin_url(self) -> str:
        return f"http://{self.ip}:{self.admin_port}"


class GatewayKubelet:
    """Watches one namespace's gateway Pods from a thread and runs them as local processes."""

    def __init__(
        self, kubeconfig: Path, namespace: str, workdir: Path, mode: PodMode | None = None
    ) -> None:
        self.mode = mode or pod_mode()
        api = kubernetes.config.new_client_from_config(str(kubeconfig))
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace
        self.workdir = workdir
        self.pods: dict[str, RunningPod] = {}
        self.errors: list[str] = []
        # A test's way to give one pod a config of its own (pod name, config text) -> text: e.g.
        # point only that pod's upstream at a black hole, as a network fault local to one node.
        self.config_rewrite: Callable[[str, str], str] | None = None
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
        os.kill(self._gateway_pid(self.running()[pod_name]), signal.SIGSTOP)

    def thaw(self, pod_name: str) -> None:
        pod = self.running().get(pod_name)
        if pod is not None and pod.process.poll() is None:
            os.kill(self._gateway_pid(pod), signal.SIGCONT)

    def _gateway_pid(self, pod: RunningPod) -> int:
        """The gateway's own process: the venv process, or the container's first process."""
        if pod.container is None or self.mode.engine is None:
            return pod.process.pid
        return self.mode.engine.main_pid(pod.container)

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_once()
            except Exception as error:  # keep serving other pods; tests read self.errors
                self._record(error)
            self._stop.wait(POLL_SECONDS)

    def _record(self, error: Exception) -> None:
        text = f"{type(error).__name__}: {error}"
        if not self.errors or self.errors[-1] != text:
            self.errors.append(text)
            del self.errors[:-MAX_ERRORS]

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
        sources = _SourceCache(self._read_source)
        for name, pod in alive.items():
            running = self.running().get(name)
            try:
                if running is None or running.uid != pod.metadata.uid:
                    self._launch(pod, sources)
                else:
                    self._refresh(running, sources)
            except Exception as error:  # one broken pod must not stall the others
                self._record(error)

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

    def _launch(self, pod: Any, sources: _SourceCache) -> None:
        name = pod.metadata.name
        folder = self.workdir / name
        container = pod.spec.containers[0]
        volumes = _volumes(pod, container, folder)
        config_path = _config_argument(container)
        for volume in volumes:  # before an address is taken: a kubelet would keep waiting
            if sources.get(volume.kind, volume.source) is None:
                raise KubeletError(
                    f"pod {name}: {volume.kind} {volume.source} (mounted at "
                    f"{volume.mount_path}) not found"
                )
        pod_env = self._environment(container)
        ip = f"127.0.0.{next(self._octets)}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        engine = self.mode.engine
        owner = _owner(pod, container) if engine is not None else None
        files = PodFiles(name, ip, volumes, config_path, engine is not None, owner)
        for volume in volumes:
            self._materialise(files, volume, sources)
        container_name = None
        if engine is None:
            process = supervising.spawn(
                [sys.executable, "-m", "failover_gateway", "--config", files.local_config],
                folder / "gateway.log",
                env=dict(os.environ) | pod_env,
            )
        else:
            container_name = f"kubelet-{self.namespace}-{name}"
            engine.remove(container_name)
            process = supervising.spawn(
                container_command(engine, container_name, pod, container, files, pod_env),
                folder / "gateway.log",
                env=dict(os.environ) | engine.env,
            )
        running = RunningPod(
            name, pod.metadata.uid, ip, folder, process, _admin_port(container), files,
            container_name,
        )  # fmt: skip
        with self._lock:
            self.pods[name] = running
        self._await_ready(running)
        self._report_running(running)

    def _read_source(self, kind: str, name: str) -> dict[str, bytes] | None:
        """A ConfigMap's or Secret's data as bytes (Secret data decoded); None if absent."""
        try:
            if kind == "configMap":
                found = self.core.read_namespaced_config_map(name, self.namespace).data or {}
                return {key: value.encode() for key, value in found.items()}
            secret = self.core.read_namespaced_secret(name, self.namespace).data or {}
            return {key: base64.b64decode(value) for key, value in secret.items()}
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _materialise(self, files: PodFiles, volume: Volume, sources: _SourceCache) -> None:
        data = sources.get(volume.kind, volume.source)
        if data is None:
            return  # a kubelet keeps the last copy of a source that disappeared
        mode = SECRET_FILE_MODE if volume.kind == "secret" else 0o644
        if files.owner is not None:  # fsGroup: the group may read what its owner may
            mode |= (mode & 0o700) >> 3
        volume.local.mkdir(parents=True, exist_ok=True)
        for key, content in data.items():
            text = content
            if f"{volume.mount_path}/{key}" == files.config_path:
                paths = () if files.in_container else files.volumes
                config = localised_gateway_config(content.decode(), files.ip, paths)
                if self.config_rewrite is not None:
                    config = self.config_rewrite(files.pod, config)
                text = config.encode()
            _write_if_changed(volume.local / key, text, mode, files.owner)
        present = {path.name for path in volume.local.iterdir() if not path.name.startswith(".")}
        for stale in present - set(data):
            (volume.local / stale).unlink(missing_ok=True)

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

    def _refresh(self, pod: RunningPod, sources: _SourceCache) -> None:
        """Mounted ConfigMaps and Secrets follow their source, like a kubelet's volume refresh."""
        for volume in pod.files.volumes:
            self._materialise(pod.files, volume, sources)

    def _kill(self, pod: RunningPod) -> None:
        engine = self.mode.engine
        if pod.container is not None and engine is not None:
            with contextlib.suppress(Exception):
                os.kill(self._gateway_pid(pod), signal.SIGCONT)
            engine.run("stop", "--time", "5", pod.container, check=False, timeout=30)
            supervising.terminate(pod.process, grace_seconds=5)
            engine.remove(pod.container)
            return
        if pod.process.poll() is None:
            os.kill(pod.process.pid, signal.SIGCONT)
        supervising.terminate(pod.process, grace_seconds=5)


class _SourceCache:
    """Each ConfigMap and Secret read at most once per pass, however many pods mount it."""

    def __init__(self, read: Callable[[str, str], dict[str, bytes] | None]) -> None:
        self._read = read
        self._found: dict[tuple[str, str], dict[str, bytes] | None] = {}

    def get(self, kind: str, name: str) -> dict[str, bytes] | None:
        key = (kind, name)
        if key not in self._found:
            self._found[key] = self._read(kind, name)
        return self._found[key]


def _volumes(pod: Any, container: Any, folder: Path) -> tuple[Volume, ...]:
    """The container's ConfigMap and Secret mounts; other volume types need no files."""
    by_name = {volume.name: volume for volume in pod.spec.volumes or []}
    found = []
    for mount in container.volume_mounts or []:
        volume = by_name.get(mount.name)
        if volume is None:
            raise KubeletError(f"pod {pod.metadata.name} mounts unknown volume {mount.name}")
        local = folder / "fs" / mount.mount_path.lstrip("/")
        if volume.config_map is not None:
            found.append(Volume("configMap", volume.config_map.name, mount.mount_path, local))
        elif volume.secret is not None:
            found.append(Volume("secret", volume.secret.secret_name, mount.mount_path, local))
    if not any(v.kind == "configMap" for v in found):
        raise KubeletError(f"pod {pod.metadata.name} mounts no ConfigMap")
    return tuple(found)


def _config_argument(container: Any) -> str:
    args = list(container.args or [])
    if "--config" not in args[:-1]:
        raise KubeletError("gateway container has no --config argument")
    return str(args[args.index("--config") + 1])


def _write_if_changed(
    path: Path, content: bytes, mode: int, owner: tuple[int, int] | None = None
) -> None:
    """Atomically, like a kubelet's volume update: readers see the old or the new file."""
    if path.exists() and path.read_bytes() == content:
        return
    temporary = path.with_name(f".{path.name}.new")
    temporary.unlink(missing_ok=True)
    temporary.write_bytes(content)
    temporary.chmod(mode)
    if owner is not None:
        os.chown(temporary, 0, owner[1])  # root-owned, the pod's fsGroup may read
    temporary.replace(path)


def _owner(pod: Any, container: Any) -> tuple[int, int]:
    """The container's user and the pod's fsGroup (or the user's group)."""
    context = container.security_context
    pod_context = pod.spec.security_context
    user = (context.run_as_user if context else None) or (
        pod_context.run_as_user if pod_context else None
    )
    if user is None:
        raise KubeletError(f"pod {pod.metadata.name}: no runAsUser (the images run as non-root)")
    group = (pod_context.fs_group if pod_context else None) or (
        context.run_as_group if context else None
    )
    return int(user), int(group if group is not None else user)


def container_command(  # noqa: PLR0917 - what a kubelet reads to start one container
    engine: images.Engine,
    name: str,
    pod: Any,
    container: Any,
    files: PodFiles,
    env: Mapping[str, str],
) -> list[str]:
    """``<engine> run`` for the Pod's container, as a kubelet would start it: its image, command
    and args, env, read-only volumes at their paths, user, read-only root, host network."""
    uid, gid = files.owner or (0, 0)
    context = container.security_context
    command = [
        *engine.argv, "run", "--rm", "--name", name, "--network", "host",
        "--user", f"{uid}:{int(context.run_as_group or gid) if context else gid}",
        "--group-add", str(gid), "--pull", "never",
    ]  # fmt: skip
    if context is not None and context.read_only_root_filesystem:
        command.append("--read-only")
    if context is not None and context.capabilities and "ALL" in (context.capabilities.drop or []):
        command += ["--cap-drop", "ALL"]
    if context is not None and context.allow_privilege_escalation is False:
        command += ["--security-opt", "no-new-privileges"]
    for volume in files.volumes:
        command += ["--volume", f"{volume.local}:{volume.mount_path}:ro"]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    if container.command:
        command += ["--entrypoint", json.dumps(list(container.command))]
    return [*command, container.image, *(container.args or [])]


def _admin_port(container: Any) -> int:
    for port in container.ports or []:
        if port.name == "admin":
            return int(port.container_port)
    raise KubeletError("gateway container declares no 'admin' port")


def localised_path(value: str, volumes: Sequence[Volume]) -> str:
    """A container path under a mount (also inside ``${file:...}``) -> its materialised copy."""
    for volume in sorted(volumes, key=lambda v: len(v.mount_path), reverse=True):
        for prefix in ("", "${file:"):
            head = prefix + volume.mount_path + "/"
            if value.startswith(head):
                return prefix + str(volume.local) + "/" + value.removeprefix(head)
    return value


def _localised(node: Any, volumes: Sequence[Volume]) -> Any:
    if isinstance(node, dict):
        return {key: _localised(value, volumes) for key, value in node.items()}
    if isinstance(node, list):
        return [_localised(item, volumes) for item in node]
    return localised_path(node, volumes) if isinstance(node, str) else node


def localised_gateway_config(text: str, ip: str, volumes: Sequence[Volume]) -> str:
    """Bind to the pod's own address; point every mounted path at the materialised volume.

    The operator's default advertised host is the Service's DNS name (``<name>.<ns>.svc``), which
    nothing resolves here: as the Service would lead a client to some pod, the pod advertises its
    own address, so clients keep working when pods roll. An explicit host is kept.
    """
    document: dict[str, Any] = _localised(yaml.safe_load(text), volumes)
    gateway: dict[str, Any] = document["gateway"]
    gateway["listener"]["host"] = ip
    gateway["admin"]["host"] = ip
    if str(gateway["listener"].get("advertisedHost", "")).endswith(SERVICE_DOMAIN):
        gateway["listener"]["advertisedHost"] = ip
    return yaml.safe_dump(document, sort_keys=False)


def pod_addresses(kubelet: GatewayKubelet) -> Mapping[str, str]:
    return {name: pod.ip for name, pod in kubelet.running().items()}
