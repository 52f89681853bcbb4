"""The admin API under abuse, served as the gateway serves it, against a fake backend: oversized
and slow bodies, slowloris headers, idle keep-alive connections and floods of wrong passwords
are bounded, and health probes, metrics and the right password from elsewhere keep working."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from failover_gateway.config import AdminConfig, AdminCredentials
from failover_gateway.server import admin_api, admin_guarding, metrics
from failover_gateway.server.switching import FenceAnswer, SwitchRecord

CREDENTIALS = AdminCredentials("admin", "right-password-4c1e")
WAIT = 10.0  # every wait of these tests ends by then


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


RIGHT = basic(CREDENTIALS.user, CREDENTIALS.password)
WRONG = basic(CREDENTIALS.user, "guess")


class FakeBackend:
    """Answers every admin call at once; the guards are what is under test."""

    cluster_names = ("main", "failover")
    traffic = metrics.Traffic()

    async def switch(
        self, to: str, *, epoch: int | None, drain_ms: int | None, source: str
    ) -> SwitchRecord:
        return SwitchRecord("main", to, epoch or 0, True, 0, 0.0, 1.0, source)

    async def planned_switch(self, *_: Any, **__: Any) -> Any:
        raise NotImplementedError

    async def prepare_switchover(self, *_: Any) -> dict[str, Any]:
        raise NotImplementedError

    async def unreplicated(self, *_: Any) -> dict[str, Any]:
        raise NotImplementedError

    async def fence(self, *, max_seconds: float, drain_timeout: float) -> FenceAnswer:
        raise NotImplementedError

    def lift_fence(self) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {"active": "main"}

    def is_ready(self) -> tuple[bool, str]:
        return True, "listeners bound"

    def metrics_text(self) -> bytes:
        registry = metrics.build_registry(
            self.traffic, lambda: metrics.Snapshot(0, "main", (), {}, {})
        )
        return metrics.render(registry)


@dataclass
class Served:
    port: int
    guard: admin_guarding.AdminGuard
    counts: metrics.AdminAbuse


def make_app(config: AdminConfig, **guard_options: Any) -> tuple[web.Application, FakeBackend]:
    backend = FakeBackend()
    backend.traffic = metrics.Traffic()
    guard = admin_guarding.AdminGuard(config, backend.traffic.admin, **guard_options)
    return admin_api.build_app(backend, CREDENTIALS, guard), backend


def put_head(length: int, authorization: str = RIGHT["Authorization"]) -> bytes:
    """The head of a PUT /api/v1/active whose body is ``length`` bytes long."""
    return (
        b"PUT /api/v1/active HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: {authorization}\r\nContent-Length: {length}\r\n\r\n".encode()
    )


@pytest.fixture
async def serve_admin() -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    """The admin API served as the gateway serves it (admin_guarding.serve), on a free port."""
    stops: list[tuple[asyncio.Server, web.AppRunner]] = []

    async def start(ssl_context: ssl.SSLContext | None = None, **config: Any) -> Served:
        admin = AdminConfig.model_validate(config)
        backend = FakeBackend()
        backend.traffic = metrics.Traffic()
        guard = admin_guarding.AdminGuard(admin, backend.traffic.admin)
        runner = web.AppRunner(admin_api.build_app(backend, CREDENTIALS, guard), access_log=None)
        await runner.setup()
        server = await admin_guarding.serve(
            runner, guard, host="127.0.0.1", port=0, ssl_context=ssl_context
        )
        stops.append((server, runner))
        return Served(server.sockets[0].getsockname()[1], guard, backend.traffic.admin)

    yield start
    for server, runner in stops:
        server.close()
        await runner.cleanup()


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., Awaitable[TestClient[Any, Any]]]]:
    """aiohttp's test client in front of the admin app (bodies and credentials)."""
    clients: list[TestClient[Any, Any]] = []

    async def start(**options: Any) -> TestClient[Any, Any]:
        guard_options = {k: options.pop(k) for k in ("summary_interval",) if k in options}
        app, _ = make_app(AdminConfig.model_validate(options), **guard_options)
        started: TestClient[Any, Any] = TestClient(TestServer(app))
        await started.start_server()
        clients.append(started)
        return started

    yield start
    for started in clients:
        await started.close()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP answer read off a raw connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await asyncio.wait_for(reader.readexactly(length), WAIT)


