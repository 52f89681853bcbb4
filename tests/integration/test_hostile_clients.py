"""Hostile clients beyond single frames, against real gateway processes and real brokers.

A client that goes wrong in the middle of a valid session (plaintext, and after SASL on a TLS
listener), a client that speaks one byte at a time or never finishes its first request, and
a storm of ten thousand connects (with the gateway's descriptor limit lowered until accept fails
with EMFILE): each ends only its own connections, a bystander is served throughout, and the
gateway's descriptors and memory come back.
"""

from __future__ import annotations

import os
import random
import resource
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover_gateway.auth import users
from failover_gateway.codec import headers, schema, specs
from kafka_testbed import gateways, networking, security
from kafka_testbed.clusters import Cluster
from kafka_testbed.raw_protocol import RawConnection

PRODUCE, FETCH, METADATA, SASL_HANDSHAKE, API_VERSIONS, SASL_AUTHENTICATE = 0, 1, 3, 17, 18, 36
USER, PASSWORD = "hostile-test", "hostile-test-secret"
# Short bounds, so that what hangs on purpose is ended within the test's waits.
BOUNDS = {"clientFirstRequestMs": 1500, "clientFrameMs": 1500, "clientAuthenticationMs": 3000}
REFUSED = "kafka_failover_connections_refused_total"
NO_TOPICS = {"Topics": [], "AllowAutoTopicCreation": False}
VALID_REQUESTS: list[tuple[int, int, dict[str, Any]]] = [
    (METADATA, 12, {**NO_TOPICS, "IncludeTopicAuthorizedOperations": False}),
    (PRODUCE, 9, {"TransactionalId": None, "Acks": -1, "TimeoutMs": 1000, "TopicData": []}),
    (FETCH, 12, {"ReplicaId": -1, "MaxWaitMs": 100, "MinBytes": 1, "MaxBytes": 1 << 20,
                 "IsolationLevel": 0, "SessionId": 0, "SessionEpoch": -1, "Topics": [],
                 "ForgottenTopicsData": [], "RackId": ""}),
]  # fmt: skip


def encoded(api_key: int, version: int, body: dict[str, Any], correlation_id: int) -> bytes:
    spec = specs.request(api_key)
    assert spec is not None
    header = headers.encode_request_header(api_key, version, correlation_id, "hostile")
    return header + schema.encode(spec, version, body)


def mutated(rng: random.Random, payload: bytes) -> tuple[str, bytes]:
    """A mutation of a valid request (``payload``: the frame without its size) as bytes to send."""
    kind = rng.choice(["bit-flip", "truncated", "short-length", "long-length", "api", "body"])
    data = bytearray(payload)
    if kind == "bit-flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncated":
        data = data[: rng.randrange(len(data))]
    elif kind == "api":
        data[:4] = struct.pack(">hh", rng.randint(-5, 120), rng.randint(-2, 40))
    elif kind == "body":
        data = data[:12] + rng.randbytes(rng.randint(0, 300))
    size = len(data)
    if kind == "short-length":
        size = rng.randrange(len(data))  # the rest is read as the start of another frame
    elif kind == "long-length":
        size = len(data) + rng.randint(1, 5000)  # a frame that never finishes
    return kind, struct.pack(">i", size) + bytes(data)


def open_connection(address: str, tls_ca: Path | None) -> RawConnection:
    connection = RawConnection(address, timeout=10)
    if tls_ca is not None:
        context = ssl.create_default_context(cafile=str(tls_ca))
        host = networking.split_address(address)[0]
        connection.sock = context.wrap_socket(connection.sock, server_hostname=host)
    return connection


def start_session(connection: RawConnection, *, sasl: bool, authenticate: bool = True) -> None:
    """ApiVersions, then (on a SASL listener) a SaslHandshake and a SaslAuthenticate."""
    body = {"ClientSoftwareName": "hostile", "ClientSoftwareVersion": "1"}
    assert connection.request(API_VERSIONS, 3, body)["ErrorCode"] == 0
    if sasl and authenticate:
        assert connection.request(SASL_HANDSHAKE, 1, {"Mechanism": "PLAIN"})["ErrorCode"] == 0
        token = f"\0{USER}\0{PASSWORD}".encode()
        assert connection.request(SASL_AUTHENTICATE, 2, {"AuthBytes": token})["ErrorCode"] == 0


