"""A broker of the active cluster down: its gateway port fails like the broker, no stand-in.

The one-hour soak found the gateway dialling another broker for a client that connected to a
killed broker's port. The client cannot tell: it keeps that connection as node N's, and once N is
back and leads its partitions again every request for them is answered NOT_LEADER by the stand-in
for as long as the connection lives (kafka-python's producer never acknowledged again; the Java
producers' batches for one partition expired for minutes). Asked directly, a down broker refuses
the connection and the client asks another broker for metadata: the gateway must do the same,
with a reset (an orderly close before any answer is what franz-go takes for a TLS mistake).
"""

from __future__ import annotations

import pytest

from conftest import GatewayFactory
from kafka_testbed.clusters import Cluster
from kafka_testbed.labs import Lab
from kafka_testbed.raw_protocol import RawConnection

METADATA = 3
ALL_TOPICS = {
    "Topics": None,
    "AllowAutoTopicCreation": False,
    "IncludeClusterAuthorizedOperations": False,
    "IncludeTopicAuthorizedOperations": False,
}


def broker_ports(address: str) -> dict[int, int]:
    with RawConnection(address) as connection:
        answer = connection.request(METADATA, 12, ALL_TOPICS)
    return {broker["NodeId"]: broker["Port"] for broker in answer["Brokers"]}


def ends_in_a_reset(address: str) -> bool:
    """A reset, as a refused connect; False on an orderly close or an answer.

    An orderly close is franz-go's sign of a TLS mistake, and it fails its records on that instead
    of retrying. The reset may come before connect() returns (the gateway accepts and resets at
    once) or on the first request (a broken pipe comes only after a reset).
    """
    try:
        with RawConnection(address) as connection:
            connection.request(METADATA, 12, ALL_TOPICS)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except ConnectionError:
        return False
    return False


@pytest.mark.kafka
def test_a_killed_brokers_port_resets_instead_of_being_served_by_another_broker(
    lab: Lab, gateway_factory: GatewayFactory, kafka_failover: Cluster
) -> None:
    main = lab.kafka([1, 2, 3], name="outage")
    gateway = gateway_factory({"main": main.bootstrap, "failover": kafka_failover.bootstrap})
    node_1 = f"{gateway.host}:{broker_ports(gateway.bootstrap)[1]}"

    main.kill(1)

    assert ends_in_a_reset(node_1)
    assert broker_ports(gateway.bootstrap), "the bootstrap port is still served by the others"
    main.restart(1)
    assert broker_ports(node_1)[1] == broker_ports(gateway.bootstrap)[1]
