"""Switching every gateway pod through its admin API, in parallel, with retries and a deadline.

Why it exists: a switch is only done when every ready pod serves the new cluster. Every pod is
its own task (:func:`converge_each`): its state read, its switch call and its retries wait for
nothing another pod does, and what follows (an Event, fencing) runs the moment that pod is
settled, so ten pods switch in about the time of one and a hung pod delays only itself. Each
call is retried with exponential backoff until the pod acknowledges or the one deadline, taken
when the convergence starts, passes. The epoch sent is the KafkaFailover's
``metadata.generation``, so a delayed retry of an older switch is refused by the pod (409)
instead of flipping it back. Reading a pod's state uses the same client.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

_FIRST_BACKOFF_SECONDS = 0.1
_MAX_BACKOFF_SECONDS = 1.0
_REQUEST_TIMEOUT_SECONDS = 2.0
# Wrong credentials or a malformed command will not fix themselves by retrying.
_NOT_RETRIED = frozenset({400, 401, 403})
NOT_LEADER = "not switched: this operator no longer holds its leader Lease"


@dataclass(frozen=True)
class GatewayPod:
    name: str
    ip: str


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<hidden>)"


@dataclass(frozen=True)
class PodOutcome:
    """How one pod answered: acknowledged (it serves ``cluster`` at ``epoch`` or newer) or not."""

    pod: str
    acknowledged: bool
    cluster: str | None
    epoch: int | None
    attempts: int
    duration_ms: float
    error: str | None = None
    superseded: bool = False  # the pod already holds a newer epoch: never fence it for that
    already: bool = False  # it served (cluster, epoch) when read: nothing was sent


def auth_headers(credentials: Credentials) -> dict[str, str]:
    token = base64.b64encode(f"{credentials.user}:{credentials.password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def pod_url(pod: GatewayPod, port: int, path: str) -> str:
    host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
    return f"http://{host}:{port}{path}"


async def call_json(
    session: aiohttp.ClientSession, method: str, url: str, body: object, timeout: float
) -> tuple[int, dict[str, Any]]:
    """One admin API call: its status and JSON object answer ({} when it is not an object)."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with session.request(method, url, json=body, timeout=client_timeout) as response:
        payload = await response.json(content_type=None)
        return response.status, payload if isinstance(payload, dict) else {}


async def switch_pod(
    session: aiohttp.ClientSession,
    pod: GatewayPod,
    *,
    port: int,
    cluster: str,
    epoch: int,
    drain_ms: int,
    deadline: float,
    may_act: Callable[[], bool] = lambda: True,
) -> PodOutcome:
    """Call one pod until it acknowledges, refuses as superseded, or the deadline passes.

    ``may_act`` is asked before every call (the operator's leadership guard): once it says no,
    the pod is left alone and reported not acknowledged."""
    started, attempts, backoff, error = time.monotonic(), 0, _FIRST_BACKOFF_SECONDS, "not tried"
    body: dict[str, object] = {"cluster": cluster, "epoch": epoch, "drainMs": drain_ms}
    url = pod_url(pod, port, "/api/v1/active")
    while True:
        if not may_act():
            elapsed = (time.monotonic() - started) * 1000
            return PodOutcome(pod.name, False, None, None, attempts, elapsed, NOT_LEADER)
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            status, answer = await call_json(
                session, "PUT", url, body, max(0.05, min(_REQUEST_TIMEOUT_SECONDS, remaining))
            )
        except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
            error = f"{type(failure).__name__}: {failure}".rstrip(": ")
        else:
            elapsed = (time.monotonic() - started) * 1000
            if status == 200:
                return PodOutcome(pod.name, True, cluster, epoch, attempts, elapsed)
            if status == 409:
                return PodOutcome(
                    pod.name,
                    False,
                    None,
                    None,
                    attempts,
                    elapsed,
                    f"refused: {answer.get('error')}",
                    superseded=True,
                )
            error = f"HTTP {status}: {answer.get('error', answer)}"
            if status in _NOT_RETRIED:
                return PodOutcome(pod.name, False, None, None, attempts, elapsed, error)
        if time.monotonic() + backoff >= deadline:
            elapsed = (time.monotonic() - started) * 1000
            return PodOutcome(pod.name, False, None, None, attempts, elapsed, error)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)


