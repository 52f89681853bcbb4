"""The admin HTTP API: switch, state, health and metrics.

Why it exists: one call must switch a gateway. Runbooks written for Conduktor Gateway call
``POST /admin/pclusters/v1/pcluster/main/switch?to=failover``; the operator uses the native
``PUT /api/v1/active`` with an epoch so that a stale command can never flip a gateway back.
Both need HTTP basic auth (constant-time comparison, failures logged without the password,
slowed down and limited per client address by ``admin_guarding``); health and metrics do not, so
probes and scrapers need no credentials, and a flood of wrong passwords never stops them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from failover_gateway.config import AdminCredentials
from failover_gateway.server import admin_guarding
from failover_gateway.server.switching import FenceAnswer, SwitchRecord, SwitchRefused

log = logging.getLogger("failover_gateway.admin")

_FAILED_AUTH_DELAY_SECONDS = 0.5
_PROTECTED_PREFIXES = ("/admin/", "/api/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminBackend(Protocol):
    """What the admin API drives (implemented by the gateway runtime)."""

    async def switch(
        self, to: str, *, epoch: int | None, drain_ms: int | None, source: str
    ) -> SwitchRecord: ...

    async def planned_switch(
        self, to: str, *, epoch: int | None, drain_ms: int | None, source: str
    ) -> tuple[SwitchRecord, dict[str, Any]]: ...

    async def prepare_switchover(
        self, to: str, replication: str | None = None
    ) -> dict[str, Any]: ...

    async def unreplicated(self, source: str, target: str) -> dict[str, Any]: ...

    async def fence(self, *, max_seconds: float, drain_timeout: float) -> FenceAnswer: ...

    def lift_fence(self) -> None: ...

    @property
    def cluster_names(self) -> tuple[str, ...]: ...

    def state(self) -> dict[str, Any]: ...

    def is_ready(self) -> tuple[bool, str]: ...

    def metrics_text(self) -> bytes: ...


# What may copy the active cluster to the target of a planned switch (a failback names the
# reverse replication, which the gateway's config does not describe).
REPLICATION_KINDS = ("offsetPreserving", "mirrorMaker2")


def _credentials_match(header: str | None, expected: AdminCredentials) -> tuple[bool, str]:
    """Check a basic-auth header; returns (ok, user name for the log)."""
    if not header or not header.startswith("Basic "):
        return False, "-"
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False, "-"
    user_ok = _same_secret(user, expected.user)
    password_ok = _same_secret(password, expected.password)
    return user_ok and password_ok, user


def _same_secret(given: str, expected: str) -> bool:
    # Digests first: compare_digest takes as long for any value of one length, but leaks how
    # long the expected value is; two digests always have the same length.
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def _auth_middleware(credentials: AdminCredentials, guard: admin_guarding.AdminGuard) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(_PROTECTED_PREFIXES):
            return await handler(request)
        address = request.remote or "-"
        wait = guard.logins.retry_after(address)
        if wait is not None:
            return _error(
                429,
                f"too many failed admin logins from {address}; credentials are checked again "
                f"in {wait}s",
                headers={"Retry-After": str(wait)},
            )
        ok, user = _credentials_match(request.headers.get("Authorization"), credentials)
        if ok:
            return await handler(request)
        guard.logins.failed(address, user, f"{request.method} {request.path}")
        await asyncio.sleep(_FAILED_AUTH_DELAY_SECONDS)
        return _error(
            401,
            "missing or wrong admin credentials (HTTP basic auth)",
            headers={"WWW-Authenticate": 'Basic realm="kafka-failover"'},
        )

    return middleware


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _optional_int(raw: object, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise SwitchRefused(f"{name} must be a non-negative integer, got {raw!r}", 400)
    try:
        value = int(raw)
    except ValueError:
        raise SwitchRefused(f"{name} must be a non-negative integer, got {raw!r}", 400) from None
    if value < 0:
        raise SwitchRefused(f"{name} must be a non-negative integer, got {value}", 400)
    return value


DEFAULT_FENCE_SECONDS = 30.0
MAX_FENCE_SECONDS = 600.0
DEFAULT_FENCE_DRAIN_MS = 5000.0


def _bounded_number(raw: object, name: str, most: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw <= most:
        raise SwitchRefused(
            f"{name} must be a number above 0 and at most {most:g}, got {raw!r}", 400
        )
    return float(raw)


class _Routes:
    def __init__(self, backend: AdminBackend) -> None:
        self.backend = backend

    async def conduktor_switch(self, request: web.Request) -> web.Response:
        pcluster = request.match_info["pcluster"]
        if pcluster not in self.backend.cluster_names:
            return _error(
                404,
                f"unknown pcluster {pcluster!r}; configured clusters: "
                f"{', '.join(self.backend.cluster_names)}",
            )
        to = request.query.get("to")
        if not to:
            return _error(400, "query parameter 'to' is required, e.g. ?to=failover")
        return await self._switch(
            request,
            to,
            request.query.get("epoch"),
            request.query.get("drainMs"),
            request.query.get("mode"),
        )

    async def put_active(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except json.JSONDecodeError as error:
            return _error(
                400, f'body is not JSON: {error}; expected {{"cluster": "failover", "epoch": 3}}'
            )
        if not isinstance(body, dict) or not isinstance(body.get("cluster"), str):
            return _error(400, 'expected {"cluster": "<name>", "epoch": <int>, "drainMs": <int>}')
        if body.get("epoch") is None:
            return _error(400, "epoch is required on /api/v1/active (a non-negative integer)")
        return await self._switch(
            request, body["cluster"], body.get("epoch"), body.get("drainMs"), body.get("mode")
        )

    async def _switch(
        self, request: web.Request, to: str, epoch: object, drain: object, mode: object
    ) -> web.Response:
        source = f"{request.method} {request.path} from {request.remote}"
        try:
            if mode not in (None, "", "immediate", "planned"):
                raise SwitchRefused(f"mode must be immediate or planned, got {mode!r}", 400)
            epoch_value = _optional_int(epoch, "epoch")
            drain_ms = _optional_int(drain, "drainMs")
            if mode == "planned":
                record, report = await self.backend.planned_switch(
                    to, epoch=epoch_value, drain_ms=drain_ms, source=source
                )
                return web.json_response(record.as_json() | {"switchover": report})
            record = await self.backend.switch(
                to, epoch=epoch_value, drain_ms=drain_ms, source=source
            )
        except SwitchRefused as refused:
            log.warning("switch to %r refused: %s", to, refused)
            return _error(refused.status, str(refused))
        return web.json_response(record.as_json())

    async def put_fence(self, request: web.Request) -> web.Response:
        """Hold writes to the active cluster (a planned switchover); 200 once acknowledged,
        503 while writes forwarded before are still unanswered (the fence stays up)."""
        try:
            body = json.loads(await request.text() or "{}")
            if not isinstance(body, dict):
                raise SwitchRefused("the body must be a JSON object", 400)
            max_seconds = _bounded_number(
                body.get("maxSeconds", DEFAULT_FENCE_SECONDS), "maxSeconds", MAX_FENCE_SECONDS
            )
            drain = _bounded_number(
                body.get("drainTimeoutMs", DEFAULT_FENCE_DRAIN_MS), "drainTimeoutMs", 600_000
            )
        except json.JSONDecodeError as error:
            return _error(400, f'body is not JSON: {error}; expected {{"maxSeconds": 30}}')
        except SwitchRefused as refused:
            return _error(refused.status, str(refused))
        answer = await self.backend.fence(max_seconds=max_seconds, drain_timeout=drain / 1000)
        log.info(
            "writes to %s fenced for at most %gs by %s: %s",
            answer.cluster,
            max_seconds,
            request.remote,
            "acknowledged" if answer.acknowledged else f"{answer.writes_in_flight} still in flight",
        )
        return web.json_response(answer.as_json(), status=200 if answer.acknowledged else 503)

    async def prepare_switchover(self, request: web.Request) -> web.Response:
        """The planned switch's middle steps (consumers finish, catch up, hand offsets off) on a
        gateway the caller fenced, as every other one: the operator's multi-pod switchover."""
        try:
            body = json.loads(await request.text() or "{}")
        except json.JSONDecodeError as error:
            return _error(400, f'body is not JSON: {error}; expected {{"to": "failover"}}')
        if not isinstance(body, dict) or not isinstance(body.get("to"), str):
            return _error(400, 'expected {"to": "<cluster>"}')
        replication = body.get("replication")
        if replication not in (None, *REPLICATION_KINDS):
            return _error(
                400,
                f"replication {replication!r} is not one of {', '.join(REPLICATION_KINDS)} "
                "(what copies the active cluster to the target; omit it for the configured one)",
            )
        try:
            report = await self.backend.prepare_switchover(body["to"], replication)
        except SwitchRefused as refused:
            log.warning("switchover to %r not prepared: %s", body["to"], refused)
            return _error(refused.status, str(refused))
        return web.json_response(report)

    async def delete_fence(self, request: web.Request) -> web.Response:
        self.backend.lift_fence()
        log.info("write fence lifted by %s", request.remote)
        return web.json_response({"fenced": False})

    async def unreplicated(self, request: web.Request) -> web.Response:
        """Records the cluster ``from`` holds that ``to`` never got (an unplanned switch's
        RPO, counted once the cluster left answers again)."""
        source, target = request.query.get("from"), request.query.get("to")
        if not source or not target:
            return _error(400, "expected ?from=<cluster left>&to=<cluster serving now>")
        try:
            return web.json_response(await self.backend.unreplicated(source, target))
        except SwitchRefused as refused:
            return _error(refused.status, str(refused))

    async def state(self, _: web.Request) -> web.Response:
        return web.json_response(self.backend.state())

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, _: web.Request) -> web.Response:
        ready, why = self.backend.is_ready()
        return web.json_response({"ready": ready, "reason": why}, status=200 if ready else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=self.backend.metrics_text(), content_type="text/plain", charset="utf-8"
        )


def build_app(
    backend: AdminBackend, credentials: AdminCredentials, guard: admin_guarding.AdminGuard
) -> web.Application:
    """The admin app; serve it with ``admin_guarding.serve`` for the connection deadline.

    Credentials are checked before any body is read, so an unauthenticated client never has
    its body read, whatever its size."""
    routes = _Routes(backend)
    app = web.Application(
        middlewares=[guard.track, _auth_middleware(credentials, guard), guard.read_body],
        client_max_size=guard.config.max_body_bytes,
    )
    app.cleanup_ctx.append(guard.summarizing)
    app.router.add_post("/admin/pclusters/v1/pcluster/{pcluster}/switch", routes.conduktor_switch)
    app.router.add_put("/api/v1/active", routes.put_active)
    app.router.add_put("/api/v1/fence", routes.put_fence)
    app.router.add_delete("/api/v1/fence", routes.delete_fence)
    app.router.add_post("/api/v1/switchover/prepare", routes.prepare_switchover)
    app.router.add_get("/api/v1/state", routes.state)
    app.router.add_get("/api/v1/replication/unreplicated", routes.unreplicated)
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/readyz", routes.readyz)
    app.router.add_get("/metrics", routes.metrics)
    return app
