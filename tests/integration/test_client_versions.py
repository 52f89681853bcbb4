"""The client-version table of the design notes, measured with the real Java clients.

Three scenarios, each with kafka-clients 3.7.2 (before KIP-899 rebootstrap) and 4.1.1 (after):
- "kafka down, gateway up": main dies while the producer runs, the gateway is switched to
  failover; the producer must carry on without a restart (it only ever knew gateway addresses);
- "gateway down and back": the gateway process is stopped for a few seconds and started again on
  the same addresses while main stays up;
- "Kafka and gateway both down, then gateway back": the gateway is stopped and main SIGKILLed,
  both stay down a few seconds, then the gateway comes back on the same addresses already
  pointing at failover (its active file says so, as the operator's ConfigMap would).

"Recovers" means: records sent after the event are acknowledged, with no client restart. The
outcome of every case is printed as a table row (copied into the README).
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kafka_testbed import admin, fetching, java_programs
from kafka_testbed.clusters import Cluster
from kafka_testbed.labs import Lab

RUN_SECONDS, RATE, EVENT_AT = 24, 40, 6.0
RECOVERY_BOUND_SECONDS = 60.0


def acknowledged_lines(output: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^ACK (\d+) ", output, re.M)]


def run_producer(
    gateway: Any, topic: str, clients: str, log: Path, seconds: int = RUN_SECONDS
) -> Any:
    jars = fetching.fetch_old_clients() if clients == "3.7.2" else fetching.fetch_kafka_jars()
    return java_programs.start(
        "SequenceProducer",
        jars,
        [gateway.bootstrap, topic, str(seconds), str(RATE), "delivery.timeout.ms=60000"],
        log,
    )


def recovered(log: Path, sent_after_event: int) -> bool:
    """Some record sent after the event (sequence above it) was acknowledged."""
    return any(seq >= sent_after_event for seq in acknowledged_lines(log.read_text()))


def seconds_to_next_ack(log: Path, process: Any, acked_before: int, since: float) -> float | None:
    """Seconds from ``since`` until the producer logged more than ``acked_before``
    acknowledgements; None when that did not happen within ``RECOVERY_BOUND_SECONDS``."""
    while True:
        exited = process.poll() is not None
        if len(acknowledged_lines(log.read_text())) > acked_before:
            return time.monotonic() - since
        if exited or time.monotonic() - since > RECOVERY_BOUND_SECONDS:
            return None
        time.sleep(0.05)


def outcome_row(scenario: str, clients: str, log: Path, outcome: bool, took: float | None) -> str:
    """The README table row, with the time to the first acknowledgement after the event and
    how many records failed (ERR lines) over the whole run."""
    timing = "no ack" if took is None else f"first ack {took:.1f} s after"
    errors = len(re.findall(r"^ERR ", log.read_text(), re.M))
    verdict = "recovers" if outcome else "stuck"
    return f"| {scenario} | {clients} | {verdict} ({timing}; {errors} records failed) |"


@pytest.mark.parametrize("clients", ["3.7.2", "4.1.1"])
def test_kafka_down_gateway_up_the_producer_carries_on_without_restart(
    lab: Lab, kafka_failover: Cluster, gateway_factory: Any, tmp_path: Path, clients: str
) -> None:
    main = lab.kafka([1], name=f"doomed-main-{clients}")
    gateway = gateway_factory({"main": main.bootstrap, "failover": kafka_failover.bootstrap})
    topic = f"versions-{uuid.uuid4().hex[:6]}"
    for cluster in (main, kafka_failover):
        admin.create_topic(cluster.bootstrap, topic, partitions=1)
    log = tmp_path / "producer.log"
    process = run_producer(gateway, topic, clients, log)
    time.sleep(EVENT_AT)
    main.kill_all()
    acked_before = len(acknowledged_lines(log.read_text()))
    assert gateway.switch("failover").status == 200
    took = seconds_to_next_ack(log, process, acked_before, since=time.monotonic())
    boundary = int((EVENT_AT + 1) * RATE)
    process.wait(timeout=RUN_SECONDS + 90)
    outcome = recovered(log, boundary)
    print(outcome_row("Kafka down, gateway up (from the switch)", clients, log, outcome, took))
    assert outcome, log.read_text()[-3000:]


@pytest.mark.parametrize("clients", ["3.7.2", "4.1.1"])
def test_gateway_down_and_back_on_the_same_addresses(
    kafka_single: Cluster,
    kafka_failover: Cluster,
    gateway_factory: Any,
    tmp_path: Path,
    clients: str,
) -> None:
    gateway = gateway_factory(
        {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap}
    )
    topic = f"versions-{uuid.uuid4().hex[:6]}"
    admin.create_topic(kafka_single.bootstrap, topic, partitions=1)
    log = tmp_path / "producer.log"
    process = run_producer(gateway, topic, clients, log)
    time.sleep(EVENT_AT)
    gateway.restart(down_seconds=4)
    acked_before = len(acknowledged_lines(log.read_text()))
    took = seconds_to_next_ack(log, process, acked_before, since=time.monotonic())
    boundary = int((EVENT_AT + 5) * RATE)
    process.wait(timeout=RUN_SECONDS + 90)
    outcome = recovered(log, boundary)
    print(outcome_row("gateway down and back (from gateway ready)", clients, log, outcome, took))
    assert outcome, log.read_text()[-3000:]


BOTH_DOWN_SECONDS, BOTH_DOWN_RUN_SECONDS = 5.0, 45


@pytest.mark.parametrize("clients", ["3.7.2", "4.1.1"])
def test_kafka_and_gateway_both_down_then_gateway_back_on_failover_the_producer_recovers(
    lab: Lab, kafka_failover: Cluster, gateway_factory: Any, tmp_path: Path, clients: str
) -> None:
    """The design notes expect clients before 3.8 to need a restart here; measured, they do not:
    every address the producer learned is a gateway address, and the gateway comes back on it.

    Order: the gateway stops first, then main is SIGKILLed; both stay down ``BOTH_DOWN_SECONDS``.
    At 3 a.m. the operator brings the gateway back already on failover: its active file names
    failover before it starts (as the operator's ConfigMap does). The same producer process must
    get acknowledgements again within ``RECOVERY_BOUND_SECONDS`` of the gateway being ready,
    including for records sent after the gateway stopped; the time from "gateway ready" to the
    first acknowledgement is printed (``pytest -s``).
    """
    main = lab.kafka([1], name=f"doomed-main-both-{clients}")
    active = tmp_path / "active"
    gateway = gateway_factory(
        {"main": main.bootstrap, "failover": kafka_failover.bootstrap},
        gateway_extra={"activeFile": str(active)},
    )
    topic = f"versions-{uuid.uuid4().hex[:6]}"
    for cluster in (main, kafka_failover):
        admin.create_topic(cluster.bootstrap, topic, partitions=1)
    log = tmp_path / "producer.log"
    started = time.monotonic()
    process = run_producer(gateway, topic, clients, log, seconds=BOTH_DOWN_RUN_SECONDS)
    time.sleep(EVENT_AT)
    assert acknowledged_lines(log.read_text()), log.read_text()[-3000:]

    gateway.stop()
    # A record numbered at least this was sent after the gateway stopped (the JVM starts late).
    boundary = int((time.monotonic() - started) * RATE) + 1
    main.kill_all()
    time.sleep(BOTH_DOWN_SECONDS)
    active.write_text("{cluster: failover, epoch: 1}\n")
    acked_before = len(acknowledged_lines(log.read_text()))
    gateway.restart()
    took = seconds_to_next_ack(log, process, acked_before, since=time.monotonic())
    assert gateway.state()["active"] == "failover"
    process.wait(timeout=BOTH_DOWN_RUN_SECONDS + 90)
    outcome = took is not None and recovered(log, boundary)
    scenario = "Kafka and gateway both down, then gateway back (from gateway ready)"
    print(outcome_row(scenario, clients, log, outcome, took))
    assert outcome, log.read_text()[-3000:]