def served(connection: RawConnection) -> bool:
    answer = connection.request(
        METADATA, 12, {**NO_TOPICS, "IncludeTopicAuthorizedOperations": False}
    )
    return bool(answer["Brokers"])


def closed_by_gateway(connection: RawConnection, timeout: float) -> bool:
    """True when the gateway closed the connection within ``timeout``; answers are skipped."""
    connection.sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if connection.sock.recv(65536) == b"":
                return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except TimeoutError:
            continue
    return False


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until true; an admin API that cannot answer yet (it accepts nothing while
    the process is out of descriptors) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)


def open_descriptors(gateway: gateways.GatewayProcess) -> int:
    return len(os.listdir(f"/proc/{gateway.process.pid}/fd"))


def open_clients(gateway: gateways.GatewayProcess) -> int:
    return sum(gateway.state()["openConnections"].values())


def metric(gateway: gateways.GatewayProcess, line_start: str) -> float:
    for line in gateway.metrics().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no metric {line_start}")


@pytest.fixture
def clusters(kafka_single: Cluster, kafka_failover: Cluster) -> dict[str, str]:
    return {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}


def sasl_ssl_listener(tls: security.TlsMaterial, folder: Path) -> dict[str, Any]:
    users_path = folder / "hostile-users.yaml"
    entry = users.entry_for("PLAIN", PASSWORD)
    users_path.write_text(yaml.safe_dump({"users": {USER: {"PLAIN": entry}}}))
    return {
        "security": {
            "protocol": "SASL_SSL",
            "saslMechanisms": ["PLAIN"],
            "usersFile": str(users_path),
            "tls": {"certificate": str(tls.server_cert_pem), "key": str(tls.server_key_pem)},
        }
    }


@pytest.mark.parametrize("listener", ["plaintext", "sasl-ssl"])
def test_mutated_frames_in_the_middle_of_valid_sessions_end_only_their_own_connection(
    listener: str,
    gateway_factory: Any,
    clusters: dict[str, str],
    lab_tls: security.TlsMaterial,
    tmp_path: Path,
) -> None:
    sasl = listener == "sasl-ssl"
    extra: dict[str, Any] = {"timeouts": BOUNDS}
    if sasl:
        extra["listener"] = sasl_ssl_listener(lab_tls, tmp_path)
    gateway = gateway_factory(clusters, gateway_extra=extra, broker_port_count=4)
    ca = lab_tls.ca_pem if sasl else None
    rng = random.Random(f"hostile-{listener}")
    kinds: dict[str, int] = {}
    hostile: list[RawConnection] = []
    with open_connection(gateway.bootstrap, ca) as bystander:
        start_session(bystander, sasl=sasl)
        assert served(bystander)
        memory_before = gateway.resident_bytes()
        for number in range(60):
            connection = open_connection(gateway.bootstrap, ca)
            hostile.append(connection)
            # On the SASL listener, one session in four goes wrong before it has logged in.
            logged_in = not sasl or number % 4 != 0
            start_session(connection, sasl=sasl, authenticate=logged_in)
            if logged_in:
                assert served(connection)
            api_key, version, body = rng.choice(VALID_REQUESTS)
            kind, data = mutated(rng, encoded(api_key, version, body, 1000 + number))
            kinds[kind] = kinds.get(kind, 0) + 1
            connection.sock.sendall(data)
            if number % 10 == 9:
                assert served(bystander), f"bystander not served after {kinds}"
        closed = sum(closed_by_gateway(connection, timeout=4.0) for connection in hostile)
        assert served(bystander)
        assert gateway.is_alive()
        grown = gateway.resident_bytes() - memory_before
        for connection in hostile:
            connection.close()
        wait_until(lambda: open_clients(gateway) == 1, 20, "only the bystander left open")
        assert served(bystander)
    # Most mutations break the frame; the rest are valid requests the broker answers.
    assert closed >= 30, f"only {closed} of 60 mutated sessions were closed ({kinds})"
    assert grown < 64 * 1024 * 1024, f"resident memory grew by {grown} bytes"
    log = gateway.log_tail(2000)
    assert "bad request from client" in log
    assert "Traceback" not in log


