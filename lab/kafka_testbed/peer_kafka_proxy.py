"""grepplabs ``kafka-proxy`` (Go) as a benchmark peer, run from a binary the caller provides.

The Go module proxy on this machine refuses ``github.com/grepplabs/kafka-proxy`` (403, "This
module version is not available") for every version, so the project cannot build it as it builds
its other Go programs (see ``kube_testbed.building``), and no copy of it or recipe for it is kept
here. A binary built elsewhere is taken from ``$KAFKA_PROXY_BIN``; without one the peer raises
:class:`~kafka_testbed.peers.PeerUnavailable` saying so, and the benchmark reports the row missing.

It is started the way its README starts it: ``kafka-proxy server`` with one
``--bootstrap-server-mapping`` from the broker to a local port. Every listener is on loopback
(``--default-listener-ip``, so a dynamic listener for a broker address the mapping does not
cover is on loopback too), the HTTP health/metrics endpoint is off, and every performance knob
(request/response buffer sizes 4096, 256 open requests per connection, socket buffers at the
system default, ``--producer-acks-0-disabled`` off) is left at its default.
"""

from __future__ import annotations

import os
from pathlib import Path

from kafka_testbed import networking, supervising
from kafka_testbed.peers import PeerProxy, PeerUnavailable, wait_until_listening

BINARY_ENV_VAR = "KAFKA_PROXY_BIN"
MODULE = "github.com/grepplabs/kafka-proxy"


def kafka_proxy_binary() -> Path:
    """The executable named by ``$KAFKA_PROXY_BIN``; raise :class:`PeerUnavailable` without one."""
    why = (
        f"{MODULE} is not served by the Go module proxy on this machine (403 'This module "
        "version is not available'), so it cannot be built here; "
        f"{BINARY_ENV_VAR}=/path/to/kafka-proxy enables the row"
    )
    configured = os.environ.get(BINARY_ENV_VAR, "")
    if not configured:
        raise PeerUnavailable(f"kafka-proxy: {BINARY_ENV_VAR} is not set. {why}")
    binary = Path(configured)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise PeerUnavailable(
            f"kafka-proxy: {BINARY_ENV_VAR}={configured} is not an executable file. {why}"
        )
    return binary


def start_kafka_proxy(upstream: str, workdir: Path) -> PeerProxy:
    """``kafka-proxy server`` in front of the single broker ``upstream``, on loopback."""
    binary = kafka_proxy_binary()
    (port,) = networking.free_ports(1)
    bootstrap = f"{networking.HOST}:{port}"
    command = [
        str(binary), "server",
        "--bootstrap-server-mapping", f"{upstream},{bootstrap}",
        "--default-listener-ip", networking.HOST,
        "--http-disable",
    ]  # fmt: skip
    log_path = workdir / "kafka-proxy.log"
    process = supervising.spawn(command, log_path)
    peer = PeerProxy("kafka-proxy", bootstrap, process, log_path)
    wait_until_listening(peer)
    return peer
