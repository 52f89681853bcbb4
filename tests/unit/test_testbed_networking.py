"""Ports: free ones are really free, and a taken one is reported with what it was for."""

import os
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


def test_listening_addresses_are_this_process_s_listening_sockets() -> None:
    with socket.socket() as listening, socket.socket() as bound_only:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        bound_only.bind(("127.0.0.1", 0))

        found = networking.listening_addresses(os.getpid())

        assert ("127.0.0.1", listening.getsockname()[1]) in found
        assert all(port != bound_only.getsockname()[1] for _, port in found)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 sockets here")
def test_an_ipv6_socket_on_a_mapped_ipv4_address_listens_on_the_ipv4_address() -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::ffff:127.0.0.1", 0))
        sock.listen()

        found = networking.listening_addresses(os.getpid())

        assert ("127.0.0.1", sock.getsockname()[1]) in found
