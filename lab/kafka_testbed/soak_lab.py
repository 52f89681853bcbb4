"""The soak's lab: its settings, its processes, the faults done to them and the /proc sampler.

Why it exists: :mod:`kafka_testbed.soaking` runs issue 19's soak; what it runs against (two
clusters, MirrorMaker 2, a gateway fleet following an ``activeFile``), what it does to that lab
on schedule (:class:`FaultRunner`) and how it watches the gateways' memory (:class:`GatewaySampler`)
are kept here, apart from the clients and the report, so each file reads on its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_testbed import (
    drill,
    gateway_fleet,
    mirroring,
    soak_accounting,
    supervising,
    versions,
)
from kafka_testbed.clusters import Cluster
from kafka_testbed.errors import TestbedError
from kafka_testbed.gateway_fleet import GatewayFleet
from kafka_testbed.labs import Lab
from kafka_testbed.mirroring import MirrorMaker
from kafka_testbed.soak_accounting import Sample
from kafka_testbed.soak_schedule import Fault, Planned
from kafka_testbed.workloads import ClusterTail

MAIN, FAILOVER = "main", "failover"
IN_PROCESS = ("confluent-kafka", "kafka-python", "aiokafka")
PROGRAMS = (f"java-{versions.KAFKA_VERSION}", f"java-{versions.OLD_CLIENTS_VERSION}", "franz-go")
FAMILIES = IN_PROCESS + PROGRAMS
SWITCHOVER = {**drill.SWITCHOVER, "topics": "soak-.*"}
FILE_DESCRIPTORS_PER_IDLE = 1
FD_HEADROOM = 4096
GAP_READ_TIMEOUT_SECONDS = 15.0
log = logging.getLogger("kafka_testbed.soaking")


@dataclass(frozen=True)
class SoakConfig:
    """Length, load and fault timing of one soak."""

    minutes: float = 60.0
    rate: float = 20.0
    """Records per second, per client family."""
    idle_connections: int = 5000
    heartbeat_seconds: float = 60.0
    main_brokers: int = 3
    pods: int = 3
    sample_seconds: float = 10.0
    warm_up_seconds: float = 120.0
    """Load before the first fault; also skipped by the RSS slope of each gateway process."""
    tail_seconds: float = 60.0
    """Quiet load after the last fault, before the producers stop."""
    broker_down_seconds: float = 20.0
    gateway_down_seconds: float = 5.0
    mirror_pause_seconds: float = 30.0
    families: tuple[str, ...] = FAMILIES


SMOKE = SoakConfig(
    minutes=3.0,
    rate=10.0,
    idle_connections=1000,
    main_brokers=1,
    sample_seconds=5.0,
    warm_up_seconds=20.0,
    tail_seconds=15.0,
    broker_down_seconds=3.0,
    gateway_down_seconds=2.0,
    mirror_pause_seconds=5.0,
)
"""What ``make test`` runs: every fault once in 3 minutes, 1 broker per cluster (killing main's
only broker is a short outage of main: its producers wait, nothing acknowledged is lost)."""


@dataclass
class SoakLab:
    main: Cluster
    failover: Cluster
    mirror: MirrorMaker
    fleet: GatewayFleet
    active_file: Path
    workdir: Path


@dataclass
class Family:
    """One client family's producer, group member and the two clusters' copies of its topic."""

    name: str
    topic: str
    producer: Any
    consumer: Any
    tails: dict[str, ClusterTail]
    gap: set[int] = field(default_factory=set)
    retired: list[Any] = field(default_factory=list)
    """Earlier group members of an in-process library, replaced after a retriable error."""
    bootstrap: str = ""

    def acked(self) -> set[int]:
        return set(self.producer.log.snapshot()[1])


@dataclass
class FaultRecord:
    planned: Planned
    started: float
    seconds: float
    detail: str
    ok: bool

    def report(self) -> dict[str, Any]:
        return {
            "at": round(self.started, 1),
            "fault": self.planned.fault.value,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "detail": self.detail,
        }


# -- Lab --------------------------------------------------------------------------------------


@contextlib.contextmanager
def soak_lab(config: SoakConfig, workdir: Path) -> Iterator[SoakLab]:
    """Both clusters, MirrorMaker 2 and the gateway fleet on main; all stopped on exit."""
    with Lab() as lab, contextlib.ExitStack() as stack:
        main = lab.kafka(tuple(range(1, config.main_brokers + 1)), name=MAIN)
        failover = lab.kafka((7,), name=FAILOVER)
        settings = mirroring.MirrorSettings(
            topics="soak-.*", groups="soak-.*", extra=drill.PLANNED_MIRROR_EXTRA
        )
        mirror = mirroring.start_mirror_maker(
            main.bootstrap, failover.bootstrap, settings, workdir=workdir / "mm2"
        )
        stack.callback(mirror.stop, drill.MIRROR_STOP_GRACE_SECONDS)
        active_file = workdir / "active.yaml"
        write_active(active_file, MAIN, 0)
        fleet = gateway_fleet.start_fleet(
            {MAIN: main.bootstrap, FAILOVER: failover.bootstrap},
            workdir / "fleet",
            pods=config.pods,
            gateway_extra={"switchover": SWITCHOVER, "activeFile": str(active_file)},
        )
        stack.callback(fleet.stop)
        yield SoakLab(main, failover, mirror, fleet, active_file, workdir)


def write_active(path: Path, cluster: str, epoch: int) -> None:
    """What the operator's ConfigMap holds: a pod (re)started now starts on ``cluster``."""
    staged = path.with_suffix(".new")
    staged.write_text(json.dumps({"cluster": cluster, "epoch": epoch}) + "\n")
    staged.replace(path)


