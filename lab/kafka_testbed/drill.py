"""``make drill``: a DR drill with MirrorMaker 2, a switch under load, and counted loss.

Why it exists: "nothing lost" is only worth something when counted from the data. This runs the
two runbooks of DESIGN.md against real processes: two Apache Kafka clusters (main: node 1,
failover: node 7), MirrorMaker 2 replicating main -> failover (:mod:`kafka_testbed.mirroring`,
``IdentityReplicationPolicy``, group offset sync), the gateway, idempotent producers writing
sequence-numbered records at a steady rate and a consumer group committing offsets, all clients
through the gateway.

- ``planned``: the product's planned switchover (issue 16) while the producers and the group go
  on: the gateway (``mode=planned`` on its switch call) or the operator (``kubectl patch``, the
  object declaring ``spec.switch.replication: mirrorMaker2``) fences writes, waits until
  MirrorMaker has copied everything and hands the group's offsets over, then switches; the report
  adds ``fence_ms``, how long writes were held.
- ``unplanned``: freeze MirrorMaker for a second (a lagging link; ``--stall-replication``), then
  SIGKILL every node of main while producing, check failover answers, stop
  MirrorMaker (its source is gone; with the identity policy a main coming back must not write
  into the topics clients now use), measure the replication gap from the records, switch; the
  producers and the consumer group carry on.
- ``automatic`` (``--via kubectl`` only): as ``unplanned``, but nobody switches: the object has
  ``spec.automaticFailover`` on (``unreachableSeconds`` 5, pods probing every second) and the
  operator patches ``spec.active`` itself when the pods agree main is down. The report adds
  ``detection_ms`` (kill -> ``spec.active`` patched); ``switch_confirmed_ms`` is kill -> every pod
  on failover.

Every count comes from records read back from the clusters (not from the gateway, not from
delivery reports alone): ``lost`` is acknowledged records on neither cluster at the end (planned)
or not on failover (unplanned, main is dead); ``duplicates`` is extra copies of a sequence number
on one cluster; ``reprocessed`` is records the consumer group received more than once. Both modes
share one lab (planned first: the unplanned or automatic run kills main, so at most one of them,
last), each with its own topic and group.
Results are printed as a table and written to ``drill-report.json``.

The switch goes ``--via admin`` (default: one gateway process, its admin API's switch call) or
``--via kubectl``: then the lab also starts a Kubernetes control plane (:mod:`kube_testbed`), the
operator (``python -m failover_operator``) and the kubelet stand-in, which runs each Pod of the
operator's gateway Deployment (``GATEWAY_PODS`` replicas) as a real gateway process on its own
127.0.0.N; clients bootstrap from those pods, and the switch is ``kubectl patch kafkafailover
drill --type merge -p '{"spec":{"active":"failover"}}'`` with the real kubectl binary. The
switch's time is when the patch is sent; the drill then waits (bounded) until the object's status
says every pod serves the new cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kafka_testbed import admin, gateways, mirroring, workloads
from kafka_testbed.clusters import Cluster
from kafka_testbed.errors import TestbedError
from kafka_testbed.gateways import GatewayProcess
from kafka_testbed.labs import Lab
from kafka_testbed.mirroring import MirrorMaker
from kafka_testbed.workloads import ClusterTail, GroupConsumer, SequencedProducer
from kube_testbed import control_plane, operated_gateways
from kube_testbed.control_plane import ControlPlane
from kube_testbed.operated_gateways import OperatedGateways

MAIN, FAILOVER = "main", "failover"
MODES = ("planned", "unplanned", "automatic")
KILLING = ("unplanned", "automatic")
"""Modes that kill main: at most one per lab, the last."""
DEFAULT_MODES = {"admin": ("planned", "unplanned"), "kubectl": ("planned", "automatic")}
AUTOMATIC = {"enabled": True, "unreachableSeconds": 5, "probeIntervalSeconds": 1}
"""``--via kubectl``: the object's ``spec.automaticFailover`` when an automatic run is asked."""
PARTITIONS = 3
SEQ_BLOCK = 1_000_000_000
"""Producer ``k`` numbers its records from ``k * SEQ_BLOCK``."""
WARM_UP_TIMEOUT_SECONDS = 120.0
RESUME_TIMEOUT_SECONDS = 60.0
LAND_TIMEOUT_SECONDS = 30.0
FLUSH_TIMEOUT_SECONDS = 30.0
MIRROR_STOP_GRACE_SECONDS = 5.0
DEFAULT_REPORT = Path("drill-report.json")
VIAS = ("admin", "kubectl")
AUTOMATIC_TIMEOUT_SECONDS = 90.0
SWITCHOVER = {
    "replication": "mirrorMaker2",
    "topics": "drill-.*",
    "consumerDrainSeconds": 5,
    "maxCatchUpSeconds": 30,
}
"""What the planned switch waits for: MirrorMaker 2 copying the drill's topics (the gateway's
``gateway.switchover`` and the operator's ``spec.switch`` take the same keys)."""
PLANNED_MIRROR_EXTRA = {
    # MirrorMaker emits the offset sync of the last record it copied when its task commits,
    # every offset.flush.interval.ms of the target's worker (default 60 s): the catch-up wait.
    "failover.offset.flush.interval.ms": "1000",
    # Never copy a transaction that is then aborted: the switch waits for committed data only.
    "main.consumer.isolation.level": "read_committed",
}
GATEWAY_PODS = 2
"""``--via kubectl``: replicas of the operator's gateway Deployment."""
FAILOVER_OBJECT = "drill"
"""``--via kubectl``: the KafkaFailover object's name."""


