"""Running real gateway processes for tests, the demo and the benchmarks.

The gateway is started exactly as users start it (``python -m failover_gateway --config PATH``
with admin credentials in the environment), on a contiguous block of free 127.0.0.1 ports
(bootstrap port followed by the broker ports), and driven through its real admin API.
"""

from __future__ import annotations

import base64
import json
import os
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kafka_testbed import images, networking, supervising
from kafka_testbed.clusters import read_tail
from kafka_testbed.errors import ClusterStartError

ADMIN_USER = "admin"
ADMIN_PASSWORD = "test-admin-secret-7f3a"
START_TIMEOUT_SECONDS = 30.0
ADMIN_TIMEOUT_SECONDS = 30.0
"""How long an admin call may take before the lab gives up on its answer."""
CONTAINER_CONFIG_DIR = "/etc/kafka-failover"


class GatewayStartError(ClusterStartError):
    """The gateway process did not become ready; the message holds its last log lines."""


@dataclass(frozen=True)
class AdminAnswer:
    status: int
    body: dict[str, Any]


@dataclass
class GatewayProcess:
    """A running gateway and the ways a test talks to it."""

    port: int
    broker_port_count: int
    admin_port: int
    config_path: Path
    log_path: Path
    process: supervising.Process
    user: str = ADMIN_USER
    password: str = ADMIN_PASSWORD
    extra: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    host: str = networking.HOST
    """The loopback address this gateway listens on (a pod of a fleet has its own)."""
    container: images.ContainerImage | None = None
    """The image it runs from (as container :attr:`container_name`), or None: a venv process."""
    container_name: str = ""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: tuple[str, str] | None = None,
        timeout: float = ADMIN_TIMEOUT_SECONDS,
    ) -> AdminAnswer:
        user, password = auth if auth is not None else (self.user, self.password)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.admin_url + path, data=data, method=method)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return AdminAnswer(response.status, _json(response.read()))
        except urllib.error.HTTPError as error:
            return AdminAnswer(error.code, _json(error.read()))

    def switch(self, to: str, **params: Any) -> AdminAnswer:
        """The Conduktor-compatible call runbooks use."""
        query = "&".join(f"{k}={v}" for k, v in {"to": to, **params}.items())
        return self.request("POST", f"/admin/pclusters/v1/pcluster/main/switch?{query}")

    def put_active(self, cluster: str, epoch: int, **extra: Any) -> AdminAnswer:
        return self.request("PUT", "/api/v1/active", {"cluster": cluster, "epoch": epoch, **extra})

    def state(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/state").body

    def metrics(self) -> str:
        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=10) as response:
            text: str = response.read().decode()
            return text

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(read_tail(self.log_path, lines))

    def stop(self) -> int:
        code = supervising.terminate(self.process, grace_seconds=10)
        if self.container is not None:
            self.container.engine.remove(self.container_name)
        return code

    def resident_bytes(self) -> int:
        """The gateway process's resident memory (the container's first process)."""
        pid = self.process.pid
        if self.container is not None:
            pid = self.container.engine.main_pid(self.container_name)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {pid}")

    def restart(self, down_seconds: float = 0.0, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Stop the process, stay down ``down_seconds``, start it again on the same ports."""
        self.stop()
        time.sleep(down_seconds)
        self.process = supervising.spawn(
            _command(self.config_path, self.container, self.container_name, self.env),
            self.log_path,
            env=self.env
            if self.container is None
            else dict(os.environ) | self.container.engine.env,
        )
        _wait_ready(self, timeout)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        return {"raw": raw.decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


def _ephemeral_ports_start() -> int:
    """The kernel's first ephemeral port (Linux default 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first port of ``count`` consecutive free ports on 127.0.0.1.

    Below the kernel's ephemeral range when it leaves room: while a gateway is down for a
    restart on the same ports, any outgoing connection on the machine could otherwise be given
    one of them as its local port, and the gateway could not bind it again."""
    low, high = 20_000, 60_000 - count
    if _ephemeral_ports_start() - count > low + 1_000:
        high = _ephemeral_ports_start() - count
    for _ in range(attempts):
        base = random.randint(low, high)
        if all(networking.is_port_free(base + offset) for offset in range(count)):
            return base
    raise GatewayStartError(f"no block of {count} consecutive free ports found")


def gateway_config(
    clusters: Mapping[str, str | Mapping[str, str]],
    *,
    port: int,
    admin_port: int,
    broker_port_count: int,
    active: str = "main",
    failover_names: tuple[str, ...] = ("failover",),
    gateway_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The YAML document a user would write, for clusters given as name -> bootstrap string
    (or name -> the cluster's Kafka client properties)."""
    config = {
        name: (dict(value) if isinstance(value, Mapping) else {"bootstrap.servers": value})
        | ({"gateway.roles": "failover"} if name in failover_names else {})
        for name, value in clusters.items()
    }
    gateway: dict[str, Any] = {
        "listener": {
            "host": networking.HOST,
            "port": port,
            "advertisedHost": networking.HOST,
            "brokerPortCount": broker_port_count,
        },
        "admin": {"host": networking.HOST, "port": admin_port},
        "active": active,
    }
    for key, value in (gateway_extra or {}).items():
        existing = gateway.get(key)
        merged = (
            {**existing, **value}
            if isinstance(existing, dict) and isinstance(value, Mapping)
            else value
        )
        gateway[key] = merged
    return {"config": config, "gateway": gateway}


def start_gateway(
    clusters: Mapping[str, str | Mapping[str, str]],
    *,
    active: str = "main",
    broker_port_count: int = 16,
    gateway_extra: Mapping[str, Any] | None = None,
    workdir: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
    host: str = networking.HOST,
    port: int | None = None,
    advertised_host: str | None = None,
    container: images.ContainerImage | None = None,
) -> GatewayProcess:
    """Start a gateway process in front of ``clusters`` and wait until its admin API is ready.

    ``host`` is the loopback address it listens on (admin API included), ``port`` its bootstrap
    port (the broker ports and the admin port follow; free ones are picked when None), and
    ``advertised_host`` the host it gives clients (``host`` by default). With ``container`` the
    gateway runs from that image, as a pod would (UID 10001, read-only root, host network)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="gateway-"))
    base = port if port is not None else free_port_block(broker_port_count + 2)
    port, admin_port = base, base + broker_port_count + 1
    placement = {
        "listener": {"host": host, "advertisedHost": advertised_host or host},
        "admin": {"host": host},
    }
    extra = dict(gateway_extra or {})
    for key, value in placement.items():
        extra[key] = {**value, **extra.get(key, {})}
    document = gateway_config(
        clusters,
        port=port,
        admin_port=admin_port,
        broker_port_count=broker_port_count,
        active=active,
        gateway_extra=extra,
    )
    config_path = workdir / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    log_path = workdir / "gateway.log"
    process_env = (
        dict(os.environ)
        | {
            "GATEWAY_ADMIN_USER": ADMIN_USER,
            "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        | dict(env or {})
    )
    name = f"gateway-{host}-{port}" if container is not None else ""
    if container is not None:
        workdir.chmod(0o755)  # the container's user reads its config from here
        container.engine.remove(name)
    process = supervising.spawn(
        _command(config_path, container, name, process_env),
        log_path,
        env=process_env if container is None else dict(os.environ) | container.engine.env,
    )
    gateway = GatewayProcess(
        port,
        broker_port_count,
        admin_port,
        config_path,
        log_path,
        process,
        env=process_env,
        host=host,
        container=container,
        container_name=name,
    )
    _wait_ready(gateway, timeout)
    return gateway


def _command(
    config_path: Path,
    container: images.ContainerImage | None,
    name: str,
    env: Mapping[str, str],
) -> list[str]:
    """The venv's gateway, or the image's with the config's folder mounted read-only at
    :data:`CONTAINER_CONFIG_DIR` (only the admin credentials of ``env`` are passed in)."""
    if container is None:
        return [sys.executable, "-m", "failover_gateway", "--config", str(config_path)]
    passed = {key: value for key, value in env.items() if key.startswith("GATEWAY_")}
    return container.run_command(
        name,
        ["--config", f"{CONTAINER_CONFIG_DIR}/{config_path.name}"],
        mounts={config_path.parent: CONTAINER_CONFIG_DIR},
        env=passed,
    )


def _wait_ready(gateway: GatewayProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not gateway.is_alive():
            raise GatewayStartError(
                f"gateway exited with {gateway.process.returncode}:\n{gateway.log_tail()}"
            )
        try:
            with urllib.request.urlopen(gateway.admin_url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    gateway.stop()
    raise GatewayStartError(f"gateway not ready after {timeout:.0f}s:\n{gateway.log_tail()}")


def run_gateway_expecting_failure(
    document: Any, env: Mapping[str, str], timeout: float = 20.0
) -> tuple[int, str]:
    """Run the gateway on a config that must be refused; return (exit code, stderr)."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gateway.yaml"
        path.write_text(
            document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
        )
        result = subprocess.run(
            [sys.executable, "-m", "failover_gateway", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env),
            check=False,
        )
    return result.returncode, result.stderr
