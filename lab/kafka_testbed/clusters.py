"""A running lab cluster: its addresses, its processes, their logs, and how to stop or break it.

The same :class:`Cluster` is returned for every backend (Apache Kafka, Tansu), so tests,
the demo and the benchmarks use one API whatever broker they run against.
"""

import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from kafka_testbed import networking, supervising
from kafka_testbed.errors import ClusterStartError

STOP_GRACE_SECONDS = 10.0
LOG_TAIL_BYTES = 64 * 1024
START_ERROR_LOG_LINES = 30
KEEP_FILES_ENV_VAR = "KAFKA_TESTBED_KEEP_FILES"
"""Set to 1 to keep every cluster's working folder (configs, data, full logs) after it stops."""
KEEP_FILES_HINT = f"(Set {KEEP_FILES_ENV_VAR}=1 to keep each cluster's folder with its full logs.)"
POLL_SECONDS = 0.1


@dataclass
class Node:
    """One server process of a cluster (a Kafka broker+controller, or Tansu)."""

    node_id: int
    address: str
    """``host:port`` of the client listener."""
    command: list[str]
    """The argv it was started with, kept so :meth:`Cluster.restart` can start it again."""
    log_path: Path
    process: supervising.Process | None = None

    @property
    def pid(self) -> int | None:
        """Process id while it runs, ``None`` once stopped or killed."""
        return None if self.process is None else self.process.pid

    def is_alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    """A started cluster. Use as a context manager, or call :meth:`stop`."""

    kind: str
    """``"apache-kafka"`` or ``"tansu"``."""
    name: str
    nodes: dict[int, Node]
    workdir: Path
    """Per-cluster folder with ``logs/`` (and, for Kafka, configs and data)."""
    startup_seconds: float = 0.0
    keep_files: bool = False
    """Leave ``workdir`` on disk after :meth:`stop` (for debugging)."""
    stopped: bool = field(default=False, init=False)

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` value naming every node: ``"127.0.0.1:port,..."``."""
        return ",".join(node.address for node in self.nodes.values())

    @property
    def brokers(self) -> dict[int, str]:
        """Node id -> ``host:port``."""
        return {node_id: node.address for node_id, node in self.nodes.items()}

    @property
    def pids(self) -> dict[int, int]:
        """Node id -> process id, for nodes whose process runs."""
        return {node_id: node.pid for node_id, node in self.nodes.items() if node.pid is not None}

    def describe(self) -> str:
        """One line for humans: ``apache-kafka 3 brokers started in 7.9s``."""
        count = len(self.nodes)
        brokers = "broker" if count == 1 else "brokers"
        return f"{self.kind} {count} {brokers} started in {self.startup_seconds:.1f}s"

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (a crash, no controlled shutdown); its port stops answering."""
        node = self._node(node_id)
        if node.process is not None:
            supervising.kill(node.process)
            node.process = None

    def kill_all(self) -> None:
        """SIGKILL every node; the working folder is kept until :meth:`stop`."""
        for node_id in self.nodes:
            self.kill(node_id)

    def restart(self, node_id: int, timeout: float = 60.0) -> None:
        """Start a killed node again with the same command and data; wait until its port answers."""
        node = self._node(node_id)
        if node.is_alive():
            raise ClusterStartError(f"{self.name}: node {node_id} is already running")
        node.process = supervising.spawn(node.command, node.log_path)
        self.wait_until_listening([node_id], timeout)

    def wait_until_listening(self, node_ids: Sequence[int], timeout: float) -> None:
        """Wait until each node's client port accepts connections.

        Raises :class:`ClusterStartError` with the log tail when a node's process exits or the
        timeout passes first.
        """
        deadline = time.monotonic() + timeout
        waiting = [self._node(node_id) for node_id in node_ids]
        while waiting:
            self.raise_if_any_died()
            waiting = [node for node in waiting if not networking.accepts_connections(node.address)]
            if waiting and time.monotonic() > deadline:
                silent = ", ".join(f"{node.node_id} ({node.address})" for node in waiting)
                raise self.start_error(f"nodes not listening after {timeout:.0f}s: {silent}")
            if waiting:
                time.sleep(POLL_SECONDS)

    def raise_if_any_died(self) -> None:
        """Raise :class:`ClusterStartError` with the log tail if a started node has exited."""
        dead = [node for node in self.nodes.values() if node.process and not node.is_alive()]
        if dead:
            statuses = ", ".join(
                f"node {node.node_id} exited with status {node.process.returncode}"
                for node in dead
                if node.process is not None
            )
            raise self.start_error(statuses)

    def start_error(self, problem: str) -> ClusterStartError:
        """A :class:`ClusterStartError` naming the cluster and carrying every node's log tail."""
        return ClusterStartError(
            f"{self.kind} cluster {self.name!r} did not start: {problem}\n"
            f"{self.log_tail(START_ERROR_LOG_LINES)}\n{KEEP_FILES_HINT}"
        )

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop every node (SIGTERM, then SIGKILL after the grace period) and wait for them.

        Idempotent. Removes the working folder unless ``keep_files`` is set.
        """
        running = [node.process for node in self.nodes.values() if node.process is not None]
        supervising.terminate_all(running, grace_seconds)
        for node in self.nodes.values():
            node.process = None
        if not self.stopped and not self._keeps_files():
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.stopped = True

    def _keeps_files(self) -> bool:
        return self.keep_files or os.environ.get(KEEP_FILES_ENV_VAR, "") not in ("", "0")

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of each node's log, each under a header naming the node."""
        return "\n".join(self._node_log_tail(node, lines) for node in self.nodes.values())

    def unreachable_nodes(self) -> list[int]:
        """Node ids whose client port refuses connections right now."""
        return [
            node_id
            for node_id, node in self.nodes.items()
            if not networking.accepts_connections(node.address)
        ]

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _node(self, node_id: int) -> Node:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KeyError(
                f"{self.name} has no node {node_id}; nodes: {sorted(self.nodes)}"
            ) from None

    def _node_log_tail(self, node: Node, lines: int) -> str:
        state = "running" if node.is_alive() else "not running"
        if node.process is not None and node.process.returncode is not None:
            state = f"exited with status {node.process.returncode}"
        header = f"----- {self.name} node {node.node_id} ({state}), {node.log_path} -----"
        return "\n".join([header, *read_tail(node.log_path, lines)])


def read_tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file, reading at most its last 64 KiB."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            text = handle.read().decode(errors="replace")
    except OSError as error:
        return [f"(no log: {error})"]
    return text.splitlines()[-lines:] if lines > 0 else []


def announce(cluster: Cluster) -> None:
    """Print how long the cluster took to start (stderr, so it shows even when stdout is piped)."""
    print(f"kafka_testbed: {cluster.describe()}: {cluster.bootstrap}", file=sys.stderr, flush=True)


def stop_all(clusters: Sequence[Cluster], grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """Stop several clusters at once: every node of every cluster gets SIGTERM together."""
    processes = [
        node.process
        for cluster in clusters
        for node in cluster.nodes.values()
        if node.process is not None
    ]
    supervising.terminate_all(processes, grace_seconds)
    for cluster in clusters:
        cluster.stop(grace_seconds)