@dataclass(frozen=True)
class DrillConfig:
    """Load and timing of one drill run."""

    rate: float = 100.0
    """Records per second, per producer."""
    producers: int = 2
    seconds_before: float = 4.0
    """Steady load before the switch (planned) or the kill (unplanned)."""
    seconds_after: float = 4.0
    """Load after the switch."""
    mirror: mirroring.MirrorSettings = field(default_factory=mirroring.MirrorSettings)
    stall_replication_seconds: float = 1.0
    """Unplanned mode: MirrorMaker is frozen this long before main dies (a lagging link), so
    the replication gap is not left to chance; 0 lets it run to the end."""


class SwitchableGateway(Protocol):
    """Where clients connect, and how the drill switches the cluster behind it."""

    via: str

    @property
    def bootstrap(self) -> str: ...

    def active(self) -> str | None: ...

    def switch(self, cluster: str, *, planned: bool = False) -> Switched:
        """Switch (a planned switchover when ``planned``); what it took."""
        ...


@dataclass(frozen=True)
class Switched:
    """A switch as the drill saw it: monotonic send and confirmation times, and for a planned
    switch the product's own report (fence duration, catch-up time, groups handed off)."""

    sent_at: float
    confirmed_at: float
    fence_ms: float | None = None
    catch_up_ms: float | None = None
    groups_handed_off: int | None = None


def _planned_figures(sent_at: float, report: dict[str, Any]) -> Switched:
    phases = {p.get("phase"): p.get("ms") for p in report.get("phases", [])}
    return Switched(
        sent_at,
        time.monotonic(),
        fence_ms=report.get("fenceMs"),
        catch_up_ms=phases.get("CatchingUp"),
        groups_handed_off=report.get("groupsHandedOff"),
    )


@dataclass
class AdminSwitchedGateway:
    """One gateway process, switched through its admin API (the answer confirms it)."""

    process: GatewayProcess
    via: str = "admin"

    @property
    def bootstrap(self) -> str:
        return self.process.bootstrap

    def active(self) -> str | None:
        found = self.process.state().get("active")
        return None if found is None else str(found)

    def switch(self, cluster: str, *, planned: bool = False) -> Switched:
        sent_at = time.monotonic()
        answer = self.process.switch(cluster, **({"mode": "planned"} if planned else {}))
        if answer.status != 200:
            raise TestbedError(f"switch to {cluster} answered {answer.status}: {answer.body}")
        if planned:
            return _planned_figures(sent_at, answer.body["switchover"])
        return Switched(sent_at, time.monotonic())


