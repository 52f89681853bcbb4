"""A real gateway process whose main cluster is a broker that misbehaves on purpose.

Main is :class:`kafka_testbed.hostile_broker.HostileBroker` (one per module), failover the real
node-7 broker. For every fault a client's request meets, only that client's connection ends: the
gateway process stays up, logs one warning naming the broker (cluster and address) and the
fault, drops the broker connection, keeps serving a bystander connected to the same broker
through it, and still switches to failover and serves there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GatewayFactory
from failover_gateway.codec import headers, schema, specs
from kafka_testbed.clusters import Cluster
from kafka_testbed.gateways import GatewayProcess
from kafka_testbed.hostile_broker import FAULT_PREFIX, Fault, HostileBroker
from kafka_testbed.raw_protocol import RawConnection

METADATA = 3
METADATA_REQUEST = {"Topics": [], "AllowAutoTopicCreation": False}
CLIENT_TIMEOUT_SECONDS = 2.0  # the faulty client's own request timeout
WAIT_SECONDS = 15.0

# What the gateway's warning says for each fault; None: the client gives up first (its own
# request timeout), and the gateway names the broker that left the response unfinished.
GATEWAY_SAYS = {
    Fault.TRUNCATED: "left a response frame unfinished",
    Fault.OVERSIZED: "exceeds the maximum of",
    Fault.REVERSED: "out of order",
    Fault.WRONG_CORRELATION_ID: "unknown correlation id",
    Fault.GARBAGE: "malformed api key 3 v4 response",
    Fault.SLOW: "left a response frame unfinished",
    Fault.CLOSE_MID_FRAME: "closed the connection mid-frame",
}
CLIENT_GIVES_UP = {Fault.TRUNCATED, Fault.SLOW}


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileBroker]:
    with HostileBroker() as broker:
        yield broker


def start_gateway(
    gateway_factory: GatewayFactory, hostile: HostileBroker, failover: Cluster, **timeouts: int
) -> GatewayProcess:
    return gateway_factory(
        {"main": hostile.bootstrap, "failover": failover.bootstrap},
        gateway_extra={"timeouts": timeouts} if timeouts else None,
    )


def metadata_frame(correlation_id: int, client_id: str) -> bytes:
    spec = specs.request(METADATA)
    assert spec is not None
    payload = headers.encode_request_header(METADATA, 4, correlation_id, client_id)
    payload += schema.encode(spec, 4, METADATA_REQUEST)
    return len(payload).to_bytes(4, "big") + payload


def node_ids(connection: RawConnection) -> list[int]:
    answer: dict[str, Any] = connection.request(METADATA, 4, METADATA_REQUEST)
    return [broker["NodeId"] for broker in answer["Brokers"]]


def meet_fault(gateway: GatewayProcess, fault: Fault) -> None:
    """A client whose requests meet ``fault``; returns once its connection has ended."""
    client_id = FAULT_PREFIX + fault.value
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT_SECONDS) as sock:
        requests = [metadata_frame(1, client_id)]
        if fault is Fault.REVERSED:
            requests.append(metadata_frame(2, client_id))
        sock.sendall(b"".join(requests))
        if fault in CLIENT_GIVES_UP:
            sock.settimeout(CLIENT_TIMEOUT_SECONDS)
        received = drain(sock)
    if fault not in CLIENT_GIVES_UP:
        assert received is not None, f"the gateway kept the connection of a {fault.value} broker"


def drain(sock: socket.socket) -> bytes | None:
    """What the gateway sent until it closed the connection, or None at the client's timeout."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def broker_warnings(log_path: Path, broker: str) -> list[str]:
    return [
        line for line in log_path.read_text().splitlines() if "WARNING" in line and broker in line
    ]


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("fault", list(Fault), ids=lambda fault: fault.value)
def test_a_misbehaving_broker_ends_only_the_client_connection_concerned(
    gateway_factory: GatewayFactory,
    hostile: HostileBroker,
    kafka_failover: Cluster,
    fault: Fault,
) -> None:
    gateway = start_gateway(gateway_factory, hostile, kafka_failover)
    broker = f"broker main {hostile.bootstrap}"
    client_id = FAULT_PREFIX + fault.value
    with RawConnection(gateway.bootstrap, client_id="bystander") as bystander:
        assert node_ids(bystander) == [hostile.node_id]
        meet_fault(gateway, fault)
        wait_for(lambda: broker_warnings(gateway.log_path, broker), "the gateway's warning")
        wait_for(lambda: hostile.open_by_client[client_id] == 0, "the broker connection to close")
        assert node_ids(bystander) == [hostile.node_id]
        assert gateway.is_alive()
        [warning] = broker_warnings(gateway.log_path, broker)
        assert GATEWAY_SAYS[fault] in warning, warning
        assert "Traceback" not in gateway.log_path.read_text()
        assert gateway.switch("failover").status == 200
        assert node_ids(bystander) == [7]  # moved to failover under its client, served there
    with RawConnection(gateway.bootstrap, client_id="newcomer") as newcomer:
        assert node_ids(newcomer) == [7]
    assert gateway.state()["upstreams"]["failover"]["verdict"] == "healthy"


def test_a_trickling_broker_is_cut_off_by_the_response_frame_bound(
    gateway_factory: GatewayFactory, hostile: HostileBroker, kafka_failover: Cluster
) -> None:
    gateway = start_gateway(gateway_factory, hostile, kafka_failover, responseFrameMs=1000)
    broker = f"broker main {hostile.bootstrap}"
    client_id = FAULT_PREFIX + Fault.SLOW.value
    with RawConnection(gateway.bootstrap, client_id="bystander") as bystander:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT_SECONDS) as sock:
            sock.sendall(metadata_frame(1, client_id))
            assert drain(sock) is not None  # closed by the gateway, not by a client timeout
        [warning] = broker_warnings(gateway.log_path, broker)
        assert "stalled" in warning and "timeouts.responseFrameMs" in warning
        wait_for(lambda: hostile.open_by_client[client_id] == 0, "the broker connection to close")
        assert node_ids(bystander) == [hostile.node_id]