def test_slowloris_and_half_open_connections_are_closed_at_their_bounds(
    gateway_factory: Any, clusters: dict[str, str]
) -> None:
    gateway = gateway_factory(clusters, gateway_extra={"timeouts": BOUNDS}, broker_port_count=4)
    with RawConnection(gateway.bootstrap) as bystander, RawConnection(gateway.bootstrap) as slow:
        start_session(bystander, sasl=False)
        start_session(slow, sasl=False)
        baseline = open_descriptors(gateway)
        silent = [RawConnection(gateway.bootstrap) for _ in range(100)]
        partial = [RawConnection(gateway.bootstrap) for _ in range(100)]
        for connection in partial:
            connection.sock.sendall(b"\x00\x00")  # half of a size prefix, never the rest
        payload = encoded(*VALID_REQUESTS[0], correlation_id=9)
        frame = struct.pack(">i", len(payload)) + payload
        port = slow.sock.getsockname()[1]
        slow_closed = False
        for byte in frame[:30]:  # one byte every 0.3 s: the frame bound is 1.5 s
            try:
                slow.sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                slow_closed = True
                break
            time.sleep(0.3)
        assert slow_closed or closed_by_gateway(slow, timeout=5.0)
        assert all(closed_by_gateway(c, timeout=5.0) for c in silent + partial)
        assert served(bystander)
        wait_until(lambda: open_clients(gateway) == 1, 20, "only the bystander left open")
        for connection in silent + partial:
            connection.close()
        wait_until(lambda: open_descriptors(gateway) <= baseline, 20, "descriptors back")
    assert metric(gateway, 'kafka_failover_slow_clients_closed_total{bound="first_request"}') == 200
    assert metric(gateway, 'kafka_failover_slow_clients_closed_total{bound="frame"}') == 1
    log = gateway.log_tail(400)
    assert (
        "sent no complete request within 1.5 s (gateway.timeouts.clientFirstRequestMs=1500)" in log
    )
    slow_lines = [line for line in log.splitlines() if "did not finish a frame" in line]
    assert len(slow_lines) == 1 and f":{port} " in slow_lines[0], slow_lines


def storm(address: str, count: int) -> list[socket.socket]:
    """``count`` non-blocking connects, as fast as they go (about a second on loopback)."""
    host, port = networking.split_address(address)
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        # Closed with a reset: ten thousand client sockets must not linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.connect_ex((host, port))
        sockets.append(sock)
    return sockets


@pytest.fixture
def descriptors_for_a_storm() -> Iterator[None]:
    """Ten thousand client sockets need that many descriptors in this process too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 12_000:
        pytest.skip(f"a storm needs 12000 descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 12_000), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.usefixtures("descriptors_for_a_storm")
def test_a_storm_of_ten_thousand_connects_is_refused_beyond_the_limit_and_leaves_nothing_open(
    gateway_factory: Any, clusters: dict[str, str]
) -> None:
    gateway = gateway_factory(
        clusters, gateway_extra={"limits": {"maxConnections": 300}}, broker_port_count=4
    )
    if gateway.container is not None:
        pytest.skip("reads /proc of the gateway process")
    pid = gateway.process.pid
    with RawConnection(gateway.bootstrap) as bystander:
        start_session(bystander, sasl=False)
        baseline = open_descriptors(gateway)
        # First under the limit, then with the gateway's descriptors lowered until accept and
        # dial fail with EMFILE: it must go on serving, not crash and not spin.
        for limit in (None, baseline + 100):
            if limit is not None:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
            sockets = storm(gateway.bootstrap, 10_000)
            try:
                assert served(bystander)
                if limit is None:
                    wait_until(lambda: metric(gateway, REFUSED) > 0, 30, "connections refused")
                    assert open_clients(gateway) <= 300
            finally:
                for sock in sockets:
                    sock.close()
            wait_until(lambda: open_clients(gateway) == 1, 60, "only the bystander left open")
            wait_until(lambda: open_descriptors(gateway) <= baseline, 60, "descriptors back")
            before = cpu_seconds(pid)
            time.sleep(2)
            assert cpu_seconds(pid) - before < 1.0, "the gateway keeps spinning after the storm"
            assert gateway.is_alive() and served(bystander)
        with RawConnection(gateway.bootstrap) as newcomer:
            start_session(newcomer, sasl=False)
            assert served(newcomer)
    assert metric(gateway, REFUSED) > 0
    log = gateway.log_path.read_text(errors="replace")  # whole: a tail may start after the line
    assert "Traceback" not in log
    refusal_lines = log.count("gateway.limits.maxConnections=300 reached")
    assert 0 < refusal_lines < 50, "a summary every 10 s, not a line per refused connection"
    assert "connection limit reached" not in log