@dataclass
class KubectlSwitchedGateway:
    """The operator's gateway pods, switched with ``kubectl patch`` on the KafkaFailover."""

    operated: OperatedGateways
    name: str
    pods: int
    via: str = "kubectl"

    @property
    def bootstrap(self) -> str:
        return self.operated.bootstrap(self.name)

    def active(self) -> str | None:
        found = self.operated.status(self.name).get("activeCluster")
        return None if found is None else str(found)

    def switch(self, cluster: str, *, planned: bool = False) -> Switched:
        sent_at = time.monotonic()
        mode = "planned" if planned else "immediate"
        generation = self.operated.patch_active(self.name, cluster, mode=mode)
        self.operated.wait_completed(
            self.name, cluster, self.pods, generation, operated_gateways.SWITCH_TIMEOUT_SECONDS
        )
        if planned:
            return _planned_figures(sent_at, self.operated.status(self.name)["lastSwitch"])
        return Switched(sent_at, time.monotonic())

    def watch_active(self, cluster: str, timeout: float) -> Callable[[], float]:
        """Watch, from now, for ``spec.active`` to become ``cluster`` (someone else's change:
        the automatic failover's); the returned call waits for it and gives its monotonic time."""
        seen: list[float] = []

        def poll() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.operated.get(self.name)["spec"]["active"] == cluster:
                    seen.append(time.monotonic())
                    return
                time.sleep(0.1)

        watcher = threading.Thread(target=poll, name="watch-active", daemon=True)
        watcher.start()

        def patched_at() -> float:
            watcher.join(timeout)
            if not seen:
                raise TestbedError(f"{self.name}: spec.active not {cluster} in {timeout:.0f}s")
            return seen[0]

        return patched_at


@dataclass
class DrillLab:
    main: Cluster
    failover: Cluster
    mirror: MirrorMaker
    gateway: SwitchableGateway
    workdir: Path


@dataclass
class DrillRun:
    """What one run measured; the sets are kept so a test can recompute every count."""

    mode: str
    via: str
    topic: str
    sent: int
    acked: set[int]
    failed: int
    lost: set[int]
    gap_at_switch: set[int]
    acked_before_switch: set[int]
    on_failover_at_switch: set[int]
    on_main: set[int]
    on_failover: set[int]
    duplicates: int
    consumed: int
    consumed_distinct: int
    switch_to_first_ack_ms: float | None
    switch_to_consumer_resumed_ms: float | None
    switch_confirmed_ms: float
    """Switch sent -> the admin API answered (admin) / status says every pod switched (kubectl)."""
    replication_wait_ms: float | None
    offsets_synced: bool | None
    fence_ms: float | None = None
    """Planned: how long writes were held (the product's own measure)."""
    detection_ms: float | None = None
    """Automatic: main killed -> the operator patched ``spec.active``."""

    @property
    def reprocessed(self) -> int:
        return self.consumed - self.consumed_distinct

    def report(self) -> dict[str, Any]:
        """The JSON object of this run in ``drill-report.json``."""
        return {
            "mode": self.mode,
            "via": self.via,
            "topic": self.topic,
            "sent": self.sent,
            "acked": len(self.acked),
            "failed": self.failed,
            "lost": len(self.lost),
            "duplicates": self.duplicates,
            "consumed": self.consumed,
            "reprocessed": self.reprocessed,
            "switch_to_first_ack_ms": _round(self.switch_to_first_ack_ms),
            "switch_to_consumer_resumed_ms": _round(self.switch_to_consumer_resumed_ms),
            "switch_confirmed_ms": _round(self.switch_confirmed_ms),
            "fence_ms": _round(self.fence_ms),
            "detection_ms": _round(self.detection_ms),
            "replication_gap_at_switch": len(self.gap_at_switch),
            "replication_wait_ms": _round(self.replication_wait_ms),
            "group_offsets_synced_before_switch": self.offsets_synced,
        }


