"""The admin API of a real gateway process under abuse: an oversized body, slowloris and idle
keep-alive connections, and a flood of wrong passwords. The gateway's clusters are never
reached (nothing listens at their addresses): the admin port must hold on its own."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import time

from conftest import GatewayFactory
from kafka_testbed import gateways

WAIT = 10.0
LIMITS = {"maxBodyBytes": 4096, "keepaliveTimeoutMs": 1500, "authFailureBurst": 3}


def start(gateway_factory: GatewayFactory) -> gateways.GatewayProcess:
    return gateway_factory(
        {"main": "127.0.0.1:1", "failover": "127.0.0.1:2"}, gateway_extra={"admin": LIMITS}
    )


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"{gateways.ADMIN_USER}:{password}".encode()).decode()


def ask(
    gateway: gateways.GatewayProcess,
    path: str,
    password: str | None = None,
    source: str = "127.0.0.1",
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(
        gateway.host, gateway.admin_port, timeout=WAIT, source_address=(source, 0)
    )
    headers = {} if password is None else {"Authorization": basic(password)}
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer


def raw(gateway: gateways.GatewayProcess, data: bytes) -> socket.socket:
    sock = socket.create_connection((gateway.host, gateway.admin_port), timeout=WAIT)
    sock.sendall(data)
    return sock


def closed_by_gateway(sock: socket.socket) -> bool:
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except ConnectionResetError:
        return True
    finally:
        sock.close()


def descriptors(gateway: gateways.GatewayProcess) -> int:
    return len(os.listdir(f"/proc/{gateway.process.pid}/fd"))


def test_an_oversized_admin_body_gets_413_naming_the_limit(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = start(gateway_factory)
    sock = raw(
        gateway,
        b"PUT /api/v1/active HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n"
        + f"Authorization: {basic(gateways.ADMIN_PASSWORD)}\r\n\r\n".encode(),
    )
    answer = sock.recv(65536).decode()
    sock.close()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "limit of 4096 bytes (gateway.admin.maxBodyBytes)" in answer
    assert gateway.state()["active"] == "main"


def test_slow_and_idle_admin_connections_end_and_give_their_descriptors_back(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = start(gateway_factory)
    baseline = descriptors(gateway)
    slow = [raw(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a") for _ in range(100)]
    idle = [raw(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") for _ in range(100)]
    for sock in idle:
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert descriptors(gateway) >= baseline + 100
    assert ask(gateway, "/readyz").status == 200
    assert all(closed_by_gateway(sock) for sock in slow + idle)
    deadline = time.monotonic() + WAIT
    while descriptors(gateway) > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert descriptors(gateway) <= baseline
    assert "kafka_failover_admin_connections_timed_out_total 200.0" in gateway.metrics()


def test_a_wrong_password_flood_is_throttled_and_probes_and_other_addresses_still_work(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = start(gateway_factory)
    statuses = [ask(gateway, "/api/v1/state", "guess-1f0b").status for _ in range(300)]
    assert statuses[:3] == [401, 401, 401] and set(statuses[3:]) == {429}
    throttled = ask(gateway, "/api/v1/state", gateways.ADMIN_PASSWORD)
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) >= 1
    for path in ("/healthz", "/readyz", "/metrics"):
        assert ask(gateway, path).status == 200
    elsewhere = ask(gateway, "/api/v1/state", gateways.ADMIN_PASSWORD, source="127.0.0.2")
    assert elsewhere.status == 200
    text = gateway.metrics()
    assert "kafka_failover_admin_auth_failures_total 3.0" in text
    assert "kafka_failover_admin_auth_throttled_total 298.0" in text
    log = gateway.log_tail(500)
    assert log.count("admin auth failed") == 1, "the rest is summed up once a minute"
    assert log.count("refused with 429") <= 2
    assert "guess-1f0b" not in log
