"""The client-version table of the design notes, measured with the real Java clients.

Two scenarios, each with kafka-clients 3.7.2 (before KIP-899 rebootstrap) and 4.1.1 (after):
- "kafka down, gateway up": main dies while the producer runs, the gateway is switched to
  failover; the producer must carry on without a restart (it only ever knew gateway addresses);
- "gateway down and back": the gateway process is stopped for a few seconds and started again on
  the same addresses while main stays up.

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


def acknowledged_lines(output: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^ACK (\d+) ", output, re.M)]


def run_producer(gateway: Any, topic: str, clients: str, log: Path) -> Any:
    jars = fetching.fetch_old_clients() if clients == "3.7.2" else fetching.fetch_kafka_jars()
    return java_programs.start(
        "SequenceProducer",
        jars,
        [gateway.bootstrap, topic, str(RUN_SECONDS), str(RATE), "delivery.timeout.ms=60000"],
        log,
    )


def recovered(log: Path, sent_after_event: int) -> bool:
    """Some record sent after the event (sequence above it) was acknowledged."""
    return any(seq >= sent_after_event for seq in acknowledged_lines(log.read_text()))


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
    assert gateway.switch("failover").status == 200
    boundary = int((EVENT_AT + 1) * RATE)
    process.wait(timeout=RUN_SECONDS + 90)
    outcome = recovered(log, boundary)
    print(f"| Kafka down, gateway up | {clients} | {'recovers' if outcome else 'stuck'} |")
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
    boundary = int((EVENT_AT + 5) * RATE)
    process.wait(timeout=RUN_SECONDS + 90)
    outcome = recovered(log, boundary)
    print(f"| gateway down and back | {clients} | {'recovers' if outcome else 'stuck'} |")
    assert outcome, log.read_text()[-3000:]
