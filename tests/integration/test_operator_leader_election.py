"""Two operator processes on a real kube-apiserver: one leads, the other stands by and takes over.

Both run as ``python -m failover_operator`` under the least-privilege service account of
``test_operator.OperatorLab`` (bound to ``rbac.RULES``, which must allow the Lease), with short
lease timings (3 s / 2 s / 0.5 s) so a takeover after a frozen leader takes seconds. Who holds the
Lease is read as cluster-admin; who acted is read from each process's own log: a standby must log
no kopf handler at all, and a leader frozen past its lease must exit on resume having done nothing.

(Named apart from ``tests/unit/test_operator_leadership.py``: pytest imports test modules by
basename.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException
from test_operator import DRIFT_INTERVAL, OperatorLab, all_switched, failover_manifest, patch_active

from failover_operator import electing, leadership
from kafka_testbed import networking, supervising
from kafka_testbed.clusters import Cluster
from kube_testbed.control_plane import ControlPlane

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3.0, 2.0, 0.5
LEASE_ENV = {
    leadership.DURATION_ENV: str(LEASE_DURATION),
    leadership.RENEW_DEADLINE_ENV: str(RENEW_DEADLINE),
    leadership.RETRY_PERIOD_ENV: str(RETRY_PERIOD),
}
ACCOUNT = "kafka-failover-operator"
STARTUP_SECONDS = 60.0
TAKEOVER_SECONDS = 30.0
EXIT_SECONDS = 15.0
POLL_SECONDS = 0.05
KOPF_HANDLER_LINE = re.compile(r"Handler '|Timer '|Patching with|is processed")
T = TypeVar("T")


@dataclass
class Replica:
    """One operator process, its log and its liveness URL."""

    name: str
    process: supervising.Process
    log_path: Path
    liveness: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def identity(self) -> str | None:
        """Its holderIdentity, as it logs it when it starts running for the Lease."""
        found = re.search(r"Standing by as (\S+) for Lease", self.log())
        return found.group(1) if found else None

    def liveness_answer(self) -> tuple[int, dict[str, Any]]:
        with urllib.request.urlopen(self.liveness, timeout=10) as answer:
            return answer.status, json.loads(answer.read())


class ElectionLab(OperatorLab):
    """OperatorLab's namespace, CRD, kubelet stand-in and operator (replica ``a``), plus more
    operator replicas under the same service account."""

    def __init__(self, plane: ControlPlane, namespace: str, workdir: Path) -> None:
        super().__init__(plane, namespace, workdir)
        self.replicas: list[Replica] = []
        self.leases = kubernetes.client.CoordinationV1Api(
            kubernetes.config.new_client_from_config(str(plane.kubeconfig))
        )

    def start(self) -> ElectionLab:
        super().start()
        assert self.operator is not None
        first = Replica("a", self.operator, self.workdir / "operator.log", self.liveness)
        self.replicas.append(first)
        return self

    def add_replica(self, name: str) -> Replica:
        liveness = f"http://127.0.0.1:{networking.free_ports(1)[0]}/healthz"
        kubeconfig = self.plane.service_account_kubeconfig(self.namespace, ACCOUNT)
        env = dict(os.environ) | {
            "KUBECONFIG": str(kubeconfig),
            "KAFKA_FAILOVER_DRIFT_INTERVAL": DRIFT_INTERVAL,
        }
        command = ["--namespace", self.namespace, "--liveness", liveness]
        log_path = self.workdir / f"operator-{name}.log"
        process = supervising.spawn(
            [sys.executable, "-m", "failover_operator", *command], log_path, env=env
        )
        replica = Replica(name, process, log_path, liveness)
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.process.poll() is None:
                os.kill(replica.process.pid, signal.SIGCONT)  # a frozen one cannot take SIGTERM
        supervising.terminate_all([r.process for r in self.replicas[1:]], grace_seconds=10)
        super().stop()

    def operator_log(self) -> str:
        return "\n".join(f"--- replica {r.name} ---\n{r.log()[-3000:]}" for r in self.replicas)

    def lease_spec(self) -> Any | None:
        """The Lease's spec (a ``V1LeaseSpec``), None while there is no Lease."""
        try:
            lease = self.leases.read_namespaced_lease(leadership.LEASE_NAME, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return lease.spec

    def holder(self) -> str | None:
        """The Lease's holderIdentity ("" once released), None while there is no Lease."""
        spec = self.lease_spec()
        return None if spec is None else str(spec.holder_identity or "")

    def leading(self, replica: Replica) -> bool:
        identity = replica.identity()
        return identity is not None and self.holder() == identity

    def standing_by(self, replica: Replica, leader: Replica) -> bool:
        return f"is held by {leader.identity()}" in replica.log()


@pytest.fixture
def election(
    kube_control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ElectionLab]:
    """Replica ``a`` leading, ``b`` standing by, in a namespace of their own."""
    for name, value in LEASE_ENV.items():
        monkeypatch.setenv(name, value)
    lab = ElectionLab(kube_control_plane, f"kfl-{uuid.uuid4().hex[:6]}", tmp_path)
    try:
        lab.start()
        a = lab.replicas[0]
        lab.wait("replica a holding the Lease", lambda: lab.leading(a), STARTUP_SECONDS)
        b = lab.add_replica("b")
        lab.wait("replica b standing by", lambda: lab.standing_by(b, a), STARTUP_SECONDS)
        yield lab
    finally:
        lab.stop()


def poll_until(check: Callable[[], T | None], timeout: float, what: str, lab: ElectionLab) -> T:
    """Like ``lab.wait`` but every 50 ms, for timings measured to a tenth of a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None and found is not False:
            return found
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"no {what} within {timeout:.0f} s; logs:\n{lab.operator_log()}")


def exit_code(replica: Replica, timeout: float) -> int:
    try:
        return replica.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"replica {replica.name} still running after {timeout:.0f} s:\n{replica.log()[-3000:]}"
        ) from None


def handler_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if KOPF_HANDLER_LINE.search(line)]


def serve_from_main(election: ElectionLab, name: str, main: Cluster, failover: Cluster) -> None:
    """A KafkaFailover with one gateway pod, reconciled onto main by whoever leads."""
    election.apply(failover_manifest(name, main, failover, replicas=1))
    election.wait(f"the pod of {name} on main", lambda: all_switched(election, name, "main", 1))


def test_one_replica_leads_and_acts_while_the_other_answers_liveness_and_does_nothing(
    election: ElectionLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    a, b = election.replicas
    serve_from_main(election, "pair", kafka_single, kafka_failover)
    patch_active(election, "pair", "failover")
    election.wait("1 pod on failover", lambda: all_switched(election, "pair", "failover", 1))
    assert election.leading(a) and b.process.poll() is None
    status, standby = b.liveness_answer()
    assert status == 200
    assert standby == {"leadership": "standby", "identity": b.identity(), "holder": a.identity()}
    status, leader = a.liveness_answer()
    assert status == 200 and leader["leadership"] == f"leader {a.identity()}"
    assert handler_lines(a.log()), "the leader's log names the handlers it ran"
    assert not handler_lines(b.log()), "the standby ran a handler"
    assert "pair" not in b.log()


def test_a_frozen_leader_is_replaced_and_exits_on_resume_without_acting(
    election: ElectionLab, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    a, b = election.replicas
    serve_from_main(election, "frozen", kafka_single, kafka_failover)
    os.kill(a.process.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    time.sleep(RETRY_PERIOD)  # a renewal a sent just before it froze has landed by now
    last_renewal = election.lease_spec().renew_time
    poll_until(lambda: election.leading(b), TAKEOVER_SECONDS, "takeover by b", election)
    took = time.monotonic() - frozen_at
    unrenewed = (election.lease_spec().acquire_time - last_renewal).total_seconds()
    print(
        f"frozen leader replaced {took:.2f} s after SIGSTOP, {unrenewed:.2f} s after its last "
        f"renewal (lease duration {LEASE_DURATION:g} s)"
    )
    assert unrenewed >= LEASE_DURATION, "b took a lease that had not expired"
    patch_active(election, "frozen", "failover")
    election.wait("1 pod on failover", lambda: all_switched(election, "frozen", "failover", 1))
    assert handler_lines(b.log()), "the new leader's log names the handlers it ran"
    before_resume = len(a.log())
    os.kill(a.process.pid, signal.SIGCONT)
    assert exit_code(a, EXIT_SECONDS) == electing.LOST_EXIT_CODE
    after_resume = [line for line in a.log()[before_resume:].splitlines() if line.strip()]
    assert after_resume, "the old leader said nothing on resume"
    assert all("Leadership lost" in line for line in after_resume), after_resume
    assert election.leading(b)


def test_a_leader_stopped_with_sigterm_releases_the_lease_for_the_standby_at_once(
    election: ElectionLab,
) -> None:
    a, b = election.replicas
    a.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    poll_until(lambda: election.holder() == "", TAKEOVER_SECONDS, "a released Lease", election)
    released = time.monotonic()
    poll_until(lambda: election.leading(b), TAKEOVER_SECONDS, "takeover by b", election)
    taken = time.monotonic()
    print(
        f"SIGTERM to release {released - signalled:.2f} s, release to takeover "
        f"{taken - released:.2f} s (retry period {RETRY_PERIOD:g} s)"
    )
    assert taken - released <= 2 * RETRY_PERIOD + 0.5
    assert exit_code(a, EXIT_SECONDS) == 0
    assert "Released Lease" in a.log()
    assert "took it over from nobody" in b.log()
