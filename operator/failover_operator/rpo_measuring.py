"""The RPO of an unplanned or automatic switch, counted once the cluster left answers again.

Why it exists: when main dies, nobody can count what MirrorMaker had not copied yet: main cannot
be read. When it comes back, a gateway pod can count it exactly
(``GET /api/v1/replication/unreplicated``; :mod:`failover_gateway.server.unreplicated`). This
step of the drift check asks one ready pod while ``status.leftUnplanned`` names a cluster not
counted yet, with MirrorMaker 2 declared as the replication into the cluster serving now. It
writes ``status.unreplicated`` (cluster, records, per partition, when), puts the count in
``lastSwitch.rpoRecords`` when that switch left the cluster, and posts an Event. It counts once
per cluster left. A cluster still down just leaves the step for the next check.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from failover_operator import failback, model, pod_switching, reconciling
from failover_operator.status import now_iso

log = logging.getLogger("failover_operator")
COUNT_TIMEOUT_SECONDS = 20.0


async def measure_if_needed(
    namespace: str, name: str, events_for: Callable[[Mapping[str, Any]], reconciling.Events]
) -> None:
    current = await reconciling.read_current(namespace, name)
    if current is None:
        return
    target, spec = current
    status = dict(target.body.get("status") or {})
    left, serving = status.get("leftUnplanned"), status.get("activeCluster")
    if not left or not serving or (status.get("unreplicated") or {}).get("cluster") == left:
        return
    if failback.covering(spec, serving) != "mirrorMaker2":
        return  # only MirrorMaker 2's copies can be told from the serving cluster's own writes
    pods = await reconciling.ready_gateways(target)
    if not pods:
        return
    credentials, _ = await reconciling.credentials_and_secrets(target, spec)
    counted = await _count(pods[0], credentials, spec, left, serving)
    if counted is None:
        return
    await _record(namespace, name, left, counted, events_for)


async def _count(
    pod: pod_switching.GatewayPod,
    credentials: pod_switching.Credentials,
    spec: model.KafkaFailoverSpec,
    left: str,
    serving: str,
) -> dict[str, Any] | None:
    query = urllib.parse.urlencode({"from": left, "to": serving})
    url = pod_switching.pod_url(
        pod, spec.gateway.admin_port, f"/api/v1/replication/unreplicated?{query}"
    )
    headers = pod_switching.auth_headers(credentials)
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            status, answer = await pod_switching.call_json(
                session, "GET", url, None, COUNT_TIMEOUT_SECONDS
            )
    except (aiohttp.ClientError, TimeoutError, ValueError) as failure:
        log.info("records left on %s not counted yet: %s", left, failure)
        return None
    if status != 200:
        log.info("records left on %s not counted yet: %s", left, answer.get("error", status))
        return None
    return answer


async def _record(
    namespace: str,
    name: str,
    left: str,
    counted: Mapping[str, Any],
    events_for: Callable[[Mapping[str, Any]], reconciling.Events],
) -> None:
    async with reconciling.lock_named(namespace, name):
        current = await reconciling.read_current(namespace, name)
        if current is None:
            return
        target, _ = current
        previous = reconciling.previous_status(target, target.body.get("status"))
        if previous.get("leftUnplanned") != left:
            return  # failed back meanwhile
        records = int(counted.get("records", 0))
        status = dict(previous) | {
            "unreplicated": {
                "cluster": left,
                "records": records,
                "partitions": dict(counted.get("partitions") or {}),
                "measuredAt": now_iso(),
            }
        }
        last = previous.get("lastSwitch")
        if isinstance(last, Mapping) and last.get("from") == left:
            status["lastSwitch"] = dict(last) | {"rpoRecords": records}
        await reconciling.write_status(target, status)
    events_for(target.body).warn(
        "UnreplicatedRecordsCounted",
        f"{left} answers again: it holds {records} record(s) the cluster serving now never got "
        "(the RPO of the switch that left it; fail back over reverse replication to keep them)",
    )
