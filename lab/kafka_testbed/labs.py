"""A lab: the clusters one test, demo or benchmark started, stopped together when it is done.

Starting clusters through a :class:`Lab` means nothing can be forgotten: leaving the ``with``
block (or calling :meth:`Lab.stop`) stops every cluster at once, even after an error.
"""

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka_testbed import clusters, launching
from kafka_testbed.clusters import Cluster


class Lab:
    """Starts clusters and remembers them; a context manager."""

    def __init__(self, *, grace_seconds: float = clusters.STOP_GRACE_SECONDS) -> None:
        self.started: list[Cluster] = []
        self.grace_seconds = grace_seconds
        """How long nodes get to shut down cleanly on :meth:`stop` before SIGKILL."""

    def kafka(self, node_ids: Sequence[int] = (1,), **options: Any) -> Cluster:
        """Start an Apache Kafka cluster (see :func:`launching.start_kafka` for options)."""
        return self._remember(launching.start_kafka(node_ids, **options))

    def tansu(self, **options: Any) -> Cluster:
        """Start a Tansu broker (see :func:`launching.start_tansu` for options)."""
        return self._remember(launching.start_tansu(**options))

    def stop(self) -> None:
        """Stop every cluster started here, all nodes at once."""
        clusters.stop_all(self.started, self.grace_seconds)

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        """Cluster name -> its log tail, for failure reports."""
        return {cluster.name: cluster.log_tail(lines) for cluster in self.started}

    def workdirs(self) -> list[Path]:
        """Working folders of the clusters (removed by :meth:`stop` unless kept)."""
        return [cluster.workdir for cluster in self.started]

    def __enter__(self) -> "Lab":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _remember(self, cluster: Cluster) -> Cluster:
        self.started.append(cluster)
        return cluster