@dataclass
class _Clients:
    producers: list[SequencedProducer]
    consumer: GroupConsumer
    tails: dict[str, ClusterTail]

    def acked(self) -> dict[int, float]:
        return {seq: at for p in self.producers for seq, at in p.log.snapshot()[1].items()}


@dataclass
class _Switch:
    """Measurements taken around the switch."""

    sent_at: float
    confirmed_at: float
    acked_before_switch: set[int] = field(default_factory=set)
    on_failover: set[int] = field(default_factory=set)
    gap: set[int] = field(default_factory=set)
    replication_wait_ms: float | None = None
    offsets_synced: bool | None = None
    fence_ms: float | None = None
    detection_ms: float | None = None


# -- Lab --------------------------------------------------------------------------------------


@contextlib.contextmanager
def drill_lab(
    workdir: Path,
    config: DrillConfig,
    via: str = "admin",
    plane: ControlPlane | None = None,
    *,
    automatic: bool = False,
) -> Iterator[DrillLab]:
    """Main (node 1), failover (node 7), MirrorMaker 2 and the gateway; all stopped on exit.

    ``via="kubectl"``: the gateway is the operator's, on ``plane`` (one is started and stopped
    here when none is given); ``automatic``: with automatic failover on (:data:`AUTOMATIC`).
    """
    if automatic and via != "kubectl":
        raise ValueError("automatic failover is the operator's: it needs via='kubectl'")
    if via not in VIAS:
        raise ValueError(f"via must be one of {VIAS}, got {via!r}")
    with Lab() as lab, contextlib.ExitStack() as stack:
        main = lab.kafka((1,), name=MAIN)
        failover = lab.kafka((7,), name=FAILOVER)
        settings = dataclasses.replace(
            config.mirror, extra={**PLANNED_MIRROR_EXTRA, **config.mirror.extra}
        )
        mirror = mirroring.start_mirror_maker(
            main.bootstrap, failover.bootstrap, settings, workdir=workdir / "mm2"
        )
        stack.callback(mirror.stop, MIRROR_STOP_GRACE_SECONDS)
        gateway: SwitchableGateway
        if via == "kubectl":
            gateway = _operated_gateway(stack, main, failover, workdir, plane, automatic=automatic)
        else:
            process = gateways.start_gateway(
                {MAIN: main.bootstrap, FAILOVER: failover.bootstrap},
                gateway_extra={"switchover": SWITCHOVER},
                workdir=workdir,
            )
            stack.callback(process.stop)
            gateway = AdminSwitchedGateway(process)
        yield DrillLab(main, failover, mirror, gateway, workdir)


def _operated_gateway(
    stack: contextlib.ExitStack,
    main: Cluster,
    failover: Cluster,
    workdir: Path,
    plane: ControlPlane | None,
    *,
    automatic: bool,
) -> KubectlSwitchedGateway:
    """A KafkaFailover on main and failover, its pods up and serving main."""
    if plane is None:
        plane = stack.enter_context(control_plane.start(workdir / "kube"))
    namespace = f"drill-{uuid.uuid4().hex[:6]}"
    operated = stack.enter_context(
        operated_gateways.operated_gateways(plane, namespace, workdir / "operator")
    )
    operated.apply(
        operated_gateways.manifest(
            FAILOVER_OBJECT,
            main.bootstrap,
            failover.bootstrap,
            replicas=GATEWAY_PODS,
            switch=SWITCHOVER,
            automatic=AUTOMATIC if automatic else None,
        )
    )
    operated.wait_completed(
        FAILOVER_OBJECT, MAIN, GATEWAY_PODS, None, operated_gateways.PODS_UP_TIMEOUT_SECONDS
    )
    return KubectlSwitchedGateway(operated, FAILOVER_OBJECT, GATEWAY_PODS)