def raise_descriptor_limit(idle: int) -> int:
    """Raise this process's soft open-files limit for ``idle`` connections; the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = idle * FILE_DESCRIPTORS_PER_IDLE + FD_HEADROOM
    if soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < wanted:
        raise TestbedError(
            f"{idle} idle connections need {wanted} open files; the hard limit is {hard} "
            "(raise it, e.g. `ulimit -Hn`, or ask for fewer with --idle-connections)"
        )
    return soft


# -- Faults -----------------------------------------------------------------------------------


class FaultRunner:
    """Carries out the planned faults in order, keeping what each did."""

    def __init__(self, lab: SoakLab, families: Sequence[Family], config: SoakConfig) -> None:
        self.lab = lab
        self.families = families
        self.config = config
        self.done: list[FaultRecord] = []
        self.switches: dict[str, int] = {"planned": 0, "planned_aborted": 0, "immediate": 0}
        self.kills = {"broker": 0, "gateway": 0}

    def run(self, planned: Planned, started: float) -> None:
        began = time.monotonic()
        try:
            detail, ok = self._do(planned.fault)
        except Exception as error:  # one failed fault is reported, the soak goes on
            detail, ok = f"{type(error).__name__}: {error}", False
        self.done.append(
            FaultRecord(planned, began - started, time.monotonic() - began, detail, ok)
        )
        log.info("soak: %s (%s) %s", planned.fault.value, "ok" if ok else "FAILED", detail)

    def _do(self, fault: Fault) -> tuple[str, bool]:
        if fault is Fault.PLANNED_TO_FAILOVER:
            return self._planned()
        if fault is Fault.IMMEDIATE_TO_FAILOVER:
            return self._immediate(FAILOVER)
        if fault is Fault.IMMEDIATE_TO_MAIN:
            return self._immediate(MAIN)
        if fault is Fault.BROKER_KILL:
            return self._kill_broker()
        if fault is Fault.GATEWAY_KILL:
            return self._kill_gateway()
        return self._pause_mirror()

    def _planned(self) -> tuple[str, bool]:
        answer = self.lab.fleet.planned_switch(FAILOVER)
        if answer.status != 200:
            self.switches["planned_aborted"] += 1
            return f"aborted ({answer.status}): {answer.body}", True
        self.switches["planned"] += 1
        write_active(self.lab.active_file, FAILOVER, self.lab.fleet.epoch)
        report = answer.body.get("switchover", answer.body)
        phases = {p.get("phase"): p.get("ms") for p in report.get("phases", [])}
        return f"phases {phases}, groups handed off {report.get('groupsHandedOff')}", True

    def _immediate(self, to: str) -> tuple[str, bool]:
        acked = {family.name: family.acked() for family in self.families}
        answers = self.lab.fleet.switch(to)
        write_active(self.lab.active_file, to, self.lab.fleet.epoch)
        bad = [answer for answer in answers if answer.status != 200]
        if bad:
            return f"{len(bad)} pods refused: {bad[0].status} {bad[0].body}", False
        self.switches["immediate"] += 1
        if to != FAILOVER:
            return "", True
        deadline = time.monotonic() + GAP_READ_TIMEOUT_SECONDS
        gaps = {f.name: self._gap(f, acked[f.name], deadline) for f in self.families}
        return f"replication gap {sum(gaps.values())} records", True

    def _gap(self, family: Family, acked: set[int], deadline: float) -> int:
        """Acknowledged before the switch, not on failover once its reader caught up after it
        (MirrorMaker goes on copying meanwhile: a lower bound of the switch's RPO; an upper
        bound when the reader could not catch up by ``deadline``)."""
        tail = family.tails[FAILOVER]
        tail.wait_caught_up(max(0.5, deadline - time.monotonic()))
        gap = soak_accounting.replication_gap(acked, tail.sequences())
        family.gap |= gap
        return len(gap)

    def _kill_broker(self) -> tuple[str, bool]:
        nodes = sorted(self.lab.main.nodes)
        node = nodes[self.kills["broker"] % len(nodes)]
        self.kills["broker"] += 1
        self.lab.main.kill(node)
        time.sleep(self.config.broker_down_seconds)
        self.lab.main.restart(node)
        return f"node {node}", True

    def _kill_gateway(self) -> tuple[str, bool]:
        pods = self.lab.fleet.pods
        pod = pods[self.kills["gateway"] % len(pods)]
        self.kills["gateway"] += 1
        supervising.kill(pod.process)
        pod.restart(down_seconds=self.config.gateway_down_seconds)
        active = pod.state().get("active")
        expected = self.lab.fleet.pods[0].state().get("active")
        return f"pod {pod.host} back on {active}", active == expected

    def _pause_mirror(self) -> tuple[str, bool]:
        self.lab.mirror.stall()
        try:
            time.sleep(self.config.mirror_pause_seconds)
        finally:
            self.lab.mirror.unstall()
        return f"{self.config.mirror_pause_seconds:.0f} s", self.lab.mirror.is_alive()


# -- Sampling ---------------------------------------------------------------------------------


class GatewaySampler:
    """Reads each pod's RSS, open descriptors and CPU from /proc every ``interval`` seconds."""

    def __init__(self, fleet: GatewayFleet, interval: float, started: float) -> None:
        self.fleet = fleet
        self.interval = interval
        self.started = started
        self.samples: dict[str, list[Sample]] = {pod.host: [] for pod in fleet.pods}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-sampler", daemon=True)

    def start(self) -> GatewaySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for pod in self.fleet.pods:
                try:
                    self.samples[pod.host].append(self._read(pod.process.pid))
                except (OSError, ValueError, IndexError):
                    pass  # a pod being killed or restarted: its next sample comes
                except Exception:  # a sampler that dies silently reports a flat line
                    log.exception("sampling gateway %s failed", pod.host)

    def _read(self, pid: int) -> Sample:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        found = [int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:")]
        if not found:  # a killed process not yet reaped (a zombie) has no memory to report
            raise ValueError(f"pid {pid} has no VmRSS")
        rss = found[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return Sample(time.monotonic() - self.started, pid, rss, fds, cpu)
