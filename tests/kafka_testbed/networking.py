"""Finding free 127.0.0.1 ports and telling whether something listens on one.

All servers of the lab bind 127.0.0.1 only. Ports are checked before a process starts so that a
taken port gives a clear error at once instead of a JVM bind failure a few seconds later.
"""

import contextlib
import socket
from collections.abc import Mapping

from kafka_testbed.errors import PortInUseError

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on right now (chosen by the kernel)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def is_port_free(port: int) -> bool:
    """True when a server could bind ``127.0.0.1:port`` (as Java does, with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def ensure_ports_free(ports: Mapping[str, int]) -> None:
    """Raise :class:`PortInUseError` naming every taken port and what it was wanted for."""
    taken = [
        f"{HOST}:{port} ({purpose})" for purpose, port in ports.items() if not is_port_free(port)
    ]
    if taken:
        raise PortInUseError(
            f"Port already in use: {', '.join(taken)}. Stop whatever listens there, or let "
            "the harness pick free ports (do not pass ports explicitly)."
        )


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` -> ``("host", port)``."""
    host, _, port = address.rpartition(":")
    return host, int(port)


def accepts_connections(address: str, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection(split_address(address), timeout=timeout):
            return True
    except OSError:
        return False