def run_drills(
    modes: Sequence[str],
    config: DrillConfig,
    workdir: Path,
    via: str = "admin",
    plane: ControlPlane | None = None,
) -> list[DrillRun]:
    """Run each mode in order on one lab (``unplanned`` or ``automatic`` last: they kill main)."""
    killing = [mode for mode in modes if mode in KILLING]
    if len(killing) > 1 or (killing and modes[-1] != killing[0]):
        raise ValueError(
            f"the {' and '.join(killing)} drill kills main: at most one of them, the last mode"
        )
    with drill_lab(workdir, config, via, plane, automatic="automatic" in modes) as lab:
        return [run_drill(lab, mode, config) for mode in modes]


def run_drill(lab: DrillLab, mode: str, config: DrillConfig) -> DrillRun:
    """One drill: load through the gateway, a planned or unplanned switch, counts from records."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "automatic" and not isinstance(lab.gateway, KubectlSwitchedGateway):
        raise ValueError("the automatic drill needs the operator: run it with --via kubectl")
    _ensure_active(lab.gateway, MAIN)
    topic = f"drill-{mode}-{uuid.uuid4().hex[:6]}"
    # Failover first: MirrorMaker (refreshing topics every second) creates the copy of a topic it
    # sees on main, and a create on failover after that fails with TOPIC_ALREADY_EXISTS.
    for cluster in (lab.failover, lab.main):
        admin.create_topic(cluster.bootstrap, topic, partitions=PARTITIONS)
    clients = _start_clients(lab, topic, config)
    try:
        _warm_up(lab, clients)
        time.sleep(max(0.0, config.seconds_before - _stall(mode, config)))
        if mode == "planned":
            switch = _planned(lab, clients)
        elif mode == "automatic":
            switch = _automatic(lab, clients, config.stall_replication_seconds)
        else:
            switch = _unplanned(lab, clients, config.stall_replication_seconds)
        time.sleep(config.seconds_after)
        _await_consumer_resumed(clients, switch.sent_at, RESUME_TIMEOUT_SECONDS)
        return _finish(lab, mode, topic, clients, switch)
    finally:
        _stop_clients(clients)


def _await_consumer_resumed(clients: _Clients, since: float, timeout: float) -> None:
    """A group that lost its coordinator with main may need a rebalance after the switch: give
    it (bounded) time to read again, so the report measures the resumption instead of cutting
    it off on a slow machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(receipt.at >= since for receipt in clients.consumer.received()):
            return
        time.sleep(0.1)


def _stall(mode: str, config: DrillConfig) -> float:
    return config.stall_replication_seconds if mode in KILLING else 0.0


def _ensure_active(gateway: SwitchableGateway, cluster: str) -> None:
    if gateway.active() != cluster:
        gateway.switch(cluster)


def _start_clients(lab: DrillLab, topic: str, config: DrillConfig) -> _Clients:
    settings = client_log_settings(lab.workdir)
    tails = {
        MAIN: ClusterTail(lab.main.bootstrap, topic, PARTITIONS, cluster=MAIN).start(),
        FAILOVER: ClusterTail(lab.failover.bootstrap, topic, PARTITIONS, cluster=FAILOVER).start(),
    }
    group_settings = {**settings, "auto.commit.interval.ms": 500}
    consumer = GroupConsumer(
        lab.gateway.bootstrap, topic, f"{topic}-readers", group_settings
    ).start()
    producer_settings = {**settings, "enable.idempotence": True}
    producers = [
        SequencedProducer(
            workloads.ConfluentProducer(lab.gateway.bootstrap, producer_settings),
            topic,
            rate=config.rate,
            first_seq=k * SEQ_BLOCK,
        ).start()
        for k in range(config.producers)
    ]
    return _Clients(producers, consumer, tails)