async def switch_all(
    pods: Iterable[GatewayPod],
    *,
    credentials: Credentials,
    port: int,
    cluster: str,
    epoch: int,
    drain_ms: int,
    timeout: float,
) -> list[PodOutcome]:
    """Switch every pod in parallel; one outcome per pod, in the order given."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers=auth_headers(credentials)) as session:
        return list(
            await asyncio.gather(
                *(
                    switch_pod(
                        session,
                        pod,
                        port=port,
                        cluster=cluster,
                        epoch=epoch,
                        drain_ms=drain_ms,
                        deadline=deadline,
                    )
                    for pod in pods
                )
            )
        )


def serves(state: tuple[str | None, int | None, str | None], cluster: str, epoch: int) -> bool:
    """Whether a state read (:func:`read_state`) says the pod serves ``cluster`` at ``epoch``+."""
    active, pod_epoch, error = state
    return error is None and active == cluster and (pod_epoch or 0) >= epoch


async def converge_each(
    pods: Sequence[GatewayPod],
    *,
    credentials: Credentials,
    port: int,
    cluster: str,
    epoch: int,
    drain_ms: int,
    deadline: float,
    state_timeout: float,
    settled: Callable[[PodOutcome], Awaitable[None]],
    may_act: Callable[[], bool] = lambda: True,
    read_first: bool = True,
) -> list[PodOutcome]:
    """Bring every pod to (cluster, epoch), each on its own: read its state, switch it unless it
    already serves, retry until ``deadline`` (``time.monotonic()``); ``settled`` runs for a pod
    as soon as that pod's outcome is known. One outcome per pod, in the order given.

    Without ``read_first`` every pod is sent the switch at once, a round trip sooner: what a
    change of ``spec.active`` wants (a pod already there acknowledges without closing anything);
    the drift check reads first so that it sends nothing to pods that are fine."""

    async def already_there(session: aiohttp.ClientSession, pod: GatewayPod) -> bool:
        remaining = max(0.05, deadline - time.monotonic())
        state = await read_state(session, pod, port, min(state_timeout, remaining))
        return serves(state, cluster, epoch)

    async def one(session: aiohttp.ClientSession, pod: GatewayPod) -> PodOutcome:
        if read_first and await already_there(session, pod):
            outcome = PodOutcome(pod.name, True, cluster, epoch, 0, 0.0, already=True)
        else:
            outcome = await switch_pod(
                session, pod, port=port, cluster=cluster, epoch=epoch, drain_ms=drain_ms,
                deadline=deadline, may_act=may_act,
            )  # fmt: skip
        await settled(outcome)
        return outcome

    async with aiohttp.ClientSession(headers=auth_headers(credentials)) as session:
        return list(await asyncio.gather(*(one(session, pod) for pod in pods)))


async def state_document(
    session: aiohttp.ClientSession, pod: GatewayPod, port: int, timeout: float
) -> tuple[dict[str, Any] | None, str | None]:
    """The pod's ``/api/v1/state``, or None and why not."""
    try:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        url = pod_url(pod, port, "/api/v1/state")
        async with session.get(url, timeout=client_timeout) as answer:
            if answer.status != 200:
                return None, f"HTTP {answer.status}"
            state = await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
        return None, f"{type(failure).__name__}: {failure}".rstrip(": ")
    return (state, None) if isinstance(state, dict) else (None, "not a JSON object")


async def read_state(
    session: aiohttp.ClientSession, pod: GatewayPod, port: int, timeout: float
) -> tuple[str | None, int | None, str | None]:
    """(active cluster, epoch, error) from the pod's ``/api/v1/state``."""
    state, error = await state_document(session, pod, port, timeout)
    if state is None:
        return None, None, error
    return state.get("active"), state.get("epoch"), None
