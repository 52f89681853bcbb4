"""The data path on real brokers: a bad client is cut off alone; acks=0 leaks nothing."""

from __future__ import annotations

import struct
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from kafka_testbed import gateways
from kafka_testbed.clusters import Cluster
from kafka_testbed.raw_protocol import RawConnection

METADATA = 3
NO_TOPICS = {
    "Topics": [],
    "AllowAutoTopicCreation": False,
    "IncludeTopicAuthorizedOperations": False,
}


def still_served(connection: RawConnection) -> bool:
    answer = connection.request(METADATA, 12, NO_TOPICS)
    return bool(answer["Brokers"])


def test_a_malformed_frame_closes_only_that_client(gateway: gateways.GatewayProcess) -> None:
    with RawConnection(gateway.bootstrap) as bystander, RawConnection(gateway.bootstrap) as bad:
        assert still_served(bystander)
        bad.send_frame(b"\x00\x03")  # two bytes: shorter than any request header
        assert bad.is_closed_by_peer()
        assert still_served(bystander)
    assert "shorter than a header" in gateway.log_tail(50)


def test_an_oversized_frame_is_refused_before_its_body_is_read(
    gateway_factory: Any, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    gateway = gateway_factory(
        {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap},
        gateway_extra={"limits": {"maxFrameBytes": 65536}},
    )
    with RawConnection(gateway.bootstrap) as bystander, RawConnection(gateway.bootstrap) as bad:
        bad.sock.sendall(struct.pack(">i", 10_000_000))  # announces 10 MB, sends nothing more
        assert bad.is_closed_by_peer()
        assert still_served(bystander)
    assert "exceeds the maximum of 65536" in gateway.log_tail(50)


def test_a_request_for_an_api_the_gateway_does_not_advertise_is_refused(
    gateway: gateways.GatewayProcess,
) -> None:
    with RawConnection(gateway.bootstrap) as bad:
        write_txn_markers_header = struct.pack(">hhih", 27, 1, 1, -1) + b"\x00"
        bad.send_frame(write_txn_markers_header + b"\x00" * 16)
        assert bad.is_closed_by_peer()
    assert "api key 27 is not forwarded" in gateway.log_tail(50)


def test_acks_zero_records_arrive_and_leave_nothing_in_flight(
    gateway: gateways.GatewayProcess, kafka_single: Cluster
) -> None:
    topic = f"acks-zero-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": gateway.bootstrap, "acks": 0, "linger.ms": 5})
    count = 3000
    for index in range(count):
        producer.produce(topic, key=str(index), value=f"value-{index}")
        if index % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    produced = gateway.metrics()
    state = gateway.state()
    assert state["inFlightRequests"] == 0
    assert state["openConnections"]["main"] >= 1  # the producer's connections are still open
    assert 'kafka_failover_requests_total{api_key="0",cluster="main"}' in produced
    assert read_values(kafka_single.bootstrap, topic, count) == {f"value-{i}" for i in range(count)}


def read_values(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> set[str]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    values: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.add(message.value().decode())
    finally:
        consumer.close()
    return values


def refused(address: str) -> bool:
    """The gateway reset the connection (accepted, then reset: at once, or on first read)."""
    try:
        with RawConnection(address) as connection:
            return connection.is_closed_by_peer()
    except ConnectionResetError:
        return True


def test_connections_beyond_the_limit_are_refused_and_counted(
    gateway_factory: Any, kafka_single: Cluster, kafka_failover: Cluster
) -> None:
    gateway = gateway_factory(
        {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap},
        gateway_extra={"limits": {"maxConnections": 2}},
    )
    with RawConnection(gateway.bootstrap) as first, RawConnection(gateway.bootstrap) as second:
        assert still_served(first) and still_served(second)
        assert refused(gateway.bootstrap)
        assert still_served(first)
    assert "kafka_failover_connections_refused_total 1.0" in gateway.metrics()


def test_the_gateway_follows_its_active_file_and_ignores_a_stale_epoch(
    gateway_factory: Any, kafka_single: Cluster, kafka_failover: Cluster, tmp_path: Path
) -> None:
    active = tmp_path / "active"
    active.write_text("{cluster: main, epoch: 2}\n")
    gateway = gateway_factory(
        {"main": kafka_single.bootstrap, "failover": kafka_failover.bootstrap},
        gateway_extra={"activeFile": str(active), "timeouts": {"activeFilePollMs": 100}},
    )
    assert (gateway.state()["active"], gateway.state()["epoch"]) == ("main", 2)
    active.write_text("{cluster: failover, epoch: 3}\n")
    wait_for(lambda: gateway.state()["active"] == "failover")
    assert gateway.state()["epoch"] == 3
    active.write_text("{cluster: main, epoch: 1}\n")
    time.sleep(0.5)
    assert gateway.state()["active"] == "failover", "an older epoch never flips a gateway back"
    assert "stale epoch 1" in gateway.log_tail(50)


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