async def exchange(port: int, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` on a new connection; the status and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await read_answer(reader)
    finally:
        writer.close()


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), WAIT) == b""
    except ConnectionResetError:
        return True


async def probe(port: int, path: str) -> int:
    """The status a health probe (no credentials) gets."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as answer,
    ):
        return answer.status


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


# Bodies


async def test_a_body_declared_over_the_limit_gets_413_naming_the_limit_before_it_is_sent(
    serve_admin: Callable[..., Awaitable[Served]],
) -> None:
    served = await serve_admin(maxBodyBytes=4096)
    status, body = await exchange(served.port, put_head(10_000_000) + b'{"cluster"')
    assert status == 413
    assert "over the admin API's limit of 4096 bytes (gateway.admin.maxBodyBytes)" in body.decode()
    assert "10000000 bytes" in body.decode()
    assert served.counts.refused["body_too_large"] == 1


async def test_a_chunked_body_is_refused_with_413_once_it_passes_the_limit(
    client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    admin = await client(maxBodyBytes=2048)

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):  # far more than the limit, never all needed
            yield b"x" * 1024

    answer = await admin.put("/api/v1/active", data=endless(), headers=RIGHT)
    assert answer.status == 413
    assert "limit of 2048 bytes" in (await answer.json())["error"]


async def test_a_body_within_the_limit_reaches_its_handler(
    client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    admin = await client(maxBodyBytes=1024)
    answer = await admin.put(
        "/api/v1/active", json={"cluster": "failover", "epoch": 3}, headers=RIGHT
    )
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["to"] == "failover"


async def test_an_unauthenticated_client_gets_401_before_its_body_is_looked_at(
    serve_admin: Callable[..., Awaitable[Served]],
) -> None:
    served = await serve_admin(maxBodyBytes=4096)
    status, _ = await exchange(served.port, put_head(10_000_000, WRONG["Authorization"]))
    assert status == 401
    assert served.counts.refused["body_too_large"] == 0


async def test_a_slow_body_gets_408_while_health_probes_are_answered(
    serve_admin: Callable[..., Awaitable[Served]],
) -> None:
    served = await serve_admin(bodyTimeoutMs=500)
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(put_head(40) + b"{")
    assert await probe(served.port, "/healthz") == 200
    status, body = await read_answer(reader)
    assert status == 408
    assert "did not arrive within 0.5s (gateway.admin.bodyTimeoutMs)" in body.decode()
    assert served.counts.refused["body_too_slow"] == 1
    writer.close()


# Connections


async def test_headers_sent_one_byte_at_a_time_are_cut_off_while_others_are_answered(
    serve_admin: Callable[..., Awaitable[Served]],
) -> None:
    served = await serve_admin(keepaliveTimeoutMs=500)
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    headers = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200

    async def dribble() -> None:
        for byte in headers:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    dribbling = asyncio.create_task(dribble())
    assert await probe(served.port, "/readyz") == 200
    assert await closed_by_peer(reader)
    assert not dribbling.done(), "the connection must end before its headers do"
    dribbling.cancel()
    assert served.counts.connections_timed_out == 1
    writer.close()


async def test_idle_keepalive_connections_are_closed_and_their_descriptors_come_back(
    serve_admin: Callable[..., Awaitable[Served]],
) -> None:
    served = await serve_admin(keepaliveTimeoutMs=2000)
    baseline = open_descriptors()
    connections = []
    for number in range(100):  # half answered once and kept alive, half never asking
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        if number % 2:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_answer(reader))[0] == 200
        connections.append((reader, writer))
    for reader, _ in connections:
        assert await closed_by_peer(reader)
    for _, writer in connections:
        writer.close()
        await writer.wait_closed()
    assert served.guard.connections == {}
    assert served.counts.connections_timed_out == 100
    assert open_descriptors() <= baseline


async def test_a_long_request_is_not_cut_off_by_the_header_deadline(
    serve_admin: Callable[..., Awaitable[Served]],
) -> None:
    served = await serve_admin(keepaliveTimeoutMs=300, bodyTimeoutMs=2000)
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    body = b'{"cluster": "failover", "epoch": 1}'
    writer.write(put_head(len(body)))
    await asyncio.sleep(0.6)  # past the header deadline, inside the body's time
    writer.write(body)
    status, answer = await read_answer(reader)
    assert status == 200, answer
    writer.close()


async def test_over_tls_the_admin_api_answers_and_still_cuts_off_silent_connections(
    serve_admin: Callable[..., Awaitable[Served]], certificate_authority: trustme.CA
) -> None:
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_side)
    client_side = ssl.create_default_context()
    certificate_authority.configure_trust(client_side)
    served = await serve_admin(ssl_context=server_side, keepaliveTimeoutMs=500)
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port, ssl=client_side)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_answer(reader))[0] == 200
    silent, _ = await asyncio.open_connection("127.0.0.1", served.port, ssl=client_side)
    assert await closed_by_peer(silent)
    assert await closed_by_peer(reader)
    assert served.counts.connections_timed_out == 2
    writer.close()


# Credentials


async def test_wrong_passwords_beyond_the_burst_get_429_without_the_password_being_checked(
    client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    admin = await client(authFailureBurst=3, authFailuresPerMinute=1)
    wrong = await asyncio.gather(*(admin.get("/api/v1/state", headers=WRONG) for _ in range(3)))
    assert [answer.status for answer in wrong] == [401, 401, 401]
    refused = await admin.get("/api/v1/state", headers=RIGHT)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "too many failed admin logins from 127.0.0.1" in (await refused.json())["error"]
    text = await (await admin.get("/metrics")).text()
    assert "kafka_failover_admin_auth_failures_total 3.0" in text
    assert "kafka_failover_admin_auth_throttled_total 1.0" in text


async def test_a_password_flood_leaves_probes_metrics_and_other_addresses_working(
    client: Callable[..., Awaitable[TestClient[Any, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="failover_gateway.admin")
    admin = await client(authFailureBurst=5)  # one summary a minute: the one at the stop
    flood = asyncio.gather(*(admin.get("/api/v1/state", headers=WRONG) for _ in range(1000)))
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await admin.get(path)).status == 200
    statuses = [answer.status for answer in await flood]
    assert statuses.count(401) == 5 and statuses.count(429) == 995
    local = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=local) as elsewhere,
        elsewhere.get(admin.make_url("/api/v1/state"), headers=RIGHT) as answer,
    ):
        assert answer.status == 200
        assert (await answer.json())["active"] == "main"
    await admin.close()
    lines = [r.getMessage() for r in caplog.records if "admin auth" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].startswith("admin auth failed from 127.0.0.1 for user 'admin'")
    assert lines[1].startswith("admin auth from 127.0.0.1 in the last 60s: 4 more failures, "
                               "995 refused with 429")  # fmt: skip
    assert "guess" not in caplog.text


async def test_failures_are_summed_up_once_per_interval_while_a_flood_lasts(
    client: Callable[..., Awaitable[TestClient[Any, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="failover_gateway.admin")
    admin = await client(authFailureBurst=2, summary_interval=0.2)
    for _ in range(3):
        await asyncio.gather(*(admin.get("/api/v1/state", headers=WRONG) for _ in range(5)))
        await wait_for_log(caplog, "refused with 429")
        caplog.clear()
    assert (await admin.get("/api/v1/state", headers=RIGHT)).status == 429
    summary = await wait_for_log(caplog, "refused with 429")
    assert (
        summary == "admin auth from 127.0.0.1 in the last 0.2s: 0 more failures, 1 refused with 429"
    )


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> str:
    async with asyncio.timeout(WAIT):
        while True:
            for record in caplog.records:
                if text in record.getMessage():
                    return record.getMessage()
            await asyncio.sleep(0.05)