def _stop_clients(clients: _Clients) -> None:
    for producer in clients.producers:
        with contextlib.suppress(TestbedError):
            producer.stop(FLUSH_TIMEOUT_SECONDS)
    clients.consumer.stop()
    for tail in clients.tails.values():
        tail.stop()


def client_log_settings(workdir: Path) -> dict[str, Any]:
    """Client logs (disconnects around a switch are expected) go to a file, not the screen."""
    logger = logging.getLogger(f"kafka_testbed.drill.clients.{workdir.name}")
    if not logger.handlers:
        logger.propagate = False
        handler = logging.FileHandler(workdir / "clients.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
    return {"logger": logger}


def _warm_up(lab: DrillLab, clients: _Clients) -> None:
    """Producers acknowledged, the group consuming and MirrorMaker copying into failover."""
    deadline = time.monotonic() + WARM_UP_TIMEOUT_SECONDS
    while not (
        clients.acked() and clients.consumer.received() and clients.tails[FAILOVER].sequences()
    ):
        if time.monotonic() > deadline or not lab.mirror.is_alive():
            raise TestbedError(
                f"no steady state within {WARM_UP_TIMEOUT_SECONDS:.0f}s: acked "
                f"{len(clients.acked())}, consumed {len(clients.consumer.received())}, "
                f"replicated {len(clients.tails[FAILOVER].sequences())}\n"
                f"MirrorMaker 2 log {lab.mirror.log_path}:\n{lab.mirror.log_tail()}"
            )
        time.sleep(0.1)


# -- The two runbooks ---------------------------------------------------------------------------


def _planned(lab: DrillLab, clients: _Clients) -> _Switch:
    """The product's planned switch under load: nothing paused, nothing waited for by the drill.

    Everything acknowledged before the switch was confirmed must be on failover (the gap: the
    switch's RPO, 0 expected); what is acknowledged after it was written to failover.
    """
    switched = lab.gateway.switch(FAILOVER, planned=True)
    # Acknowledged before the switch was confirmed: by main up to the fence, then by failover.
    acked = {seq for seq, at in clients.acked().items() if at < switched.confirmed_at}
    # The producers go on writing to failover: its end moves, so wait for these records only.
    gap = workloads.wait_until_landed([clients.tails[FAILOVER]], acked, LAND_TIMEOUT_SECONDS)
    return _Switch(
        switched.sent_at,
        switched.confirmed_at,
        acked_before_switch=acked,
        on_failover=acked - gap,
        gap=gap,
        replication_wait_ms=switched.catch_up_ms,
        offsets_synced=None
        if switched.groups_handed_off is None
        else switched.groups_handed_off > 0,
        fence_ms=switched.fence_ms,
    )


def _unplanned(lab: DrillLab, clients: _Clients, stall_seconds: float) -> _Switch:
    """Kill main under load, check failover, stop MirrorMaker, measure the gap, switch."""
    if stall_seconds > 0:
        lab.mirror.stall()
        time.sleep(stall_seconds)
    lab.main.kill_all()
    if not admin.broker_addresses(lab.failover.bootstrap, timeout=10.0):
        raise TestbedError("failover does not answer: the drill cannot switch to it")
    lab.mirror.stop(MIRROR_STOP_GRACE_SECONDS)
    on_failover = _caught_up_sequences(clients.tails[FAILOVER])
    # Until the switch only main can have acknowledged anything (failover gets no client
    # traffic yet): read here, this also counts main's acks still queued at the kill.
    acked_before_switch = set(clients.acked())
    switched = lab.gateway.switch(FAILOVER)
    return _Switch(
        switched.sent_at,
        switched.confirmed_at,
        acked_before_switch=acked_before_switch,
        on_failover=on_failover,
        gap=mirroring.replication_gap(acked_before_switch, on_failover),
    )


def _automatic(lab: DrillLab, clients: _Clients, stall_seconds: float) -> _Switch:
    """Kill main under load and let the operator fail over by itself; the gap as unplanned."""
    gateway = lab.gateway
    assert isinstance(gateway, KubectlSwitchedGateway)
    if stall_seconds > 0:
        lab.mirror.stall()
        time.sleep(stall_seconds)
    killed_at = time.monotonic()
    lab.main.kill_all()
    patched = gateway.watch_active(FAILOVER, AUTOMATIC_TIMEOUT_SECONDS)
    lab.mirror.stop(MIRROR_STOP_GRACE_SECONDS)
    on_failover = _caught_up_sequences(clients.tails[FAILOVER])
    # Nothing can acknowledge between the kill and the switch: main is dead, failover unused.
    acked_before_switch = set(clients.acked())
    patched_at = patched()
    gateway.operated.wait_completed(
        gateway.name, FAILOVER, gateway.pods, None, operated_gateways.SWITCH_TIMEOUT_SECONDS
    )
    return _Switch(
        killed_at,
        time.monotonic(),
        acked_before_switch=acked_before_switch,
        on_failover=on_failover,
        gap=mirroring.replication_gap(acked_before_switch, on_failover),
        detection_ms=(patched_at - killed_at) * 1000,
    )


def _caught_up_sequences(tail: ClusterTail) -> set[int]:
    if not tail.wait_caught_up(LAND_TIMEOUT_SECONDS):
        raise TestbedError(f"reading {tail.cluster} did not catch up")
    return tail.sequences()


# -- Counting ---------------------------------------------------------------------------------


def _finish(lab: DrillLab, mode: str, topic: str, clients: _Clients, switch: _Switch) -> DrillRun:
    for producer in clients.producers:
        producer.stop(FLUSH_TIMEOUT_SECONDS)
    acked_at = clients.acked()
    readable = [clients.tails[FAILOVER]] + ([clients.tails[MAIN]] if mode == "planned" else [])
    # The gap never lands (main is dead): waiting for it would only run out the timeout.
    workloads.wait_until_landed(readable, set(acked_at) - switch.gap, LAND_TIMEOUT_SECONDS)
    time.sleep(1.0)  # the group reads what was just written, so its resume is in the receipts
    on_main, on_failover = clients.tails[MAIN].sequences(), clients.tails[FAILOVER].sequences()
    kept = on_failover | (on_main if mode == "planned" else set())
    receipts = clients.consumer.received()
    logs = [p.log.snapshot() for p in clients.producers]
    # Planned: clients go on with main while writes are fenced, so time from the switch's end
    # (writes unfenced, on failover); unplanned: from the switch call.
    start = switch.confirmed_at if mode == "planned" else switch.sent_at
    return DrillRun(
        mode=mode,
        via=lab.gateway.via,
        topic=topic,
        sent=sum(len(sent) for sent, _, _ in logs),
        acked=set(acked_at),
        failed=sum(len(errors) for _, _, errors in logs),
        lost=set(acked_at) - kept,
        gap_at_switch=switch.gap,
        acked_before_switch=switch.acked_before_switch,
        on_failover_at_switch=switch.on_failover,
        on_main=on_main,
        on_failover=on_failover,
        duplicates=sum(_extra_copies(tail) for tail in clients.tails.values()),
        consumed=len(receipts),
        consumed_distinct=len({r.seq for r in receipts}),
        switch_to_first_ack_ms=_ms_after(start, _first_ack(clients, start)),
        switch_to_consumer_resumed_ms=_ms_after(
            start, min((r.at for r in receipts if r.at >= start), default=None)
        ),
        switch_confirmed_ms=(switch.confirmed_at - switch.sent_at) * 1000,
        replication_wait_ms=switch.replication_wait_ms,
        offsets_synced=switch.offsets_synced,
        fence_ms=switch.fence_ms,
        detection_ms=switch.detection_ms,
    )


def _extra_copies(tail: ClusterTail) -> int:
    """Copies of a sequence number beyond the first, on one cluster."""
    counts = Counter(seq for seq, _, _ in tail.placements())
    return sum(count - 1 for count in counts.values())


def _first_ack(clients: _Clients, after: float) -> float | None:
    where = workloads.landed([clients.tails[FAILOVER]])
    times = [workloads.first_ack_on(FAILOVER, p.log, where, after=after) for p in clients.producers]
    return min((t for t in times if t is not None), default=None)


def _ms_after(start: float, at: float | None) -> float | None:
    return None if at is None else (at - start) * 1000


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- Report -----------------------------------------------------------------------------------

TABLE_COLUMNS = (
    ("mode", "mode"),
    ("via", "via"),
    ("acked", "acked"),
    ("lost", "lost"),
    ("duplicates", "duplicates"),
    ("reprocessed", "reprocessed"),
    ("gap at switch", "replication_gap_at_switch"),
    ("fence ms", "fence_ms"),
    ("detection ms", "detection_ms"),
    ("switch->first ack ms", "switch_to_first_ack_ms"),
    ("switch->consumer resumed ms", "switch_to_consumer_resumed_ms"),
)


def table(reports: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the runs (also valid README text)."""
    header = "| " + " | ".join(title for title, _ in TABLE_COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"
    rows = [
        "| " + " | ".join(_cell(report.get(key)) for _, key in TABLE_COLUMNS) + " |"
        for report in reports
    ]
    return "\n".join([header, rule, *rows])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if isinstance(value, float) else str(value)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kafka_testbed.drill", description=__doc__)
    parser.add_argument(
        "--modes",
        default=None,
        help=f"comma-separated, in order, of {', '.join(MODES)} (default: "
        + "; ".join(f"{','.join(m)} via {v}" for v, m in DEFAULT_MODES.items())
        + ")",
    )
    parser.add_argument("--rate", type=float, default=DrillConfig.rate, help="records/s each")
    parser.add_argument("--producers", type=int, default=DrillConfig.producers)
    parser.add_argument("--seconds", type=float, default=DrillConfig.seconds_before)
    parser.add_argument(
        "--stall-replication",
        type=float,
        default=DrillConfig.stall_replication_seconds,
        help="unplanned: seconds MirrorMaker is frozen before main is killed (0: never)",
    )
    parser.add_argument(
        "--sync-interval",
        type=_positive_int,
        default=mirroring.MirrorSettings.sync_group_offsets_interval_seconds,
        help="MirrorMaker checkpoint and group-offset sync interval, seconds (its default: 60)",
    )
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument(
        "--via",
        choices=VIAS,
        default="admin",
        help="switch with the admin API, or with kubectl patch through the operator",
    )
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds >= 1, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    mirror = mirroring.MirrorSettings(
        emit_checkpoints_interval_seconds=options.sync_interval,
        sync_group_offsets_interval_seconds=options.sync_interval,
    )
    config = DrillConfig(
        rate=options.rate,
        producers=options.producers,
        seconds_before=options.seconds,
        seconds_after=options.seconds,
        mirror=mirror,
        stall_replication_seconds=options.stall_replication,
    )
    given = options.modes or ",".join(DEFAULT_MODES[options.via])
    modes = [mode.strip() for mode in given.split(",") if mode.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="kafka-failover-drill-"))
    extra = " (a control plane, the operator, its gateway pods)" if options.via == "kubectl" else ""
    print(f"starting two Kafka clusters, MirrorMaker 2 and the gateway{extra}...", flush=True)
    try:
        runs = run_drills(modes, config, workdir, options.via)
    except KeyboardInterrupt:
        print("\ninterrupted: every process the drill started is stopped", file=sys.stderr)
        return 130
    reports = [run.report() for run in runs]
    options.report.write_text(json.dumps(reports, indent=2) + "\n")
    print(table(reports))
    print(f"report written to {options.report}")
    ok = all(not (run.lost or run.gap_at_switch) for run in runs if run.mode == "planned") and all(
        run.lost == run.gap_at_switch for run in runs if run.mode in KILLING
    )
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"unexpected loss; logs kept in {workdir}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
