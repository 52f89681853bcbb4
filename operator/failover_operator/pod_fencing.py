"""The gateway admin calls of a planned switch: fence, prepare, check the fence, lift it.

Why it exists: with several gateway pods, a planned switch is only lossless when no pod writes to
the old cluster after the fenced end offsets are read. So every pod is fenced first, each on its
own task with retries until the one deadline (a pod answers 503 while writes it forwarded are
still unanswered); one fenced pod then prepares the switch (consumers finish, catch up, hand
offsets off: ``POST /api/v1/switchover/prepare``); before anything is switched every ready pod is
asked again whether it still holds the fence (a pod restarted or added in between does not, and
the switch aborts); an abort lifts the fence on every pod. The calls share
:mod:`.pod_switching`'s session, credentials and URL rules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from failover_operator.pod_switching import (
    Credentials,
    GatewayPod,
    auth_headers,
    call_json,
    pod_url,
)

_FIRST_BACKOFF_SECONDS = 0.1
_MAX_BACKOFF_SECONDS = 1.0
_REQUEST_TIMEOUT_SECONDS = 2.0
_LIFT_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class FenceOutcome:
    """How one pod answered the fence: acknowledged (no write of it reaches the old cluster)."""

    pod: str
    acknowledged: bool
    duration_ms: float
    attempts: int
    error: str | None = None


@dataclass(frozen=True)
class Prepared:
    """What the preparing pod answered: its report, or why the switch must not go on."""

    pod: str
    ok: bool
    report: dict[str, Any]
    reason: str = ""


def _failure(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".rstrip(": ")


async def fence_pod(
    session: aiohttp.ClientSession,
    pod: GatewayPod,
    *,
    port: int,
    max_seconds: float,
    drain_ms: int,
    deadline: float,
) -> FenceOutcome:
    """Fence one pod, retrying until it acknowledges or ``deadline`` (``time.monotonic()``)."""
    started, attempts, backoff, error = time.monotonic(), 0, _FIRST_BACKOFF_SECONDS, "not tried"
    body = {"maxSeconds": max_seconds, "drainTimeoutMs": drain_ms}
    url = pod_url(pod, port, "/api/v1/fence")
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            status, answer = await call_json(
                session, "PUT", url, body, max(0.05, min(_REQUEST_TIMEOUT_SECONDS, remaining))
            )
        except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
            error = _failure(failure)
        else:
            elapsed = (time.monotonic() - started) * 1000
            if status == 200:
                return FenceOutcome(pod.name, True, elapsed, attempts)
            if status == 503:
                error = f"{answer.get('writesInFlight', '?')} write(s) still unanswered"
            else:
                error = f"HTTP {status}: {answer.get('error', answer)}"
                if status in (400, 401, 403, 404):
                    return FenceOutcome(pod.name, False, elapsed, attempts, error)
        if time.monotonic() + backoff >= deadline:
            elapsed = (time.monotonic() - started) * 1000
            return FenceOutcome(pod.name, False, elapsed, attempts, error)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)


async def fence_all(
    pods: Sequence[GatewayPod],
    *,
    credentials: Credentials,
    port: int,
    max_seconds: float,
    drain_ms: int,
    deadline: float,
) -> list[FenceOutcome]:
    """Fence every pod at once, each on its own; one outcome per pod, in the order given."""
    async with aiohttp.ClientSession(headers=auth_headers(credentials)) as session:
        calls = [
            fence_pod(
                session,
                pod,
                port=port,
                max_seconds=max_seconds,
                drain_ms=drain_ms,
                deadline=deadline,
            )
            for pod in pods
        ]
        return list(await asyncio.gather(*calls))


async def prepare(
    pod: GatewayPod,
    *,
    credentials: Credentials,
    port: int,
    to: str,
    timeout: float,
    replication: str | None = None,
) -> Prepared:
    """Ask one fenced pod to prepare the switch to ``to``; no retry (an abort is an answer)."""
    url = pod_url(pod, port, "/api/v1/switchover/prepare")
    try:
        async with aiohttp.ClientSession(headers=auth_headers(credentials)) as session:
            body = {"to": to} if replication is None else {"to": to, "replication": replication}
            status, answer = await call_json(session, "POST", url, body, timeout)
    except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
        return Prepared(pod.name, False, {}, f"{pod.name} did not answer: {_failure(failure)}")
    if status == 200:
        return Prepared(pod.name, True, answer)
    return Prepared(pod.name, False, answer, str(answer.get("error", f"HTTP {status}")))


async def unfenced(
    pods: Sequence[GatewayPod], *, credentials: Credentials, port: int, timeout: float
) -> list[str]:
    """The pods that do not hold the fence now (or did not say), each as "name: why"."""

    async def check(session: aiohttp.ClientSession, pod: GatewayPod) -> str | None:
        try:
            status, state = await call_json(
                session, "GET", pod_url(pod, port, "/api/v1/state"), None, timeout
            )
        except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
            return f"{pod.name}: {_failure(failure)}"
        fence = state.get("writeFence") or {}
        if status != 200 or not fence.get("fenced"):
            return f"{pod.name}: writes not fenced (restarted or added during the switch?)"
        return None

    async with aiohttp.ClientSession(headers=auth_headers(credentials)) as session:
        found = await asyncio.gather(*(check(session, pod) for pod in pods))
    return [item for item in found if item is not None]


async def lift_all(pods: Sequence[GatewayPod], *, credentials: Credentials, port: int) -> list[str]:
    """Lift the fence on every pod (an abort); the pods that could not be told, as "name: why"
    (their fence lifts itself at its limit)."""

    async def lift(session: aiohttp.ClientSession, pod: GatewayPod) -> str | None:
        try:
            status, answer = await call_json(
                session,
                "DELETE",
                pod_url(pod, port, "/api/v1/fence"),
                None,
                _LIFT_TIMEOUT_SECONDS,
            )
        except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
            return f"{pod.name}: {_failure(failure)}"
        return None if status == 200 else f"{pod.name}: HTTP {status}: {answer.get('error')}"

    async with aiohttp.ClientSession(headers=auth_headers(credentials)) as session:
        found = await asyncio.gather(*(lift(session, pod) for pod in pods))
    return [item for item in found if item is not None]
