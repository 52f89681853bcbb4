"""Ports: free ones are really free, and a taken one is reported with what it was for."""

import socket

import pytest

from kafka_testbed import networking
from kafka_testbed.errors import PortInUseError


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = networking.free_ports(6)

    assert len(set(ports)) == 6
    assert all(networking.is_port_free(port) for port in ports)


def test_a_listening_port_is_neither_free_nor_silent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        assert not networking.is_port_free(port)
        assert networking.accepts_connections(f"127.0.0.1:{port}")
        with pytest.raises(
            PortInUseError, match=rf"127\.0\.0\.1:{port} \(node 3 client listener\)"
        ):
            networking.ensure_ports_free({"node 3 client listener": port, "other": 1 + port})

    assert not networking.accepts_connections(f"127.0.0.1:{port}")


def test_addresses_split_into_host_and_port() -> None:
    assert networking.split_address("127.0.0.1:9092") == ("127.0.0.1", 9092)
