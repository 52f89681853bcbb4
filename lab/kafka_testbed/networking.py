"""Finding free 127.0.0.1 ports and telling whether something listens on one.

All servers of the lab bind 127.0.0.1 only. Ports are checked before a process starts so that a
taken port gives a clear error at once instead of a JVM bind failure a few seconds later.
"""

import contextlib
import ipaddress
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from kafka_testbed.errors import PortInUseError

HOST = "127.0.0.1"
TCP_LISTEN = "0A"
"""The ``st`` column of ``/proc/net/tcp`` for a listening socket (``TCP_LISTEN`` in the kernel)."""


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


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """The ``(address, port)`` of every TCP socket process ``pid`` listens on, sorted.

    Reads the LISTEN sockets from ``/proc/<pid>/net/tcp`` and ``tcp6`` (the process's own network
    namespace) and keeps those whose inode is one of the process's open file descriptors, so a
    server that binds every interface shows up as ``0.0.0.0`` or ``::``. An IPv4-mapped address
    (Java binds IPv6 sockets, ``::ffff:127.0.0.1`` for ``127.0.0.1``) is given as the IPv4 one.
    """
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):  # closed since the listing
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found: list[tuple[str, int]] = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError):  # no IPv6 in this kernel
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == TCP_LISTEN and fields[9] in inodes:
                    found.append(_proc_net_address(fields[1]))
    return sorted(found)


def _proc_net_address(field: str) -> tuple[str, int]:
    """``"0100007F:1F90"`` (``/proc/net/tcp``: 32-bit words in host byte order) -> address, port."""
    hex_address, _, hex_port = field.partition(":")
    raw = bytes.fromhex(hex_address)
    packed = b"".join(
        int.from_bytes(raw[i : i + 4], sys.byteorder).to_bytes(4, "big")
        for i in range(0, len(raw), 4)
    )
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv6 socket (as Java's) bound to an IPv4 address
    return str(address), int(hex_port, 16)
